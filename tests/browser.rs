//! The portal in a real browser: headless Chromium (Debian's) driven by puppeteer-core
//! runs `tests/browser/widget.test.mjs` against a live server: the widget on /map and
//! embedded in a page of another origin, a phone-sized screen, popups, labels (glyphs),
//! `near`, the HTML map preview, and no request to any host but nordgeo. Screenshots
//! are kept in `target/tmp/browser/` as test artifacts.

mod common;

use std::process::Command;

use common::*;

#[test]
fn portal_widget_in_headless_chromium() {
    if !clients_available() {
        return;
    }
    let (_dir, store) = sample_store();
    let srv = serve(&store, &[]);
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out).unwrap();
    let o = Command::new("node")
        .arg(root().join("tests/browser/widget.test.mjs"))
        .arg(&srv.base)
        .arg(&out)
        .output()
        .expect("node runs (scripts/setup.sh installs the web dependencies)");
    let t = text(&o);
    assert!(o.status.success(), "browser test failed:\n{t}");
    assert!(t.contains(" 0 failed"), "{t}");
    for png in ["widget.png", "widget-phone.png"] {
        assert!(out.join(png).exists(), "{png} missing");
    }
}

/// The portal with a basemap archive (the OpenMapTiles-schema fixture written by GDAL and
/// the `pmtiles` package) and `parcels` restricted: `tests/browser/basemap.test.mjs`.
/// Its z14 screenshot is kept in docs/ for the README.
#[test]
fn portal_with_basemap_in_headless_chromium() {
    if !clients_available() {
        return;
    }
    let (archives_dir, _) = archives();
    let (dir, store) = sample_store();
    ok(nordgeo(
        &store,
        &["set-layer", "parcels", "--restricted", "true"],
    ));
    let cfg = dir.path().join("nordgeo.toml");
    std::fs::write(
        &cfg,
        format!(
            "[archives.basemap]\npath = \"{}\"\n\n[portal]\nbasemap = \"basemap\"\nbasemap_schema = \"openmaptiles\"\n",
            archives_dir.join("basemap_omt.pmtiles").display()
        ),
    )
    .unwrap();
    let srv = serve(&store, &["--config", cfg.to_str().unwrap()]);
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out).unwrap();
    let shot = out.join("portal-basemap-z14.png");
    let o = Command::new("node")
        .arg(root().join("tests/browser/basemap.test.mjs"))
        .arg(&srv.base)
        .arg(&out)
        .arg(&shot)
        .output()
        .expect("node runs (scripts/setup.sh installs the web dependencies)");
    let t = text(&o);
    assert!(o.status.success(), "browser test failed:\n{t}");
    assert!(t.contains(" 0 failed"), "{t}");
    assert!(shot.exists());
}
