// Shared helpers of the browser tests: Debian's Chromium driven by puppeteer-core
// (installed by `npm ci` in web/), a throw-away profile, a page server on another
// loopback origin, and waiting for the widget's map.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {createRequire} from 'node:module';
import {fileURLToPath} from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(path.join(ROOT, 'web', 'package.json'));

export const CHROMIUM = process.env.NORDGEO_CHROMIUM || '/usr/bin/chromium';

export function loadPuppeteer() {
    try {
        return require('puppeteer-core');
    } catch (e) {
        throw new Error(`puppeteer-core is missing (${e.message}): run "npm ci" in web/ (scripts/setup.sh does)`);
    }
}

export async function launch() {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does)`);
    const puppeteer = loadPuppeteer();
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nordgeo-chromium-'));
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        userDataDir,
        args: [
            '--headless', '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
            '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync',
            '--disable-dev-shm-usage'
        ]
    });
    const close = browser.close.bind(browser);
    browser.close = async () => {
        try {
            await close();
        } finally {
            fs.rmSync(userDataDir, {recursive: true, force: true});
        }
    };
    return browser;
}

/** An HTTP server on 127.0.0.1 (a free port, so another origin than nordgeo) serving one HTML page at `/`. */
export function servePage(html) {
    return new Promise((resolve, reject) => {
        const server = http.createServer((req, res) => {
            if (req.url === '/' || req.url.startsWith('/?')) {
                res.writeHead(200, {'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store'});
                res.end(html);
            } else {
                res.writeHead(404, {'Content-Type': 'text/plain'});
                res.end('not found');
            }
        });
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const {port} = server.address();
            resolve({url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => {
                server.close(() => r());
                server.closeAllConnections(); // Chromium keeps its connection alive
            })});
        });
    });
}

/** An embedding page as a CMS would write it: one div, one script from nordgeo. */
export function embedHtml(base, divAttributes, {title = 'Gemeindeportal', bodyStyle = 'margin:0'} = {}) {
    return `<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="icon" href="data:,"></head>
<body style="${bodyStyle}">
<div data-nordgeo-map ${divAttributes}></div>
<script src="${base}/map/widget.js"></script>
</body></html>`;
}

/** Records what a test must check on every page: requests, failures, console errors. */
export function watchPage(page) {
    const log = {requests: [], responses: [], consoleErrors: [], failed: [], aborted: []};
    page.on('request', (r) => log.requests.push(r.url()));
    page.on('response', (r) => log.responses.push({url: r.url(), status: r.status()}));
    page.on('requestfailed', (r) => {
        const why = r.failure() ? r.failure().errorText : 'failed';
        // MapLibre cancels the tile requests a jump or zoom made useless; Chromium reports
        // those as ERR_ABORTED. A server fault shows as another error (reset, empty
        // response) or as a bad status, which the tests check separately.
        (why === 'net::ERR_ABORTED' ? log.aborted : log.failed).push(`${r.url()}: ${why}`);
    });
    page.on('console', (m) => {
        if (m.type() === 'error') log.consoleErrors.push(`console.error: ${m.text()}${m.location() && m.location().url ? ` (${m.location().url})` : ''}`);
    });
    page.on('pageerror', (e) => log.consoleErrors.push(`pageerror: ${e.message}`));
    return log;
}

/** Waits until the widget in `selector` has its map and the map is idle (all tiles, glyphs and placement done). */
export async function waitForWidget(page, selector, timeout = 60000) {
    await page.waitForFunction((sel) => {
        const el = document.querySelector(sel);
        return el && el.nordgeoMap && el.nordgeoMap.loaded();
    }, {timeout, polling: 100}, selector);
    await waitIdle(page, selector, timeout);
}

/** Waits for the next `idle` of the map (or returns at once when it is idle already). */
export async function waitIdle(page, selector, timeout = 60000) {
    await page.evaluate((sel, ms) => new Promise((resolve, reject) => {
        const map = document.querySelector(sel).nordgeoMap;
        const t = setTimeout(() => reject(new Error(`map not idle after ${ms} ms`)), ms);
        const done = () => { clearTimeout(t); resolve(); };
        if (map.loaded() && map.areTilesLoaded() && !map.isMoving()) {
            // a repaint settles placement; idle follows immediately when nothing is pending
            map.once('idle', done);
            map.triggerRepaint();
        } else {
            map.once('idle', done);
        }
    }), selector, timeout);
}

/** Moves the map without animation and waits for idle. */
export async function jumpTo(page, selector, camera) {
    await page.evaluate((sel, cam) => new Promise((resolve) => {
        const map = document.querySelector(sel).nordgeoMap;
        map.once('idle', resolve);
        map.jumpTo(cam);
    }), selector, camera);
}

/** Counts of rendered features per layer group (style layers carry metadata "nordgeo:group"). */
export function renderedGroups(page, selector) {
    return page.evaluate((sel) => {
        const map = document.querySelector(sel).nordgeoMap;
        const groups = {};
        for (const l of map.getStyle().layers) {
            const g = l.metadata && l.metadata['nordgeo:group'];
            if (g) (groups[g] = groups[g] || []).push(l.id);
        }
        const out = {};
        for (const [g, layers] of Object.entries(groups)) {
            out[g] = map.queryRenderedFeatures({layers}).length;
        }
        return out;
    }, selector);
}

/** A small check runner: one line per check, a closing "N passed, N failed" line. */
export function checker() {
    let passed = 0;
    let failed = 0;
    const failures = [];
    return {
        ok(name, cond, detail) {
            if (cond) {
                passed++;
                console.log(`ok - ${name}${detail ? ` (${detail})` : ''}`);
            } else {
                failed++;
                failures.push(name);
                console.log(`FAIL - ${name}${detail ? `: ${detail}` : ''}`);
            }
            return cond;
        },
        async step(name, fn) {
            try {
                const detail = await fn();
                this.ok(name, true, typeof detail === 'string' ? detail : undefined);
            } catch (e) {
                this.ok(name, false, e && e.message ? e.message : String(e));
            }
        },
        finish() {
            console.log(`${passed} passed, ${failed} failed`);
            if (failed) console.log(`failed checks: ${failures.join('; ')}`);
            return failed ? 1 : 0;
        }
    };
}

export function originOf(url) {
    try {
        return new URL(url).origin;
    } catch {
        return null;
    }
}

/** Requests that went to any origin other than the allowed ones (data: and blob: URLs are no host and pass). */
export function foreignRequests(urls, allowedOrigins) {
    return urls.filter((u) => !/^(data|blob):/.test(u) && !allowedOrigins.includes(originOf(u)));
}
