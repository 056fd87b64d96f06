// The maintainers' page: sign in with a token, check a GeoPackage (dry run), read the
// report, confirm or cancel, see the municipality's changes and undo one's own.
// Talks only to the nordgeo server it came from; no third-party code.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const base = location.pathname.replace(/\/manage\/?$/, '');
  let token = sessionStorage.getItem('nordgeo-token') || '';
  let me = null;
  let pending = null; // {collection, mode, file}

  const KINDS = {
    geometry: 'Geometrie', property: 'Eigenschaft', municipality: 'Gemeinde', key: 'Schlüssel',
    rule: 'Regel', placement: 'Lage', duplicate: 'Doppelt'
  };
  const CHANGE_KINDS = {
    import: 'Import', create: 'Neu angelegt', update: 'Geändert', replace: 'Ersetzt', delete: 'Gelöscht',
    rollback: 'Zurückgesetzt', undo: 'Rückgängig gemacht', settings: 'Einstellungen', 'drop-column': 'Spalte entfernt'
  };

  function status(text) { $('error').textContent = ''; $('status').textContent = text; }
  function fail(text) { $('status').textContent = ''; $('error').textContent = text; }
  function show(id, on) { $(id).hidden = !on; }
  function focus(id) { const h = $(id); if (h) h.focus(); }

  async function call(method, path, body, type) {
    const headers = {'Authorization': 'Bearer ' + token, 'Accept': 'application/json'};
    if (type) headers['Content-Type'] = type;
    const r = await fetch(base + path, {method, headers, body});
    let doc = null;
    try { doc = await r.json(); } catch (e) { doc = null; }
    return {status: r.status, doc};
  }

  function problem(r, what) {
    const detail = r.doc && r.doc.detail ? r.doc.detail : 'Antwort ' + r.status;
    if (r.status === 401) return 'Der Zugangsschlüssel gilt nicht (mehr). Bitte melden Sie sich neu an. (' + detail + ')';
    if (r.status === 403) return what + ' ist mit diesem Schlüssel nicht erlaubt: ' + detail;
    if (r.status === 409) return what + ' ist nicht möglich: ' + detail;
    if (r.status === 413) return 'Die Datei ist zu groß: ' + detail;
    if (r.status === 503) return 'Der Server ist gerade beschäftigt oder die Prüfung dauerte zu lange; bitte später erneut versuchen. (' + detail + ')';
    return what + ' ist fehlgeschlagen: ' + detail;
  }

  async function signIn(t) {
    token = t;
    const r = await call('GET', '/me');
    if (r.status !== 200) {
      token = '';
      sessionStorage.removeItem('nordgeo-token');
      fail(problem(r, 'Die Anmeldung'));
      return;
    }
    me = r.doc;
    sessionStorage.setItem('nordgeo-token', token);
    $('who').textContent = 'Angemeldet als ' + me.name + (me.municipality ? ' (' + me.municipality + ')' : '');
    show('who', true); show('signout', true); show('signin', false); show('upload', true);
    const sel = $('collection');
    sel.textContent = '';
    for (const c of me.collections) {
      const o = document.createElement('option');
      o.value = c.id; o.textContent = c.title + ' (' + c.id + ')';
      sel.appendChild(o);
    }
    status('Angemeldet. Wählen Sie den Datenbestand und die Datei.');
    focus('upload-h');
    await loadHistory();
  }

  function cell(tr, text) { const td = document.createElement('td'); td.textContent = text; tr.appendChild(td); return td; }

  function showReport(doc, ok) {
    const l = (doc.layers && doc.layers[0]) || {};
    $('n-added').textContent = l.added ?? 0;
    $('n-changed').textContent = l.changed ?? 0;
    $('n-unchanged').textContent = l.unchanged ?? 0;
    $('n-removed').textContent = l.removed ?? 0;
    const warnings = l.warnings || [];
    $('warnings').textContent = '';
    for (const w of warnings) { const li = document.createElement('li'); li.textContent = w; $('warnings').appendChild(li); }
    show('warnings-box', warnings.length > 0);
    const rejected = l.rejected || [];
    $('rejected').textContent = '';
    for (const r of rejected) {
      const tr = document.createElement('tr');
      cell(tr, String(r.fid));
      const kind = (r.reason.match(/rule|key|duplicate|municipality|outside/) || [''])[0];
      cell(tr, KINDS[kind] || ({outside: 'Lage', rule: 'Regel'})[kind] || 'Prüfung');
      cell(tr, r.reason);
      $('rejected').appendChild(tr);
    }
    show('rejected-box', rejected.length > 0);
    const nothing = (l.added || 0) + (l.changed || 0) + (l.removed || 0) === 0;
    if (!ok) {
      $('report-verdict').textContent = (l.rejected_total || rejected.length) +
        ' Objekte wurden abgelehnt. Nichts wurde gespeichert. Bitte korrigieren Sie die Datei in QGIS und prüfen Sie sie erneut.';
    } else if (nothing) {
      $('report-verdict').textContent = 'Die Datei entspricht dem gespeicherten Bestand. Es gibt nichts zu speichern.';
    } else {
      $('report-verdict').textContent = 'Die Datei ist in Ordnung. Prüfen Sie die Zahlen und bestätigen Sie den Import.';
    }
    show('confirm', ok && !nothing);
    show('report', true);
    focus('report-h');
  }

  async function check(ev) {
    ev.preventDefault();
    const file = $('file').files[0];
    if (!file) { fail('Bitte wählen Sie eine GeoPackage-Datei aus.'); focus('file'); return; }
    const collection = $('collection').value;
    const mode = document.querySelector('input[name=mode]:checked').value;
    status('Die Datei wird geprüft …');
    const r = await call('POST', '/collections/' + encodeURIComponent(collection) + '/import?dry-run=true&mode=' + mode,
      file, 'application/geopackage+sqlite3');
    if (r.status === 200) { pending = {collection, mode, file}; status('Prüfung abgeschlossen.'); showReport(r.doc, true); }
    else if (r.status === 422 && r.doc && r.doc.layers) { pending = null; status('Prüfung abgeschlossen.'); showReport(r.doc, false); }
    else { pending = null; show('report', false); fail(problem(r, 'Die Prüfung')); }
  }

  async function confirm() {
    if (!pending) return;
    const p = pending;
    status('Der Import wird gespeichert …');
    const r = await call('POST', '/collections/' + encodeURIComponent(p.collection) + '/import?mode=' + p.mode,
      p.file, 'application/geopackage+sqlite3');
    if (r.status === 200) {
      const l = r.doc.layers[0];
      pending = null;
      show('report', false);
      $('file').value = '';
      status('Gespeichert: ' + l.added + ' neu, ' + l.changed + ' geändert, ' + l.removed + ' entfernt' +
        (l.change_id ? ' (Änderung Nr. ' + l.change_id + ').' : '.'));
      await loadHistory();
      focus('history-h');
    } else {
      fail(problem(r, 'Das Speichern'));
    }
  }

  async function loadHistory() {
    const collection = $('collection').value;
    if (!collection) return;
    const r = await call('GET', '/collections/' + encodeURIComponent(collection) + '/changes');
    if (r.status !== 200) { fail(problem(r, 'Das Laden der Änderungen')); return; }
    const body = $('changes');
    body.textContent = '';
    for (const c of r.doc.changes.slice(0, 50)) {
      const tr = document.createElement('tr');
      cell(tr, String(c.id));
      cell(tr, (CHANGE_KINDS[c.kind] || c.kind) + (c.mode ? ' (' + c.mode + ')' : ''));
      cell(tr, c.actor);
      cell(tr, c.at.replace('T', ' ').replace(/\.\d+Z$/, ''));
      cell(tr, String(c.added));
      cell(tr, String(c.removed));
      const td = cell(tr, '');
      if (c.yours && c.kind !== 'settings') {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'secondary';
        b.textContent = 'Rückgängig machen';
        b.setAttribute('aria-label', 'Änderung Nr. ' + c.id + ' rückgängig machen');
        b.addEventListener('click', () => undo(collection, c.id));
        td.appendChild(b);
      }
      body.appendChild(tr);
    }
    show('history', true);
  }

  async function undo(collection, change) {
    status('Änderung Nr. ' + change + ' wird rückgängig gemacht …');
    const r = await call('POST', '/collections/' + encodeURIComponent(collection) + '/undo?change=' + change);
    if (r.status === 200) {
      status('Änderung Nr. ' + change + ' ist rückgängig gemacht (neue Änderung Nr. ' + r.doc.change + ').');
      await loadHistory();
      focus('history-h');
    } else {
      fail(problem(r, 'Das Rückgängigmachen'));
    }
  }

  function signOut() {
    token = ''; me = null; pending = null;
    sessionStorage.removeItem('nordgeo-token');
    for (const id of ['upload', 'report', 'history', 'who', 'signout']) show(id, false);
    show('signin', true);
    $('token').value = '';
    status('Abgemeldet.');
    focus('token');
  }

  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    if (!t) { fail('Bitte geben Sie Ihren Zugangsschlüssel ein.'); focus('token'); return; }
    signIn(t);
  });
  $('upload-form').addEventListener('submit', check);
  $('confirm').addEventListener('click', confirm);
  $('cancel').addEventListener('click', () => {
    pending = null; show('report', false); status('Abgebrochen. Nichts wurde gespeichert.'); focus('upload-h');
  });
  $('collection').addEventListener('change', loadHistory);
  $('signout').addEventListener('click', signOut);
  if (token) signIn(token);
})();
