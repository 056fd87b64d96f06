//! The style a caller gets: only the layers it may read (a restricted collection is
//! not in the style at all, so the map logs no missing-source errors and the layer
//! list offers nothing it cannot show), and, for a style that asks for one
//! (`metadata["nordgeo:basemap"]`), the configured basemap archive underneath.

use serde_json::{Value as Json, json};

use crate::archives::TileFormat;
use crate::auth::Caller;
use crate::catalog::Catalog;

/// Layers of the basemap schemas, in `styles/basemap/{schema}.json`.
const SCHEMAS: &[&str] = &["openmaptiles", "shortbread"];

/// The collection a style source draws, if it is one of ours (`nordgeo://collections/X/…`
/// GeoJSON) — the dataset vector source is filtered by `source-layer` instead.
fn geojson_collection(source: &Json) -> Option<String> {
    let data = source.get("data")?.as_str()?;
    let rest = data.strip_prefix("nordgeo://collections/")?;
    Some(rest.split(['/', '?']).next()?.to_string())
}

/// Removes what `who` cannot read: layers of unreadable (or unknown) collections,
/// sources of them, and their entries in the layer groups.
pub fn filter(style: &mut Json, who: &Caller, cat: &Catalog) {
    let readable = |c: &str| {
        cat.get(c)
            .is_some_and(|l| who.can_read(c, &l.meta) && l.def.has_geometry())
    };
    let mut dropped_sources = Vec::new();
    if let Some(sources) = style.get_mut("sources").and_then(Json::as_object_mut) {
        sources.retain(|name, s| match geojson_collection(s) {
            Some(c) if !readable(&c) => {
                dropped_sources.push(name.clone());
                false
            }
            _ => true,
        });
    }
    let ours = |l: &Json| l.get("source").and_then(Json::as_str) == Some("nordgeo");
    if let Some(layers) = style.get_mut("layers").and_then(Json::as_array_mut) {
        layers.retain(|l| {
            let src = l.get("source").and_then(Json::as_str).unwrap_or_default();
            if dropped_sources.iter().any(|d| d == src) {
                return false;
            }
            match l.get("source-layer").and_then(Json::as_str) {
                Some(c) if ours(l) => readable(c),
                _ => true,
            }
        });
    }
    let groups_left: Vec<String> = style["layers"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l["metadata"]["nordgeo:group"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(g) = style
        .get_mut("metadata")
        .and_then(|m| m.get_mut("nordgeo:groups"))
        .and_then(Json::as_object_mut)
    {
        g.retain(|k, _| groups_left.contains(k));
    }
}

/// What the basemap is.
pub struct Basemap<'a> {
    /// The archive's name.
    pub archive: &'a str,
    /// Its tiles.
    pub format: TileFormat,
    /// `openmaptiles`, `shortbread` (vector) — ignored for raster archives.
    pub schema: Option<&'a str>,
    /// The layers of that schema (`styles/basemap/{schema}.json`).
    pub layers: Option<Json>,
    /// The source layers the archive says it has (`vector_layers`); style layers for
    /// others are left out, since a regional extract often lacks some.
    pub source_layers: Option<Vec<String>>,
    /// Attribution shown with the basemap.
    pub attribution: Option<String>,
}

/// The schema file to read for a vector basemap.
pub fn schema_file(schema: Option<&str>) -> Option<String> {
    let s = schema.unwrap_or("openmaptiles");
    SCHEMAS.contains(&s).then(|| format!("basemap/{s}.json"))
}

/// Puts the basemap under a style that asks for it: its source, its area and line
/// layers right above the background, its labels above everything; the style's own
/// opaque area fills (`metadata["nordgeo:basemap-opacity"]`) become translucent.
pub fn add_basemap(style: &mut Json, b: &Basemap) {
    if style["metadata"]["nordgeo:basemap"] != json!(true) {
        return;
    }
    let url = format!("nordgeo://archives/{}/tilejson.json", b.archive);
    let (source, layers): (Json, Vec<Json>) = if b.format.is_vector() {
        let Some(Json::Array(mut layers)) = b.layers.clone() else {
            return;
        };
        if let Some(have) = &b.source_layers {
            layers.retain(|l| {
                l["source-layer"]
                    .as_str()
                    .is_none_or(|s| have.iter().any(|h| h == s))
            });
        }
        (json!({"type": "vector", "url": url}), layers)
    } else {
        (
            json!({"type": "raster", "url": url, "tileSize": 256}),
            vec![
                json!({"id": "basemap-raster", "type": "raster", "source": "basemap",
                        "metadata": {"nordgeo:group": "basemap"}}),
            ],
        )
    };
    let mut source = source;
    if let Some(a) = &b.attribution {
        source["attribution"] = json!(a);
    }
    if let Some(s) = style.get_mut("sources").and_then(Json::as_object_mut) {
        s.insert("basemap".into(), source);
    }
    let Some(own) = style.get_mut("layers").and_then(Json::as_array_mut) else {
        return;
    };
    for l in own.iter_mut() {
        if let Some(o) = l["metadata"]["nordgeo:basemap-opacity"].as_f64() {
            l["paint"]["fill-opacity"] = json!(o);
        }
    }
    let (labels, areas): (Vec<Json>, Vec<Json>) =
        layers.into_iter().partition(|l| l["type"] == "symbol");
    let at = own
        .iter()
        .position(|l| l["type"] == "background")
        .map_or(0, |i| i + 1);
    own.splice(at..at, areas);
    own.extend(labels);
    if let Some(g) = style
        .get_mut("metadata")
        .and_then(|m| m.get_mut("nordgeo:groups"))
        .and_then(Json::as_object_mut)
    {
        g.insert("basemap".into(), json!("Hintergrundkarte"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raster_basemap_goes_above_the_background_only_when_asked() {
        let mut s = json!({"metadata": {"nordgeo:basemap": true, "nordgeo:groups": {}},
                           "sources": {}, "layers": [{"id": "background", "type": "background"},
                           {"id": "x", "type": "fill", "metadata": {"nordgeo:basemap-opacity": 0.4}}]});
        let b = Basemap {
            archive: "bm",
            format: TileFormat::Png,
            schema: None,
            layers: None,
            source_layers: None,
            attribution: Some("© Landesamt".into()),
        };
        add_basemap(&mut s, &b);
        assert_eq!(s["layers"][1]["id"], "basemap-raster");
        assert_eq!(s["layers"][2]["paint"]["fill-opacity"], 0.4);
        assert_eq!(s["sources"]["basemap"]["type"], "raster");
        assert_eq!(s["sources"]["basemap"]["attribution"], "© Landesamt");
        let mut plain =
            json!({"sources": {}, "layers": [{"id": "background", "type": "background"}]});
        add_basemap(&mut plain, &b);
        assert_eq!(plain["layers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn vector_basemap_keeps_only_layers_the_archive_has() {
        let mut s = json!({"metadata": {"nordgeo:basemap": true}, "sources": {},
                           "layers": [{"id": "background", "type": "background"}, {"id": "own", "type": "line"}]});
        let b = Basemap {
            archive: "bm",
            format: TileFormat::Mvt,
            schema: Some("openmaptiles"),
            layers: Some(json!([
                {"id": "water", "type": "fill", "source": "basemap", "source-layer": "water"},
                {"id": "building", "type": "fill", "source": "basemap", "source-layer": "building"},
                {"id": "place", "type": "symbol", "source": "basemap", "source-layer": "place"},
            ])),
            source_layers: Some(vec!["water".into(), "place".into()]),
            attribution: None,
        };
        add_basemap(&mut s, &b);
        let ids: Vec<&str> = s["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["background", "water", "own", "place"]);
    }
}
