#![no_main]
// Any bytes as a GeoPackage geometry blob: decode, and encode back what decodes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(b) = nordgeo::geom::gpkg::decode(data)
        && let Some(g) = b.decoded.geometry
    {
        let _ = nordgeo::geom::wkb::encode(&g);
    }
});
