#!/usr/bin/env python3
"""Independent check of nordgeo's vector tiles.

Fetches a z0..zmax sweep of tiles over the data from a running server and checks each
with an independent decoder (the `mapbox-vector-tile` package and its protobuf module):

* spec: layer version 2, unique layer names, extent 4096, keys/values not duplicated,
  a key at most once per feature, valid tag indices, MoveTo/LineTo/ClosePath structure,
  no zero-length LineTo steps, polygon rings: >= 3 points, exterior positive area
  (y down), holes negative, coordinates within extent + buffer;
* content: feature ids equal the source features that intersect the tile (from the
  server's GeoJSON items API): every tile id is such a feature; at and above the detail
  zoom every feature with a vertex inside the tile is there; below it every line or
  polygon larger than 4 pixels is there; geometry lies within the simplification
  tolerance of the source geometry.

Usage: check_tiles.py BASE_URL [--zmax 16] [--per-zoom 150] [--detail-zoom 16]
Prints one summary line; exits 1 with the first problems listed.
"""
import argparse
import json
import math
import random
import sys
import urllib.request

import mapbox_vector_tile
from mapbox_vector_tile.Mapbox import vector_tile_pb2

EXTENT = 4096
BUFFER = 64
ORIGIN = 20037508.342789244


def get(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept-Encoding": "identity", **({"Accept": accept} if accept else {})})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def merc(lon, lat):
    lat = max(min(lat, 85.0511287798), -85.0511287798)
    return (6378137.0 * math.radians(lon), 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))


def inv_merc(x, y):
    return (math.degrees(x / 6378137.0), math.degrees(math.atan(math.sinh(y / 6378137.0))))


def tile_bounds(z, x, y):
    s = 2 * ORIGIN / 2 ** z
    minx = -ORIGIN + x * s
    maxy = ORIGIN - y * s
    return minx, maxy - s, minx + s, maxy, s


