//! Query strings and content negotiation, with a clear 400 for anything unusable:
//! invalid percent-encoding, a parameter given twice, a name the resource does not know.

use axum::http::{HeaderMap, header};
use percent_encoding::percent_decode;

use super::problem::Problem;

/// The decoded parameters of one request, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

fn decode(part: &str, what: &str) -> Result<String, Problem> {
    let plus = part.replace('+', " ");
    percent_decode(plus.as_bytes())
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            Problem::bad_request(format!(
                "the query {what} '{part}' is not UTF-8 text after percent-decoding; encode text as UTF-8 (e.g. ü as %C3%BC)"
            ))
        })
}

impl Params {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k, "parameter name")?;
            let v = decode(v, &format!("value of '{k}'"))?;
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(Problem::bad_request(format!(
                    "query parameter '{k}' is given twice; give it once"
                )));
            }
            out.push((k, v));
        }
        Ok(Params(out))
    }

    /// The value of `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// All pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Refuses any parameter not in `known` (plus `f`, accepted everywhere).
    pub fn only(&self, known: &[&str], resource: &str) -> Result<(), Problem> {
        match self
            .0
            .iter()
            .find(|(k, _)| k != "f" && !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(Problem::bad_request(if known.is_empty() {
                format!("unknown query parameter '{k}': {resource} takes only f (json or html)")
            } else {
                format!(
                    "unknown query parameter '{k}': {resource} takes {} and f",
                    known.join(", ")
                )
            })),
            None => Ok(()),
        }
    }
}

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (the default, also for `*/*`).
    Json,
    /// HTML for people.
    Html,
}

impl Format {
    /// `?f=` wins; otherwise HTML only when the client lists `text/html` before any
    /// JSON type (browsers do, GDAL, QGIS and owslib do not).
    pub fn negotiate(params: &Params, headers: &HeaderMap) -> Result<Self, Problem> {
        if let Some(f) = params.get("f") {
            return match f {
                "json" | "geojson" | "application/json" | "application/geo+json" => {
                    Ok(Format::Json)
                }
                "html" | "text/html" => Ok(Format::Html),
                other => Err(Problem::bad_request(format!(
                    "f={other} is not offered; use f=json or f=html (features also f=gpkg, f=csv, and f=gpx for lines)"
                ))),
            };
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let pos = |needle: &str| accept.find(needle);
        let html = pos("text/html");
        let json = [
            pos("application/json"),
            pos("application/geo+json"),
            pos("+json"),
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(match (html, json) {
            (Some(h), Some(j)) if h < j => Format::Html,
            (Some(_), None) => Format::Html,
            _ => Format::Json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn decoding_and_duplicates() {
        let p = Params::parse(Some("bbox=7.0%2C46.0%2C8%2C47&name=M%C3%BChle+Weg")).unwrap();
        assert_eq!(p.get("bbox"), Some("7.0,46.0,8,47"));
        assert_eq!(p.get("name"), Some("Mühle Weg"));
        assert!(Params::parse(Some("name=%FF%FE")).is_err());
        assert!(Params::parse(Some("limit=1&limit=2")).is_err());
    }

    #[test]
    fn negotiation() {
        let none = Params::default();
        let with = |accept: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            Format::negotiate(&none, &h).unwrap()
        };
        assert_eq!(with("*/*"), Format::Json);
        assert_eq!(
            with("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Format::Html
        );
        assert_eq!(with("application/json, text/html"), Format::Json);
        assert_eq!(
            Format::negotiate(&none, &HeaderMap::new()).unwrap(),
            Format::Json
        );
    }
}
