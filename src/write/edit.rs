//! Feature edits (OGC API Features Part 4): one feature created, replaced, patched or
//! deleted in one transaction, checked like an import, recorded in the change log with
//! the rows it replaced, so every edit is attributable and can be undone.

use rusqlite::OptionalExtension;
use rusqlite::types::Value;
use serde_json::{Map, Value as Json};

use crate::audience::Audience;
use crate::crs;
use crate::geom::{GeometryKind, bbox_of, geojson, gpkg, wkb};
use crate::import::check::{GeomRules, check_geometry};
use crate::index::{self, Feature};
use crate::store::history::{self, ChangeMeta};
use crate::store::layer::{LayerDef, ValueClass, q};
use crate::store::{Store, StoreError};

/// Why an edit was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// No such feature.
    #[error("collection '{0}' has no feature {1}")]
    NotFound(String, i64),
    /// `If-Match` does not name the current version.
    #[error(
        "feature {0} has changed since you read it (its ETag is now {1}); read it again and repeat your change"
    )]
    Stale(i64, String),
    /// The body does not fit the layer.
    #[error("{0}")]
    Invalid(String),
    /// The body is not a feature, nor a merge patch of one.
    #[error("{0}")]
    BadBody(String),
    /// The caller may not touch this feature.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite failed.
    #[error("the store refused the change: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Reading the result back failed.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// The store cannot be reached now (nothing was changed; try again).
    #[error("{0}")]
    Unavailable(String),
    /// Another kind of store (PostGIS) refused or failed; its own message.
    #[error("{0}")]
    Backend(String),
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// POST: a new feature.
    Create,
    /// PUT: the whole feature.
    Replace(i64),
    /// PATCH: a JSON merge patch.
    Patch(i64),
    /// DELETE.
    Delete(i64),
}

impl Op {
    /// The change-log kind of this operation.
    pub fn kind(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Replace(_) => "replace",
            Op::Patch(_) => "update",
            Op::Delete(_) => "delete",
        }
    }
}

/// Given a feature's municipality and geometry blob, why the caller may not put it there.
pub type Placement<'a> = dyn Fn(Option<&str>, &[u8]) -> Result<(), String> + 'a;

/// One edit.
pub struct Edit<'a> {
    /// The layer.
    pub def: &'a LayerDef,
    /// The column holding each feature's municipality, if the layer has one.
    pub municipality_column: Option<&'a str>,
    /// What to do.
    pub op: Op,
    /// The GeoJSON feature (create, replace) or merge patch (patch).
    pub body: Option<&'a Json>,
    /// EPSG code of the body's coordinates (4326 for CRS84).
    pub body_epsg: i32,
    /// The body's axes are north first (EPSG:4326 and Gauss-Krüger as `Content-Crs`).
    pub body_north_first: bool,
    /// `If-Match` value, if sent.
    pub if_match: Option<&'a str>,
    /// The properties the caller sees (its ETags are made of them); the others it can
    /// neither set nor clear.
    pub audience: &'a Audience,
    /// Who edits (recorded).
    pub actor: &'a str,
    /// The request, for the change log.
    pub source: String,
    /// Whether the caller may edit a feature of this municipality (checked on the
    /// feature before and after the edit).
    pub may_edit: &'a dyn Fn(Option<&str>) -> bool,
    /// The known municipalities: a value of the municipality column is stored in their
    /// spelling, or refused.
    pub municipalities: &'a [String],
    /// Where the caller may place a feature: given its municipality and geometry blob
    /// (the layer's CRS), why not (maintainers stay inside their municipality).
    pub placement: Option<&'a Placement<'a>>,
    /// The layer's rules (text, bound condition); a feature that breaks one is refused.
    pub rules: &'a [(String, crate::filter::Pred)],
}

/// What an edit did.
#[derive(Debug)]
pub struct Outcome {
    /// The feature's id.
    pub fid: i64,
    /// Its change log entry; `None` when the edit changed nothing (nothing recorded).
    pub change_id: Option<i64>,
    /// The feature after the edit (EPSG:3857); `None` after a delete.
    pub feature: Option<Feature>,
}

fn invalid(msg: impl Into<String>) -> EditError {
    EditError::Invalid(msg.into())
}

