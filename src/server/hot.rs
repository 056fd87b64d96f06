//! Anonymous tile reads answered before axum's router: a cached tile or archive tile is
//! a few microseconds of work, and the router, extractors and middleware around it cost
//! about a third of a request (A/B, perf). The same handler code, time limit, metrics
//! and CORS headers run as through the router; anything else — a token, a query string,
//! another method, an escaped or unusual path — goes to the router.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, Request, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The requests taken here, with the route they are counted under in /metrics.
#[derive(Clone, Copy)]
enum Hot<'a> {
    /// `/archives/{name}/{z}/{x}/{y}`.
    Archive([&'a str; 4]),
    /// `/collections/{id}/tiles/{tms}/{z}/{y}/{x}`.
    Collection([&'a str; 5]),
}

impl Hot<'_> {
    fn route(self) -> &'static str {
        match self {
            Hot::Archive(_) => "/archives/{name}/{z}/{x}/{y}",
            Hot::Collection(_) => "/collections/{id}/tiles/{tms}/{z}/{y}/{x}",
        }
    }
}

/// The hot request `uri` is, if it is one an anonymous GET can take here.
fn hot<'a>(method: &Method, uri: &'a Uri, headers: &HeaderMap) -> Option<Hot<'a>> {
    if method != Method::GET || uri.query().is_some() || headers.contains_key(header::AUTHORIZATION)
    {
        return None;
    }
    let path = uri.path().strip_prefix('/')?;
    // Escaped segments need the router's decoding.
    if path.contains('%') {
        return None;
    }
    let mut seg = [""; 8];
    let mut n = 0;
    for s in path.split('/') {
        if s.is_empty() || n == seg.len() {
            return None;
        }
        seg[n] = s;
        n += 1;
    }
    match &seg[..n] {
        ["archives", name, z, x, y] => Some(Hot::Archive([name, z, x, y])),
        ["collections", id, "tiles", tms, z, y, x] => Some(Hot::Collection([id, tms, z, y, x])),
        _ => None,
    }
}

/// The answer to `req` if it is a hot request, else the request back for the router.
// The request is handed back by move, as it arrived; boxing it would add an allocation
// to every request that is not hot.
#[allow(clippy::result_large_err)]
pub fn answer<B>(
    state: &Arc<AppState>,
    req: Request<B>,
) -> Result<impl Future<Output = Response> + Send + use<B>, Request<B>> {
    let Some(route) = hot(req.method(), req.uri(), req.headers()).map(Hot::route) else {
        return Err(req);
    };
    let state = state.clone();
    // The body of a GET is not read.
    let (parts, _) = req.into_parts();
    Ok(async move {
        let origin = parts.headers.get(header::ORIGIN).cloned();
        let mut res = super::metrics::measured(
            &state,
            route,
            &parts.method,
            &parts.uri,
            run(&state, &parts),
        )
        .await;
        super::cors(&state, origin, false, &mut res);
        res
    })
}

async fn run(state: &Arc<AppState>, parts: &Parts) -> Response {
    let res = match hot(&parts.method, &parts.uri, &parts.headers) {
        Some(Hot::Archive([name, z, x, y])) => {
            super::archives::tile_at(state, name, z, x, y, &parts.headers)
        }
        Some(Hot::Collection(at)) => super::tiles::collection_tile_at(state, at, parts).await,
        // answer() takes only hot requests, so this is not reached; no panic on a request path.
        None => Err(super::problem::Problem::internal(
            "a tile request was misrouted",
        )),
    };
    res.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, uri: &str, token: bool) -> Option<&'static str> {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        if token {
            h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        }
        hot(&method, &uri, &h).map(Hot::route)
    }

    #[test]
    fn only_plain_anonymous_tile_reads_are_hot() {
        let a = Some("/archives/{name}/{z}/{x}/{y}");
        let c = Some("/collections/{id}/tiles/{tms}/{z}/{y}/{x}");
        assert_eq!(route(Method::GET, "/archives/osm/3/4/2", false), a);
        assert_eq!(route(Method::GET, "/archives/osm/3/4/2.pbf", false), a);
        assert_eq!(
            route(
                Method::GET,
                "/collections/trails/tiles/WebMercatorQuad/12/1340/2170",
                false
            ),
            c
        );
        for (m, u, t) in [
            (Method::HEAD, "/archives/osm/3/4/2", false),
            (Method::GET, "/archives/osm/3/4/2", true),
            (Method::GET, "/archives/osm/3/4/2?x=1", false),
            (Method::GET, "/archives/o%73m/3/4/2", false),
            (Method::GET, "/archives//3/4/2", false),
            (Method::GET, "/archives/osm/3/4/2/", false),
            (Method::GET, "/archives/osm/tiles/WebMercatorQuad", false),
            (
                Method::GET,
                "/collections/trails/tiles/WebMercatorQuad/12/1340",
                false,
            ),
            (
                Method::GET,
                "/collections/trails/items/1/history/a/b",
                false,
            ),
            (
                Method::POST,
                "/collections/trails/tiles/WebMercatorQuad/1/1/1",
                false,
            ),
            (Method::GET, "/a/b/c/d/e/f/g/h/i", false),
        ] {
            assert_eq!(route(m.clone(), u, t), None, "{m} {u} token={t}");
        }
    }
}
