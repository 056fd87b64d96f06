//! The small layers: municipalities, trails, parking and childcare.

use std::f64::consts::{PI, TAU};

use geo::{Area, Coord, Geometry, LineString, MultiPolygon, Point};
use rusqlite::types::Value;

use super::region::{World, round_cm};
use super::rng::Rng;
use super::{Feature, GenerateError};

/// Emits one feature per municipality (its boundary as a one-member MultiPolygon).
pub fn municipalities(
    world: &World,
    emit: &mut dyn FnMut(Feature) -> Result<(), GenerateError>,
) -> Result<(), GenerateError> {
    for (m, boundary) in world.munis.iter().zip(&world.boundaries) {
        let km2 = (boundary.unsigned_area() / 1e6 * 1000.0).round() / 1000.0;
        emit(Feature {
            geom: Geometry::MultiPolygon(MultiPolygon(vec![boundary.clone()])),
            attrs: vec![
                Value::Text(m.name.into()),
                Value::Text(m.ags.into()),
                Value::Real(km2),
            ],
        })?;
    }
    Ok(())
}

/// Where a trail starts, for placing trailhead parking.
#[derive(Debug, Clone)]
pub struct TrailStart {
    /// First vertex.
    pub pos: Coord<f64>,
    /// Nearest village.
    pub village: usize,
    /// The trail's route reference.
    pub route_ref: String,
}

const TRAIL_NAMES: &[&str] = &[
    "Rundweg {v} {n}",
    "Wanderweg {v} – {w}",
    "Karstwanderweg Etappe {n}",
    "Helmetalweg Abschnitt {n}",
    "Naturpfad {v}",
    "Höhenweg bei {v}",
    "Kyffhäuser-Rundweg {n}",
    "Alter Postweg {n}",
    "Waldlehrpfad {v}",
    "Grenzweg {v} {n}",
];
const ROUTE_PREFIXES: &[&str] = &["HW", "KW", "HT", "KY", "RW", "NW"];
const SURFACES: &[(&str, u32)] = &[
    ("ground", 30),
    ("gravel", 20),
    ("compacted", 18),
    ("asphalt", 10),
    ("grass", 8),
    ("fine_gravel", 6),
    ("paved", 4),
    ("dirt", 4),
];

/// Vertex-count statistics of the trails layer.
#[derive(Debug, Default, Clone)]
pub struct TrailStats {
    /// Fewest vertices of a trail.
    pub min_vertices: usize,
    /// Most vertices of a trail.
    pub max_vertices: usize,
    /// Total length in metres.
    pub length_m: f64,
}

