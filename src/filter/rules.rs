//! Layer rules: conditions in CQL2 text over a layer's properties that every feature
//! must meet (`set-layer --rule "free_places >= 0 AND free_places <= capacity"`),
//! checked on every import and every edit. A rule is broken only by a definite `false`,
//! as an SQL CHECK constraint is: a rule about a NULL property holds.

use rusqlite::types::Value;

use super::Pred;
use crate::store::LayerDef;

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => format!("'{}'", t.chars().take(40).collect::<String>()),
        Value::Blob(b) => format!("{} bytes", b.len()),
    }
}

/// Binds a layer rule (CQL2 text over its properties) to the layer's columns.
pub fn compile(rule: &str, def: &LayerDef) -> Result<Pred, String> {
    let expr = super::parse(rule, super::Lang::Text).map_err(|e| e.to_string())?;
    let visible = vec![true; def.columns.len()];
    let no_geometry =
        |_: geo::Geometry<f64>| Err("a rule may use the properties only, not the geometry".into());
    let schema = super::Schema {
        collection: &def.table,
        columns: &def.columns,
        visible: &visible,
        geom_column: &def.geom_column,
        to_index: &no_geometry,
    };
    schema.bind(&expr).map_err(|e| e.to_string())
}

/// Why a feature breaks a rule: the rule and the values of the properties it names.
pub fn broken(rule: &str, def: &LayerDef, values: &[Value]) -> String {
    let shown: Vec<String> = def
        .columns
        .iter()
        .zip(values)
        .filter(|(c, _)| rule.contains(c.name.as_str()))
        .map(|(c, v)| format!("{} = {}", c.name, describe(v)))
        .collect();
    format!("breaks the rule '{rule}' ({})", shown.join(", "))
}
