//! Layer settings — who may read a layer, which properties only token holders see, its
//! zoom range and texts — live in one place, the store's `nordgeo_layers` table. The
//! command line and the configuration file change them through here; a configuration
//! file never loosens access the store grants unless the administrator says so.

use rusqlite::TransactionBehavior;

use super::WriteError;
use crate::store::history::{self, ChangeMeta};
use crate::store::{LayerDef, LayerMeta, Store, write_meta};

/// How far (metres) outside its boundary a maintainer may place a feature unless the
/// boundary layer says otherwise.
pub const DEFAULT_MARGIN_M: f64 = 100.0;

/// A change of a layer's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Attribution shown on maps.
    pub attribution: Option<String>,
    /// The column naming each feature's municipality.
    pub municipality_column: Option<String>,
    /// Readable only with a token.
    pub restricted: Option<bool>,
    /// Properties only token holders see (replaces the list).
    pub internal: Option<Vec<String>>,
    /// First zoom with tiles.
    pub min_zoom: Option<u8>,
    /// Zoom of full detail.
    pub max_zoom: Option<u8>,
    /// The column naming each municipality, when this layer holds their boundaries.
    pub boundaries: Option<String>,
    /// Metres outside its boundary a maintainer may still place a feature.
    pub boundary_margin_m: Option<f64>,
    /// The columns that identify a feature (an empty list removes the key).
    pub key: Option<Vec<String>>,
    /// The conditions every feature must meet (an empty list removes them).
    pub rules: Option<Vec<String>>,
}

/// One setting a change would alter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Altered {
    /// The setting.
    pub setting: &'static str,
    /// Its value now.
    pub before: String,
    /// Its value after.
    pub after: String,
    /// Whether the change shows more to callers than before.
    pub loosens: bool,
}

fn show<T: std::fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(x) => format!("{x:?}"),
        None => "unset".into(),
    }
}

/// The settings after a change, and what it alters.
pub fn apply(meta: &LayerMeta, s: &Settings) -> (LayerMeta, Vec<Altered>) {
    let mut m = meta.clone();
    let mut out = Vec::new();
    let mut text = |name: &'static str, dst: &mut Option<String>, v: &Option<String>| {
        if v.is_some() && dst != v {
            out.push(Altered {
                setting: name,
                before: show(dst),
                after: show(v),
                loosens: false,
            });
            dst.clone_from(v);
        }
    };
    text("title", &mut m.title, &s.title);
    text("boundaries", &mut m.boundaries, &s.boundaries);
    text("description", &mut m.description, &s.description);
    text("attribution", &mut m.attribution, &s.attribution);
    if let Some(v) = s.boundary_margin_m
        && m.boundary_margin_m != Some(v)
    {
        out.push(Altered {
            setting: "boundary_margin_m",
            before: show(&m.boundary_margin_m),
            after: v.to_string(),
            loosens: v > m.boundary_margin_m.unwrap_or(DEFAULT_MARGIN_M),
        });
        m.boundary_margin_m = Some(v);
    }
    // Which municipality a maintainer may edit follows this column: changing it is an
    // access change in both directions.
    if s.municipality_column.is_some() && m.municipality_column != s.municipality_column {
        out.push(Altered {
            setting: "municipality_column",
            before: show(&m.municipality_column),
            after: show(&s.municipality_column),
            loosens: true,
        });
        m.municipality_column.clone_from(&s.municipality_column);
    }
    if let Some(r) = s.restricted
        && r != m.restricted
    {
        out.push(Altered {
            setting: "restricted",
            before: m.restricted.to_string(),
            after: r.to_string(),
            loosens: !r,
        });
        m.restricted = r;
    }
    if let Some(list) = &s.internal
        && list != &m.internal_properties
    {
        let loosens = m.internal_properties.iter().any(|p| !list.contains(p));
        out.push(Altered {
            setting: "internal",
            before: format!("{:?}", m.internal_properties),
            after: format!("{list:?}"),
            loosens,
        });
        m.internal_properties.clone_from(list);
    }
    if let Some(k) = &s.key {
        let k = (!k.is_empty()).then(|| k.clone());
        if k != m.key {
            out.push(Altered {
                setting: "key",
                before: show(&m.key),
                after: show(&k),
                loosens: false,
            });
            m.key = k;
        }
    }
    if let Some(r) = &s.rules
        && r != &m.rules
    {
        out.push(Altered {
            setting: "rules",
            before: format!("{:?}", m.rules),
            after: format!("{r:?}"),
            // Fewer rules let more values through.
            loosens: m.rules.iter().any(|x| !r.contains(x)),
        });
        m.rules.clone_from(r);
    }
    for (name, dst, v) in [
        ("min_zoom", &mut m.min_zoom, s.min_zoom),
        ("max_zoom", &mut m.max_zoom, s.max_zoom),
    ] {
        if v.is_some() && *dst != v {
            out.push(Altered {
                setting: name,
                before: show(dst),
                after: show(&v),
                loosens: false,
            });
            *dst = v;
        }
    }
    (m, out)
}

