// Browser test of the maintainers' page /manage against a running nordgeo server:
// a Werther maintainer signs in, checks a GeoPackage, reads the report, confirms the
// import, sees it in the municipality's history and undoes it — by keyboard and mouse
// as a clerk would — with no console error, no request to another host, and axe-core
// finding no WCAG 2.1 A/AA violation on any screen.
//
//   node tests/browser/manage.test.mjs BASE_URL TOKEN GPKG OUT_DIR
//
// Prints one line per check and "N passed, N failed"; exits 1 on any failure.
import fs from 'node:fs';
import path from 'node:path';
import {ROOT, checker, foreignRequests, launch, originOf, watchPage} from './lib.mjs';

const [BASE_ARG, TOKEN, GPKG, OUT_DIR] = process.argv.slice(2);
if (!BASE_ARG || !TOKEN || !GPKG || !OUT_DIR) {
    console.error('usage: node tests/browser/manage.test.mjs BASE_URL TOKEN GPKG OUT_DIR');
    process.exit(2);
}
const BASE = BASE_ARG.replace(/\/+$/, '');
fs.mkdirSync(OUT_DIR, {recursive: true});
const AXE = path.join(ROOT, 'web', 'node_modules', 'axe-core', 'axe.min.js');
const t = checker();

async function axe(page, screen) {
    await page.addScriptTag({path: AXE});
    const r = await page.evaluate(async () => {
        const res = await window.axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return res.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`);
    });
    t.ok(`axe on "${screen}": no WCAG 2.1 A/AA violation`, r.length === 0, r.join('\n'));
}

async function text(page, sel) {
    return page.$eval(sel, (e) => e.textContent.trim());
}

const browser = await launch();
try {
    const page = await browser.newPage();
    await page.setViewport({width: 1100, height: 900});
    const log = watchPage(page);
    await page.goto(`${BASE}/manage`, {waitUntil: 'networkidle0'});
    t.ok('the page is German', (await page.$eval('html', (e) => e.lang)) === 'de');
    await axe(page, 'Anmelden');

    // Sign in by keyboard: focus the field, type, press Enter.
    await page.focus('#token');
    await page.keyboard.type(TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#upload:not([hidden])', {timeout: 15000});
    t.ok('signed in as the Werther maintainer', (await text(page, '#who')).includes('Werther'));
    await page.waitForSelector('#history:not([hidden])', {timeout: 15000});
    await axe(page, 'Datei prüfen');

    // Check the file.
    await page.select('#collection', 'parcels');
    const input = await page.$('#file');
    await input.uploadFile(GPKG);
    await page.click('#upload-form button[type=submit]');
    await page.waitForSelector('#report:not([hidden])', {timeout: 30000});
    t.ok('the report shows one changed feature', (await text(page, '#n-changed')) === '1',
        `changed: ${await text(page, '#n-changed')}, verdict: ${await text(page, '#report-verdict')}`);
    t.ok('and nothing added or removed',
        (await text(page, '#n-added')) === '0' && (await text(page, '#n-removed')) === '0');
    t.ok('the confirm button is offered', await page.$eval('#confirm', (b) => !b.hidden));
    t.ok('focus moved to the report', await page.evaluate(() => document.activeElement.id === 'report-h'));
    await axe(page, 'Prüfbericht');

    // Confirm.
    await page.click('#confirm');
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Gespeichert'), {timeout: 30000});
    const saved = await text(page, '#status');
    const change = Number((saved.match(/Änderung Nr\. (\d+)/) || [])[1]);
    t.ok('the import is saved with a change number', change > 0, saved);
    await page.waitForFunction((c) => [...document.querySelectorAll('#changes tr td:first-child')].some((td) => td.textContent === String(c)),
        {timeout: 15000}, change);
    t.ok('the change is in the history', true);
    await axe(page, 'Änderungen');
    await page.screenshot({path: path.join(OUT_DIR, 'manage.png'), fullPage: true});

    // Undo it with the keyboard: focus its button, press Enter.
    await page.focus(`button[aria-label="Änderung Nr. ${change} rückgängig machen"]`);
    await page.keyboard.press('Enter');
    await page.waitForFunction((c) => document.getElementById('status').textContent.includes(`Änderung Nr. ${c} ist rückgängig gemacht`),
        {timeout: 15000}, change);
    t.ok('the change is undone', true);
    await axe(page, 'nach dem Rückgängigmachen');

    t.ok('no console errors', log.consoleErrors.length === 0, log.consoleErrors.join('\n'));
    t.ok('no failed requests', log.failed.length === 0, log.failed.join('\n'));
    const foreign = foreignRequests(log.requests, [originOf(BASE)]);
    t.ok('no request to another host', foreign.length === 0, foreign.join('\n'));
} catch (e) {
    t.ok(`the flow ran to the end (${e.message})`, false);
} finally {
    await browser.close();
}
process.exit(t.finish());