/// Emits `n` trails: smooth random walks (10-30 m steps) starting near the villages.
pub fn trails(
    world: &World,
    n: usize,
    emit: &mut dyn FnMut(Feature) -> Result<(), GenerateError>,
) -> Result<(Vec<TrailStart>, TrailStats), GenerateError> {
    let mut r = Rng::stream(world.seed, "trails");
    let mut starts = Vec::with_capacity(n);
    let mut stats = TrailStats {
        min_vertices: usize::MAX,
        ..TrailStats::default()
    };
    let harz = world.rect[3] - 6000.0;
    for i in 0..n {
        let home = &world.villages[world.village_order[i % world.village_order.len()]];
        // The first trail of each municipality starts in its main place, so every
        // municipality has trails even at the smallest scale.
        let spread = if i < world.munis.len() { 150.0 } else { 1500.0 };
        let start = Coord {
            x: home.pos.x + (r.normal() * spread).clamp(-5000.0, 5000.0),
            y: home.pos.y + (r.normal() * spread).clamp(-5000.0, 5000.0),
        };
        let mut p = world.clamp(start, 200.0);
        let vertices = 50 + (1950.0 * r.unit().powi(2)) as usize;
        let step = r.range(10.0, 30.0);
        let mut heading = r.range(0.0, TAU);
        // The walk follows a course that either turns once around over the trail's
        // length (a round walk that comes back near its start) or drifts (a route).
        let mut course = heading;
        let (spin, drift) = if r.chance(0.6) {
            let sign = if r.chance(0.5) { 1.0 } else { -1.0 };
            (sign * TAU / vertices as f64, 0.005)
        } else {
            (0.0, 0.015)
        };
        let mut turn = 0.0;
        let mut line = Vec::with_capacity(vertices);
        line.push(round_cm(p));
        while line.len() < vertices {
            course += spin + drift * r.normal();
            let off_course = (course - heading + PI).rem_euclid(TAU) - PI;
            // Turning rate as a damped random walk pulled towards the course: bends, no
            // zig-zag, and no endless circling.
            turn = (0.85 * turn + 0.04 * r.normal() + 0.03 * off_course).clamp(-0.3, 0.3);
            heading += turn;
            let len = (step * r.range(0.85, 1.15)).clamp(10.0, 30.0);
            let mut next = Coord {
                x: p.x + len * heading.cos(),
                y: p.y + len * heading.sin(),
            };
            if !world.inside(next, 50.0) {
                // Bounce off the region's edge, course included.
                let r = world.rect;
                if next.x < r[0] + 50.0 || next.x > r[2] - 50.0 {
                    heading = PI - heading;
                    course = PI - course;
                }
                if next.y < r[1] + 50.0 || next.y > r[3] - 50.0 {
                    heading = -heading;
                    course = -course;
                }
                turn = 0.0;
                next = Coord {
                    x: p.x + len * heading.cos(),
                    y: p.y + len * heading.sin(),
                };
            }
            p = next;
            line.push(round_cm(p));
        }
        let length: f64 = line
            .windows(2)
            .map(|w| (w[1].x - w[0].x).hypot(w[1].y - w[0].y))
            .sum();
        let first = line[0];
        let village = world.nearest_village(first);
        let other = world.villages[r.below(world.villages.len())].name;
        let name = r
            .pick(TRAIL_NAMES)
            .replace("{v}", world.villages[village].name)
            .replace(
                "{w}",
                if other == world.villages[village].name {
                    "Harz"
                } else {
                    other
                },
            )
            .replace("{n}", &r.int(1, 30).to_string());
        let route_ref = format!("{} {}", r.pick(ROUTE_PREFIXES), r.int(1, 99));
        let hilly = first.y > harz;
        let difficulty = if length > 22_000.0 || (hilly && length > 12_000.0) {
            if r.chance(0.8) { "hard" } else { "medium" }
        } else if length > 9_000.0 {
            *r.weighted(&[("easy", 2), ("medium", 6), ("hard", 2)])
        } else {
            *r.weighted(&[("easy", 7), ("medium", 3)])
        };
        let surface = *r.weighted(SURFACES);
        let muni = world.munis[world.municipality_at(first)].name;
        stats.min_vertices = stats.min_vertices.min(line.len());
        stats.max_vertices = stats.max_vertices.max(line.len());
        stats.length_m += length;
        starts.push(TrailStart {
            pos: first,
            village,
            route_ref: route_ref.clone(),
        });
        emit(Feature {
            geom: Geometry::LineString(LineString(line)),
            attrs: vec![
                Value::Text(name),
                Value::Text(route_ref),
                Value::Text(difficulty.into()),
                Value::Real((length * 10.0).round() / 10.0),
                Value::Text(surface.into()),
                Value::Text(muni.into()),
            ],
        })?;
    }
    if n == 0 {
        stats.min_vertices = 0;
    }
    Ok((starts, stats))
}

const STREETS: &[&str] = &[
    "Hauptstraße",
    "Bahnhofstraße",
    "Kirchgasse",
    "Am Anger",
    "Schulweg",
    "Lindenallee",
    "Mühlgraben",
    "Bergstraße",
    "Am Sportplatz",
    "Marktplatz",
    "Gartenweg",
    "Teichstraße",
];