/// Checks a change against the layer's columns and the zoom limits.
pub fn check(store: &Store, layer: &str, s: &Settings) -> Result<(), WriteError> {
    let def = store.layer(layer)?;
    let known = |c: &str| def.columns.iter().any(|x| x.name == c);
    if s.boundary_margin_m
        .is_some_and(|m| !(0.0..=100_000.0).contains(&m))
    {
        return Err(WriteError::Invalid(format!(
            "layer '{layer}': the boundary margin is metres from 0 to 100000"
        )));
    }
    for c in s
        .internal
        .iter()
        .flatten()
        .chain(&s.municipality_column)
        .chain(&s.boundaries)
    {
        if !known(c) {
            return Err(WriteError::Invalid(format!(
                "layer '{layer}' has no property '{c}'; its properties are: {}",
                def.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if s.max_zoom.is_some_and(|z| z > 22) || s.min_zoom.is_some_and(|z| z > 22) {
        return Err(WriteError::Invalid(format!(
            "layer '{layer}': zoom levels go from 0 to 22"
        )));
    }
    for c in s.key.iter().flatten() {
        if !known(c) {
            return Err(WriteError::Invalid(format!(
                "layer '{layer}' has no property '{c}' to key its features by"
            )));
        }
    }
    if let Some(k) = s.key.as_ref().filter(|k| !k.is_empty()) {
        check_key(store, &def, k)?;
    }
    for r in s.rules.iter().flatten() {
        check_rule(store, &def, r)?;
    }
    let meta = store.meta(layer)?;
    let (after, _) = apply(&meta, s);
    if let (Some(a), Some(b)) = (after.min_zoom, after.max_zoom)
        && a > b
    {
        return Err(WriteError::Invalid(format!(
            "layer '{layer}': min_zoom {a} is above max_zoom {b}"
        )));
    }
    Ok(())
}

/// Changes a layer's settings in one transaction, recorded in the change log. A change
/// that loosens access is refused unless `may_loosen`.
pub fn set(
    store: &Store,
    layer: &str,
    s: &Settings,
    actor: &str,
    may_loosen: bool,
) -> Result<(LayerMeta, Vec<Altered>), WriteError> {
    check(store, layer, s)?;
    let err = |e| WriteError::Store(store.err(e));
    let tx = rusqlite::Transaction::new_unchecked(store.conn(), TransactionBehavior::Immediate)
        .map_err(err)?;
    let meta = store.meta(layer)?;
    let (after, altered) = apply(&meta, s);
    if altered.is_empty() {
        return Ok((meta, altered));
    }
    if !may_loosen && let Some(a) = altered.iter().find(|a| a.loosens) {
        return Err(WriteError::Conflict(format!(
            "layer '{layer}': {} would change from {} to {}, which shows more than the store allows now; \
             change it with `nordgeo set-layer`, or start with --allow-loosening if the configuration file is right",
            a.setting, a.before, a.after
        )));
    }
    write_meta(&tx, layer, &after).map_err(err)?;
    let note = altered
        .iter()
        .map(|a| format!("{}: {} -> {}", a.setting, a.before, a.after))
        .collect::<Vec<_>>()
        .join("; ");
    history::begin_change(
        &tx,
        layer,
        &ChangeMeta {
            kind: "settings".into(),
            mode: None,
            municipality: None,
            source: None,
            actor: actor.into(),
            note: Some(note),
        },
    )
    .map_err(err)?;
    super::commit(tx).map_err(err)?;
    Ok((after, altered))
}

/// A key must identify every stored feature: no NULLs, no value twice.
fn check_key(
    store: &Store,
    def: &crate::store::LayerDef,
    key: &[String],
) -> Result<(), WriteError> {
    use crate::store::layer::q;
    let cols: Vec<String> = key.iter().map(|c| q(c)).collect();
    let expr = format!("json_array({})", cols.join(", "));
    let err = |e| WriteError::Store(store.err(e));
    let nulls: i64 = store
        .conn()
        .query_row(
            &format!(
                "SELECT count(*) FROM {} WHERE {}",
                q(&def.table),
                cols.iter()
                    .map(|c| format!("{c} IS NULL"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if nulls > 0 {
        return Err(WriteError::Invalid(format!(
            "{nulls} features of '{}' have no value for {}; fill them in before keying the layer by it",
            def.table,
            key.join(", ")
        )));
    }
    let dups: Vec<String> = store
        .conn()
        .prepare(&format!(
            "SELECT {expr} FROM {} GROUP BY 1 HAVING count(*) > 1 LIMIT 5",
            q(&def.table)
        ))
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(err)?;
    if !dups.is_empty() {
        return Err(WriteError::Invalid(format!(
            "{} does not identify the features of '{}': {} appear more than once",
            key.join(", "),
            def.table,
            dups.join(", ")
        )));
    }
    Ok(())
}

/// A rule must be readable, about properties only, and hold for every stored feature.
fn check_rule(store: &Store, def: &crate::store::LayerDef, rule: &str) -> Result<(), WriteError> {
    let pred = crate::filter::rules::compile(rule, def)
        .map_err(|e| WriteError::Invalid(format!("rule '{rule}': {e}")))?;
    let features = crate::index::read_features(store.conn(), def, None)
        .map_err(|e| WriteError::Store(store.err(e)))?;
    let broken: Vec<String> = features
        .iter()
        .filter(|f| pred.rejects(&f.values, None))
        .take(5)
        .map(|f| f.fid.to_string())
        .collect();
    if !broken.is_empty() {
        return Err(WriteError::Invalid(format!(
            "features of '{}' break the rule '{rule}' now (fids {}); correct them first",
            def.table,
            broken.join(", ")
        )));
    }
    Ok(())
}

/// Whether `column` of a layer may be dropped: it exists and no setting names it.
pub fn droppable(def: &LayerDef, meta: &LayerMeta, column: &str) -> Result<(), WriteError> {
    let layer = &def.table;
    if !def.columns.iter().any(|c| c.name == column) {
        return Err(WriteError::NotFound(format!(
            "layer '{layer}' has no column '{column}'"
        )));
    }
    let used = meta.municipality_column.as_deref() == Some(column)
        || meta.boundaries.as_deref() == Some(column)
        || meta.key.iter().flatten().any(|k| k == column)
        || meta.rules.iter().any(|r| r.contains(column));
    if used {
        return Err(WriteError::Conflict(format!(
            "column '{column}' is named in the settings of '{layer}' (municipality column, key or a rule); change those first"
        )));
    }
    Ok(())
}

/// Drops a column added by mistake (administrators), as a change of its own that keeps
/// the column's values: undoing it brings the column back whole.
pub fn drop_column(
    store: &Store,
    layer: &str,
    column: &str,
    actor: &str,
) -> Result<i64, WriteError> {
    let def = store.layer(layer)?;
    let meta = store.meta(layer)?;
    droppable(&def, &meta, column)?;
    let err = |e| WriteError::Store(store.err(e));
    let tx = rusqlite::Transaction::new_unchecked(store.conn(), TransactionBehavior::Immediate)
        .map_err(err)?;
    let id = history::drop_column(&tx, &def, column, actor).map_err(err)?;
    if meta.internal_properties.iter().any(|p| p == column) {
        let mut m = meta.clone();
        m.internal_properties.retain(|p| p != column);
        write_meta(&tx, layer, &m).map_err(err)?;
    }
    crate::store::capture::whole_layer(&tx, layer).map_err(err)?;
    super::commit(tx).map_err(err)?;
    Ok(id)
}