/// A JSON property value as the column's type stores it.
fn column_value(def: &LayerDef, i: usize, v: &Json) -> Result<Value, EditError> {
    let c = &def.columns[i];
    let bad = |want: &str| {
        invalid(format!(
            "property '{}' of '{}' must be {want} ({}), got {v}",
            c.name, def.table, c.decl_type
        ))
    };
    if v.is_null() {
        if c.not_null {
            return Err(invalid(format!(
                "property '{}' of '{}' must not be null",
                c.name, def.table
            )));
        }
        return Ok(Value::Null);
    }
    let upper = c.decl_type.to_ascii_uppercase();
    Ok(match c.class() {
        ValueClass::Integer => match v.as_i64() {
            Some(n) => Value::Integer(n),
            None => match v.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::Integer(f as i64),
                _ => return Err(bad("a whole number")),
            },
        },
        ValueClass::Real => match v.as_f64() {
            Some(f) if f.is_finite() => Value::Real(f),
            _ => return Err(bad("a number")),
        },
        ValueClass::Boolean => match v.as_bool() {
            Some(b) => Value::Integer(i64::from(b)),
            None => return Err(bad("true or false")),
        },
        ValueClass::Text => {
            let s = v.as_str().ok_or_else(|| bad("text"))?;
            if upper.starts_with("DATETIME") || upper.starts_with("TIMESTAMP") {
                crate::filter::time::parse_timestamp(s)
                    .ok_or_else(|| bad("an RFC 3339 timestamp such as 2026-05-01T12:00:00Z"))?;
            } else if upper.starts_with("DATE") {
                crate::filter::time::parse_date(s).ok_or_else(|| bad("a date YYYY-MM-DD"))?;
            }
            Value::Text(s.to_string())
        }
        ValueClass::Blob => return Err(bad("binary data, which cannot be sent as JSON")),
    })
}

/// The geometry of a body as a blob in the layer's CRS, checked like an imported one.
fn geometry_blob(e: &Edit, v: &Json) -> Result<Option<Vec<u8>>, EditError> {
    if v.is_null() {
        return Ok(None);
    }
    if !e.def.has_geometry() {
        return Err(invalid(format!(
            "'{}' is a table without geometry; send \"geometry\": null",
            e.def.table
        )));
    }
    let mut g = geojson::parse(v).map_err(|m| invalid(format!("geometry: {m}")))?;
    if e.body_north_first {
        crate::index::for_each_coord_mut(&mut g, &mut |c| std::mem::swap(&mut c.x, &mut c.y));
    }
    let blob = gpkg::encode(e.body_epsg, bbox_of(&g), &wkb::encode(&g));
    let facts = crs::facts(e.body_epsg).map_err(|err| invalid(err.to_string()))?;
    let rules = GeomRules {
        source_layer: "request body".into(),
        source_srs_id: e.body_epsg,
        source_kind: GeometryKind::Geometry,
        source_epsg: e.body_epsg,
        plausible: facts.plausible,
        target_layer: e.def.table.clone(),
        target_kind: e.def.kind,
        target_z: e.def.z,
        target_epsg: e.def.srs_id,
        repair: false,
    };
    check_geometry(&blob, &rules)
        .map(|c| Some(c.blob))
        .map_err(|r| invalid(format!("geometry: {}", r.reason)))
}

/// The row (geometry blob, values) stored for a fid.
pub type Row = (Option<Vec<u8>>, Vec<Value>);

/// One change of a feature as its history lists it.
pub struct HistoryEntry {
    /// The change id.
    pub change: i64,
    /// Whether the change wrote the feature (else it only removed or overwrote it).
    pub added: bool,
    /// What kind of change (edit, import, rollback, …).
    pub kind: String,
    /// Who made it.
    pub actor: String,
    /// When (UTC).
    pub at: String,
    /// The file or request it came from.
    pub source: Option<String>,
    /// The version it removed or overwrote.
    pub before: Option<Row>,
}

