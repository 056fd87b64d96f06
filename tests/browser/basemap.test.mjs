// Browser test of the portal with a basemap archive, against a running nordgeo server
// configured with an OpenMapTiles-schema basemap and `parcels` restricted.
//
//   node tests/browser/basemap.test.mjs BASE_URL OUT_DIR SCREENSHOT
//
// (a) BASE/map at 1280x800, jumped to z14 in a village: basemap layers and municipal
//     layers render, the parking and Kita icons come from nordgeo's sprite (requests
//     answered 200, no "could not be loaded" / missing-image warning), the basemap's
//     attribution is shown, no console error, no request to another host; a screenshot
//     of that view is saved to SCREENSHOT (docs/);
// (b) the restricted parcels: no console error, no "Flurstücke" in the layer list, no
//     parcels layer in the style the page got;
// (c) a 375x667 touch screen embedding data-municipality="Werther": the first view
//     shows Kitas and parking, cooperative gestures are on (one finger scrolls the page).
// Prints one line per check and "N passed, N failed"; exits 1 on any failure.
import fs from 'node:fs';
import path from 'node:path';
import {checker, embedHtml, foreignRequests, jumpTo, launch, originOf, renderedGroups, servePage, waitForWidget, watchPage} from './lib.mjs';

const [BASE_ARG, OUT_DIR, SCREENSHOT] = process.argv.slice(2);
if (!BASE_ARG || !OUT_DIR || !SCREENSHOT) {
    console.error('usage: node tests/browser/basemap.test.mjs BASE_URL OUT_DIR SCREENSHOT');
    process.exit(2);
}
const BASE = BASE_ARG.replace(/\/+$/, '');
const BASE_ORIGIN = originOf(BASE);
fs.mkdirSync(OUT_DIR, {recursive: true});
const VILLAGE = {center: [10.6705, 51.5800], zoom: 14};
const t = checker();

function watchWarnings(page) {
    const warnings = [];
    page.on('console', (m) => {
        if (m.type() === 'warning' || m.type() === 'warn') warnings.push(m.text());
    });
    return warnings;
}

function missingImages(warnings) {
    return warnings.filter((w) => /could not be loaded|missing|styleimagemissing/i.test(w));
}

