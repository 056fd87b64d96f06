#!/usr/bin/env python3
"""Independent oracle for curve geometries that the server serves linearized.

    .venv-clients/bin/python tests/tools/check_arcs.py BASE_URL MANIFEST LAYER [TOLERANCE_M]

BASE_URL    the server, e.g. http://127.0.0.1:8080
MANIFEST    manifest.json of tests/fixtures/make_realdata.py (its "curves" part is used)
LAYER       a curve layer of curves.gpkg imported under the same name (kreise, flurstuecke,
            grenzen, boegen, mehrbogen, boegen_z)
TOLERANCE_M the largest distance the linearization may stray from the true curve
            (default 0.01 m)

Fetches BASE_URL/collections/LAYER/items?crs=<EPSG:25832>&limit=10000 (following "next"
links), matches the features to the manifest by the `name` property (else `nr`) and checks
each one against the true curves: the arcs are rebuilt from the manifest's WKT (centre and
radius from the three points of each arc, cross-checked against the manifest's own arc
list), independently of nordgeo and of GDAL's linearization. Everything is computed in
metres relative to a local origin (the numbers stay small, nothing is lost to rounding).

Checks (H = TOLERANCE_M + 0.0005 (reference sampling) + 0.0002 (the server rounds metres
to 0.1 mm); EPS_V = 0.001 + 0.0002):

  shape     polygon layers are served as (Multi)Polygon with the same number of parts and
            the same ring counts, line layers as (Multi)LineString with the same number of
            parts; rings are closed; every geometry has vertices.
  vertices  every served vertex lies within EPS_V of the true curve (exact distance: to the
            circle where its angle falls inside an arc's sweep, else to the arc's end points;
            to the segment for straight pieces).
  hausdorff the symmetric Hausdorff distance between the served boundary and the true
            boundary is <= H: true -> served from points on the true curve at most 0.05 m
            (and 0.05 deg) apart; served -> true from the served boundary subdivided every
            0.02 m, each point measured exactly against the true curve.
  area      (polygons) |A_served - true_area| <= H * P + pi * H^2 * rings, P the true
            perimeter. Honest: if the Hausdorff distance is <= H, the region between the two
            boundaries lies within a band of width H on one side of the true boundary, whose
            area is at most H * P (+ the corner term pi * H^2 per ring).
  length    (lines, and polygon perimeters) |L_served - L_true| <= sum over arcs of
            theta * H / 2 + EPS_V * (T + 2 * open_parts), theta an arc's sweep (rad), T the
            total turning (rad) of the served polyline. Honest for a polyline that follows
            the curve in order: chords of an arc whose sagitta is s <= H fall short of the
            arc by at most 0.42 * s * theta <= theta * H / 2 (chords up to 180 deg); moving a
            vertex by d changes the length by at most |d| times its turning angle (or |d| at
            an end point). A zigzag within the Hausdorff band fails this check.

Prints one line per feature ("ok" / "FAIL" with the reason) and a summary; exits 1 on any
failure (also: a manifest feature missing from the response, a feature the manifest does
not know, a geometry without vertices), 2 on usage, network or manifest errors.
"""

import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import shapely

CRS_URI = "http://www.opengis.net/def/crs/EPSG/0/25832"
REF_SLACK = 0.0005      # allowance for the sampled reference
ROUND_SLACK = 0.0002    # the server rounds metres to 0.1 mm
VERTEX_TOL = 0.001 + ROUND_SLACK
REF_STEP_M = 0.05       # true curve sampled at most this far apart ...
REF_STEP_DEG = 0.05     # ... and at most this many degrees apart on arcs
SERVED_STEP_M = 0.02    # served boundary subdivided this finely for served -> true


class Usage(Exception):
    pass


# ------------------------------------------------------------------------ WKT parsing

TOKEN = re.compile(r"\s*(?:([A-Za-z]+)|([-+0-9.eE]+)|([(),]))")