/// Where an edit's rows live: one write transaction of a store at a time. The checks,
/// the history and the answer are the same for every store; only this differs.
pub trait Rows {
    /// Starts the write transaction.
    fn begin(&mut self) -> Result<(), EditError>;
    /// Ends it without a trace.
    fn rollback(&mut self);
    /// Commits it.
    fn commit(&mut self) -> Result<(), EditError>;
    /// The stored row of a fid (geometry as a GeoPackage blob in the layer's CRS).
    fn read_row(&mut self, def: &LayerDef, fid: i64) -> Result<Option<Row>, EditError>;
    /// The feature as the index holds it (EPSG:3857), for ETags and the answer.
    fn feature(&mut self, def: &LayerDef, fid: i64) -> Result<Option<Feature>, EditError>;
    /// Opens a change in the change log.
    fn begin_change(&mut self, def: &LayerDef, m: &ChangeMeta) -> Result<i64, EditError>;
    /// Copies a row into the history as removed (or overwritten) by `change`.
    fn save_removed(&mut self, def: &LayerDef, change: i64, fid: i64) -> Result<(), EditError>;
    /// Lists a fid in the history as written by `change`.
    fn save_added(&mut self, def: &LayerDef, change: i64, fid: i64) -> Result<(), EditError>;
    /// Deletes a row.
    fn delete(&mut self, def: &LayerDef, fid: i64) -> Result<(), EditError>;
    /// Inserts a row and returns its fid.
    fn insert(&mut self, def: &LayerDef, row: &Row) -> Result<i64, EditError>;
    /// Overwrites a row.
    fn update(&mut self, def: &LayerDef, fid: i64, row: &Row) -> Result<(), EditError>;
    /// The feature's history, oldest change first; for each change one entry saying
    /// what it removed (`before`) and, when it also wrote the fid, one with `added`.
    fn history_of(&mut self, def: &LayerDef, fid: i64) -> Result<Vec<HistoryEntry>, EditError>;
    /// Records the change's counts and the layer's grown extent (`None`: no geometry).
    fn finish_change(
        &mut self,
        def: &LayerDef,
        change: i64,
        extent: Option<crate::geom::Bbox>,
    ) -> Result<(), EditError>;
}

/// The GeoPackage store's rows.
pub struct GeoPackageRows<'a>(pub &'a Store);