async function run() {
    const browser = await launch();
    try {
        const sel = '#nordgeo-map';
        const page = await browser.newPage();
        await page.setViewport({width: 1280, height: 800});
        const log = watchPage(page);
        const warnings = watchWarnings(page);
        await t.step('(a) /map loads with the basemap and becomes idle', async () => {
            const resp = await page.goto(`${BASE}/map`, {waitUntil: 'load'});
            if (!resp || resp.status() !== 200) throw new Error(`GET /map answered ${resp && resp.status()}`);
            await waitForWidget(page, sel);
            await jumpTo(page, sel, VILLAGE);
            // icons and basemap labels settle in a second pass
            await new Promise((r) => setTimeout(r, 500));
            await jumpTo(page, sel, {...VILLAGE, zoom: VILLAGE.zoom + 0.0001});
        });
        const groups = await renderedGroups(page, sel).catch((e) => ({error: e.message}));
        t.ok('(a) the basemap renders', groups.basemap > 50, JSON.stringify(groups));
        t.ok('(a) municipal layers render over it', groups.trails > 0 && groups.parking > 0 && groups.municipalities > 0, JSON.stringify(groups));
        const kinds = await page.evaluate((s) => {
            const map = document.querySelector(s).nordgeoMap;
            const out = {};
            for (const l of map.getStyle().layers) {
                if (l.source !== 'basemap') continue;
                const n = map.queryRenderedFeatures({layers: [l.id]}).length;
                if (n) out[l['source-layer'] || l.id] = (out[l['source-layer'] || l.id] || 0) + n;
            }
            return out;
        }, sel);
        t.ok('(a) roads, water and places of the basemap are drawn', kinds.transportation > 0 && (kinds.water > 0 || kinds.waterway > 0) && (kinds.place > 0 || kinds.landuse > 0 || kinds.landcover > 0), JSON.stringify(kinds));
        const order = await page.evaluate((s) => {
            const ids = document.querySelector(s).nordgeoMap.getStyle().layers.map((l) => [l.id, l.source]);
            const firstOwn = ids.findIndex(([, src]) => src && src !== 'basemap');
            const basemapAreas = ids.filter(([, src], i) => src === 'basemap' && i < firstOwn).length;
            return {firstOwn, basemapAreas};
        }, sel);
        t.ok('(a) basemap areas lie under the municipal layers', order.basemapAreas > 0, JSON.stringify(order));
        const icons = await page.evaluate((s) => {
            const map = document.querySelector(s).nordgeoMap;
            const out = {};
            for (const l of map.getStyle().layers) {
                if (l.type === 'symbol' && l.layout && l.layout['icon-image'] && l.source !== 'basemap') {
                    out[l.id] = {rendered: map.queryRenderedFeatures({layers: [l.id]}).length, image: JSON.stringify(l.layout['icon-image'])};
                }
            }
            out.images = map.listImages().filter((i) => !i.startsWith('maplibre')).length;
            return out;
        }, sel);
        const iconLayers = Object.entries(icons).filter(([k]) => k !== 'images');
        t.ok('(a) parking and Kita icons are drawn from the sprite',
            iconLayers.length >= 2 && iconLayers.some(([k, v]) => /parking/.test(k) && v.rendered > 0) && icons.images >= 4, JSON.stringify(icons));
        const sprites = log.responses.filter((r) => new URL(r.url).pathname.startsWith('/sprites/'));
        t.ok('(a) the sprite sheet and index come from nordgeo (200)',
            sprites.some((r) => r.url.includes('.png')) && sprites.some((r) => r.url.includes('.json')) && sprites.every((r) => r.status === 200),
            sprites.map((r) => `${r.status} ${new URL(r.url).pathname}`).join(', '));
        t.ok('(a) no missing-image warning', missingImages(warnings).length === 0, missingImages(warnings).slice(0, 3).join(' | '));
        const attribution = await page.$eval(`${sel} .maplibregl-ctrl-attrib`, (el) => el.textContent).catch(() => '');
        t.ok('(a) the basemap attribution is shown', /OpenStreetMap|OpenMapTiles|nordgeo|©/i.test(attribution), attribution.slice(0, 120));
        await page.screenshot({path: SCREENSHOT});
        t.ok('(a) screenshot of z14 with basemap saved', fs.statSync(SCREENSHOT).size > 20000, `${fs.statSync(SCREENSHOT).size} bytes`);

        // ---------------- (b) restricted parcels ----------------
        const layerList = await page.$eval(`${sel} .nordgeo-layers`, (el) => el.textContent).catch(() => '');
        t.ok('(b) the layer list offers the basemap and no "Flurstücke"', !layerList.includes('Flurstücke') && layerList.includes('Hintergrundkarte'), layerList);
        const styleText = await page.evaluate((s) => JSON.stringify(document.querySelector(s).nordgeoMap.getStyle()), sel);
        t.ok('(b) the style has no parcels layer', !styleText.includes('"source-layer":"parcels"'));
        t.ok('(a, b) no console error or page error', log.consoleErrors.length === 0, log.consoleErrors.slice(0, 5).join(' | '));
        const bad = log.responses.filter((r) => r.status >= 400);
        t.ok('(a, b) no failed request', log.failed.length === 0 && bad.length === 0,
            log.failed.concat(bad.map((r) => `${r.status} ${r.url}`)).slice(0, 5).join(' | '));
        const foreign = foreignRequests(log.requests, [BASE_ORIGIN]);
        t.ok('(a) every request went to nordgeo', foreign.length === 0, foreign.slice(0, 5).join(', '));
        await page.close();

        // ---------------- (c) a phone embedding Werther ----------------
        const site = await servePage(embedHtml(BASE, 'data-municipality="Werther" style="height:560px"',
            {bodyStyle: 'margin:0;font-family:sans-serif'}).replace('</body>', '<p style="height:1200px">Text unter der Karte</p></body>'));
        const phone = await browser.newPage();
        await phone.setViewport({width: 375, height: 667, isMobile: true, hasTouch: true, deviceScaleFactor: 2});
        const logC = watchPage(phone);
        const selC = '[data-nordgeo-map]';
        try {
            await t.step('(c) the embedded widget loads on a 375x667 touch screen', async () => {
                await phone.goto(site.url, {waitUntil: 'load'});
                await waitForWidget(phone, selC);
            });
            const view = await phone.evaluate((s) => {
                const map = document.querySelector(s).nordgeoMap;
                return {zoom: map.getZoom(), cooperative: map.cooperativeGestures.isEnabled()};
            }, selC);
            const g = await renderedGroups(phone, selC).catch(() => ({}));
            t.ok('(c) the first view of Werther shows Kitas and parking', g.childcare > 0 && g.parking > 0, `zoom ${view.zoom.toFixed(2)}, ${JSON.stringify(g)}`);
            t.ok('(c) cooperative gestures are on (one finger scrolls the page)', view.cooperative === true);
            t.ok('(c) no console error', logC.consoleErrors.length === 0, logC.consoleErrors.slice(0, 5).join(' | '));
        } finally {
            await phone.close();
            await site.close();
        }
    } finally {
        await browser.close();
    }
}

run().then(() => process.exit(t.finish()), (e) => {
    console.log(`FAIL - the test itself failed: ${e && e.stack ? e.stack : e}`);
    t.finish();
    process.exit(1);
});