def tokenize(wkt):
    pos, out = 0, []
    while pos < len(wkt):
        m = TOKEN.match(wkt, pos)
        if not m or m.end() == pos:
            if wkt[pos:].strip() == "":
                break
            raise Usage(f"cannot parse WKT at {wkt[pos:pos + 30]!r}")
        pos = m.end()
        out.append(m.group(1).upper() if m.group(1) else m.group(2) or m.group(3))
    return out


class Parser:
    """Curves are [("L" | "C", [(x, y), ...]), ...]; surfaces are [ring curve, ...]."""

    def __init__(self, wkt):
        self.t = tokenize(wkt)
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, want=None):
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise Usage(f"WKT: expected {want!r}, found {tok!r}")
        self.i += 1
        return tok

    def tag(self):
        """A geometry keyword and its Z/M/ZM suffix (if the next token is a keyword)."""
        tok = self.peek()
        if tok is None or tok in "(),":
            return None
        self.take()
        if self.peek() in ("Z", "M", "ZM"):
            self.take()
        if self.peek() == "EMPTY":
            raise Usage("EMPTY geometries are not supported by this oracle")
        return tok

    def coords(self):
        self.take("(")
        pts = []
        while True:
            nums = []
            while self.peek() not in (",", ")"):
                nums.append(float(self.take()))
            pts.append((nums[0], nums[1]))
            if self.take() == ")":
                return pts

    def listof(self, item):
        self.take("(")
        out = [item()]
        while self.take() == ",":
            out.append(item())
        return out

    def curve(self, default="LINESTRING"):
        kind = self.tag() or default
        if kind == "LINESTRING":
            return [("L", self.coords())]
        if kind == "CIRCULARSTRING":
            return [("C", self.coords())]
        if kind == "COMPOUNDCURVE":
            return [p for piece in self.listof(self.curve) for p in piece]
        raise Usage(f"WKT: {kind} is not a curve")

    def surface(self, default="POLYGON"):
        kind = self.tag() or default
        if kind not in ("POLYGON", "CURVEPOLYGON"):
            raise Usage(f"WKT: {kind} is not a surface")
        return self.listof(self.curve)

    def geometry(self):
        kind = self.peek()
        if kind in ("POLYGON", "CURVEPOLYGON"):
            return "polygon", [self.surface()]
        if kind in ("LINESTRING", "CIRCULARSTRING", "COMPOUNDCURVE"):
            return "line", [[self.curve()]]
        self.tag()
        if kind in ("MULTIPOLYGON", "MULTISURFACE"):
            return "polygon", self.listof(self.surface)
        if kind in ("MULTILINESTRING", "MULTICURVE"):
            return "line", [[c] for c in self.listof(self.curve)]
        raise Usage(f"WKT: unsupported geometry {kind}")


# -------------------------------------------------------------------- true curves


def arc_of(p0, p1, p2):
    """Centre, radius, start angle, signed sweep (ccw > 0) of the arc p0 -> p1 -> p2."""
    if p0 == p2:  # full circle, p1 diametrically opposite
        cx, cy = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
        r = math.hypot(p1[0] - p0[0], p1[1] - p0[1]) / 2
        return (cx, cy), r, math.atan2(p0[1] - cy, p0[0] - cx), 2 * math.pi
    bx, by = p1[0] - p0[0], p1[1] - p0[1]
    qx, qy = p2[0] - p0[0], p2[1] - p0[1]
    d = 2 * (bx * qy - by * qx)
    if d == 0:
        raise Usage(f"collinear arc {p0} {p1} {p2}")
    cx = p0[0] + (qy * (bx * bx + by * by) - by * (qx * qx + qy * qy)) / d
    cy = p0[1] + (bx * (qx * qx + qy * qy) - qx * (bx * bx + by * by)) / d
    a0 = math.atan2(p0[1] - cy, p0[0] - cx)
    a2 = math.atan2(p2[1] - cy, p2[0] - cx)
    sweep = (a2 - a0) % (2 * math.pi) if d > 0 else -((a0 - a2) % (2 * math.pi))
    return (cx, cy), math.hypot(p0[0] - cx, p0[1] - cy), a0, sweep