/// Emits `n` parking places; about 40 % next to trail starts.
pub fn parking(
    world: &World,
    n: usize,
    starts: &[TrailStart],
    emit: &mut dyn FnMut(Feature) -> Result<(), GenerateError>,
) -> Result<(), GenerateError> {
    let mut r = Rng::stream(world.seed, "parking");
    let mains: Vec<usize> = world.village_order[..world.munis.len()].to_vec();
    for i in 0..n {
        let roll = r.unit();
        let (pos, name, capacity, fee_chance) = if i < mains.len() {
            // One in each main place first: every municipality has parking at any scale.
            let v = &world.villages[mains[i]];
            let pos = v.pos
                + Coord {
                    x: r.range(-150.0, 150.0),
                    y: r.range(-150.0, 150.0),
                };
            (
                pos,
                format!("Parkplatz {}, {}", r.pick(STREETS), v.name),
                r.int(20, 80),
                0.5,
            )
        } else if roll < 0.42 && !starts.is_empty() {
            let s = r.pick(starts);
            let a = r.range(0.0, TAU);
            let d = r.range(15.0, 60.0);
            let pos = s.pos
                + Coord {
                    x: d * a.cos(),
                    y: d * a.sin(),
                };
            let name = format!(
                "Wanderparkplatz {} ({})",
                world.villages[s.village].name, s.route_ref
            );
            (pos, name, r.int(4, 40), 0.1)
        } else if roll < 0.92 {
            let v = &world.villages[r.below(world.villages.len())];
            let spread = if v.main { 700.0 } else { 400.0 };
            let pos = v.pos
                + Coord {
                    x: r.normal() * spread,
                    y: r.normal() * spread,
                };
            let cap = (8.0 + 120.0 * r.unit().powi(3)).round() as i64;
            (
                pos,
                format!("Parkplatz {}, {}", r.pick(STREETS), v.name),
                cap,
                0.3,
            )
        } else {
            let re = world.rect;
            let pos = Coord {
                x: r.range(re[0], re[2]),
                y: r.range(re[1], re[3]),
            };
            let v = world.villages[world.nearest_village(pos)].name;
            (
                pos,
                format!("Parkplatz am Feldweg bei {v}"),
                r.int(3, 15),
                0.0,
            )
        };
        let pos = round_cm(world.clamp(pos, 5.0));
        let fee = r.chance(fee_chance);
        let wheelchair = if capacity >= 10 && r.chance(0.6) {
            r.int(1, (capacity / 15).max(1))
        } else {
            0
        };
        emit(Feature {
            geom: Geometry::Point(Point(pos)),
            attrs: vec![
                Value::Text(name),
                Value::Integer(capacity),
                Value::Integer(fee as i64),
                Value::Integer(wheelchair),
                Value::Text(world.munis[world.municipality_at(pos)].name.into()),
            ],
        })?;
    }
    Ok(())
}

const KITA_NAMES: &[&str] = &[
    "Sonnenschein",
    "Regenbogen",
    "Pusteblume",
    "Spatzennest",
    "Zwergenland",
    "Löwenzahn",
    "Kunterbunt",
    "Wichtelhaus",
    "Sternschnuppe",
    "Waldwichtel",
    "Schmetterling",
    "Entdeckerland",
    "Gänseblümchen",
    "Kleine Füchse",
    "Eichhörnchen",
    "Storchennest",
];
const OPENING_HOURS: &[&str] = &[
    "Mo-Fr 06:30-17:00",
    "Mo-Fr 06:00-16:30",
    "Mo-Fr 07:00-17:00",
    "Mo-Fr 06:00-17:30",
    "Mo-Th 06:30-17:00; Fr 06:30-15:00",
    "Mo-Fr 06:45-16:15",
];

/// Emits `n` Kitas, taking the municipalities in turn (so each has at least `n / 4`).
pub fn childcare(
    world: &World,
    n: usize,
    emit: &mut dyn FnMut(Feature) -> Result<(), GenerateError>,
) -> Result<(), GenerateError> {
    let mut r = Rng::stream(world.seed, "childcare");
    let first_name = r.below(KITA_NAMES.len());
    for i in 0..n {
        let v = &world.villages[world.village_order[i % world.village_order.len()]];
        let a = r.range(0.0, TAU);
        let d = r.range(30.0, 400.0);
        let pos = round_cm(world.clamp(
            v.pos
                + Coord {
                    x: d * a.cos(),
                    y: d * a.sin(),
                },
            5.0,
        ));
        // Stepping by a number coprime to the list length gives one village distinct names.
        let name = KITA_NAMES[(first_name + 7 * i) % KITA_NAMES.len()];
        let capacity = 5 * r.int(4, 30);
        let free = r.int(0, capacity / 6);
        emit(Feature {
            geom: Geometry::Point(Point(pos)),
            attrs: vec![
                Value::Text(format!("Kita {name} {}", v.name)),
                Value::Integer(capacity),
                Value::Integer(free),
                Value::Text((*r.pick(OPENING_HOURS)).into()),
                Value::Text(world.munis[world.municipality_at(pos)].name.into()),
            ],
        })?;
    }
    Ok(())
}
