// Screenshots of the portal map for docs/: the widget embedded full-window at 1280x800.
//
//   node tests/browser/screenshots.mjs BASE_URL OUT_DIR
//
// z10-region.png (the whole area: the widget fits the TileJSON bounds), z14-village.png
// (Heringen: trails of every difficulty, five parking sites, a Kita, the settlement),
// z17-parcels.png (Ellrich: parcels with outlines, land use and numbers, a trail, a
// parking site). Exits 1 when a map does not load or logs an error.
import fs from 'node:fs';
import path from 'node:path';
import {embedHtml, launch, servePage, waitForWidget, watchPage} from './lib.mjs';

const [BASE_ARG, OUT_DIR] = process.argv.slice(2);
if (!BASE_ARG || !OUT_DIR) {
    console.error('usage: node tests/browser/screenshots.mjs BASE_URL OUT_DIR');
    process.exit(2);
}
const BASE = BASE_ARG.replace(/\/+$/, '');
fs.mkdirSync(OUT_DIR, {recursive: true});

const SHOTS = [
    {file: 'z10-region.png', attrs: ''},
    {file: 'z14-village.png', attrs: 'data-center="10.8780,51.4510" data-zoom="14"'},
    {file: 'z17-parcels.png', attrs: 'data-center="10.6703,51.5797" data-zoom="17" data-controls="collapsed"'}
];

const browser = await launch();
let failed = 0;
try {
    for (const shot of SHOTS) {
        const html = embedHtml(BASE, `${shot.attrs} style="width:100vw;height:100vh"`, {title: 'nordgeo'});
        const server = await servePage(html);
        const page = await browser.newPage();
        await page.setViewport({width: 1280, height: 800});
        const log = watchPage(page);
        try {
            await page.goto(server.url, {waitUntil: 'load'});
            await waitForWidget(page, '[data-nordgeo-map]');
            const zoom = await page.evaluate(() => document.querySelector('[data-nordgeo-map]').nordgeoMap.getZoom());
            const out = path.join(OUT_DIR, shot.file);
            await page.screenshot({path: out});
            if (log.consoleErrors.length) {
                failed++;
                console.log(`FAIL - ${shot.file}: ${log.consoleErrors.join(' | ')}`);
            } else {
                console.log(`ok - ${out} (zoom ${zoom.toFixed(2)})`);
            }
        } catch (e) {
            failed++;
            console.log(`FAIL - ${shot.file}: ${e.message}`);
        } finally {
            await page.close();
            await server.close();
        }
    }
} finally {
    await browser.close();
}
process.exit(failed ? 1 : 0);
