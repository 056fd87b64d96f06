#![no_main]
// Any text as a cql2-json filter.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = nordgeo::filter::parse(s, nordgeo::filter::Lang::Json);
    }
});
