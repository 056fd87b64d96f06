#!/usr/bin/env python3
"""Independent check of nordgeo's line simplification in vector tiles.

For every line of a layer and every zoom at which the whole line lies inside one tile,
the tile's vertices must be what Douglas-Peucker (GEOS, through shapely) keeps of the
source line at that zoom's tolerance: 4 tile units below the layer's detail zoom, half a
unit from it on. The source is read from the GeoPackage with pyogrio and projected with
pyproj, so neither the geometry nor the projection comes from nordgeo.

nordgeo rounds the tolerance up by at most 2^(1/8) (9 %), so the tile must keep every
vertex DP keeps at 1.0905 t and nothing DP drops at t. Tile coordinates are integers;
a source vertex matches a tile vertex within half a unit (plus a little for the two
projections' last digits).

Usage: check_simplify.py BASE_URL STORE.gpkg LAYER [--zmin 8]
Prints one summary line; exits 1 with the first problems listed.
"""
import argparse
import json
import math
import sys
import urllib.request

import mapbox_vector_tile
import pyogrio.raw
import pyproj
import shapely

EXTENT = 4096
ORIGIN = 20037508.342789244
# nordgeo's tolerance grid: steps of 2^(1/4) in squared distance.
STEP = 2 ** (1 / 8)
SLACK = 1e-3


def get(url):
    req = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def lines_of(g):
    if g.geom_type == "LineString":
        return [g]
    if g.geom_type == "MultiLineString":
        return list(g.geoms)
    return []


def to_tile(coords, z, x, y):
    """EPSG:3857 coordinates to tile units (y down), as floats."""
    s = 2 * ORIGIN / 2**z
    minx, maxy = -ORIGIN + x * s, ORIGIN - y * s
    k = EXTENT / s
    return [((cx - minx) * k, (maxy - cy) * k) for cx, cy in coords]


def dp(points, tol):
    if len(points) < 3:
        return list(points)
    return list(shapely.simplify(shapely.LineString(points), tol, preserve_topology=False).coords)


def near(p, q):
    return abs(p[0] - q[0]) <= 0.5 + SLACK and abs(p[1] - q[1]) <= 0.5 + SLACK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("store")
    ap.add_argument("layer")
    ap.add_argument("--zmin", type=int, default=8)
    a = ap.parse_args()
    base = a.base.rstrip("/")

    status, body = get(f"{base}/collections/{a.layer}/tiles/WebMercatorQuad")
    if status != 200:
        print(f"tileset metadata: HTTP {status}")
        return 1
    meta = json.loads(body)
    layer_meta = next(m for m in meta["layers"] if m["id"] == a.layer)
    detail = int(layer_meta["maxTileMatrix"])

    info, fids, wkbs, _ = pyogrio.raw.read(a.store, layer=a.layer, return_fids=True)
    to_merc = pyproj.Transformer.from_crs(info["crs"], "EPSG:3857", always_xy=True)
    features = {}
    for fid, wkb in zip(fids, wkbs):
        if wkb is None:
            continue
        g = shapely.from_wkb(wkb)
        parts = [list(zip(*to_merc.transform(*zip(*l.coords)))) for l in lines_of(g)]
        if parts:
            features[int(fid)] = parts

    problems = []
    checked = 0
    vertices = 0
    tiles = {}
    for z in range(a.zmin, detail + 2):
        tol = 0.5 if z >= detail else 4.0
        s = 2 * ORIGIN / 2**z
        for fid, parts in features.items():
            xs = [p[0] for l in parts for p in l]
            ys = [p[1] for l in parts for p in l]
            tx0, tx1 = int((min(xs) + ORIGIN) // s), int((max(xs) + ORIGIN) // s)
            ty0, ty1 = int((ORIGIN - max(ys)) // s), int((ORIGIN - min(ys)) // s)
            if tx0 != tx1 or ty0 != ty1:
                continue
            x, y = tx0, ty0
            # Below the detail zoom, lines under a pixel (8 units) are left out.
            size = max(max(xs) - min(xs), max(ys) - min(ys)) * EXTENT / s
            if z < detail and size < 8.5:
                continue
            key = (z, x, y)
            if key not in tiles:
                status, body = get(f"{base}/collections/{a.layer}/tiles/WebMercatorQuad/{z}/{y}/{x}")
                decoded = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True}) if status == 200 else {}
                tiles[key] = {f["id"]: f for f in decoded.get(a.layer, {}).get("features", [])}
            f = tiles[key].get(fid)
            if f is None:
                problems.append(f"z{z} {x}/{y}: line {fid} missing")
                continue
            geom = f["geometry"]
            got = geom["coordinates"] if geom["type"] == "MultiLineString" else [geom["coordinates"]]
            got = [[tuple(p) for p in l] for l in got]
            if len(got) != len(parts):
                problems.append(f"z{z} {x}/{y}: line {fid} has {len(got)} parts, the source {len(parts)}")
                continue
            checked += 1
            for part, (src, out) in enumerate(zip(parts, got)):
                pts = to_tile(src, z, x, y)
                must = dp(pts, tol * STEP * (1 + SLACK))
                may = dp(pts, tol * (1 - SLACK))
                vertices += len(out)
                lost = [p for p in must if not any(near(p, q) for q in out)]
                extra = [q for q in out if not any(near(p, q) for p in may)]
                if lost or extra:
                    problems.append(
                        f"z{z} {x}/{y}: line {fid} part {part}: {len(out)} vertices, DP keeps "
                        f"{len(must)}..{len(may)}; {len(lost)} of DP's missing (e.g. {lost[:2]}), "
                        f"{len(extra)} DP drops kept (e.g. {extra[:2]})"
                    )
    if checked == 0:
        problems.append("no line lies wholly inside a tile: nothing was checked")
    print(f"{checked} lines in {len(tiles)} tiles checked against GEOS's Douglas-Peucker, "
          f"{vertices} vertices, {len(problems)} problems")
    for p in problems[:20]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
