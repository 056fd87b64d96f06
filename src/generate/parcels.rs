//! Parcels: a jittered tessellation of 500 m blocks ("Flure") around the villages.
//!
//! Every vertex is a pure function of (block key, grid index), so the two parcels on
//! either side of an edge compute bit-identical shared vertices without storing them,
//! and a block looks the same whatever the scale (only how many of its cells are kept
//! changes).

use geo::{Coord, Geometry, LineString, Polygon};
use rusqlite::types::Value;

use super::region::{World, round_cm};
use super::rng::{Rng, hash, noise, tag, unit};
use super::{Feature, GenerateError};

/// Side of a block.
const BLOCK: f64 = 500.0;
/// Half the width of the lanes left between blocks.
const LANE: f64 = 6.0;
/// Side of a block's parcelled square.
const INNER: f64 = BLOCK - 2.0 * LANE;
/// Node jitter as a fraction of the nominal cell size; with the edge vertices' limits
/// below this keeps every ring simple (opposite sides cannot meet).
const JITTER: f64 = 0.15;
/// Nominal cell size range in metres (actual sizes vary by ±30 %: about 20-80 m).
const CELL_MIN: f64 = 32.0;
const CELL_MAX: f64 = 58.0;

/// A block chosen for parcels.
#[derive(Debug, Clone)]
pub struct Block {
    bx: i64,
    by: i64,
    /// Lower-left corner of the parcelled square.
    x0: f64,
    y0: f64,
    key: u64,
    /// The village the block belongs to (its Gemarkung).
    pub village: usize,
    /// Distance from the block centre to that village.
    dist: f64,
    nc: usize,
    nr: usize,
    /// How many of its cells are written (row by row from the south).
    pub quota: usize,
}

impl Block {
    /// Number of cells in the block.
    pub fn capacity(&self) -> usize {
        self.nc * self.nr
    }

    fn node(&self, i: usize, j: usize) -> Coord<f64> {
        let (cw, ch) = (INNER / self.nc as f64, INNER / self.nr as f64);
        let h = hash(&[self.key, 1, i as u64, j as u64]);
        // Nodes on the block's edge only slide along it, so the edge stays straight.
        let jx = if i == 0 || i == self.nc {
            0.0
        } else {
            (unit(h) * 2.0 - 1.0) * JITTER * cw
        };
        let jy = if j == 0 || j == self.nr {
            0.0
        } else {
            (unit(h.rotate_left(29)) * 2.0 - 1.0) * JITTER * ch
        };
        round_cm(Coord {
            x: self.x0 + i as f64 * cw + jx,
            y: self.y0 + j as f64 * ch + jy,
        })
    }

    /// The extra vertices of the edge from node (i, j) to its east (`east`) or north
    /// neighbour, in that direction.
    fn edge(&self, east: bool, i: usize, j: usize, out: &mut [Coord<f64>; 2]) -> usize {
        let a = self.node(i, j);
        let b = if east {
            self.node(i + 1, j)
        } else {
            self.node(i, j + 1)
        };
        let mut r = Rng::from_key(hash(&[self.key, 2 + east as u64, i as u64, j as u64]));
        let k = match r.below(20) {
            0..=7 => 0,
            8..=14 => 1,
            _ => 2,
        };
        let on_block_edge = if east {
            j == 0 || j == self.nr
        } else {
            i == 0 || i == self.nc
        };
        let d = b - a;
        let len = d.x.hypot(d.y);
        let normal = Coord {
            x: -d.y / len,
            y: d.x / len,
        };
        let off = if on_block_edge {
            0.0
        } else {
            (0.03 * len).min(1.0)
        };
        let ts: [f64; 2] = if k == 1 {
            [r.range(0.3, 0.7), 0.0]
        } else {
            [r.range(0.2, 0.45), r.range(0.55, 0.8)]
        };
        for n in 0..k {
            out[n] = round_cm(a + d * ts[n] + normal * (off * (r.unit() * 2.0 - 1.0)));
        }
        k
    }

    /// The closed, counter-clockwise ring of cell (i, j).
    pub fn ring(&self, i: usize, j: usize) -> Vec<Coord<f64>> {
        let mut ring = Vec::with_capacity(13);
        let mut e = [Coord { x: 0.0, y: 0.0 }; 2];
        ring.push(self.node(i, j));
        let k = self.edge(true, i, j, &mut e);
        ring.extend_from_slice(&e[..k]);
        ring.push(self.node(i + 1, j));
        let k = self.edge(false, i + 1, j, &mut e);
        ring.extend_from_slice(&e[..k]);
        ring.push(self.node(i + 1, j + 1));
        let k = self.edge(true, i, j + 1, &mut e);
        ring.extend(e[..k].iter().rev());
        ring.push(self.node(i, j + 1));
        let k = self.edge(false, i, j, &mut e);
        ring.extend(e[..k].iter().rev());
        ring.push(ring[0]);
        ring
    }
}

