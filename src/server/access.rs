//! Who is asking and what they may see: the bearer token, restricted collections and
//! internal properties, applied the same way to every representation.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};

use super::AppState;
use super::problem::Problem;
use crate::audience::Audience;
use crate::auth::Caller;
use crate::catalog::Snapshot;
use crate::index::Layer;

/// The caller of a request; a token that is presented but not valid is a 401.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Problem> {
    let value = match headers.get(header::AUTHORIZATION) {
        // Most requests (every portal tile) carry no token: no need to read the token
        // table, whose shared counter every core would otherwise bounce.
        None => return Ok(Caller::Anonymous),
        Some(v) => Some(v.to_str().map_err(|_| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not text",
            )
        })?),
    };
    let tokens = state.tokens();
    Caller::from_header(value, &tokens)
        .map_err(|e| Problem::new(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// A collection the caller may read: 404 when unknown, 401 without a token and 403
/// with a token that does not cover it, when it is restricted.
pub fn readable(state: &AppState, who: &Caller, id: &str) -> Result<Arc<Snapshot>, Problem> {
    let layer = state.catalog().get(id).cloned().ok_or_else(|| {
        Problem::not_found(format!(
            "there is no collection '{id}'; /collections lists them"
        ))
    })?;
    if who.can_read(id, &layer.meta) {
        return Ok(layer);
    }
    Err(match who {
        Caller::Anonymous => Problem::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "collection '{id}' is restricted; send a token for it as 'Authorization: Bearer <token>' or as the password of HTTP Basic authentication"
            ),
        ),
        Caller::Token(t) => Problem::new(
            StatusCode::FORBIDDEN,
            format!("the token '{}' does not cover collection '{id}'", t.name),
        ),
    })
}

/// The caller and a collection they may read (the preamble of every read handler).
pub fn reader(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Caller, Arc<Snapshot>), Problem> {
    let who = caller(state, headers)?;
    let layer = readable(state, &who, id)?;
    Ok((who, layer))
}

/// A collection the caller may read that has tiles: one without geometry (an
/// attributes-only table) has none.
pub fn tiled(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Caller, Arc<Snapshot>), Problem> {
    let (who, layer) = reader(state, headers, id)?;
    if !layer.def.has_geometry() {
        return Err(Problem::not_found(format!(
            "collection '{id}' is a table without geometry; it has features but no tiles"
        )));
    }
    Ok((who, layer))
}

/// Which properties of which features the caller sees (internal ones: administrators
/// on all features, a municipality's tokens on that municipality's features).
pub fn audience(who: &Caller, layer: &Layer) -> Audience {
    Audience::of(who, &layer.def, &layer.meta)
}

/// A presented token that is not valid is refused on every resource, public ones too, so
/// a client learns at once that its token expired instead of silently reading less.
pub async fn gate(
    state: &AppState,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.headers().contains_key(header::AUTHORIZATION)
        && let Err(p) = caller(state, req.headers())
    {
        return p.into_response();
    }
    next.run(req).await
}

/// `GET /me`: who the token is and which collections it may change (the maintainers'
/// page signs in with it); 401 without a token.
pub async fn me(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<axum::response::Response, Problem> {
    let who = caller(&state, &headers)?;
    let Caller::Token(t) = &who else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "send a token as 'Authorization: Bearer <token>' or as the password of HTTP Basic authentication",
        ));
    };
    let cat = state.catalog();
    let collections: Vec<serde_json::Value> = cat
        .layers
        .iter()
        .filter(|l| who.covers(&l.def.table))
        .map(|l| {
            serde_json::json!({
                "id": l.def.table,
                "title": l.meta.title.clone().unwrap_or_else(|| l.def.table.clone()),
                "municipality_column": l.meta.municipality_column,
            })
        })
        .collect();
    Ok(super::json_body(
        &serde_json::json!({
            "name": t.name,
            "role": t.role,
            "municipality": t.municipality,
            "collections": collections,
        }),
        "application/json",
    ))
}
