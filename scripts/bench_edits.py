#!/usr/bin/env python3
"""Edit latency and memory on the scale-1 region data (issue 11).

Starts `nordgeo serve` on a copy of the generated data, sends PATCH requests that change
one property of a parcel (each to another parcel), and prints the latency (median, p90,
p99, max) and the server's resident memory after start and after the edits. With
--vs OTHER_BINARY both binaries run on fresh copies of the same data, in turn, and the
ratios are printed (this machine is shared: compare within one run).

    cargo build --release
    python3 scripts/bench_edits.py --edits 1000
    python3 scripts/bench_edits.py --vs /tmp/nordgeo-before/target/release/nordgeo
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def dataset(binary, scale):
    d = os.path.join(ROOT, "target", "bench-data")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"region-{scale}.gpkg")
    if not os.path.exists(path):
        subprocess.run([binary, "generate", path, "--scale", str(scale)], check=True)
    return path


def run(binary, data, edits, label):
    tmp = tempfile.mkdtemp()
    store = os.path.join(tmp, "store.gpkg")
    shutil.copy(data, store)
    out = subprocess.run(
        [binary, "--store", store, "token", "create", "--name", "bench", "--role", "admin"],
        check=True, capture_output=True, text=True,
    ).stdout
    secret = [l for l in out.split() if l.startswith("ngt_")][0]
    started = time.time()
    srv = subprocess.Popen(
        [binary, "--store", store, "serve", "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = srv.stdout.readline()
        host, port = line.strip().rsplit("/", 1)[-1].split(":")
        startup = time.time() - started
        time.sleep(1.0)
        rss_start = rss_mb(srv.pid)
        conn = http.client.HTTPConnection(host, int(port))
        conn.request("GET", "/collections/parcels/items?limit=10000",
                     headers={"Authorization": f"Bearer {secret}"})
        fids = [f["id"] for f in json.loads(conn.getresponse().read())["features"]]
        lat = []
        rss_40 = float("nan")
        for i in range(edits):
            fid = fids[(i * 7919) % len(fids)]
            body = json.dumps({"properties": {"land_use": ["Wald", "Acker", "Grünland"][i % 3]}})
            t = time.perf_counter()
            conn.request("PATCH", f"/collections/parcels/items/{fid}", body=body, headers={
                "Authorization": f"Bearer {secret}",
                "Content-Type": "application/merge-patch+json",
            })
            r = conn.getresponse()
            r.read()
            lat.append((time.perf_counter() - t) * 1000)
            if r.status != 204:
                sys.exit(f"{label}: PATCH answered {r.status}")
            if i == 39:
                rss_40 = rss_mb(srv.pid)
        time.sleep(3.0)  # let a background fold finish
        rss_end = rss_mb(srv.pid)
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
        res = {
            "label": label, "edits": edits, "startup_s": startup,
            "median_ms": statistics.median(lat), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": lat[-1],
            "rss_start_mb": rss_start, "rss_after_40_mb": rss_40, "rss_after_mb": rss_end,
        }
        print(f"{label}: {edits} PATCHes: median {res['median_ms']:.2f} ms, p90 {res['p90_ms']:.2f} ms, "
              f"p99 {res['p99_ms']:.2f} ms, max {res['max_ms']:.1f} ms; RSS {rss_start:.0f} MB after start, "
              f"{rss_40:.0f} MB after 40 edits, {rss_end:.0f} MB after {edits} "
              f"({rss_end / rss_start:.2f}x)", flush=True)
        return res
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "nordgeo"))
    ap.add_argument("--vs", help="a second nordgeo binary (e.g. an earlier commit's)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--edits", type=int, default=1000)
    ap.add_argument("--vs-edits", type=int, default=40,
                    help="edits for the --vs binary (an O(n) edit path takes seconds each)")
    a = ap.parse_args()
    data = dataset(a.binary, a.scale)
    this = run(a.binary, data, a.edits, "this")
    if a.vs:
        other = run(a.vs, data, a.vs_edits, "vs")
        print(f"ratio vs/this: median {other['median_ms'] / this['median_ms']:.1f}x, "
              f"p99 {other['p99_ms'] / this['p99_ms']:.1f}x, "
              f"RSS growth {other['rss_after_mb'] / other['rss_start_mb']:.2f}x vs "
              f"{this['rss_after_mb'] / this['rss_start_mb']:.2f}x")


if __name__ == "__main__":
    main()