class TrueCurve:
    """The exact boundary of one feature: straight segments and arcs (local metres)."""

    def __init__(self, curves):
        self.segs, self.arcs = [], []
        for pieces in curves:
            for kind, pts in pieces:
                if kind == "L":
                    self.segs += list(zip(pts, pts[1:]))
                else:
                    if len(pts) < 3 or len(pts) % 2 == 0:
                        raise Usage(f"circular string with {len(pts)} points")
                    for i in range(0, len(pts) - 2, 2):
                        c, r, a0, sw = arc_of(pts[i], pts[i + 1], pts[i + 2])
                        self.arcs.append({"c": c, "r": r, "a0": a0, "sweep": sw,
                                          "ends": (pts[i], pts[i + 2])})

    def distance(self, p):
        """Exact distance of the points p (N x 2 array) to the curve."""
        best = np.full(len(p), np.inf)
        for a, b in self.segs:
            a, b = np.asarray(a), np.asarray(b)
            ab = b - a
            ll = float(ab @ ab)
            t = np.zeros(len(p)) if ll == 0 else np.clip(((p - a) @ ab) / ll, 0, 1)
            best = np.minimum(best, np.hypot(*(p - a - t[:, None] * ab).T))
        for arc in self.arcs:
            c = np.asarray(arc["c"])
            v = p - c
            rho = np.hypot(v[:, 0], v[:, 1])
            d_circle = np.abs(rho - arc["r"])
            if abs(arc["sweep"]) >= 2 * math.pi - 1e-12:
                best = np.minimum(best, d_circle)
                continue
            ang = np.arctan2(v[:, 1], v[:, 0])
            t = ((ang - arc["a0"]) * np.sign(arc["sweep"])) % (2 * math.pi)
            e0, e1 = (np.asarray(e) for e in arc["ends"])
            d_end = np.minimum(np.hypot(*(p - e0).T), np.hypot(*(p - e1).T))
            best = np.minimum(best, np.where(t <= abs(arc["sweep"]), d_circle, d_end))
        return best

    def samples(self):
        out = []
        for a, b in self.segs:
            n = max(1, math.ceil(math.hypot(b[0] - a[0], b[1] - a[1]) / REF_STEP_M))
            t = np.linspace(0, 1, n + 1)[:, None]
            out.append(np.asarray(a) + t * (np.asarray(b) - np.asarray(a)))
        for arc in self.arcs:
            step = min(math.radians(REF_STEP_DEG), REF_STEP_M / arc["r"])
            n = max(2, math.ceil(abs(arc["sweep"]) / step))
            ang = arc["a0"] + arc["sweep"] * np.linspace(0, 1, n + 1)
            out.append(np.column_stack([arc["c"][0] + arc["r"] * np.cos(ang),
                                        arc["c"][1] + arc["r"] * np.sin(ang)]))
        return np.vstack(out)


# ------------------------------------------------------------------------- fetching


