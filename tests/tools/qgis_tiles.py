#!/usr/bin/python3
"""Loads nordgeo's vector tiles in QGIS (headless) and renders them.

Reads the TileJSON, creates a QGIS vector tile layer from its `tiles` template and zoom
range (as a user does in Layer > Add Layer > Vector Tile Layer), renders a view around
Werther and counts the pixels that are not background. Saves the picture when asked.

Usage: QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis_tiles.py BASE_URL [OUT.png]
Exit 0 when the layer is valid and the picture is not empty.
"""
import json
import sys
import urllib.request

from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsMapRendererSequentialJob,
                       QgsMapSettings, QgsRectangle, QgsVectorTileLayer)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def main():
    base = sys.argv[1]
    tj = json.load(urllib.request.urlopen(f"{base}/tiles/WebMercatorQuad/tilejson.json"))
    url = tj["tiles"][0]
    uri = f"type=xyz&url={url}&zmin={tj['minzoom']}&zmax={tj['maxzoom']}"
    app = QgsApplication([], False)
    app.initQgis()
    layer = QgsVectorTileLayer(uri, "nordgeo")
    if not layer.isValid():
        print(f"qgis_tiles: layer is not valid: {uri}")
        return 1
    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    # About 5 km around Werther (10.75E 51.53N), i.e. zoom 13-14 at 512 px.
    ms.setExtent(QgsRectangle(1193500, 6710500, 1199500, 6716500))
    ms.setOutputSize(QSize(512, 512))
    ms.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    colors = {}
    for y in range(0, img.height(), 2):
        for x in range(0, img.width(), 2):
            c = img.pixelColor(x, y).name()
            colors[c] = colors.get(c, 0) + 1
    painted = sum(n for c, n in colors.items() if c != "#ffffff")
    # Areas, lines and points drawn: several colours, each on more than a few pixels.
    kinds = sum(1 for c, n in colors.items() if c != "#ffffff" and n >= 20)
    if len(sys.argv) > 2:
        img.save(sys.argv[2])
    print(f"qgis_tiles: layer valid, {painted} of {(img.width() // 2) * (img.height() // 2)} sampled pixels painted in {kinds} colours")
    app.exitQgis()
    return 0 if painted > 100 and kinds >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
