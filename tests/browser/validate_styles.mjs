// Validates every styles/*.json with @maplibre/maplibre-gl-style-spec (installed by
// `npm ci` in web/). Usage: node tests/browser/validate_styles.mjs [STYLE.json ...]
// Exits 1 with one line per error; prints one "ok" line per valid style.
import fs from 'node:fs';
import path from 'node:path';
import {createRequire} from 'node:module';
import {fileURLToPath} from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(path.join(root, 'web', 'package.json'));
let spec;
try {
    spec = require('@maplibre/maplibre-gl-style-spec');
} catch (e) {
    console.error(`cannot load @maplibre/maplibre-gl-style-spec (${e.message}): run "npm ci" in web/ (scripts/setup.sh does)`);
    process.exit(2);
}

const stylesDir = path.join(root, 'styles');
const files = process.argv.length > 2
    ? process.argv.slice(2)
    : fs.readdirSync(stylesDir).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(stylesDir, f));
if (files.length === 0) {
    console.error(`no style found in ${stylesDir}`);
    process.exit(1);
}

// Style files name the server nordgeo://; a style as served (NORDGEO_BASE set) names it.
const PREFIX = process.env.NORDGEO_BASE ? `${process.env.NORDGEO_BASE}/` : 'nordgeo://';

// Fonts nordgeo serves (/fonts/{fontstack}/{range}.pbf); any other text-font would 404.
const FONT_STACKS = new Set(['DejaVu Sans Book', 'DejaVu Sans Bold']);

function fontsUsed(value, out) {
    // text-font is an array of names or an expression; collect every string literal
    if (typeof value === 'string') out.push(value);
    else if (Array.isArray(value)) {
        if (typeof value[0] === 'string' && ['literal', 'step', 'match', 'case', 'interpolate', 'coalesce'].includes(value[0])) value.slice(1).forEach((v) => fontsUsed(v, out));
        else value.forEach((v) => fontsUsed(v, out));
    }
    return out;
}

let failed = 0;
for (const file of files) {
    const rel = path.relative(root, file);
    let text;
    try {
        text = fs.readFileSync(file, 'utf8');
    } catch (e) {
        console.error(`${rel}: cannot read: ${e.message}`);
        failed++;
        continue;
    }
    let style;
    try {
        style = JSON.parse(text);
    } catch (e) {
        console.error(`${rel}: not JSON: ${e.message}`);
        failed++;
        continue;
    }
    // the package's style validator; its messages name the key path (layers[3].paint.line-color: ...)
    const errors = spec.validateStyleMin(style).map((e) => e.message);
    {
        for (const layer of Array.isArray(style.layers) ? style.layers : []) {
            const fonts = layer.layout && layer.layout['text-font'];
            if (layer.type === 'symbol' && layer.layout && layer.layout['text-field'] && !fonts) errors.push(`layers.${layer.id}: symbol layer with text but without text-font (the default font stack is not served by nordgeo)`);
            for (const f of fonts ? fontsUsed(fonts, []) : []) {
                if (!FONT_STACKS.has(f) && f !== 'literal') errors.push(`layers.${layer.id}: text-font "${f}" is not served (use ${[...FONT_STACKS].join(' or ')})`);
            }
            const fmt = JSON.stringify((layer.layout || {})['text-field'] || '');
            for (const m of fmt.matchAll(/"text-font":\["literal",\[([^\]]*)\]\]/g)) {
                for (const f of JSON.parse(`[${m[1]}]`)) if (!FONT_STACKS.has(f)) errors.push(`layers.${layer.id}: format text-font "${f}" is not served`);
            }
        }
        for (const [id, src] of Object.entries(style.sources || {})) {
            for (const u of [src.url, typeof src.data === "string" ? src.data : null, ...(src.tiles || [])].filter(Boolean)) {
                if (!u.startsWith(PREFIX)) errors.push(`sources.${id}: "${u}" does not start with ${PREFIX} (the server rewrites nordgeo:// to its public URL)`);
            }
        }
        if (style.glyphs && !style.glyphs.startsWith(PREFIX)) errors.push(`glyphs: "${style.glyphs}" does not start with ${PREFIX}`);
    }
    if (errors.length) {
        failed++;
        for (const e of errors) console.error(`${rel}: ${e}`);
    } else {
        console.log(`ok ${rel} (${style.layers.length} layers, style spec ${require('@maplibre/maplibre-gl-style-spec/package.json').version})`);
    }
}
process.exit(failed ? 1 : 0);