impl Rows for GeoPackageRows<'_> {
    fn begin(&mut self) -> Result<(), EditError> {
        Ok(self.0.conn().execute_batch("BEGIN IMMEDIATE")?)
    }

    fn rollback(&mut self) {
        // Nothing was committed; a failed rollback leaves SQLite to roll back itself.
        let _ = self.0.conn().execute_batch("ROLLBACK");
    }

    fn commit(&mut self) -> Result<(), EditError> {
        crate::store::capture::prune(self.0.conn())?;
        Ok(self.0.conn().execute_batch("COMMIT")?)
    }

    fn read_row(&mut self, def: &LayerDef, fid: i64) -> Result<Option<Row>, EditError> {
        read_row(self.0.conn(), def, fid)
    }

    fn feature(&mut self, def: &LayerDef, fid: i64) -> Result<Option<Feature>, EditError> {
        Ok(index::load_features(self.0, def, Some(&[fid]))?.pop())
    }

    fn history_of(&mut self, def: &LayerDef, fid: i64) -> Result<Vec<HistoryEntry>, EditError> {
        let conn = self.0.conn();
        let table = history::history_table(&def.table);
        let exists: bool = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
            [&table],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut cols = vec![def.geom_select()];
        cols.extend(def.columns.iter().map(|c| q(&c.name)));
        let sql = format!(
            "SELECT h.change_id, h.change_op, c.kind, c.actor, c.at, c.source, {} FROM {} h
             JOIN nordgeo_changes c ON c.id = h.change_id
             WHERE h.{} = ?1 ORDER BY h.change_id, h.change_op DESC",
            cols.iter()
                .map(|c| if c == "NULL" {
                    c.clone()
                } else {
                    format!("h.{c}")
                })
                .collect::<Vec<_>>()
                .join(", "),
            q(&table),
            q(def.fid_column.as_deref().unwrap_or("fid"))
        );
        let n = def.columns.len();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([fid], |r| {
            let added = r.get::<_, String>(1)? == "added";
            let before = if added {
                None
            } else {
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    values.push(r.get::<_, Value>(7 + i)?);
                }
                Some((r.get(6)?, values))
            };
            Ok(HistoryEntry {
                change: r.get(0)?,
                added,
                kind: r.get(2)?,
                actor: r.get(3)?,
                at: r.get(4)?,
                source: r.get(5)?,
                before,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn begin_change(&mut self, def: &LayerDef, m: &ChangeMeta) -> Result<i64, EditError> {
        let id = history::begin_change(self.0.conn(), &def.table, m)?;
        history::ensure_history_table(self.0.conn(), def)?;
        Ok(id)
    }

    fn save_removed(&mut self, def: &LayerDef, change: i64, fid: i64) -> Result<(), EditError> {
        let by_fid = format!("{} = ?2", q(def.fid_column.as_deref().unwrap_or("fid")));
        history::save_removed(self.0.conn(), def, change, &by_fid, &[&fid])?;
        Ok(())
    }

    fn save_added(&mut self, def: &LayerDef, change: i64, fid: i64) -> Result<(), EditError> {
        let by_fid = format!("{} = ?2", q(def.fid_column.as_deref().unwrap_or("fid")));
        history::save_added(self.0.conn(), def, change, &by_fid, &[&fid])?;
        Ok(())
    }

    fn delete(&mut self, def: &LayerDef, fid: i64) -> Result<(), EditError> {
        let fid_col = q(def.fid_column.as_deref().unwrap_or("fid"));
        self.0.conn().execute(
            &format!("DELETE FROM {} WHERE {fid_col} = ?1", q(&def.table)),
            [fid],
        )?;
        Ok(())
    }

    fn insert(&mut self, def: &LayerDef, row: &Row) -> Result<i64, EditError> {
        let (cols, args) = row_columns(def, &row.0, &row.1);
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        self.0.conn().execute(
            &format!(
                "INSERT INTO {} ({}) VALUES ({})",
                q(&def.table),
                cols.join(", "),
                marks.join(", ")
            ),
            rusqlite::params_from_iter(args),
        )?;
        Ok(self.0.conn().last_insert_rowid())
    }

    fn update(&mut self, def: &LayerDef, fid: i64, row: &Row) -> Result<(), EditError> {
        let (cols, mut args) = row_columns(def, &row.0, &row.1);
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 1))
            .collect();
        args.push(Value::Integer(fid));
        self.0.conn().execute(
            &format!(
                "UPDATE {} SET {} WHERE {} = ?{}",
                q(&def.table),
                sets.join(", "),
                q(def.fid_column.as_deref().unwrap_or("fid")),
                args.len()
            ),
            rusqlite::params_from_iter(args),
        )?;
        Ok(())
    }

    fn finish_change(
        &mut self,
        def: &LayerDef,
        change: i64,
        extent: Option<crate::geom::Bbox>,
    ) -> Result<(), EditError> {
        let conn = self.0.conn();
        history::finish_change(conn, def, change)?;
        // The extent only grows here; a full recomputation is left to imports.
        if let Some(b) = extent {
            conn.execute(
                "UPDATE gpkg_contents SET min_x = min(coalesce(min_x, ?2), ?2), min_y = min(coalesce(min_y, ?3), ?3),
                        max_x = max(coalesce(max_x, ?4), ?4), max_y = max(coalesce(max_y, ?5), ?5),
                        last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                 WHERE table_name = ?1",
                rusqlite::params![def.table, b[0], b[1], b[2], b[3]],
            )?;
        } else {
            conn.execute(
                "UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE table_name = ?1",
                [&def.table],
            )?;
        }
        Ok(())
    }
}

fn read_row(
    conn: &rusqlite::Connection,
    def: &LayerDef,
    fid: i64,
) -> Result<Option<Row>, EditError> {
    let mut cols = vec![def.geom_select()];
    cols.extend(def.columns.iter().map(|c| q(&c.name)));
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = ?1",
        cols.join(", "),
        q(&def.table),
        q(def.fid_column.as_deref().unwrap_or("fid"))
    );
    let n = def.columns.len();
    Ok(conn
        .query_row(&sql, [fid], |r| {
            let geom: Option<Vec<u8>> = r.get(0)?;
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(r.get::<_, Value>(i + 1)?);
            }
            Ok((geom, values))
        })
        .optional()?)
}

