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
enum Kind {
    /// `/archives/{name}/{z}/{x}/{y}`.
    Archive,
    /// `/collections/{id}/tiles/{tms}/{z}/{y}/{x}`.
    Collection,
}

/// A hot request: its kind and where its path's segments lie (byte ranges into the
/// path), so the path is parsed once and read again after the request has moved.
#[derive(Clone, Copy)]
struct Hot {
    kind: Kind,
    seg: [(usize, usize); 7],
}

impl Hot {
    fn route(self) -> &'static str {
        match self.kind {
            Kind::Archive => "/archives/{name}/{z}/{x}/{y}",
            Kind::Collection => "/collections/{id}/tiles/{tms}/{z}/{y}/{x}",
        }
    }

    /// Segment `i` of `path` (the path this was parsed from).
    fn at<'a>(&self, path: &'a str, i: usize) -> &'a str {
        let (from, to) = self.seg[i];
        path.get(from..to).unwrap_or("")
    }
}

/// The hot request `uri` is, if it is one an anonymous GET can take here.
fn hot(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Hot> {
    if method != Method::GET || uri.query().is_some() || headers.contains_key(header::AUTHORIZATION)
    {
        return None;
    }
    let path = uri.path();
    // Escaped segments need the router's decoding.
    if !path.starts_with('/') || path.contains('%') {
        return None;
    }
    let mut seg = [(0, 0); 7];
    let mut n = 0;
    let mut from = 1;
    for s in path[1..].split('/') {
        if s.is_empty() || n == seg.len() {
            return None;
        }
        seg[n] = (from, from + s.len());
        from += s.len() + 1;
        n += 1;
    }
    let word = |i: usize| &path[seg[i].0..seg[i].1];
    let kind = match n {
        5 if word(0) == "archives" => Kind::Archive,
        7 if word(0) == "collections" && word(2) == "tiles" => Kind::Collection,
        _ => return None,
    };
    Some(Hot { kind, seg })
}

/// The answer to `req` if it is a hot request, else the request back for the router.
// The request is handed back by move, as it arrived; boxing it would add an allocation
// to every request that is not hot.
#[allow(clippy::result_large_err)]
pub fn answer<B>(
    state: &Arc<AppState>,
    req: Request<B>,
) -> Result<impl Future<Output = Response> + Send + use<B>, Request<B>> {
    let Some(at) = hot(req.method(), req.uri(), req.headers()) else {
        return Err(req);
    };
    let state = state.clone();
    // The body of a GET is not read.
    let (parts, _) = req.into_parts();
    Ok(async move {
        let origin = parts.headers.get(header::ORIGIN).cloned();
        let mut res = super::metrics::measured(
            &state,
            at.route(),
            &parts.method,
            &parts.uri,
            run(&state, at, &parts),
        )
        .await;
        super::cors(&state, origin, false, &mut res);
        res
    })
}

async fn run(state: &Arc<AppState>, at: Hot, parts: &Parts) -> Response {
    let path = parts.uri.path();
    let s = |i| at.at(path, i);
    let res = match at.kind {
        Kind::Archive => super::archives::tile_at(state, s(1), s(2), s(3), s(4), &parts.headers),
        Kind::Collection => {
            super::tiles::collection_tile_at(state, [s(1), s(3), s(4), s(5), s(6)], parts).await
        }
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
