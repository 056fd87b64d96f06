/*
 * nordgeo map widget: one <script> and one <div> embed the citizens' portal map.
 *
 *   <div data-nordgeo-map data-municipality="Ellrich"></div>
 *   <script src="https://geodaten.example.de/map/widget.js"></script>
 *
 * Everything (MapLibre GL JS, style, tiles, fonts, data) is loaded from the nordgeo
 * server the script itself came from; no third-party host is contacted.
 * Options are data- attributes of the element, see README.md next to this file.
 * Plain ES2019+ (plus dynamic import()), no build step.
 */
(function () {
    'use strict';

    const SCRIPT = document.currentScript ||
        Array.prototype.slice.call(document.getElementsByTagName('script')).reverse()
            .find((s) => /\/map\/widget\.js(?:[?#].*)?$/.test(s.src));
    if (!SCRIPT || !SCRIPT.src) {
        console.error('nordgeo widget: cannot find its own <script src>, so it does not know the server URL');
        return;
    }
    // https://host/prefix/map/widget.js -> https://host/prefix
    const BASE = SCRIPT.src.replace(/[?#].*$/, '').replace(/\/map\/widget\.js$/, '');
    const SELECTOR = '[data-nordgeo-map], #nordgeo-map';

    const GROUPS = [
        {id: 'trails', label: 'Wanderwege'},
        {id: 'parking', label: 'Parkplätze'},
        {id: 'childcare', label: 'Kitas'},
        {id: 'parcels', label: 'Flurstücke', hint: 'ab Zoomstufe 15'},
        {id: 'municipalities', label: 'Gemeindegrenzen'},
        {id: 'basemap', label: 'Hintergrundkarte'}
    ];
    // The first view of a municipality shows its Kitas (from z9) and parking (from z10).
    const MUNICIPALITY_MIN_ZOOM = 10;
    const DIFFICULTY = {easy: 'leicht', medium: 'mittel', hard: 'schwer'};
    const SURFACE = {
        asphalt: 'Asphalt', paved: 'befestigt', compacted: 'verdichteter Weg', fine_gravel: 'Feinschotter',
        gravel: 'Schotter', ground: 'naturbelassen', dirt: 'Erdweg', grass: 'Wiesenweg', unpaved: 'unbefestigt'
    };
    // layers a click can hit, most specific first (points before lines before areas)
    const CLICKABLE = [
        'parking-circle', 'parking-symbol', 'childcare-circle', 'childcare-symbol', 'childcare-label',
        'parking-label', 'trails-line', 'trails-label', 'parcels-fill'
    ];
    const NEAR_LIMIT = 5;
    const NEAR_MAX_DISTANCE = 20000; // metres
    const LOCALE = {
        'AttributionControl.ToggleAttribution': 'Quellenangaben ein-/ausblenden',
        'AttributionControl.MapFeedback': 'Rückmeldung zur Karte',
        'FullscreenControl.Enter': 'Vollbild',
        'FullscreenControl.Exit': 'Vollbild beenden',
        'GeolocateControl.FindMyLocation': 'Meinen Standort finden',
        'GeolocateControl.LocationNotAvailable': 'Standort nicht verfügbar',
        'LogoControl.Title': 'MapLibre-Logo',
        'Map.Title': 'Karte',
        'Marker.Title': 'Kartenmarkierung',
        'NavigationControl.ResetBearing': 'Karte nach Norden ausrichten',
        'NavigationControl.ZoomIn': 'Vergrößern',
        'NavigationControl.ZoomOut': 'Verkleinern',
        'Popup.Close': 'Schließen',
        'ScaleControl.Feet': 'ft',
        'ScaleControl.Meters': 'm',
        'ScaleControl.Kilometers': 'km',
        'ScaleControl.Miles': 'mi',
        'ScaleControl.NauticalMiles': 'sm',
        'CooperativeGesturesHandler.WindowsHelpText': 'Zum Zoomen Strg-Taste gedrückt halten und scrollen',
        'CooperativeGesturesHandler.MacHelpText': 'Zum Zoomen ⌘-Taste gedrückt halten und scrollen',
        'CooperativeGesturesHandler.MobileHelpText': 'Karte mit zwei Fingern verschieben'
    };
    const num = new Intl.NumberFormat('de-DE', {maximumFractionDigits: 1});
    let uid = 0;

    // ---------- loading ----------

    function addStylesheet(href) {
        const existing = Array.prototype.find.call(document.querySelectorAll('link[rel="stylesheet"]'), (l) => l.href === href);
        if (existing) return Promise.resolve();
        return new Promise((resolve) => {
            const link = document.createElement('link');
            link.rel = 'stylesheet';
            link.href = href;
            link.onload = () => resolve();
            link.onerror = () => { console.warn(`nordgeo widget: stylesheet ${href} did not load`); resolve(); };
            document.head.appendChild(link);
        });
    }

    let libPromise = null;
    function loadMaplibre() {
        if (window.maplibregl && window.maplibregl.Map) return Promise.resolve(window.maplibregl);
        if (!libPromise) {
            // MapLibre GL JS 6 ships as ES modules only (the worker is a module beside it)
            libPromise = import(`${BASE}/assets/maplibre-gl/maplibre-gl.mjs`);
        }
        return libPromise;
    }

    async function getJSON(url) {
        const r = await fetch(url, {headers: {Accept: 'application/json, application/geo+json'}});
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
        return r.json();
    }

    // ---------- geometry helpers ----------

    function eachCoord(coords, fn) {
        if (typeof coords[0] === 'number') fn(coords);
        else for (const c of coords) eachCoord(c, fn);
    }

    function geometryBounds(geometry) {
        let b = null;
        eachCoord(geometry.coordinates, (c) => {
            if (!b) b = [c[0], c[1], c[0], c[1]];
            else b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])];
        });
        return b;
    }

    function firstVertex(geometry) {
        let first = null;
        eachCoord(geometry.coordinates, (c) => { if (!first) first = [c[0], c[1]]; });
        return first;
    }

    function distanceMetres(a, b) {
        const r = Math.PI / 180;
        const dLat = (b[1] - a[1]) * r;
        const dLon = (b[0] - a[0]) * r;
        const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * r) * Math.cos(b[1] * r) * Math.sin(dLon / 2) ** 2;
        return 2 * 6371008.8 * Math.asin(Math.sqrt(h));
    }

    function formatDistance(m) {
        return m < 1000 ? `${Math.round(m / 10) * 10} m` : `${num.format(m / 1000)} km`;
    }

    function freePlacesText(n) {
        if (n === undefined || n === null || n === '') return 'unbekannt';
        n = Number(n);
        if (n <= 0) return 'keine freien Plätze';
        if (n === 1) return '1 freier Platz';
        return `${n} freie Plätze`;
    }

    function isTrue(v) {
        return v === true || v === 'true' || v === 1 || v === '1';
    }

    function isTouch() {
        return typeof window.matchMedia === 'function' && window.matchMedia('(pointer: coarse)').matches;
    }

    // ---------- DOM helpers ----------

    function h(tag, attrs, children) {
        const el = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === undefined || v === null || v === false) continue;
            if (k === 'class') el.className = v;
            else if (k === 'text') el.textContent = v;
            else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
            else el.setAttribute(k, v === true ? '' : String(v));
        }
        for (const c of [].concat(children || [])) {
            if (c === null || c === undefined || c === false) continue;
            el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
        }
        return el;
    }

    function propertyTable(rows) {
        return h('dl', {class: 'nordgeo-props'}, rows.filter((r) => r && r[1] !== undefined && r[1] !== null && r[1] !== '')
            .reduce((acc, [k, v]) => acc.concat([h('dt', {text: k}), h('dd', {text: String(v)})]), []));
    }

    // ---------- options ----------

    function readOptions(el) {
        const d = el.dataset;
        const opts = {
            municipality: (d.municipality || '').trim(),
            style: (d.style || 'portal').trim(),
            layers: d.layers ? d.layers.split(',').map((s) => s.trim()).filter(Boolean) : null,
            height: d.height || '',
            controls: (d.controls || 'auto').trim(),
            // On touch screens one finger scrolls the page and two move the map, unless the
            // page says otherwise; with a mouse the wheel zooms unless the page asks.
            cooperativeGestures: d.cooperativeGestures === undefined ? isTouch() : isTrue(d.cooperativeGestures),
            label: d.label || 'Karte mit Wanderwegen, Parkplätzen und Kitas',
            center: null,
            zoom: null
        };
        if (d.center) {
            const c = d.center.split(',').map(Number);
            if (c.length === 2 && c.every(Number.isFinite)) opts.center = c;
        }
        if (d.zoom && Number.isFinite(Number(d.zoom))) opts.zoom = Number(d.zoom);
        return opts;
    }

    // ---------- the widget ----------

    class Widget {
        constructor(el, lib, opts) {
            this.el = el;
            this.lib = lib;
            this.opts = opts;
            this.id = `nordgeo-${++uid}`;
            this.popup = null;
        }

        async start() {
            const {el, opts, lib} = this;
            el.classList.add('nordgeo-widget');
            if (opts.height) el.style.height = opts.height;
            el.setAttribute('role', 'region');
            el.setAttribute('aria-label', opts.label);
            this.mapDiv = h('div', {class: 'nordgeo-canvas'});
            el.appendChild(this.mapDiv);
            // on a narrow screen the search results open in a sheet at the bottom instead of the panel
            this.sheet = h('section', {class: 'nordgeo-sheet', 'aria-label': 'Suchergebnisse', hidden: true}, [
                h('button', {type: 'button', class: 'nordgeo-sheet-close', 'aria-label': 'Suchergebnisse schließen',
                    onclick: () => this.clearNear()}, '×')
            ]);
            el.appendChild(this.sheet);

            const view = await this.initialView();
            const map = this.map = new lib.Map({
                container: this.mapDiv,
                style: `${BASE}/styles/${encodeURIComponent(opts.style)}`,
                bounds: view.bounds,
                center: view.center,
                zoom: view.zoom,
                fitBoundsOptions: {padding: this.padding()},
                minZoom: 7,
                maxZoom: 19,
                dragRotate: false,
                pitchWithRotate: false,
                touchPitch: false,
                cooperativeGestures: opts.cooperativeGestures,
                attributionControl: {compact: true},
                locale: LOCALE
            });
            map.touchZoomRotate.disableRotation();
            const fitPanel = () => this.el.style.setProperty('--nordgeo-panel-max', `${Math.max(120, this.el.clientHeight - 70)}px`);
            fitPanel();
            map.on('resize', fitPanel);
            el.nordgeoMap = map;
            el.nordgeo = this;

            map.addControl(new lib.NavigationControl({showCompass: false}), 'top-right');
            map.addControl(new lib.ScaleControl({unit: 'metric'}), 'bottom-left');
            map.addControl(this.panelControl(), 'top-left');

            if (view.bounds && !this.panelBody.hidden) {
                // the expanded panel covers the left edge: fit the area into what stays visible
                const pad = this.padding();
                map.fitBounds(view.bounds, {padding: {top: pad, bottom: pad, right: pad, left: pad + this.panelBody.parentNode.getBoundingClientRect().width}, duration: 0});
            }
            await new Promise((resolve) => map.once('load', resolve));
            if (view.municipality && map.getZoom() < MUNICIPALITY_MIN_ZOOM) {
                map.jumpTo({center: view.centre, zoom: MUNICIPALITY_MIN_ZOOM});
            }
            this.dropAbsentGroups();
            this.addNearLayers();
            this.applyInitialLayers();
            this.fillLegend();
            this.bindClicks();
            el.dispatchEvent(new CustomEvent('nordgeo:ready', {detail: {map}, bubbles: true}));
            return this;
        }

        padding() {
            const w = this.el.clientWidth;
            return w < 500 ? 16 : 40;
        }

        async initialView() {
            const {opts} = this;
            if (opts.center) return {center: opts.center, zoom: opts.zoom === null ? 14 : opts.zoom};
            if (opts.municipality) {
                try {
                    const fc = await getJSON(`${BASE}/collections/municipalities/items?name=${encodeURIComponent(opts.municipality)}&limit=1`);
                    const f = fc.features && fc.features[0];
                    if (f && f.geometry) {
                        const b = f.bbox && f.bbox.length === 4 ? f.bbox : geometryBounds(f.geometry);
                        return {bounds: [[b[0], b[1]], [b[2], b[3]]], municipality: true,
                            centre: [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]};
                    }
                    console.warn(`nordgeo widget: no municipality named "${opts.municipality}"; showing the whole area`);
                } catch (e) {
                    console.warn(`nordgeo widget: municipality lookup failed (${e.message}); showing the whole area`);
                }
            }
            const tj = await getJSON(`${BASE}/tiles/WebMercatorQuad/tilejson.json`);
            if (tj.bounds) return {bounds: [[tj.bounds[0], tj.bounds[1]], [tj.bounds[2], tj.bounds[3]]]};
            return {center: tj.center ? tj.center.slice(0, 2) : [0, 0], zoom: tj.center ? tj.center[2] : 2};
        }

        // --- panel: layer switcher, legend, near-me search, results ---

        panelControl() {
            const self = this;
            const bodyId = `${this.id}-panel`;
            const collapsed = this.opts.controls === 'collapsed' ||
                (this.opts.controls !== 'expanded' && this.el.clientWidth < 640);
            const toggle = h('button', {
                type: 'button', class: 'nordgeo-panel-toggle', 'aria-expanded': String(!collapsed), 'aria-controls': bodyId,
                onclick: () => self.setPanelOpen(toggle.getAttribute('aria-expanded') !== 'true')
            }, [h('span', {class: 'nordgeo-icon-layers', 'aria-hidden': 'true'}), h('span', {class: 'nordgeo-panel-toggle-text', text: 'Karteninhalt'})]);

            const list = h('ul', {class: 'nordgeo-layers'});
            this.checkboxes = {};
            for (const g of GROUPS) {
                const cbId = `${this.id}-layer-${g.id}`;
                const cb = h('input', {type: 'checkbox', id: cbId, checked: true, 'data-group': g.id,
                    onchange: () => self.setGroupVisible(g.id, cb.checked)});
                this.checkboxes[g.id] = cb;
                const item = h('li', {class: `nordgeo-layer nordgeo-layer-${g.id}`}, [
                    cb,
                    h('label', {for: cbId}, [
                        h('span', {class: `nordgeo-swatch nordgeo-swatch-${g.id}`, 'aria-hidden': 'true'}),
                        h('span', {text: g.label}),
                        g.hint ? h('span', {class: 'nordgeo-hint', text: ` (${g.hint})`}) : null
                    ])
                ]);
                if (g.id === 'trails') {
                    this.trailLegend = h('ul', {class: 'nordgeo-legend', 'aria-label': 'Schwierigkeit der Wanderwege'});
                    item.appendChild(this.trailLegend);
                }
                list.appendChild(item);
            }
            this.nearMeButton = h('button', {type: 'button', class: 'nordgeo-button nordgeo-near-me', onclick: () => self.nearMe()},
                [h('span', {class: 'nordgeo-icon-locate', 'aria-hidden': 'true'}), 'Parkplätze in meiner Nähe']);
            this.results = h('div', {class: 'nordgeo-results', 'aria-live': 'polite'});
            this.panelBody = h('div', {class: 'nordgeo-panel-body', id: bodyId, hidden: collapsed}, [
                h('fieldset', {class: 'nordgeo-fieldset'}, [h('legend', {text: 'Ebenen'}), list]),
                this.nearMeButton,
                this.results
            ]);
            this.panelToggle = toggle;
            const container = h('div', {class: 'maplibregl-ctrl nordgeo-panel'}, [toggle, this.panelBody]);
            return {
                onAdd: () => container,
                onRemove: () => container.remove()
            };
        }

        setPanelOpen(open) {
            this.panelToggle.setAttribute('aria-expanded', String(open));
            this.panelBody.hidden = !open;
        }

        isNarrow() {
            return this.el.clientWidth < 640;
        }

        groupLayers(group) {
            return this.map.getStyle().layers
                .filter((l) => l.metadata && l.metadata['nordgeo:group'] === group)
                .map((l) => l.id);
        }

        // The style holds only what this caller may read: a group without layers (a
        // restricted collection) leaves the list.
        dropAbsentGroups() {
            for (const g of GROUPS) {
                if (this.groupLayers(g.id).length > 0) continue;
                const cb = this.checkboxes[g.id];
                if (cb) cb.closest('li').remove();
                delete this.checkboxes[g.id];
            }
        }

        setGroupVisible(group, visible) {
            for (const id of this.groupLayers(group)) this.map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
            if (this.checkboxes[group]) this.checkboxes[group].checked = visible;
            if (group === 'parking' && this.map.getLayer('nordgeo-near-ring')) {
                for (const id of ['nordgeo-near-ring', 'nordgeo-near-rank']) this.map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
            }
        }

        applyInitialLayers() {
            if (!this.opts.layers) return;
            for (const g of GROUPS) {
                // The basemap stays unless the page names it among the layers to leave out.
                if (g.id === 'basemap' || !this.checkboxes[g.id]) continue;
                this.setGroupVisible(g.id, this.opts.layers.includes(g.id));
            }
        }

        fillLegend() {
            // colours come from the style, so the legend follows it
            let colors = {easy: '#2f7fd0', medium: '#d8342a', hard: '#2b2b2b'};
            const expr = this.map.getLayer('trails-line') && this.map.getPaintProperty('trails-line', 'line-color');
            if (Array.isArray(expr) && expr[0] === 'match') {
                for (let i = 2; i + 1 < expr.length; i += 2) if (typeof expr[i] === 'string') colors[expr[i]] = expr[i + 1];
            }
            for (const key of ['easy', 'medium', 'hard']) {
                this.trailLegend.appendChild(h('li', {}, [
                    h('span', {class: 'nordgeo-line-swatch', style: `background:${colors[key]}`, 'aria-hidden': 'true'}),
                    DIFFICULTY[key]
                ]));
            }
        }

        // --- popups ---

        bindClicks() {
            const map = this.map;
            const layers = () => CLICKABLE.filter((id) => map.getLayer(id) && map.getLayoutProperty(id, 'visibility') !== 'none');
            map.on('click', (e) => {
                const p = e.point;
                const tol = 6;
                const hits = map.queryRenderedFeatures([[p.x - tol, p.y - tol], [p.x + tol, p.y + tol]], {layers: layers()});
                if (!hits.length) return;
                hits.sort((a, b) => CLICKABLE.indexOf(a.layer.id) - CLICKABLE.indexOf(b.layer.id));
                const f = hits[0];
                const at = f.geometry.type === 'Point' ? f.geometry.coordinates : [e.lngLat.lng, e.lngLat.lat];
                this.openPopup(f, at);
            });
            for (const id of CLICKABLE) {
                if (!map.getLayer(id)) continue;
                map.on('mouseenter', id, () => { map.getCanvas().style.cursor = 'pointer'; });
                map.on('mouseleave', id, () => { map.getCanvas().style.cursor = ''; });
            }
        }

        popupContent(f) {
            const p = f.properties || {};
            const layer = f.sourceLayer || f.layer['source-layer'];
            if (layer === 'parking') {
                return h('div', {class: 'nordgeo-popup nordgeo-popup-parking'}, [
                    h('h3', {text: p.name || 'Parkplatz'}),
                    propertyTable([
                        ['Stellplätze', p.capacity],
                        ['davon barrierefrei', p.wheelchair_spaces],
                        ['Gebühr', p.fee === undefined ? undefined : (isTrue(p.fee) ? 'gebührenpflichtig' : 'kostenlos')],
                        ['Gemeinde', p.municipality]
                    ])
                ]);
            }
            if (layer === 'childcare') {
                return h('div', {class: 'nordgeo-popup nordgeo-popup-childcare'}, [
                    h('h3', {text: p.name || 'Kindertagesstätte'}),
                    propertyTable([
                        ['Freie Plätze', p.free_places === undefined ? undefined : `${freePlacesText(p.free_places)}${p.capacity ? ` (von ${p.capacity})` : ''}`],
                        ['Öffnungszeiten', p.opening_hours],
                        ['Gemeinde', p.municipality]
                    ])
                ]);
            }
            if (layer === 'trails') {
                const node = h('div', {class: 'nordgeo-popup nordgeo-popup-trail'}, [
                    h('h3', {text: p.name || 'Wanderweg'}),
                    propertyTable([
                        ['Wegzeichen', p.route_ref],
                        ['Länge', p.length_m === undefined ? undefined : `${num.format(Number(p.length_m) / 1000)} km`],
                        ['Schwierigkeit', DIFFICULTY[p.difficulty] || p.difficulty],
                        ['Belag', SURFACE[p.surface] || p.surface],
                        ['Gemeinde', p.municipality]
                    ])
                ]);
                node.appendChild(h('button', {type: 'button', class: 'nordgeo-button nordgeo-near-trail',
                    onclick: () => this.nearTrailStart(f)}, 'Parkplätze in der Nähe'));
                if (f.id !== undefined && f.id !== null) {
                    // the whole trail as a GPX track for a hiking app or GPS device
                    node.appendChild(h('a', {class: 'nordgeo-button nordgeo-gpx', download: '',
                        href: `${BASE}/collections/trails/items/${encodeURIComponent(f.id)}?f=gpx`}, 'GPX herunterladen'));
                }
                return node;
            }
            if (layer === 'parcels') {
                return h('div', {class: 'nordgeo-popup nordgeo-popup-parcel'}, [
                    h('h3', {text: p.parcel_id || 'Flurstück'}),
                    propertyTable([
                        ['Nutzung', p.land_use],
                        ['Fläche', p.area_m2 === undefined ? undefined : `${new Intl.NumberFormat('de-DE', {maximumFractionDigits: 0}).format(Number(p.area_m2))} m²`],
                        ['Gemeinde', p.municipality]
                    ])
                ]);
            }
            return h('div', {class: 'nordgeo-popup'}, [h('h3', {text: p.name || ''})]);
        }

        openPopup(f, lngLat) {
            if (this.popup) this.popup.remove();
            const options = {className: 'nordgeo-popup-wrap', focusAfterOpen: true};
            const w = this.el.clientWidth;
            options.maxWidth = `${Math.max(180, Math.min(300, w - 32))}px`;
            if (w < 480) {
                // a narrow screen has no room beside the point: centre it low in the view and open the popup above it
                this.setPanelOpen(false);
                options.anchor = 'bottom';
                this.map.easeTo({center: lngLat, offset: [0, Math.round(this.el.clientHeight * 0.25)], duration: 250});
            } else if (this.isNarrow()) {
                this.setPanelOpen(false);
            }
            this.popup = new this.lib.Popup(options)
                .setLngLat(lngLat)
                .setDOMContent(this.popupContent(f))
                .addTo(this.map);
            return this.popup;
        }

        // --- "Parkplätze in der Nähe" ---

        addNearLayers() {
            const map = this.map;
            const empty = {type: 'FeatureCollection', features: []};
            map.addSource('nordgeo-near', {type: 'geojson', data: empty});
            map.addSource('nordgeo-near-origin', {type: 'geojson', data: empty});
            map.addLayer({id: 'nordgeo-near-origin', type: 'circle', source: 'nordgeo-near-origin', paint: {
                'circle-radius': 7, 'circle-color': '#ffffff', 'circle-stroke-color': '#111111', 'circle-stroke-width': 3
            }});
            map.addLayer({id: 'nordgeo-near-ring', type: 'circle', source: 'nordgeo-near', paint: {
                'circle-radius': ['interpolate', ['linear'], ['zoom'], 10, 9, 14, 15, 17, 18],
                'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': '#f5b400', 'circle-stroke-width': 4
            }}, map.getLayer('parking-circle') ? 'parking-circle' : undefined);
            map.addLayer({id: 'nordgeo-near-rank', type: 'symbol', source: 'nordgeo-near', layout: {
                'text-field': ['to-string', ['get', 'rank']], 'text-font': ['DejaVu Sans Bold'], 'text-size': 12,
                'text-offset': [1.1, -1.1], 'text-allow-overlap': true, 'text-ignore-placement': true
            }, paint: {'text-color': '#111111', 'text-halo-color': '#f5b400', 'text-halo-width': 2.5}});
        }

        async nearTrailStart(f) {
            let start = null;
            const name = (f.properties && f.properties.name) || 'Wanderweg';
            if (f.id !== undefined && f.id !== null) {
                try {
                    const full = await getJSON(`${BASE}/collections/trails/items/${encodeURIComponent(f.id)}`);
                    if (full.geometry) start = firstVertex(full.geometry);
                } catch (e) {
                    console.warn(`nordgeo widget: trail ${f.id} not found (${e.message}); using the clicked part`);
                }
            }
            if (!start) start = firstVertex(f.geometry);
            return this.nearParking(start, `Start von „${name}“`);
        }

        nearMe() {
            if (!('geolocation' in navigator)) return this.showMessage('Ihr Browser kann den Standort nicht bestimmen.');
            if (window.isSecureContext === false) return this.showMessage('Der Standort kann nur über eine sichere Verbindung (HTTPS) bestimmt werden.');
            this.showMessage('Standort wird bestimmt …');
            this.nearMeButton.disabled = true;
            return new Promise((resolve) => {
                navigator.geolocation.getCurrentPosition((pos) => {
                    this.nearMeButton.disabled = false;
                    resolve(this.nearParking([pos.coords.longitude, pos.coords.latitude], 'Ihrem Standort'));
                }, (err) => {
                    this.nearMeButton.disabled = false;
                    const why = err.code === 1 ? 'Der Zugriff auf den Standort wurde nicht erlaubt.'
                        : err.code === 3 ? 'Die Standortbestimmung hat zu lange gedauert.'
                            : 'Der Standort konnte nicht bestimmt werden.';
                    this.showMessage(why);
                    resolve([]);
                }, {enableHighAccuracy: false, timeout: 15000, maximumAge: 60000});
            });
        }

        /** Puts the results where they can be read: the panel, or the bottom sheet on a narrow screen. */
        placeResults() {
            const narrow = this.el.clientWidth < 480;
            if (narrow) {
                if (this.results.parentNode !== this.sheet) this.sheet.appendChild(this.results);
                this.sheet.hidden = false;
                this.setPanelOpen(false);
            } else {
                if (this.results.parentNode !== this.panelBody) this.panelBody.appendChild(this.results);
                this.sheet.hidden = true;
                this.setPanelOpen(true);
            }
            return narrow;
        }

        showMessage(text) {
            this.placeResults();
            this.results.replaceChildren(h('p', {class: 'nordgeo-message', text}));
        }

        async nearParking(origin, originLabel) {
            const map = this.map;
            if (this.popup) this.popup.remove();
            this.showMessage('Parkplätze werden gesucht …');
            const url = `${BASE}/collections/parking/items?near=${origin[0].toFixed(6)},${origin[1].toFixed(6)}` +
                `&max-distance=${NEAR_MAX_DISTANCE}&limit=${NEAR_LIMIT}`;
            let fc;
            try {
                fc = await getJSON(url);
            } catch (e) {
                console.warn(`nordgeo widget: near search failed: ${e.message}`);
                this.showMessage('Die Suche ist gerade nicht möglich. Bitte später erneut versuchen.');
                return [];
            }
            const features = (fc.features || []).filter((f) => f.geometry && f.geometry.type === 'Point').map((f, i) => {
                const p = f.properties || {};
                const d = Number.isFinite(p.distance_m) ? p.distance_m
                    : Number.isFinite(p.distance) ? p.distance : distanceMetres(origin, f.geometry.coordinates);
                return {type: 'Feature', id: f.id, geometry: f.geometry, properties: Object.assign({}, p, {rank: i + 1, distance_m: d})};
            });
            this.lastNear = features;
            map.getSource('nordgeo-near').setData({type: 'FeatureCollection', features});
            map.getSource('nordgeo-near-origin').setData({type: 'Feature', geometry: {type: 'Point', coordinates: origin}, properties: {}});
            if (!this.checkboxes.parking.checked) this.setGroupVisible('parking', true);

            const title = h('p', {class: 'nordgeo-results-title'},
                features.length ? `Parkplätze nahe ${originLabel}:` : `Keine Parkplätze im Umkreis von ${formatDistance(NEAR_MAX_DISTANCE)} um ${originLabel}.`);
            const list = h('ol', {class: 'nordgeo-results-list'});
            for (const f of features) {
                const p = f.properties;
                const details = [formatDistance(p.distance_m)];
                if (p.capacity !== undefined) details.push(`${p.capacity} Plätze`);
                if (p.fee !== undefined) details.push(isTrue(p.fee) ? 'gebührenpflichtig' : 'kostenlos');
                list.appendChild(h('li', {}, [h('button', {type: 'button', class: 'nordgeo-result',
                    onclick: () => {
                        map.easeTo({center: f.geometry.coordinates, zoom: Math.max(map.getZoom(), 15)});
                        this.openPopup({properties: p, sourceLayer: 'parking', layer: {}, geometry: f.geometry}, f.geometry.coordinates);
                    }}, [h('span', {class: 'nordgeo-result-name', text: p.name || 'Parkplatz'}), h('span', {class: 'nordgeo-result-details', text: details.join(' · ')})])]));
            }
            const clear = h('button', {type: 'button', class: 'nordgeo-link', onclick: () => this.clearNear()}, 'Suche zurücksetzen');
            this.results.replaceChildren(title, features.length ? list : '', clear);
            const narrow = this.placeResults();

            const pts = [origin].concat(features.map((f) => f.geometry.coordinates));
            const b = pts.reduce((acc, c) => [Math.min(acc[0], c[0]), Math.min(acc[1], c[1]), Math.max(acc[2], c[0]), Math.max(acc[3], c[1])],
                [origin[0], origin[1], origin[0], origin[1]]);
            const pad = this.padding();
            const panelW = narrow ? 0 : this.panelBody.parentNode.getBoundingClientRect().width + 10;
            const sheetH = narrow ? this.sheet.getBoundingClientRect().height : 0;
            map.fitBounds([[b[0], b[1]], [b[2], b[3]]], {
                padding: {top: pad + 50, bottom: pad + 20 + sheetH, right: pad + 50, left: pad + panelW},
                maxZoom: 16, duration: 600
            });
            return features;
        }

        clearNear() {
            const empty = {type: 'FeatureCollection', features: []};
            this.map.getSource('nordgeo-near').setData(empty);
            this.map.getSource('nordgeo-near-origin').setData(empty);
            this.results.replaceChildren();
            this.sheet.hidden = true;
            this.lastNear = undefined;
        }
    }

    // ---------- boot ----------

    async function initElement(el, lib) {
        if (el.nordgeo || el.hasAttribute('data-nordgeo-started')) return el.nordgeo;
        el.setAttribute('data-nordgeo-started', '');
        try {
            return await new Widget(el, lib, readOptions(el)).start();
        } catch (e) {
            console.error(`nordgeo widget: the map could not be started: ${e && e.message ? e.message : e}`);
            el.appendChild(h('p', {class: 'nordgeo-error', role: 'alert', text: 'Die Karte konnte nicht geladen werden.'}));
            return null;
        }
    }

    async function initAll() {
        const elements = Array.prototype.slice.call(document.querySelectorAll(SELECTOR));
        if (!elements.length) return [];
        await Promise.all([
            addStylesheet(`${BASE}/assets/maplibre-gl/maplibre-gl.css`),
            addStylesheet(`${BASE}/map/widget.css`)
        ]);
        let lib;
        try {
            lib = await loadMaplibre();
        } catch (e) {
            console.error(`nordgeo widget: MapLibre GL JS could not be loaded from ${BASE}/assets/maplibre-gl/: ${e.message}`);
            return [];
        }
        return Promise.all(elements.map((el) => initElement(el, lib)));
    }

    const api = window.nordgeoWidget = window.nordgeoWidget || {};
    api.base = BASE;
    api.init = initAll;
    api.ready = document.readyState === 'loading'
        ? new Promise((resolve) => document.addEventListener('DOMContentLoaded', () => resolve(initAll())))
        : initAll();
}());
