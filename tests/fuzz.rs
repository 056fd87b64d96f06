//! A bounded random run over the three parsers of untrusted input that cargo-fuzz
//! targets in fuzz/ (GeoPackage geometry decoder, CQL2 text and JSON, tile clipper):
//! mutations of valid inputs and random bytes must give results or errors, never a
//! panic. Deterministic (fixed seed), a few seconds.

use nordgeo::filter::{Lang, parse};
use nordgeo::tiles::clip::{ClipBox, clip_line, clip_ring};

/// xorshift64*: enough randomness for mutation, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit: flip, insert, delete or duplicate bytes.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if at < v.len() => {
                v.remove(at);
            }
            3 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(16)).min(v.len());
                let chunk = v[a..b].to_vec();
                v.splice(at..at, chunk);
            }
            _ => {
                const TOKENS: &[u8] = b"()',\" %_-.0123456789ABCDEFGNOPRSTZ";
                v.insert(at, TOKENS[rng.below(TOKENS.len())]);
            }
        }
    }
    v
}

const TEXT_SEEDS: &[&str] = &[
    "name = 'Kita' AND capacity > 10",
    "NOT (a IS NULL) OR b IN ('x', 'y')",
    "S_INTERSECTS(geom, POLYGON((10 51, 11 51, 11 52, 10 51)))",
    "S_WITHIN(geom, BBOX(10, 51, 11, 52)) AND d > DATE('2024-01-01')",
    "CASEI(name) LIKE 'k%' AND x BETWEEN 1 AND 2",
    "GEOMETRYCOLLECTION(POINT(1 2), MULTIPOINT((1 2), (3 4)))",
];

const JSON_SEEDS: &[&str] = &[
    r#"{"op":"and","args":[{"op":"=","args":[{"property":"a"},1]},{"op":"like","args":[{"property":"b"},"x%"]}]}"#,
    r#"{"op":"s_intersects","args":[{"property":"geom"},{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}]}"#,
    r#"{"op":"in","args":[{"property":"k"},["a","b"]]}"#,
];

#[test]
fn parsers_never_panic_on_mutated_input() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (seeds, lang) in [(TEXT_SEEDS, Lang::Text), (JSON_SEEDS, Lang::Json)] {
        for _ in 0..200_000 {
            let seed = seeds[rng.below(seeds.len())].as_bytes();
            let input = mutate(&mut rng, seed);
            if let Ok(s) = std::str::from_utf8(&input) {
                let _ = parse(s, lang);
            }
        }
    }
}

#[test]
fn geometry_decoder_never_panics() {
    use geo::{Geometry, LineString, Point, Polygon};
    let seeds: Vec<Vec<u8>> = [
        Geometry::Point(Point::new(10.5, 51.5)),
        Geometry::LineString(LineString::from(vec![(0.0, 0.0), (1.0, 1.0), (2.0, 0.0)])),
        Geometry::Polygon(Polygon::new(
            LineString::from(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]),
            vec![],
        )),
    ]
    .iter()
    .map(|g| {
        nordgeo::geom::gpkg::encode(
            25832,
            nordgeo::geom::bbox_of(g),
            &nordgeo::geom::wkb::encode(g),
        )
    })
    .collect();
    let mut rng = Rng(42);
    for i in 0..300_000 {
        let input = if i % 10 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        if let Ok(b) = nordgeo::geom::gpkg::decode(&input)
            && let Some(g) = b.decoded.geometry
        {
            let _ = nordgeo::geom::wkb::encode(&g);
        }
    }
}

#[test]
fn clipper_never_panics() {
    let mut rng = Rng(7);
    let b = ClipBox {
        min: -64.0,
        max: 4160.0,
    };
    let special = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -64.0,
        4160.0,
        1e308,
        -1e308,
    ];
    for _ in 0..100_000 {
        let n = rng.below(12);
        let pts: Vec<[f64; 2]> = (0..n)
            .map(|_| {
                let mut c = || {
                    if rng.below(8) == 0 {
                        special[rng.below(special.len())]
                    } else {
                        (rng.below(12_000) as f64) - 4000.0
                    }
                };
                [c(), c()]
            })
            .collect();
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        clip_line(&pts, b, &mut out, &mut ends);
        let _ = clip_ring(&pts, b);
    }
}