fn properties(body: &Json, patch: bool) -> Result<Map<String, Json>, EditError> {
    let Some(members) = body.as_object() else {
        return Err(EditError::BadBody(
            "the body must be a GeoJSON Feature object".into(),
        ));
    };
    // A property at the top level is the commonest slip; say where it belongs.
    let allowed: &[&str] = if patch {
        &["type", "id", "geometry", "properties"]
    } else {
        &["type", "id", "geometry", "properties", "bbox", "links"]
    };
    if let Some(k) = members.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(EditError::BadBody(format!(
            "the body has '{k}' at its top level, where a {} has only {}; properties go inside \"properties\", e.g. {{\"properties\": {{\"{k}\": …}}}}",
            if patch {
                "merge patch of a feature"
            } else {
                "GeoJSON Feature"
            },
            allowed.join(", ")
        )));
    }
    match body.get("properties") {
        None | Some(Json::Null) => Ok(Map::new()),
        Some(Json::Object(m)) => Ok(m.clone()),
        Some(other) => Err(invalid(format!(
            "\"properties\" must be an object, got {other}"
        ))),
    }
}

fn municipality<'a>(e: &Edit, values: &'a [Value]) -> Option<&'a str> {
    let col = e.municipality_column?;
    let i = e.def.columns.iter().position(|c| c.name == col)?;
    match &values[i] {
        Value::Text(t) => Some(t.as_str()),
        _ => None,
    }
}