def fetch_all(base, layer):
    q = urllib.parse.urlencode({"crs": CRS_URI, "limit": 10000})
    url = f"{base.rstrip('/')}/collections/{urllib.parse.quote(layer)}/items?{q}"
    feats, seen = [], set()
    while url and url not in seen:
        seen.add(url)
        req = urllib.request.Request(url, headers={"Accept": "application/geo+json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                crs = r.headers.get("Content-Crs", "")
                doc = json.load(r)
        except urllib.error.HTTPError as e:
            raise Usage(f"GET {url}: HTTP {e.code} {e.read()[:300]!r}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise Usage(f"GET {url}: {e}")
        if CRS_URI not in crs:
            raise Usage(f"GET {url}: Content-Crs is {crs!r}, expected <{CRS_URI}>")
        feats += doc.get("features", [])
        url = next((lk["href"] for lk in doc.get("links", []) if lk.get("rel") == "next"), None)
    return feats


# -------------------------------------------------------------------------- checking


def served_parts(geom, kind):
    """[[ring or line coordinates (N x 2), ...] per part] of a served GeoJSON geometry."""
    t, c = geom.get("type"), geom.get("coordinates")
    if kind == "polygon":
        polys = {"Polygon": lambda: [c], "MultiPolygon": lambda: c}.get(t)
    else:
        polys = {"LineString": lambda: [[c]], "MultiLineString": lambda: [[ln] for ln in c]}.get(t)
    if polys is None:
        raise ValueError(f"served as {t}, expected a {kind} type")
    return [[np.asarray([p[:2] for p in ring], dtype=float) for ring in part]
            for part in polys()]


def turning(coords, closed):
    d = np.diff(coords, axis=0)
    d = d[np.hypot(d[:, 0], d[:, 1]) > 0]
    if closed and len(d):
        d = np.vstack([d, d[:1]])
    if len(d) < 2:
        return 0.0
    ang = np.arctan2(d[:, 1], d[:, 0])
    return float(np.abs((np.diff(ang) + math.pi) % (2 * math.pi) - math.pi).sum())


def check_feature(mf, served, tol):
    """Returns (ok, message)."""
    kind, parts = Parser(mf["wkt"]).geometry()
    first = parts[0][0][0][1][0]
    origin = np.array([math.floor(first[0]), math.floor(first[1])])

    def local(pt):
        return (pt[0] - origin[0], pt[1] - origin[1])

    lparts = [[[(k, [local(p) for p in pts]) for k, pts in curve] for curve in part]
              for part in parts]
    truth = TrueCurve([curve for part in lparts for curve in part])

    # the manifest's own arc list must describe the same arcs (else the manifest is broken)
    if len(truth.arcs) != len(mf.get("arcs", [])):
        raise Usage(f"{mf['name']}: WKT has {len(truth.arcs)} arcs, manifest lists "
                    f"{len(mf.get('arcs', []))}")
    for a, ma in zip(truth.arcs, mf.get("arcs", [])):
        mc = local(ma["centre"])
        if math.hypot(a["c"][0] - mc[0], a["c"][1] - mc[1]) > 1e-6 or \
                abs(a["r"] - ma["radius"]) > 1e-6:
            raise Usage(f"{mf['name']}: arc centre/radius differ from the manifest")

    fails = []
    try:
        sparts = served_parts(served, kind)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        return False, f"unusable geometry: {e}"
    sparts = [[ring - origin for ring in part] for part in sparts]
    nverts = sum(len(r) for part in sparts for r in part)
    if nverts == 0 or any(len(r) == 0 for part in sparts for r in part):
        return False, "served geometry has no vertices"
    want = sorted(len(p) for p in lparts)
    got = sorted(len(p) for p in sparts)
    if len(sparts) != len(lparts) or want != got:
        fails.append(f"{len(sparts)} part(s) with ring/line counts {got}, expected "
                     f"{len(lparts)} with {want}")
    if kind == "polygon":
        for part in sparts:
            for ring in part:
                if len(ring) < 4 or not np.array_equal(ring[0], ring[-1]):
                    fails.append(f"ring of {len(ring)} vertices is not closed")
    if kind == "line" and any(len(r) < 2 for part in sparts for r in part):
        fails.append("a line with fewer than 2 vertices")
    if fails:
        return False, "; ".join(fails)

    lines = [r for part in sparts for r in part]
    boundary = shapely.MultiLineString(lines)
    H = tol + REF_SLACK + ROUND_SLACK

    verts = np.vstack(lines)
    dv = truth.distance(verts)
    i = int(np.argmax(dv))
    if dv[i] > VERTEX_TOL:
        p = verts[i] + origin
        fails.append(f"vertex ({p[0]:.4f}, {p[1]:.4f}) is {dv[i]:.5f} m off the true curve "
                     f"(> {VERTEX_TOL})")

    dense = shapely.get_coordinates(shapely.segmentize(boundary, SERVED_STEP_M))
    h_served = float(truth.distance(dense).max())
    ref = truth.samples()
    h_true = float(shapely.distance(shapely.points(ref), boundary).max())
    hd = max(h_served, h_true)
    if hd > H:
        fails.append(f"Hausdorff {hd:.5f} m (served->true {h_served:.5f}, true->served "
                     f"{h_true:.5f}) > {H:.5f}")

    sweep_sum = sum(abs(a["sweep"]) for a in truth.arcs)
    closed = kind == "polygon"
    T = sum(turning(r, closed) for r in lines)
    open_parts = 0 if closed else len(lines)
    len_bound = sweep_sum * H / 2 + VERTEX_TOL * (T + 2 * open_parts) + 1e-9
    served_len = float(sum(np.hypot(*np.diff(r, axis=0).T).sum() for r in lines))
    info = f"{nverts} vertices, vertex dev {dv.max():.5f} m, Hausdorff {hd:.5f} m"
    if kind == "polygon":
        area = float(sum(shapely.Polygon(part[0], part[1:]).area for part in sparts))
        a_true, p_true = mf["true_area"], mf["true_perimeter"]
        a_bound = H * p_true + math.pi * H * H * len(lines)
        if abs(area - a_true) > a_bound:
            fails.append(f"area {area:.4f} m² vs true {a_true:.4f} (Δ {area - a_true:+.4f} "
                         f"> ±{a_bound:.4f})")
        if abs(served_len - p_true) > len_bound:
            fails.append(f"perimeter {served_len:.4f} m vs true {p_true:.4f} "
                         f"(Δ {served_len - p_true:+.5f} > ±{len_bound:.5f})")
        info += (f", area Δ {area - a_true:+.4f} m² (±{a_bound:.3f}), perimeter Δ "
                 f"{served_len - p_true:+.5f} m (±{len_bound:.5f})")
    else:
        l_true = mf["true_length"]
        if abs(served_len - l_true) > len_bound:
            fails.append(f"length {served_len:.4f} m vs true {l_true:.4f} "
                         f"(Δ {served_len - l_true:+.5f} > ±{len_bound:.5f})")
        info += f", length Δ {served_len - l_true:+.5f} m (±{len_bound:.5f})"
    if fails:
        return False, "; ".join(fails) + f" [{info}]"
    return True, info


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    base, manifest_path, layer = argv[1:4]
    try:
        tol = float(argv[4]) if len(argv) == 5 else 0.01
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        layers = manifest.get("curves", manifest).get("layers", [])
        ml = next((lyr for lyr in layers if lyr["name"] == layer), None)
        if ml is None:
            raise Usage(f"layer {layer!r} not in {manifest_path} "
                        f"(has {[lyr['name'] for lyr in layers]})")
        served = fetch_all(base, layer)
    except (Usage, OSError, ValueError, KeyError) as e:
        print(f"check_arcs: error: {e}", file=sys.stderr)
        return 2

    by_name, by_nr = {}, {}
    for f in served:
        props = f.get("properties") or {}
        if "name" in props:
            by_name.setdefault(props["name"], []).append(f)
        if "nr" in props:
            by_nr.setdefault(props["nr"], []).append(f)
    failures, oks, matched = 0, 0, set()
    for mf in ml["features"]:
        label = f"{layer} nr {mf['nr']} {mf['name']!r}"
        cands = by_name.get(mf["name"]) or by_nr.get(mf["nr"]) or []
        if len(cands) != 1:
            failures += 1
            what = "missing from the response" if not cands else f"served {len(cands)} times"
            print(f"FAIL {label}: {what}")
            continue
        matched.add(id(cands[0]))
        try:
            ok, msg = check_feature(mf, cands[0].get("geometry") or {}, tol)
        except Usage as e:
            print(f"check_arcs: error: manifest: {e}", file=sys.stderr)
            return 2
        failures += not ok
        oks += ok
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {msg}")
    for f in served:
        if id(f) not in matched:
            failures += 1
            print(f"FAIL {layer}: served feature {f.get('id')} "
                  f"{(f.get('properties') or {}).get('name')!r} is not in the manifest")
    print(f"check_arcs: {layer}: {oks}/{len(ml['features'])} ok, "
          f"{failures} failure(s) (tolerance {tol} m)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
