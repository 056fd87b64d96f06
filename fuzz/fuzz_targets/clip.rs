#![no_main]
// Points from the input bytes as a line and as a ring, clipped to a tile box.
use nordgeo::tiles::clip::{ClipBox, clip_line, clip_ring};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let pts: Vec<[f64; 2]> = data
        .chunks_exact(16)
        .map(|c| {
            let x = f64::from_le_bytes(c[..8].try_into().unwrap_or_default());
            let y = f64::from_le_bytes(c[8..].try_into().unwrap_or_default());
            [x, y]
        })
        .collect();
    let b = ClipBox { min: -64.0, max: 4160.0 };
    let (mut out, mut ends) = (Vec::new(), Vec::new());
    clip_line(&pts, b, &mut out, &mut ends);
    let _ = clip_ring(&pts, b);
});
