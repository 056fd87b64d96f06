//! What the portal needs besides tiles: OGC API Tiles metadata (checked against
//! morecantile's WebMercatorQuad), styles with this server's URLs (checked with
//! MapLibre's style validator), and label glyphs.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// Every number of `a` equals the one at the same place in `b`; strings and keys too.
fn same(a: &Value, b: &Value, at: &str, diffs: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in y {
                match x.get(k) {
                    Some(w) => same(w, v, &format!("{at}.{k}"), diffs),
                    None => diffs.push(format!("{at}.{k} missing")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                same(v, w, &format!("{at}[{i}]"), diffs);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        (x, y) if x == y => {}
        (x, y) => diffs.push(format!("{at}: {x} != {y}")),
    }
}

#[test]
fn tile_matrix_set_equals_morecantile() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let o = Command::new(venv_python())
        .args([
            "-c",
            "import json, morecantile; print(json.dumps(morecantile.tms.get('WebMercatorQuad').model_dump(mode='json', exclude_none=True)))",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "morecantile: {}", text(&o));
    let reference: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ours = get(&format!("{}/tileMatrixSets/WebMercatorQuad", srv.base), &[]).json();
    let mut diffs = Vec::new();
    same(&ours, &reference, "", &mut diffs);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert_eq!(ours["tileMatrices"].as_array().unwrap().len(), 25);

    let list = get(&format!("{}/tileMatrixSets", srv.base), &[]).json();
    assert_eq!(list["tileMatrixSets"][0]["id"], "WebMercatorQuad");
    assert_eq!(
        get(&format!("{}/tileMatrixSets/Other", srv.base), &[]).status,
        404
    );
}

/// `/tiles` and `/collections/{id}/tiles`: the tileset's links resolve, its item
/// template gives the same tile as the tile endpoint, layers carry fields and zooms.
#[test]
fn tilesets_describe_the_tiles() {
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let conf = get(&format!("{}/conformance", srv.base), &[]).json();
    let classes: Vec<&str> = conf["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "core",
        "tileset",
        "tilesets-list",
        "dataset-tilesets",
        "geodata-tilesets",
        "mvt",
    ] {
        assert!(
            classes.contains(
                &format!("http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{c}").as_str()
            ),
            "{c}"
        );
    }
    let landing = get(&format!("{}/", srv.base), &[]).json();
    let rels: Vec<&str> = landing["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert!(rels.contains(&"http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"));
    assert!(rels.contains(&"http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"));

    for prefix in ["", "/collections/trails"] {
        let list = get(&format!("{}{prefix}/tiles", srv.base), &[]).json();
        let self_link = list["tilesets"][0]["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "self")
            .unwrap()["href"]
            .as_str()
            .unwrap()
            .to_string();
        let ts = get(&self_link, &[]).json();
        let link = |rel: &str| {
            ts["links"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["rel"] == rel)
                .unwrap_or_else(|| panic!("{prefix}: no {rel} link"))["href"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let tms = get(
            &link("http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"),
            &[],
        );
        assert_eq!(tms.status, 200);
        let item = link("item")
            .replace("{tileMatrix}", "10")
            .replace("{tileRow}", "340")
            .replace("{tileCol}", "542");
        let a = get(&item, &[]);
        let b = get(
            &format!("{}{prefix}/tiles/WebMercatorQuad/10/340/542", srv.base),
            &[],
        );
        assert_eq!(a.status, 200, "{item}");
        assert_eq!(a.body, b.body);
        assert_eq!(
            ts["tileMatrixSetURI"],
            "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
        );
        let layers = ts["layers"].as_array().unwrap();
        assert_eq!(layers.len(), if prefix.is_empty() { 5 } else { 1 });
        let trails = layers.iter().find(|l| l["id"] == "trails").unwrap();
        assert_eq!(trails["geometryDimension"], 1);
        assert_eq!(trails["maxTileMatrix"], "16");
        assert_eq!(
            trails["propertiesSchema"]["properties"]["difficulty"]["type"],
            "string"
        );
    }
    let api = get(&format!("{}/api", srv.base), &[]).json();
    assert!(api["paths"]["/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"].is_object());
}

/// `/styles/{id}` points every URL at this server and passes MapLibre's validator;
/// the glyphs it names are served.
#[test]
fn styles_and_glyphs_come_from_this_server() {
    if !clients_available() {
        return;
    }
    let (dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let list = get(&format!("{}/styles", srv.base), &[]).json();
    let ids: Vec<&str> = list["styles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"portal"));
    for id in ids {
        let r = get(&format!("{}/styles/{id}", srv.base), &[]);
        assert_eq!(r.status, 200);
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(!body.contains("nordgeo://"), "{id}: placeholder left");
        for part in body.split("\"http").skip(1) {
            assert!(
                format!("http{part}").starts_with(&srv.base),
                "{id}: URL not on this server: http{}",
                &part[..part.len().min(80)]
            );
        }
        let file = dir.path().join(format!("{id}.json"));
        std::fs::write(&file, &r.body).unwrap();
        let o = Command::new("node")
            .arg(root().join("tests/browser/validate_styles.mjs"))
            .arg(&file)
            .env("NORDGEO_BASE", &srv.base)
            .output()
            .unwrap();
        assert!(o.status.success(), "{id}: {}", text(&o));

        let style = r.json();
        let glyphs = style["glyphs"].as_str().unwrap();
        let mut fonts: Vec<String> = Vec::new();
        collect_fonts(&style["layers"], &mut fonts);
        assert!(!fonts.is_empty(), "{id} has labels");
        for f in fonts {
            let url = glyphs
                .replace("{fontstack}", &f.replace(' ', "%20"))
                .replace("{range}", "0-255");
            let g = get(&url, &[]);
            assert_eq!(g.status, 200, "{url}");
            assert_eq!(g.header("content-type"), Some("application/x-protobuf"));
            assert!(g.body.len() > 10_000, "{url}: {} bytes", g.body.len());
        }
    }
    assert_eq!(get(&format!("{}/styles/nope", srv.base), &[]).status, 404);
    assert_eq!(
        get(
            &format!("{}/fonts/No%20Such%20Font/0-255.pbf", srv.base),
            &[]
        )
        .status,
        404
    );
    assert_eq!(
        get(
            &format!("{}/fonts/DejaVu%20Sans%20Book/0-99.pbf", srv.base),
            &[]
        )
        .status,
        400
    );
}

/// Font stacks named by `text-font` anywhere in the layers (literal arrays only).
fn collect_fonts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(stack)) = o.get("text-font") {
                // ["literal", [fonts]] in expressions, [fonts] otherwise.
                let stack = match stack.as_slice() {
                    [Value::String(l), Value::Array(inner)] if l == "literal" => inner,
                    _ => stack,
                };
                let names: Vec<&str> = stack.iter().filter_map(Value::as_str).collect();
                if !names.is_empty() {
                    let s = names.join(",");
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
            o.values().for_each(|x| collect_fonts(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_fonts(x, out)),
        _ => {}
    }
}
