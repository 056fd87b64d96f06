//! Importing a GeoPackage into a PostGIS store: the file is checked and staged exactly
//! as for a GeoPackage store (`import::stage`), then each layer's table is written in
//! one transaction with `COPY` — created with a GiST index when new, or its rows
//! replaced whole, the replaced rows kept in the layer's history. A table's capture
//! triggers are off during the copy: one capture row says the layer was rewritten.

use std::io::Write;

use rusqlite::types::Value;

use super::layers::{Candidate, q};
use super::{PgError, PgStore, capture, layers, schema, settings};
use crate::import::{ImportError, ImportOptions, ImportReport, Mode, Plan};
use crate::store::LayerDef;
use crate::store::layer::ValueClass;

/// Runs an import into the store: checked whole first, then written.
pub fn run(store: &mut PgStore, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    // Whatever was interrupted (reading the file or writing), the budget says why.
    match run_checked(store, opts) {
        Err(_) if opts.budget.exhausted() => Err(crate::store::StoreError::Interrupted.into()),
        other => other,
    }
}

fn run_checked(store: &mut PgStore, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    if super::merge::needed(store, opts)? {
        return super::merge::run(store, opts);
    }
    let staged = super::merge::stage_whole(store, opts)?;
    let mut report = staged.report;
    if opts.dry_run {
        return Ok(report);
    }
    let staging = rusqlite::Connection::open_with_flags(
        &staged.db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| ImportError::Plan(format!("the staged import cannot be read: {e}")))?;
    let pg = |e: PgError| ImportError::Plan(e.to_string());
    store
        .client()
        .batch_execute("BEGIN")
        .map_err(|e| pg(store.err(e)))?;
    let result = (|| {
        let lock = schema::capture_lock(store);
        store
            .client()
            .batch_execute(&lock)
            .map_err(|e| store.err(e))?;
        for (i, (p, lr)) in staged
            .plans
            .iter()
            .zip(report.layers.iter_mut())
            .enumerate()
        {
            let (added, removed, change) = write_layer(store, &staging, i, p, opts)?;
            lr.added = added;
            lr.removed = removed;
            lr.imported = added;
            lr.replaced = removed;
            lr.change_id = Some(change);
        }
        if opts.budget.exhausted() {
            return Err(PgError::Invalid(
                "the import ran out of time; nothing was changed".into(),
            ));
        }
        store
            .client()
            .batch_execute("COMMIT")
            .map_err(|e| store.err(e))
    })();
    if let Err(e) = result {
        let _ = store.client().batch_execute("ROLLBACK");
        return Err(pg(e));
    }
    // Planner statistics for the new rows come from autovacuum, which analyses a table
    // after this many inserts, as after any other bulk load.
    report.committed = true;
    Ok(report)
}