/// Chooses the blocks for `n` parcels and how many cells each contributes.
///
/// Blocks belong to their nearest village; villages take turns (interleaved by
/// municipality) picking their next-closest block, so even a few blocks cover every
/// municipality and the parcelled area grows around all villages at once.
pub fn plan(world: &World, n: usize) -> Vec<Block> {
    let r = world.rect;
    let gx0 = (r[0] / BLOCK).ceil() * BLOCK;
    let gy0 = (r[1] / BLOCK).ceil() * BLOCK;
    let nbx = ((r[2] - gx0) / BLOCK).floor().max(0.0) as i64;
    let nby = ((r[3] - gy0) / BLOCK).floor().max(0.0) as i64;
    let base = world.seed ^ tag("parcels");
    let mut queues: Vec<Vec<(f64, Block)>> = vec![Vec::new(); world.villages.len()];
    for by in 0..nby {
        for bx in 0..nbx {
            let (x, y) = (gx0 + bx as f64 * BLOCK, gy0 + by as f64 * BLOCK);
            let centre = Coord {
                x: x + BLOCK / 2.0,
                y: y + BLOCK / 2.0,
            };
            let village = world.nearest_village(centre);
            let v = world.villages[village].pos;
            let dist = (centre.x - v.x).hypot(centre.y - v.y);
            let key = hash(&[base, bx as u64, by as u64]);
            // Jitter the order so the parcelled patches get ragged outlines.
            let order = dist + (unit(key) - 0.5) * 700.0;
            let block = Block {
                bx,
                by,
                x0: x + LANE,
                y0: y + LANE,
                key,
                village,
                dist,
                nc: 0,
                nr: 0,
                quota: 0,
            };
            queues[village].push((order, block));
        }
    }
    for q in &mut queues {
        q.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then((a.1.by, a.1.bx).cmp(&(b.1.by, b.1.bx)))
        });
    }
    let longest = queues.iter().map(Vec::len).max().unwrap_or(0);
    let mut blocks: Vec<Block> = Vec::new();
    for round in 0..longest {
        for &v in &world.village_order {
            if let Some((_, b)) = queues[v].get(round) {
                blocks.push(b.clone());
            }
        }
    }
    // Shrink the cells when the region cannot hold `n` parcels at the normal sizes.
    let mut shrink = 1.0;
    loop {
        for b in &mut blocks {
            size_cells(world, b, shrink);
        }
        let capacity: usize = blocks.iter().map(Block::capacity).sum();
        if capacity >= n || capacity == 0 {
            break;
        }
        shrink *= (capacity as f64 / n as f64).sqrt() * 0.98;
    }
    let mut taken = 0;
    let mut count = 0;
    for b in &blocks {
        if taken >= n && count >= 4 {
            break;
        }
        taken += b.capacity();
        count += 1;
    }
    blocks.truncate(count);
    let caps: Vec<usize> = blocks.iter().map(Block::capacity).collect();
    for (b, q) in blocks.iter_mut().zip(fill_levels(&caps, n)) {
        b.quota = q;
    }
    blocks
}

/// Cell counts of a block: small cells near the village, large ones in open country.
fn size_cells(world: &World, b: &mut Block, shrink: f64) {
    let t = ((b.dist - 300.0) / 2800.0).clamp(0.0, 1.0);
    let t = t * t * (3.0 - 2.0 * t);
    let wobble = 4.0
        * noise(
            world.seed ^ tag("cell-size"),
            b.bx as f64 / 5.0,
            b.by as f64 / 5.0,
        );
    let s = (CELL_MIN + (CELL_MAX - CELL_MIN) * t + wobble).clamp(CELL_MIN, CELL_MAX);
    // Fields in open country are elongated, building plots nearly square.
    let aspect = 1.0 + (0.1 + 0.4 * t) * (unit(b.key.rotate_left(17)) * 2.0 - 1.0);
    let sx = (s * aspect).clamp(CELL_MIN, CELL_MAX) * shrink;
    let sy = (s / aspect).clamp(CELL_MIN, CELL_MAX) * shrink;
    b.nc = ((INNER / sx).round() as usize).max(1);
    b.nr = ((INNER / sy).round() as usize).max(1);
}

