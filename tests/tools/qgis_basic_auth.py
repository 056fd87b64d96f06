#!/usr/bin/python3
"""Reads a restricted collection through QGIS 3.22's OGC API Features provider, signed in
with an authentication configuration of the Basic method holding a nordgeo token as its
password (what an administrator sets up under Settings > Options > Authentication).

Usage: QT_QPA_PLATFORM=offscreen QGIS_AUTH_DB_DIR_PATH=DIR /usr/bin/python3 \
       qgis_basic_auth.py BASE_URL COLLECTION TOKEN INTERNAL_FIELD
Prints "features N fields a,b,c" and leaves with 0 when the layer is valid, has features
and the internal field; 1 otherwise.
"""
import os
import sys

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsVectorLayer


def main():
    base, collection, token, internal = sys.argv[1:5]
    app = QgsApplication([], False)
    app.initQgis()
    am = QgsApplication.authManager()
    am.setMasterPassword("nordgeo-test", True)
    cfg = QgsAuthMethodConfig("Basic")
    cfg.setName("nordgeo")
    cfg.setConfig("username", "qgis")
    cfg.setConfig("password", token)
    stored = am.storeAuthenticationConfig(cfg)
    ok = stored[0] if isinstance(stored, tuple) else stored
    if not ok:
        print("qgis_basic_auth: cannot store the authentication configuration")
        sys.stdout.flush()
        os._exit(1)
    uri = f"url='{base}' typename='{collection}' authcfg={cfg.id()}"
    layer = QgsVectorLayer(uri, collection, "OAPIF")
    if not layer.isValid():
        print(f"qgis_basic_auth: layer not valid: {uri}")
        sys.stdout.flush()
        os._exit(1)
    fields = [f.name() for f in layer.fields()]
    n = sum(1 for _ in layer.getFeatures())
    print(f"features {n} fields {','.join(fields)}")
    sys.stdout.flush()
    # exitQgis() can crash headless 3.22 after the work is done: leave directly.
    os._exit(0 if n > 0 and internal in fields else 1)


if __name__ == "__main__":
    main()
