#!/usr/bin/env python3
"""Drive nordgeo with owslib (ogcapi.features) and print what owslib got, as JSON.

    owslib_check.py BASE_URL

The Rust test (tests/features.rs) compares the output with the store. owslib sends
`Accept: */*`, URL-encodes bbox commas and finds /api through the service-desc link,
so this is what a Python user of the standard client sees.
"""
import json
import sys

from owslib.ogcapi.features import Features

base = sys.argv[1]
w = Features(base)
out = {}
out["conformance"] = w.conformance()["conformsTo"]
out["collections"] = w.feature_collections()
out["parking_title"] = w.collection("parking")["title"]
items = w.collection_items("trails", limit=1)
out["trails_matched"] = items["numberMatched"]
out["trails_returned"] = items["numberReturned"]
bbox = [10.7, 51.45, 10.95, 51.6]
out["bbox"] = bbox
out["parking_in_bbox"] = sorted(
    f["id"] for f in w.collection_items("parking", bbox=bbox, limit=1000)["features"]
)
hard = w.collection_items("trails", filter="difficulty = 'hard' AND length_m > 3000", limit=1000)
out["hard_trails"] = sorted(f["id"] for f in hard["features"])
ranked = w.collection_items("parking", sortby=("capacity", "desc"), limit=5)
out["top_capacities"] = [f["properties"]["capacity"] for f in ranked["features"]]
item = w.collection_item("parking", "1")
out["item"] = {"id": item["id"], "name": item["properties"]["name"]}
q = w.collection_queryables("parking")
out["queryables"] = sorted(q["properties"].keys())
api = w.api()
out["api_limit_max"] = api["components"]["parameters"]["limit"]["schema"]["maximum"]
out["api_has_filter"] = "filter" in api["components"]["parameters"]
print(json.dumps(out))