/// The new row of a create, replace or patch.
fn new_row(e: &Edit, current: Option<&Row>) -> Result<Row, EditError> {
    let body = e
        .body
        .ok_or_else(|| invalid("the request needs a GeoJSON body"))?;
    if let Some(t) = body.get("type")
        && t != "Feature"
    {
        return Err(invalid(format!(
            "the body must be a GeoJSON Feature, not {t}"
        )));
    }
    let patch = matches!(e.op, Op::Patch(_));
    let props = properties(body, patch)?;
    let fid_col = e.def.fid_column.as_deref().unwrap_or("fid");
    let mask = match current {
        Some(r) => e.audience.mask(&r.1),
        None => e.audience.columns(),
    };
    let settable = |i: usize| mask.get(i).copied().unwrap_or(false);
    for k in props.keys() {
        let known = e
            .def
            .columns
            .iter()
            .enumerate()
            .any(|(i, c)| &c.name == k && settable(i));
        if k != fid_col && !known {
            return Err(invalid(format!(
                "unknown property '{k}'; the properties of '{}' are: {}",
                e.def.table,
                e.def
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| settable(*i))
                    .map(|(_, c)| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut values = Vec::with_capacity(e.def.columns.len());
    for (i, c) in e.def.columns.iter().enumerate() {
        let kept = || current.map_or(Value::Null, |r| r.1[i].clone());
        values.push(match props.get(&c.name) {
            Some(v) => column_value(e.def, i, v)?,
            // What the caller cannot see it cannot clear either.
            None if patch || !settable(i) => kept(),
            None => column_value(e.def, i, &Json::Null)?,
        });
    }
    if let Some(col) = e.municipality_column
        && let Some(i) = e.def.columns.iter().position(|c| c.name == col)
        && let Value::Text(t) = &values[i]
    {
        let canonical = crate::municipality::canonical(t, e.municipalities)
            .map_err(|m| invalid(format!("property '{col}': {m}")))?;
        values[i] = Value::Text(canonical);
    }
    let geometry = match body.get("geometry") {
        Some(g) => geometry_blob(e, g)?,
        None if patch => current.and_then(|r| r.0.clone()),
        None => {
            return Err(invalid(
                "a Feature needs a \"geometry\" member (null for none)",
            ));
        }
    };
    Ok((geometry, values))
}

/// The columns of a row and their values, the geometry first when the table has one.
fn row_columns(
    def: &LayerDef,
    geom: &Option<Vec<u8>>,
    values: &[Value],
) -> (Vec<String>, Vec<Value>) {
    let mut cols: Vec<String> = def.geom_target().into_iter().collect();
    let mut args: Vec<Value> = Vec::with_capacity(values.len() + 1);
    if def.has_geometry() {
        args.push(geom.clone().map_or(Value::Null, Value::Blob));
    }
    cols.extend(def.columns.iter().map(|c| q(&c.name)));
    args.extend(values.iter().cloned());
    (cols, args)
}

/// Runs one edit in its own transaction (of a GeoPackage store).
pub fn apply(store: &Store, e: &Edit) -> Result<Outcome, EditError> {
    apply_to(&mut GeoPackageRows(store), e)
}

/// Runs one edit in its own transaction of any store; nothing is left of a refused one.
pub fn apply_to(rows: &mut dyn Rows, e: &Edit) -> Result<Outcome, EditError> {
    rows.begin()?;
    match apply_in(rows, e) {
        Ok(Some(change)) => {
            rows.commit()?;
            let feature = match e.op {
                Op::Delete(_) => None,
                _ => rows.feature(e.def, change.0)?,
            };
            Ok(Outcome {
                fid: change.0,
                change_id: Some(change.1),
                feature,
            })
        }
        Ok(None) => {
            // Nothing to change: nothing recorded.
            rows.rollback();
            let fid = match e.op {
                Op::Replace(f) | Op::Patch(f) | Op::Delete(f) => f,
                Op::Create => unreachable!("a create always changes something"),
            };
            Ok(Outcome {
                fid,
                change_id: None,
                feature: rows.feature(e.def, fid)?,
            })
        }
        Err(err) => {
            rows.rollback();
            Err(err)
        }
    }
}

/// The edit inside its transaction: `(fid, change id)`, or `None` when it would store
/// what is stored.
fn apply_in(rows: &mut dyn Rows, e: &Edit) -> Result<Option<(i64, i64)>, EditError> {
    let def = e.def;
    let target = match e.op {
        Op::Create => None,
        Op::Replace(f) | Op::Patch(f) | Op::Delete(f) => Some(f),
    };
    let current = match target {
        Some(fid) => Some(
            rows.read_row(def, fid)?
                .ok_or_else(|| EditError::NotFound(def.table.clone(), fid))?,
        ),
        None => None,
    };
    if let (Some(fid), Some(cur)) = (target, &current) {
        let tag = rows
            .feature(def, fid)?
            .map(|f| f.etag(e.audience.mask(&f.values)))
            .unwrap_or_default();
        if let Some(m) = e.if_match
            && m.trim() != "*"
            && !m.split(',').any(|t| t.trim() == tag)
        {
            return Err(EditError::Stale(fid, tag));
        }
        let m = municipality(e, &cur.1);
        if !(e.may_edit)(m) {
            return Err(EditError::Forbidden(format!(
                "your token may not change feature {fid} of '{}' (municipality {})",
                def.table,
                m.unwrap_or("none")
            )));
        }
    }
    let row = match e.op {
        Op::Delete(_) => None,
        _ => Some(new_row(e, current.as_ref())?),
    };
    if let Some(r) = &row {
        let m = municipality(e, &r.1);
        if !(e.may_edit)(m) {
            return Err(EditError::Forbidden(format!(
                "your token may not write a feature of '{}' for municipality {}",
                def.table,
                m.unwrap_or("none")
            )));
        }
        if let (Some(check), Some(blob)) = (e.placement, r.0.as_deref()) {
            check(m, blob).map_err(EditError::Forbidden)?;
        }
        for (text, rule) in e.rules {
            if rule.rejects(&r.1, None) {
                let which = target.map_or("the feature".to_string(), |f| format!("feature {f}"));
                return Err(invalid(format!(
                    "{which} {}",
                    crate::filter::rules::broken(text, def, &r.1)
                )));
            }
        }
    }
    // A write that would store what is stored changes nothing and records nothing.
    if let (Some(new), Some(cur)) = (&row, &current)
        && new == cur
    {
        return Ok(None);
    }
    let change = rows.begin_change(
        def,
        &ChangeMeta {
            kind: e.op.kind().into(),
            mode: None,
            municipality: row
                .as_ref()
                .and_then(|r| municipality(e, &r.1))
                .or(current.as_ref().and_then(|r| municipality(e, &r.1)))
                .map(str::to_string),
            source: Some(e.source.clone()),
            actor: e.actor.into(),
            note: None,
        },
    )?;
    if let Some(fid) = target {
        rows.save_removed(def, change, fid)?;
    }
    let fid = match (e.op, &row) {
        (Op::Delete(fid), _) => {
            rows.delete(def, fid)?;
            fid
        }
        (Op::Create, Some(r)) => rows.insert(def, r)?,
        (Op::Replace(fid) | Op::Patch(fid), Some(r)) => {
            rows.update(def, fid, r)?;
            fid
        }
        (_, None) => unreachable!("only a delete has no new row"),
    };
    if !matches!(e.op, Op::Delete(_)) {
        rows.save_added(def, change, fid)?;
    }
    let extent = row
        .as_ref()
        .and_then(|r| r.0.as_deref())
        .and_then(gpkg::envelope);
    rows.finish_change(def, change, extent)?;
    Ok(Some((fid, change)))
}
