#!/usr/bin/env python3
"""Median latency of `items?bbox=...&limit=1000` (and a few other item queries) against a
running nordgeo. Run by hand, not in CI:

    cargo build --release
    target/release/nordgeo --store /tmp/peerbench/region.gpkg serve --bind 127.0.0.1:8080 &
    python3 scripts/bench_items.py http://127.0.0.1:8080 parcels

Each request is timed from sending to the last byte of the body, one at a time on a
fresh connection, over 60 boxes of about 1.2 x 0.8 km spread over the layer's extent
(deterministic). Prints median, p90 and features per response for each query kind.
"""
import json
import random
import statistics
import sys
import time
import urllib.request

base, layer = sys.argv[1], sys.argv[2]


def fetch(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url) as r:
        body = r.read()
    return time.perf_counter() - t, body


_, body = fetch(f"{base}/collections/{layer}")
x0, y0, x1, y1 = json.loads(body)["extent"]["spatial"]["bbox"][0]
rng = random.Random(20240607)
boxes = []
for _ in range(60):
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    boxes.append((cx - 0.009, cy - 0.0036, cx + 0.009, cy + 0.0036))

kinds = {
    "bbox, limit=1000": lambda b: f"bbox={b[0]},{b[1]},{b[2]},{b[3]}&limit=1000",
    "bbox 4x larger (full pages), limit=1000": lambda b: "bbox={},{},{},{}&limit=1000".format(
        b[0] - 0.027, b[1] - 0.0108, b[2] + 0.027, b[3] + 0.0108
    ),
    "bbox + CQL2 filter, limit=1000": lambda b: f"bbox={b[0]},{b[1]},{b[2]},{b[3]}&limit=1000"
    "&filter=area_m2%20%3E%20500",
    "near, limit=10": lambda b: f"near={(b[0] + b[2]) / 2},{(b[1] + b[3]) / 2}&limit=10",
    "bbox in EPSG:25832 output, limit=1000": lambda b: f"bbox={b[0]},{b[1]},{b[2]},{b[3]}&limit=1000"
    "&crs=http://www.opengis.net/def/crs/EPSG/0/25832",
}
for name, q in kinds.items():
    fetch(f"{base}/collections/{layer}/items?{q(boxes[0])}")  # warm-up
    times, counts = [], []
    for b in boxes:
        dt, body = fetch(f"{base}/collections/{layer}/items?{q(b)}")
        times.append(dt * 1000)
        counts.append(json.loads(body)["numberReturned"])
    times.sort()
    print(
        f"{name:40s} median {statistics.median(times):7.2f} ms  p90 {times[int(len(times) * 0.9)]:7.2f} ms"
        f"  features/response median {statistics.median(counts):.0f}"
    )
