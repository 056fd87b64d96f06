// Browser test of the portal map widget against a running nordgeo server.
//
//   node tests/browser/widget.test.mjs BASE_URL OUT_DIR
//
// (a) BASE/map at 1280x800: loads with no console error, fits the municipality of
//     data-municipality, every layer group has rendered features (parcels after a
//     jump to z16), labels render and every glyph request answered 200, a click on a
//     parking opens a popup with its capacity, a trail popup links its GPX track and its "Parkplätze in der Nähe"
//     and the "Parkplätze in meiner Nähe" control list the nearest parking sites, and the
//     page asked no host but nordgeo;
// (b) the same widget embedded in a page of another origin (CORS);
// (c) a phone viewport (375x667, touch): loads without errors, panel collapsed, a tap
//     opens a popup that fits the screen;
// (d) screenshots OUT_DIR/widget.png and OUT_DIR/widget-phone.png.
// Prints one line per check and "N passed, N failed"; exits 1 on any failure.
import fs from 'node:fs';
import path from 'node:path';
import {checker, embedHtml, foreignRequests, jumpTo, launch, originOf, renderedGroups, servePage, waitForWidget, waitIdle, watchPage} from './lib.mjs';

const [BASE_ARG, OUT_DIR] = process.argv.slice(2);
if (!BASE_ARG || !OUT_DIR) {
    console.error('usage: node tests/browser/widget.test.mjs BASE_URL OUT_DIR');
    process.exit(2);
}
const BASE = BASE_ARG.replace(/\/+$/, '');
const BASE_ORIGIN = originOf(BASE);
fs.mkdirSync(OUT_DIR, {recursive: true});

const GROUPS = ['trails', 'parking', 'childcare', 'municipalities'];
// a village centre with parcels, trails, parking and childcare in the sample data (Ellrich)
const VILLAGE = {center: [10.6705, 51.5800], zoom: 14.5};
const PARCELS = {center: [10.6695, 51.5795], zoom: 16};
const t = checker();

async function getJSON(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
}

function bboxOf(geometry) {
    const b = [Infinity, Infinity, -Infinity, -Infinity];
    const walk = (c) => {
        if (typeof c[0] === 'number') {
            b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
            b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
        } else c.forEach(walk);
    };
    walk(geometry.coordinates);
    return b;
}

/** Screen position (page coordinates) of a rendered feature of `layer` that is not covered by a control. */
function findOnScreen(page, sel, layer, margin = 40) {
    return page.evaluate((sel, layer, margin) => {
        const map = document.querySelector(sel).nordgeoMap;
        const rect = map.getCanvas().getBoundingClientRect();
        const canvas = map.getCanvas();
        for (const f of map.queryRenderedFeatures({layers: [layer]})) {
            const coords = f.geometry.type === 'Point' ? [f.geometry.coordinates]
                : f.geometry.type === 'LineString' ? f.geometry.coordinates
                    : f.geometry.type === 'MultiLineString' ? f.geometry.coordinates.flat() : [];
            // for lines try vertices from the middle outwards, away from the ends
            const order = coords.map((c, i) => [Math.abs(i - coords.length / 2), c]).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
            for (const c of order) {
                const p = map.project(c);
                if (p.x < margin || p.y < margin || p.x > rect.width - margin || p.y > rect.height - margin) continue;
                const x = rect.left + p.x;
                const y = rect.top + p.y;
                if (document.elementFromPoint(x, y) !== canvas) continue;
                // nothing of a more specific layer right there (a trail click must hit the trail)
                const hits = map.queryRenderedFeatures([[p.x - 8, p.y - 8], [p.x + 8, p.y + 8]],
                    {layers: ['parking-circle', 'childcare-circle', 'childcare-label', 'parking-label'].filter((l) => l !== layer && map.getLayer(l))});
                if (hits.length) continue;
                return {x, y, id: f.id, properties: f.properties};
            }
        }
        return null;
    }, sel, layer, margin);
}

