#!/usr/bin/env python3
"""Edit nordgeo's childcare collection with owslib (OGC API Features Part 4) and print
what owslib sent and got, as JSON.

    owslib_edit.py BASE TOKEN create FEATURE_JSON
    owslib_edit.py BASE TOKEN create-plain FEATURE_JSON
    owslib_edit.py BASE TOKEN update FID FEATURE_JSON
    owslib_edit.py BASE TOKEN delete FID

One action per run: owslib's `API.__init__` updates the module-global REQUEST_HEADERS
dict with the headers it is given, so headers would leak from one `Features` to the next
within one process.

What owslib 0.35 does (owslib/ogcapi/features.py, owslib/util.py):
- `collection_item_create(cid, data)` with a *string* goes through `util.http_post`,
  which starts from `Content-type: text/xml` and only switches to JSON for a dict; the
  caller's headers are applied on top. `create-plain` sends exactly that (only the
  Authorization header), so a server that checks the media type answers 415; `create`
  adds `Content-Type: application/geo+json`, which replaces owslib's text/xml.
- create returns True (`_request` turns the empty 201 body into {}); the new feature's
  URL is only in `response_headers['Location']`.
- `collection_item_update` is a PUT of the string (no Content-Type unless given),
  `collection_item_delete` a DELETE; both return True and raise RuntimeError on a
  non-2xx answer.

The Rust test (tests/edit.rs) checks the effects over HTTP, in the tiles and in the
GeoPackage file.
"""
import json
import sys

from owslib.ogcapi.features import Features

base, token, action = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
headers = {"Authorization": f"Bearer {token}"}
if action != "create-plain":
    headers["Content-Type"] = "application/geo+json"

w = Features(base, headers=headers)
out = {"action": action, "error": None, "returned": None}
try:
    if action in ("create", "create-plain"):
        out["returned"] = w.collection_item_create("childcare", args[0])
    elif action == "update":
        out["returned"] = w.collection_item_update("childcare", args[0], args[1])
    elif action == "delete":
        out["returned"] = w.collection_item_delete("childcare", args[0])
    else:
        sys.exit(f"unknown action {action}")
except RuntimeError as e:  # owslib's way of reporting a non-2xx answer
    out["error"] = str(e)
h = w.response_headers or {}
out["location"] = h.get("Location")
out["etag"] = h.get("ETag")
out["change"] = h.get("x-nordgeo-change")
out["request"] = w.request
print(json.dumps(out))