/// Writes one layer; returns (added, removed, change id).
fn write_layer(
    store: &mut PgStore,
    staging: &rusqlite::Connection,
    i: usize,
    p: &Plan,
    opts: &ImportOptions,
) -> Result<(u64, u64, i64), PgError> {
    let t = &p.target;
    let name = &t.table;
    if !layers::valid_ident(name) {
        return Err(PgError::Invalid(format!(
            "layer name '{name}': use letters, digits and _ only (--into NAME)"
        )));
    }
    let table = format!("{}.{}", q(store.schema()), q(name));
    let exists: bool = store
        .client()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(|e| store.err(e))?
        .get(0);
    if exists && opts.mode == Mode::Create {
        return Err(PgError::Invalid(format!(
            "the store has a table '{name}' already; import with --mode replace to replace its rows"
        )));
    }
    // A keyed layer's import matches features (`merge`); rewriting it whole here would
    // give every feature a new identity.
    if exists && settings::meta(store, name)?.key.is_some() {
        return Err(PgError::Invalid(format!(
            "'{name}' has a key (`set-layer --key`): its features are matched, not replaced whole"
        )));
    }
    let srid = t.srs_id;
    if !exists {
        let mut cols = vec!["fid bigserial PRIMARY KEY".to_string()];
        if t.has_geometry() {
            let dims = if t.z == 1 { "Z" } else { "" };
            cols.push(format!(
                "{} geometry({}{dims}, {srid})",
                q(&t.geom_column),
                t.kind.gpkg_name()
            ));
        }
        cols.extend(t.columns.iter().map(|c| {
            format!(
                "{} {}",
                q(&c.name),
                layers::pg_type(c.class(), &c.decl_type)
            )
        }));
        let ddl = format!("CREATE TABLE {table} ({});", cols.join(", "));
        store
            .client()
            .batch_execute(&ddl)
            .map_err(|e| store.err(e))?;
        settings::write(store, name, &p.meta, None)?;
    }
    let fid_col = if exists {
        let c = Candidate {
            name: name.clone(),
            schema: store.schema().to_string(),
            table: name.clone(),
            fid: None,
            geom: None,
        };
        layers::describe(store, &c)?
            .map(|(_, rel)| rel.fid)
            .ok_or_else(|| PgError::NoSuchLayer(name.clone()))?
    } else {
        "fid".to_string()
    };
    let history = store.table(&crate::store::history::history_table(name));
    let changes = store.table("nordgeo_changes");
    // Columns the file adds (add-columns) go to the table and, in the same order, to
    // its history, whose rows are copied by position.
    let mut ddl: Vec<String> = p
        .new_columns
        .iter()
        .filter(|_| exists)
        .map(|c| {
            format!(
                "ALTER TABLE {table} ADD COLUMN {} {};",
                q(&c.name),
                layers::pg_type(c.class(), &c.decl_type)
            )
        })
        .collect();
    ddl.push(format!(
        "CREATE TABLE IF NOT EXISTS {history} AS SELECT 0::bigint AS change_id, ''::text AS change_op, * FROM {table} WITH NO DATA;"
    ));
    ddl.extend(p.new_columns.iter().filter(|_| exists).map(|c| {
        format!(
            "ALTER TABLE {history} ADD COLUMN IF NOT EXISTS {} {};",
            q(&c.name),
            layers::pg_type(c.class(), &c.decl_type)
        )
    }));
    store
        .client()
        .batch_execute(&ddl.concat())
        .map_err(|e| store.err(e))?;
    let source = opts
        .file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    let change: i64 = store
        .client()
        .query_one(
            &format!(
                "INSERT INTO {changes} (layer, kind, mode, source, actor) VALUES ($1, 'import', $2, $3, $4) RETURNING id"
            ),
            &[name, &opts.mode.as_str(), &source, &opts.actor],
        )
        .map_err(|e| store.err(e))?
        .get(0);
    let removed = if exists {
        let n = store
            .client()
            .execute(
                &format!("INSERT INTO {history} SELECT $1, 'removed', * FROM {table}"),
                &[&change],
            )
            .map_err(|e| store.err(e))?;
        // TRUNCATE's capture trigger records "the whole layer changed".
        store
            .client()
            .batch_execute(&format!(
                "TRUNCATE {table}; ALTER TABLE {table} DISABLE TRIGGER nordgeo_capture_insert"
            ))
            .map_err(|e| store.err(e))?;
        n
    } else {
        0
    };
    let added = copy_rows(store, staging, i, t, &table, &fid_col)?;
    // A new table's index is built once over all rows (faster than growing it per row);
    // a new layer lists no added fids in its history (everything in it was added), as
    // in a GeoPackage store.
    let after = if exists {
        format!(
            "INSERT INTO {history} (change_id, change_op, {fc}) SELECT {change}, 'added', {fc} FROM {table};",
            fc = q(&fid_col)
        )
    } else if t.has_geometry() {
        format!(
            "CREATE INDEX {} ON {table} USING gist ({});",
            q(&format!("{name}_geom_idx")),
            q(&t.geom_column)
        )
    } else {
        String::new()
    };
    store
        .client()
        .batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{quoted}', '{fid_col}'), greatest((SELECT max({fc}) FROM {table}), 1));
             {after}
             UPDATE {changes} SET added = {added}, removed = {removed} WHERE id = {change};",
            quoted = table.replace('\'', "''"),
            fc = q(&fid_col),
        ))
        .map_err(|e| store.err(e))?;
    if exists {
        store
            .client()
            .batch_execute(&format!(
                "ALTER TABLE {table} ENABLE TRIGGER nordgeo_capture_insert"
            ))
            .map_err(|e| store.err(e))?;
    } else {
        let (_, rel) = layers::describe(
            store,
            &Candidate {
                name: name.clone(),
                schema: store.schema().to_string(),
                table: name.clone(),
                fid: None,
                geom: None,
            },
        )?
        .ok_or_else(|| PgError::NoSuchLayer(name.clone()))?;
        capture::ensure_in(store, name, &rel)?;
    }
    Ok((added, removed, change))
}