async function popupText(page, timeout = 10000) {
    await page.waitForSelector('.maplibregl-popup', {timeout});
    return page.$eval('.maplibregl-popup', (el) => el.textContent);
}

function fontChecks(log, label) {
    const fonts = log.responses.filter((r) => new URL(r.url).pathname.startsWith('/fonts/'));
    t.ok(`${label}: labels load their glyphs (${fonts.length} /fonts/ requests, all 200)`,
        fonts.length > 0 && fonts.every((r) => r.status === 200),
        fonts.length ? fonts.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.url}`).join(', ') || undefined : 'no glyph request was made');
}

function errorChecks(log, label) {
    t.ok(`${label}: no console error or page error`, log.consoleErrors.length === 0, log.consoleErrors.slice(0, 5).join(' | '));
    const bad = log.responses.filter((r) => r.status >= 400);
    t.ok(`${label}: no failed request`, log.failed.length === 0 && bad.length === 0,
        log.failed.concat(bad.map((r) => `${r.status} ${r.url}`)).slice(0, 5).join(' | '));
}

async function run() {
    const browser = await launch();
    try {
        // ---------------- (a) BASE/map ----------------
        const sel = '#nordgeo-map';
        const page = await browser.newPage();
        await page.setViewport({width: 1280, height: 800});
        const log = watchPage(page);
        await t.step('(a) /map loads and the map becomes idle', async () => {
            const resp = await page.goto(`${BASE}/map`, {waitUntil: 'load'});
            if (!resp || resp.status() !== 200) throw new Error(`GET /map answered ${resp && resp.status()}`);
            await waitForWidget(page, sel);
        });

        await t.step('(a) the view fits data-municipality="Ellrich"', async () => {
            const fc = await getJSON(`${BASE}/collections/municipalities/items?name=Ellrich`);
            if (!fc.features || !fc.features.length) throw new Error('the server knows no municipality Ellrich');
            const b = bboxOf(fc.features[0].geometry);
            const v = await page.evaluate((s) => {
                const m = document.querySelector(s).nordgeoMap;
                const c = m.getCenter();
                const bb = m.getBounds();
                return {c: [c.lng, c.lat], b: [bb.getWest(), bb.getSouth(), bb.getEast(), bb.getNorth()], z: m.getZoom()};
            }, sel);
            const inside = v.c[0] > b[0] && v.c[0] < b[2] && v.c[1] > b[1] && v.c[1] < b[3];
            const covers = v.b[0] <= b[0] + 1e-6 && v.b[1] <= b[1] + 1e-6 && v.b[2] >= b[2] - 1e-6 && v.b[3] >= b[3] - 1e-6;
            if (!inside || !covers) throw new Error(`view ${JSON.stringify(v)} does not fit Ellrich ${JSON.stringify(b)}`);
            return `z ${v.z.toFixed(2)}`;
        });

        let groups = await renderedGroups(page, sel);
        for (const g of GROUPS) t.ok(`(a) layer group ${g} has rendered features`, groups[g] > 0, `${groups[g] || 0} features`);
        const muniLabels = await page.evaluate((s) => document.querySelector(s).nordgeoMap.queryRenderedFeatures({layers: ['municipalities-label']}).length, sel);
        t.ok('(a) municipality names are placed', muniLabels > 0, `${muniLabels} labels`);
        await page.screenshot({path: path.join(OUT_DIR, 'widget.png')});
        t.ok('(d) screenshot widget.png saved', fs.statSync(path.join(OUT_DIR, 'widget.png')).size > 10000);

        await t.step('(a) village view: trail names, "P" and Kita labels are placed', async () => {
            await jumpTo(page, sel, VILLAGE);
            const n = await page.evaluate((s) => {
                const m = document.querySelector(s).nordgeoMap;
                const q = (l) => m.queryRenderedFeatures({layers: [l]}).length;
                return {trailLabels: q('trails-label'), p: q('parking-symbol'), kita: q('childcare-label')};
            }, sel);
            if (!n.trailLabels || !n.p || !n.kita) throw new Error(JSON.stringify(n));
            return JSON.stringify(n);
        });

        await t.step('(a) a click on a parking opens a popup with its capacity', async () => {
            const target = await findOnScreen(page, sel, 'parking-circle');
            if (!target) throw new Error('no parking site on screen');
            await page.mouse.click(target.x, target.y);
            const text = await popupText(page);
            if (!text.includes(String(target.properties.capacity))) throw new Error(`popup "${text}" lacks capacity ${target.properties.capacity}`);
            if (!/Stellplätze/.test(text) || !/(kostenlos|gebührenpflichtig)/.test(text)) throw new Error(`popup "${text}" lacks the capacity or fee row`);
            return `${target.properties.name}: ${target.properties.capacity} Stellplätze`;
        });

        await t.step('(a) a trail popup shows length and difficulty; "Parkplätze in der Nähe" lists the nearest', async () => {
            await page.evaluate(() => document.querySelectorAll('.maplibregl-popup-close-button').forEach((b) => b.click()));
            const target = await findOnScreen(page, sel, 'trails-line');
            if (!target) throw new Error('no trail on screen');
            await page.mouse.click(target.x, target.y);
            const text = await popupText(page);
            if (!/Länge[\s\S]*km/.test(text) || !/(leicht|mittel|schwer)/.test(text)) throw new Error(`trail popup "${text}" lacks length or difficulty`);
            // the trail as GPX is one click away: the link names this trail and answers a GPX track with its name
            const gpx = await page.$eval('.maplibregl-popup a.nordgeo-gpx', (a) => a.href).catch(() => null);
            if (!gpx || !gpx.startsWith(`${BASE}/collections/trails/items/`) || !gpx.endsWith('?f=gpx')) throw new Error(`no GPX link in the trail popup (${gpx})`);
            const track = await page.evaluate(async (u) => {
                const r = await fetch(u);
                return {status: r.status, type: r.headers.get('content-type'), text: await r.text()};
            }, gpx);
            if (track.status !== 200 || track.type !== 'application/gpx+xml' || !track.text.includes('<trkpt ')
                || !track.text.includes(`<name>${target.properties.name}</name>`)) {
                throw new Error(`GPX link answered ${track.status} ${track.type}: ${track.text.slice(0, 120)}`);
            }
            await page.click('.maplibregl-popup .nordgeo-near-trail');
            await page.waitForSelector(`${sel} .nordgeo-results-list li, ${sel} .nordgeo-message`, {timeout: 15000});
            await page.waitForFunction((s) => document.querySelector(s).nordgeo.lastNear !== undefined, {timeout: 15000}, sel);
            const near = await page.evaluate((s) => document.querySelector(s).nordgeo.lastNear.map((f) => f.properties.distance_m), sel);
            const items = await page.$$eval(`${sel} .nordgeo-results-list li`, (li) => li.length);
            if (!near.length || near.length > 5 || items !== near.length) throw new Error(`${near.length} results, ${items} list items`);
            if (near.some((d, i) => i > 0 && d + 1 < near[i - 1])) throw new Error(`results not nearest first: ${near.map(Math.round).join(', ')} m`);
            return `${target.properties.name}: ${near.map((d) => Math.round(d)).join(', ')} m`;
        });

        await t.step('(a) "Parkplätze in meiner Nähe" (geolocation) lists and highlights the nearest parking sites', async () => {
            const ctx = page.browserContext();
            await ctx.overridePermissions(BASE_ORIGIN, ['geolocation']);
            await page.setGeolocation({latitude: 51.5790, longitude: 10.6650, accuracy: 20});
            await page.evaluate((s) => { document.querySelector(s).nordgeo.lastNear = undefined; }, sel);
            await page.click(`${sel} .nordgeo-near-me`);
            await page.waitForFunction((s) => document.querySelector(s).nordgeo.lastNear !== undefined, {timeout: 15000}, sel);
            const near = await page.evaluate((s) => document.querySelector(s).nordgeo.lastNear.map((f) => [f.properties.name, f.properties.distance_m]), sel);
            if (!near.length) throw new Error('no parking site found near 10.665,51.579');
            await waitIdle(page, sel);
            const ring = await page.evaluate((s) => document.querySelector(s).nordgeoMap.queryRenderedFeatures({layers: ['nordgeo-near-ring']}).length, sel);
            if (!ring) throw new Error('results are not highlighted on the map');
            return near.map(([n, d]) => `${n} ${Math.round(d)} m`).join('; ');
        });

        await t.step('(a) parcels render at z16', async () => {
            await page.evaluate(() => document.querySelectorAll('.maplibregl-popup-close-button').forEach((b) => b.click()));
            await jumpTo(page, sel, PARCELS);
            const g = await renderedGroups(page, sel);
            const outlines = await page.evaluate((s) => document.querySelector(s).nordgeoMap.queryRenderedFeatures({layers: ['parcels-outline']}).length, sel);
            if (!(g.parcels > 0) || !outlines) throw new Error(`parcels ${g.parcels}, outlines ${outlines}`);
            return `${g.parcels} features, ${outlines} outlines`;
        });

        await t.step('(a) the layer switcher hides and shows a group', async () => {
            await page.click(`${sel} input[data-group="parcels"]`);
            await waitIdle(page, sel);
            const hidden = (await renderedGroups(page, sel)).parcels || 0;
            await page.click(`${sel} input[data-group="parcels"]`);
            await waitIdle(page, sel);
            const shown = (await renderedGroups(page, sel)).parcels || 0;
            if (hidden !== 0 || shown === 0) throw new Error(`parcels hidden ${hidden}, shown ${shown}`);
        });

        fontChecks(log, '(a)');
        errorChecks(log, '(a)');
        const foreignA = foreignRequests(log.requests, [BASE_ORIGIN]);
        t.ok(`(a) all ${log.requests.length} requests went to ${BASE_ORIGIN}`, foreignA.length === 0, foreignA.slice(0, 5).join(', '));
        const tiles = log.requests.filter((u) => u.includes('/tiles/WebMercatorQuad/')).length;
        t.ok('(a) vector tiles were requested from nordgeo', tiles > 0, `${tiles} tile requests`);
        await page.close();

        // ---------------- (b) another origin ----------------
        const embedded = await servePage(embedHtml(BASE, 'data-municipality="Heringen/Helme" data-controls="expanded" style="height:640px"',
            {title: 'Gemeinde Heringen/Helme'}));
        try {
            const selB = '[data-nordgeo-map]';
            const pageB = await browser.newPage();
            await pageB.setViewport({width: 1024, height: 700});
            const logB = watchPage(pageB);
            await t.step(`(b) a page on ${originOf(embedded.url)} embedding ${BASE}/map/widget.js loads the map`, async () => {
                await pageB.goto(embedded.url, {waitUntil: 'load'});
                await waitForWidget(pageB, selB);
            });
            const groupsB = await renderedGroups(pageB, selB).catch(() => ({}));
            for (const g of GROUPS) t.ok(`(b) layer group ${g} has rendered features`, groupsB[g] > 0, `${groupsB[g] || 0} features`);
            fontChecks(logB, '(b)');
            errorChecks(logB, '(b)');
            const foreignB = foreignRequests(logB.requests, [BASE_ORIGIN, originOf(embedded.url)]);
            t.ok(`(b) all ${logB.requests.length} requests went to nordgeo or the embedding page`, foreignB.length === 0, foreignB.slice(0, 5).join(', '));
            await pageB.close();
        } finally {
            await embedded.close();
        }

        // ---------------- (c) phone ----------------
        const pageC = await browser.newPage();
        await pageC.setViewport({width: 375, height: 667, isMobile: true, hasTouch: true, deviceScaleFactor: 2});
        const logC = watchPage(pageC);
        await t.step('(c) /map loads on a 375x667 touch screen', async () => {
            await pageC.goto(`${BASE}/map`, {waitUntil: 'load'});
            await waitForWidget(pageC, sel);
        });
        const collapsed = await pageC.$eval(`${sel} .nordgeo-panel-toggle`, (b) => b.getAttribute('aria-expanded')).catch(() => null);
        t.ok('(c) the panel starts collapsed on a phone', collapsed === 'false', `aria-expanded=${collapsed}`);
        const groupsC = await renderedGroups(pageC, sel).catch(() => ({}));
        t.ok('(c) trails and municipalities render', groupsC.trails > 0 && groupsC.municipalities > 0, JSON.stringify(groupsC));
        await t.step('(c) a tap on a parking opens a popup that fits the screen', async () => {
            await jumpTo(pageC, sel, VILLAGE);
            const target = await findOnScreen(pageC, sel, 'parking-circle', 30);
            if (!target) throw new Error('no parking site on screen');
            await pageC.touchscreen.tap(target.x, target.y);
            const text = await popupText(pageC);
            if (!text.includes(String(target.properties.capacity))) throw new Error(`popup "${text}" lacks capacity`);
            await waitIdle(pageC, sel);
            const r = await pageC.$eval('.maplibregl-popup', (el) => { const b = el.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; });
            if (r[0] < 0 || r[2] > 375 || r[1] < 0 || r[3] > 667) throw new Error(`popup at ${r.map(Math.round).join(',')} leaves the 375x667 screen`);
            return `popup ${Math.round(r[2] - r[0])}x${Math.round(r[3] - r[1])} px`;
        });
        await pageC.screenshot({path: path.join(OUT_DIR, 'widget-phone.png')});
        t.ok('(d) screenshot widget-phone.png saved', fs.statSync(path.join(OUT_DIR, 'widget-phone.png')).size > 10000);
        errorChecks(logC, '(c)');
        const foreignC = foreignRequests(logC.requests, [BASE_ORIGIN]);
        t.ok('(c) all requests went to nordgeo', foreignC.length === 0, foreignC.slice(0, 5).join(', '));
        await pageC.close();

        // ---------------- (e) the HTML collection page's map preview ----------------
        const pageE = await browser.newPage();
        await pageE.setViewport({width: 1024, height: 768});
        const logE = watchPage(pageE);
        await t.step('(e) /collections/parking?f=html previews the layer on a map', async () => {
            await pageE.goto(`${BASE}/collections/parking?f=html`, {waitUntil: 'load'});
            await pageE.waitForFunction(() => window.nordgeoMap && window.nordgeoMap.loaded(), {timeout: 60000, polling: 100});
            const n = await pageE.evaluate(() => new Promise((resolve) => {
                const m = window.nordgeoMap;
                const count = () => resolve(m.querySourceFeatures('d', {sourceLayer: 'parking'}).length);
                if (m.areTilesLoaded() && !m.isMoving()) count(); else m.once('idle', count);
            }));
            if (!(n > 0)) throw new Error('no parking feature in the preview');
            return `${n} features`;
        });
        errorChecks(logE, '(e)');
        const foreignE = foreignRequests(logE.requests, [BASE_ORIGIN]);
        t.ok('(e) all requests went to nordgeo', foreignE.length === 0, foreignE.slice(0, 5).join(', '));
        await pageE.close();
    } finally {
        await browser.close();
    }
}

const timer = setTimeout(() => {
    console.log('FAIL - the browser test did not finish within 240 s');
    process.exit(1);
}, 240000);
timer.unref();
try {
    await run();
} catch (e) {
    t.ok('browser test ran to the end', false, e && e.stack ? e.stack : String(e));
}
process.exit(t.finish());