/// Quotas as even as the capacities allow, summing to `n` (or to all capacity).
fn fill_levels(caps: &[usize], n: usize) -> Vec<usize> {
    let total = |level: usize| caps.iter().map(|&c| c.min(level)).sum::<usize>();
    let (mut lo, mut hi) = (0, caps.iter().copied().max().unwrap_or(0));
    if total(hi) <= n {
        return caps.to_vec();
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if total(mid) >= n {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut q: Vec<usize> = caps.iter().map(|&c| c.min(lo)).collect();
    let mut excess = total(lo) - n;
    for x in q.iter_mut().rev() {
        if excess == 0 {
            break;
        }
        if *x == lo {
            *x -= 1;
            excess -= 1;
        }
    }
    q
}

const LAND_USE_CORE: &[(&str, u32)] = &[
    ("Wohnbaufläche", 50),
    ("Mischnutzung", 16),
    ("Verkehrsfläche", 10),
    ("Gartenland", 10),
    ("Gewerbe", 6),
    ("Grünland", 5),
    ("Friedhof", 3),
];
const LAND_USE_EDGE: &[(&str, u32)] = &[
    ("Wohnbaufläche", 22),
    ("Gartenland", 20),
    ("Gewerbe", 14),
    ("Grünland", 22),
    ("Ackerland", 16),
    ("Verkehrsfläche", 6),
];
const LAND_USE_FIELDS: &[(&str, u32)] = &[
    ("Ackerland", 62),
    ("Grünland", 24),
    ("Wald", 5),
    ("Verkehrsfläche", 5),
    ("Gewässer", 2),
    ("Gartenland", 2),
];
const LAND_USE_FOREST: &[(&str, u32)] = &[
    ("Wald", 86),
    ("Grünland", 8),
    ("Verkehrsfläche", 4),
    ("Gewässer", 2),
];

/// Numbering state of the cadastre: Flur numbers per municipality.
#[derive(Debug, Default)]
pub struct Cadastre {
    flur: Vec<u32>,
}

/// Area of a closed ring (shoelace), positive for counter-clockwise rings.
pub fn ring_area(ring: &[Coord<f64>]) -> f64 {
    ring.windows(2)
        .map(|w| w[0].x * w[1].y - w[1].x * w[0].y)
        .sum::<f64>()
        / 2.0
}

/// First names and surnames of the fictitious owners: the placeholder names German
/// forms use, so nobody mistakes them for real people.
const FIRST: &[&str] = &[
    "Erika", "Max", "Lieschen", "Otto", "Anna", "Hans", "Greta", "Paul", "Ilse", "Jonas",
];
const LAST: &[&str] = &[
    "Mustermann",
    "Musterfrau",
    "Müller-Beispiel",
    "Normalverbraucher",
    "Platzhalter",
    "Probe",
    "Exempel",
    "Testmann",
];

/// A fictitious owner and address (postcodes 00xxx do not exist in Germany); about one
/// parcel in eight belongs to the municipality itself.
fn owner(r: &mut Rng, municipality: &str) -> (String, String) {
    let street = format!("Musterweg {} (fiktiv)", r.int(1, 120));
    let postcode = format!("00{:03}", r.int(1, 999));
    if r.chance(0.125) {
        return (
            format!("Gemeinde {municipality}"),
            format!("Rathaus, {postcode} {municipality} (fiktiv)"),
        );
    }
    let name = format!("{} {} (fiktiv)", r.pick(FIRST), r.pick(LAST));
    (name, format!("{street}, {postcode} Beispielstadt"))
}

/// Writes the parcels of one block through `emit`; returns their total area.
pub fn emit_block(
    world: &World,
    block: &Block,
    cadastre: &mut Cadastre,
    emit: &mut dyn FnMut(Feature) -> Result<(), GenerateError>,
) -> Result<f64, GenerateError> {
    let centre = Coord {
        x: block.x0 + INNER / 2.0,
        y: block.y0 + INNER / 2.0,
    };
    cadastre.flur.resize(world.munis.len(), 0);
    let block_muni = world.municipality_at(centre);
    cadastre.flur[block_muni] += 1;
    let flur = cadastre.flur[block_muni];
    let mut r = Rng::from_key(hash(&[block.key, 7]));
    let mut zaehler = r.int(1, 40);
    let village = &world.villages[block.village];
    let (core, edge) = if village.main {
        (600.0, 1300.0)
    } else {
        (300.0, 750.0)
    };
    let forest_seed = world.seed ^ tag("forest");
    let harz = world.rect[3] - 6000.0;
    let mut area_sum = 0.0;
    let mut left = block.quota;
    'rows: for j in 0..block.nr {
        for i in 0..block.nc {
            if left == 0 {
                break 'rows;
            }
            left -= 1;
            let ring = block.ring(i, j);
            let area = ring_area(&ring);
            area_sum += area;
            let c = (ring[0] + ring[ring.len() / 2]) / 2.0;
            let d = (c.x - village.pos.x).hypot(c.y - village.pos.y);
            let table = if d < core {
                LAND_USE_CORE
            } else if d < edge {
                LAND_USE_EDGE
            } else {
                let north = ((c.y - harz) / 6000.0).clamp(0.0, 1.0);
                if noise(forest_seed, c.x / 2200.0, c.y / 2200.0) + 0.9 * north > 0.45 {
                    LAND_USE_FOREST
                } else {
                    LAND_USE_FIELDS
                }
            };
            let land_use = *r.weighted(table);
            zaehler += *r.weighted(&[(1, 6), (2, 3), (3, 1)]);
            let parcel_id = if r.chance(0.35) {
                format!("Flur {flur} Flurstück {zaehler}/{}", r.int(1, 9))
            } else {
                format!("Flur {flur} Flurstück {zaehler}")
            };
            let muni = world.munis[world.municipality_at(c)].name;
            // A generator of its own, so the owners do not shift the other draws.
            let mut o = Rng::from_key(hash(&[block.key, 11, i as u64, j as u64]));
            let (owner, address) = owner(&mut o, muni);
            emit(Feature {
                geom: Geometry::Polygon(Polygon::new(LineString(ring), vec![])),
                attrs: vec![
                    Value::Text(parcel_id),
                    Value::Real((area * 100.0).round() / 100.0),
                    Value::Text(land_use.to_string()),
                    Value::Text(muni.to_string()),
                    Value::Text(owner),
                    Value::Text(address),
                ],
            })?;
        }
    }
    Ok(area_sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Area, Validation};

    fn world() -> World {
        World::new(42).unwrap()
    }

    #[test]
    fn quotas_are_even_and_exact() {
        assert_eq!(fill_levels(&[100, 100, 100, 100], 48), vec![12, 12, 12, 12]);
        assert_eq!(fill_levels(&[5, 100, 100], 101), vec![5, 48, 48]);
        assert_eq!(fill_levels(&[5, 10], 100), vec![5, 10]);
        let q = fill_levels(&[7, 9, 30, 30], 50);
        assert_eq!(q.iter().sum::<usize>(), 50);
    }

    #[test]
    fn small_plans_cover_every_municipality() {
        let w = world();
        for n in [48, 600, 3000] {
            let blocks = plan(&w, n);
            assert_eq!(blocks.iter().map(|b| b.quota).sum::<usize>(), n);
            let mut munis: Vec<usize> = blocks.iter().map(|b| w.villages[b.village].muni).collect();
            munis.sort();
            munis.dedup();
            assert_eq!(munis, vec![0, 1, 2, 3], "n = {n}");
        }
    }

    #[test]
    fn a_block_is_a_valid_tessellation() {
        let w = world();
        let mut blocks = plan(&w, 5000);
        // One block near a village (small cells) and one in open country.
        blocks.sort_by(|a, b| a.dist.total_cmp(&b.dist));
        for b in [&blocks[0], &blocks[blocks.len() - 1]] {
            let mut polys = Vec::new();
            let mut sum = 0.0;
            for j in 0..b.nr {
                for i in 0..b.nc {
                    let ring = b.ring(i, j);
                    assert!((5..=13).contains(&ring.len()), "{} vertices", ring.len());
                    let a = ring_area(&ring);
                    assert!(a > 0.0, "ring must be counter-clockwise");
                    let p = Polygon::new(LineString(ring), vec![]);
                    assert!(p.is_valid(), "{:?}", p.validation_errors());
                    sum += a;
                    polys.push(p);
                }
            }
            // The square is covered exactly: no gaps (sum = square) and no overlaps
            // (sum = area of the union).
            assert!((sum - INNER * INNER).abs() / sum < 1e-6, "{sum}");
            let union = geo::unary_union(&polys);
            assert!((union.unsigned_area() - sum).abs() / sum < 1e-6);
            assert_eq!(union.0.len(), 1);
            assert!(union.0[0].interiors().is_empty());
        }
    }
}