/// Streams the staged rows into the table with `COPY` (text format, geometry as hex
/// EWKB); returns how many.
fn copy_rows(
    store: &mut PgStore,
    staging: &rusqlite::Connection,
    i: usize,
    t: &LayerDef,
    table: &str,
    fid_col: &str,
) -> Result<u64, PgError> {
    let mut cols = vec![q(fid_col)];
    let mut staged = vec!["src_fid".to_string()];
    if t.has_geometry() {
        cols.push(q(&t.geom_column));
        staged.push("geom".into());
    }
    cols.extend(t.columns.iter().map(|c| q(&c.name)));
    staged.extend((0..t.columns.len()).map(|c| format!("c{c}")));
    let classes: Vec<ValueClass> = t.columns.iter().map(|c| c.class()).collect();
    let staged_err =
        |e: rusqlite::Error| PgError::Invalid(format!("the staged import cannot be read: {e}"));
    let mut st = staging
        .prepare(&format!(
            "SELECT {} FROM s{i} ORDER BY src_fid",
            staged.join(", ")
        ))
        .map_err(staged_err)?;
    let mut rows = st.query([]).map_err(staged_err)?;
    let at = store.at().to_string();
    let mut writer = store
        .client()
        .copy_in(&format!("COPY {table} ({}) FROM STDIN", cols.join(", ")))
        .map_err(|e| super::error_at(&at, e))?;
    let mut line = String::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut n = 0u64;
    let io = |e: std::io::Error| PgError::Invalid(format!("COPY failed: {e}"));
    while let Some(r) = rows.next().map_err(staged_err)? {
        line.clear();
        let fid: i64 = r.get(0).map_err(staged_err)?;
        line.push_str(&fid.to_string());
        let mut next = 1;
        if t.has_geometry() {
            line.push('\t');
            match r.get_ref(1).map_err(staged_err)? {
                rusqlite::types::ValueRef::Blob(b) => hex_ewkb(b, t.srs_id, &mut line),
                _ => line.push_str("\\N"),
            }
            next = 2;
        }
        for (k, class) in classes.iter().enumerate() {
            line.push('\t');
            let v: Value = r.get(next + k).map_err(staged_err)?;
            text_value(&v, *class, &mut line);
        }
        line.push('\n');
        buf.extend_from_slice(line.as_bytes());
        if buf.len() >= 1 << 20 {
            writer.write_all(&buf).map_err(io)?;
            buf.clear();
        }
        n += 1;
    }
    writer.write_all(&buf).map_err(io)?;
    writer.finish().map_err(|e| super::error_at(&at, e))?;
    Ok(n)
}

/// A GeoPackage blob's WKB as hex EWKB with the SRID (the column's type requires it).
fn hex_ewkb(blob: &[u8], srid: i32, out: &mut String) {
    let Ok(h) = crate::geom::gpkg::header(blob) else {
        out.push_str("\\N");
        return;
    };
    let wkb = &blob[h.wkb_offset..];
    if h.empty || wkb.len() < 5 {
        out.push_str("\\N");
        return;
    }
    let little = wkb[0] == 1;
    let raw: [u8; 4] = [wkb[1], wkb[2], wkb[3], wkb[4]];
    let ty = if little {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    } | 0x2000_0000;
    let mut head = vec![wkb[0]];
    if little {
        head.extend_from_slice(&ty.to_le_bytes());
        head.extend_from_slice(&srid.to_le_bytes());
    } else {
        head.extend_from_slice(&ty.to_be_bytes());
        head.extend_from_slice(&srid.to_be_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in head.iter().chain(&wkb[5..]) {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// A value in COPY's text format.
fn text_value(v: &Value, class: ValueClass, out: &mut String) {
    match v {
        Value::Null => out.push_str("\\N"),
        Value::Integer(i) if class == ValueClass::Boolean => {
            out.push_str(if *i != 0 { "t" } else { "f" })
        }
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Real(f) => out.push_str(&f.to_string()),
        Value::Text(s) => {
            for ch in s.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        Value::Blob(b) => {
            out.push_str("\\\\x");
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
        }
    }
}
