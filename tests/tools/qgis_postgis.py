#!/usr/bin/python3
"""Opens PostGIS tables written by nordgeo with QGIS 3.22's own PostgreSQL provider, as an
administrator adds them in the browser, and counts their features.

Usage: QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis_postgis.py PORT TABLE...
Prints "TABLE features N geometry TYPE" per table and leaves with 0 when every layer is
valid and has features; 1 otherwise.
"""
import os
import sys

from qgis.core import QgsApplication, QgsDataSourceUri, QgsVectorLayer, QgsWkbTypes


def main():
    port, tables = sys.argv[1], sys.argv[2:]
    app = QgsApplication([], False)
    app.initQgis()
    ok = True
    for table in tables:
        uri = QgsDataSourceUri()
        uri.setConnection("127.0.0.1", port, "nordgeo", "postgres", "")
        uri.setDataSource("public", table, "geom", "", "fid")
        layer = QgsVectorLayer(uri.uri(False), table, "postgres")
        if not layer.isValid():
            print(f"{table}: not valid")
            ok = False
            continue
        n = sum(1 for _ in layer.getFeatures())
        print(f"{table} features {n} geometry {QgsWkbTypes.displayString(layer.wkbType())}")
        ok = ok and n > 0
    sys.stdout.flush()
    # QGIS's exit can hang or crash headless; the answer is printed already.
    os._exit(0 if ok else 1)


main()