def tiles_over(bounds, z):
    x0, y0 = merc(bounds[0], bounds[3])
    x1, y1 = merc(bounds[2], bounds[1])
    n = 2 ** z
    s = 2 * ORIGIN / n
    cx = lambda v: min(max(int((v + ORIGIN) // s), 0), n - 1)
    cy = lambda v: min(max(int((ORIGIN - v) // s), 0), n - 1)
    return [(z, x, y) for x in range(cx(x0), cx(x1) + 1) for y in range(cy(y0), cy(y1) + 1)]


def zigzag(v):
    return (v >> 1) ^ -(v & 1)


def parse_geometry(cmds, gtype, errors, where):
    """Returns a list of parts (lists of (x, y)) and checks the command stream."""
    i, x, y = 0, 0, 0
    parts, cur = [], None
    while i < len(cmds):
        cid, count = cmds[i] & 7, cmds[i] >> 3
        i += 1
        if cid == 1:  # MoveTo
            if gtype != 1 and count != 1:
                errors.append(f"{where}: MoveTo with count {count} in a non-point geometry")
            for _ in range(count):
                x += zigzag(cmds[i]); y += zigzag(cmds[i + 1]); i += 2
                cur = [(x, y)]
                parts.append(cur)
        elif cid == 2:  # LineTo
            if gtype == 1 or cur is None:
                errors.append(f"{where}: LineTo in a point geometry or before MoveTo")
                return parts
            for _ in range(count):
                dx, dy = zigzag(cmds[i]), zigzag(cmds[i + 1]); i += 2
                if dx == 0 and dy == 0:
                    errors.append(f"{where}: zero-length LineTo step")
                x += dx; y += dy
                cur.append((x, y))
        elif cid == 7:  # ClosePath
            if gtype != 3 or count != 1:
                errors.append(f"{where}: ClosePath outside a polygon or count {count}")
        else:
            errors.append(f"{where}: unknown command {cid}")
            return parts
    return parts


def ring_area(r):
    return sum(r[k][0] * r[(k + 1) % len(r)][1] - r[(k + 1) % len(r)][0] * r[k][1] for k in range(len(r))) / 2


def spec_check(raw, where, errors):
    tile = vector_tile_pb2.tile.FromString(raw)
    names = [l.name for l in tile.layers]
    if len(set(names)) != len(names):
        errors.append(f"{where}: duplicate layer names {names}")
    out = {}
    for layer in tile.layers:
        lw = f"{where} layer {layer.name}"
        if layer.version != 2:
            errors.append(f"{lw}: version {layer.version}")
        if layer.extent != EXTENT:
            errors.append(f"{lw}: extent {layer.extent}")
        if len(set(layer.keys)) != len(layer.keys):
            errors.append(f"{lw}: duplicate keys")
        vals = [v.SerializeToString() for v in layer.values]
        if len(set(vals)) != len(vals):
            errors.append(f"{lw}: duplicate values")
        feats = {}
        for f in layer.features:
            fw = f"{lw} feature {f.id}"
            tags = list(f.tags)
            if len(tags) % 2 or any(t >= len(layer.keys) for t in tags[::2]) or any(t >= len(layer.values) for t in tags[1::2]):
                errors.append(f"{fw}: bad tags")
            if len(set(tags[::2])) != len(tags[::2]):
                errors.append(f"{fw}: a key appears twice")
            parts = parse_geometry(list(f.geometry), f.type, errors, fw)
            for p in parts:
                for (px, py) in p:
                    if not (-BUFFER - 1 <= px <= EXTENT + BUFFER + 1 and -BUFFER - 1 <= py <= EXTENT + BUFFER + 1):
                        errors.append(f"{fw}: coordinate ({px}, {py}) outside extent + buffer")
                        break
            if f.type == 2 and any(len(p) < 2 for p in parts):
                errors.append(f"{fw}: line part with fewer than 2 points")
            if f.type == 3:
                if not parts or ring_area(parts[0]) <= 0:
                    errors.append(f"{fw}: first ring is not an exterior ring (positive area)")
                for p in parts:
                    if len(p) < 3 or len(set(p)) < 3:
                        errors.append(f"{fw}: ring with fewer than 3 points")
                    if p[0] == p[-1]:
                        errors.append(f"{fw}: ring repeats its first point")
            feats.setdefault(f.id, []).append((f.type, parts))
        out[layer.name] = feats
    return out


def to_tile(lon, lat, b):
    x, y = merc(lon, lat)
    sc = EXTENT / b[4]
    return ((x - b[0]) * sc, (b[3] - y) * sc)


def coords_of(g):
    t, c = g["type"], g["coordinates"]
    if t == "Point":
        return [[c]]
    if t in ("LineString", "MultiPoint"):
        return [c]
    if t in ("Polygon", "MultiLineString"):
        return c
    if t == "MultiPolygon":
        return [r for p in c for r in p]
    return []


def seg_dist(p, a, b):
    dx, dy = b[0] - a[0], b[1] - a[1]
    l2 = dx * dx + dy * dy
    t = 0 if l2 == 0 else max(0, min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2))
    return math.hypot(a[0] + t * dx - p[0], a[1] + t * dy - p[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--zmax", type=int, default=16)
    ap.add_argument("--per-zoom", type=int, default=150)
    ap.add_argument("--detail-zoom", type=int, default=16)
    ap.add_argument("--geom-checks", type=int, default=8, help="features per layer per tile whose geometry is compared")
    a = ap.parse_args()
    tj = json.loads(get(f"{a.base}/tiles/WebMercatorQuad/tilejson.json")[1])
    layers = [v["id"] for v in tj["vector_layers"]]
    errors, n_tiles, n_feats, max_bytes, n_empty = [], 0, 0, 0, 0
    rnd = random.Random(1)
    for z in range(0, a.zmax + 1):
        tl = tiles_over(tj["bounds"], z)
        if len(tl) > a.per_zoom:
            tl = rnd.sample(tl, a.per_zoom)
        for (z_, x, y) in tl:
            where = f"tile {z}/{y}/{x}"
            st, raw = get(f"{a.base}/tiles/WebMercatorQuad/{z}/{y}/{x}")
            n_tiles += 1
            if st == 204:
                n_empty += 1
                decoded = {}
            elif st != 200:
                errors.append(f"{where}: HTTP {st}")
                continue
            else:
                max_bytes = max(max_bytes, len(raw))
                decoded = spec_check(raw, where, errors)
                mapbox_vector_tile.decode(raw)  # the package's own decoder must accept it too
            b = tile_bounds(z, x, y)
            m = b[4] * BUFFER / EXTENT
            lon0, lat0 = inv_merc(b[0] - m, b[1] - m)
            lon1, lat1 = inv_merc(b[2] + m, b[3] + m)
            for name in layers:
                st, body = get(f"{a.base}/collections/{name}/items?limit=10000&bbox={lon0!r},{lat0!r},{lon1!r},{lat1!r}")
                if st != 200:
                    errors.append(f"{where}: items of {name}: HTTP {st}")
                    continue
                src = {f["id"]: f for f in json.loads(body)["features"]}
                got = decoded.get(name, {})
                n_feats += len(got)
                extra = set(got) - set(src)
                if extra:
                    errors.append(f"{where} {name}: ids {sorted(extra)[:5]} are not source features intersecting the tile")
                tol = (1.0 if z >= a.detail_zoom else 4.0) + 1.5
                checked = 0
                for fid, f in src.items():
                    rings = [[to_tile(c[0], c[1], b) for c in r] for r in coords_of(f["geometry"])]
                    pts = [p for r in rings for p in r]
                    inside = any(1 < p[0] < EXTENT - 1 and 1 < p[1] < EXTENT - 1 for p in pts)
                    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                    size = max(max(xs) - min(xs), max(ys) - min(ys)) if pts else 0
                    big = f["geometry"]["type"] not in ("Point", "MultiPoint") and size > 32
                    if inside and (z >= a.detail_zoom or big) and fid not in got:
                        errors.append(f"{where} {name}: feature {fid} (size {size:.0f} units) is missing")
                    if fid in got and checked < a.geom_checks:
                        checked += 1
                        for (_, parts) in got[fid]:
                            for part in parts:
                                for p in part:
                                    if not (-BUFFER + 1 < p[0] < EXTENT + BUFFER - 1 and -BUFFER + 1 < p[1] < EXTENT + BUFFER - 1):
                                        continue  # on the clip border
                                    if f["geometry"]["type"] in ("Point", "MultiPoint"):
                                        d = min(math.hypot(p[0] - q[0], p[1] - q[1]) for q in pts)
                                    else:
                                        d = min(seg_dist(p, r[k], r[k + 1]) for r in rings for k in range(len(r) - 1))
                                    if d > tol:
                                        errors.append(f"{where} {name} feature {fid}: vertex {p} is {d:.1f} units from the source geometry")
                                        break
            if len(errors) > 50:
                break
        if len(errors) > 50:
            break
    print(f"check_tiles: {n_tiles} tiles ({n_empty} empty), {n_feats} features, largest {max_bytes} bytes, {len(errors)} problems")
    for e in errors[:50]:
        print("  " + e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
