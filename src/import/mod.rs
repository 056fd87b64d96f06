//! Reading a GeoPackage for an import: the file opened as untrusted (`source`), each
//! layer planned against the store (`plan`: mode, CRS, columns that must fit, key,
//! municipality, rules), every feature checked (`check`) and staged on disk with a
//! report of what the import would add, change, keep and remove (`stage`). Writing the
//! staged import into the store is `write::import`: all or nothing, nothing lost.

pub mod check;
pub mod plan;
pub mod report;
pub mod source;
pub mod stage;

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::types::Value;

use crate::store::StoreError;
pub use plan::Plan;
pub use report::{ImportReport, LayerReport, Rejected};
pub use source::{Source, SourceError};
pub use stage::{Staged, stage};

/// How an import treats the target layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The layer must not exist yet.
    Create,
    /// Replace the layer's features (or one municipality's).
    Replace,
    /// Add features to the layer.
    Append,
}

impl Mode {
    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Replace => "replace",
            Mode::Append => "append",
        }
    }
}

/// What to import and how.
#[derive(Clone)]
pub struct ImportOptions {
    /// The GeoPackage to import.
    pub file: PathBuf,
    /// Only this source layer.
    pub layer: Option<String>,
    /// Target layer name (only with one source layer).
    pub into: Option<String>,
    /// Mode.
    pub mode: Mode,
    /// Limit the import to one municipality.
    pub municipality: Option<String>,
    /// Check only.
    pub dry_run: bool,
    /// Repair invalid polygons.
    pub repair: bool,
    /// Reproject a new layer to this EPSG code (otherwise it keeps its CRS).
    pub target_crs: Option<i32>,
    /// Who is importing (recorded in the change log).
    pub actor: String,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// How long the import may run; past it (or when cancelled) it stops and writes nothing.
    pub budget: crate::store::budget::Budget,
    /// Add columns the file has and the layer lacks (else such a file is refused).
    pub add_columns: bool,
    /// Import features that are exact copies of stored ones (an append would list them
    /// twice).
    pub allow_duplicates: bool,
    /// Metres beyond the layer's extent from which a feature is reported as far away.
    pub max_distance_m: f64,
    /// Where the importer may place features (maintainers: inside their municipality).
    pub placement: Option<Arc<Placement>>,
}

/// Given a feature's municipality and geometry blob (the target CRS), why the importer
/// may not put it there.
pub type Placement = dyn Fn(Option<&str>, &[u8]) -> Result<(), String> + Send + Sync;

impl ImportOptions {
    /// Options for importing `file` with defaults for everything but the mode.
    pub fn new(file: PathBuf, mode: Mode, actor: impl Into<String>) -> ImportOptions {
        ImportOptions {
            file,
            layer: None,
            into: None,
            mode,
            municipality: None,
            dry_run: false,
            repair: false,
            target_crs: None,
            actor: actor.into(),
            progress: false,
            budget: Default::default(),
            add_columns: false,
            allow_duplicates: false,
            max_distance_m: 10_000.0,
            placement: None,
        }
    }
}

/// Why an import did not happen; the store is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file itself.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request does not fit the store (mode, names, schema).
    #[error("{0}")]
    Plan(String),
    /// Features failed the checks.
    #[error("{count} feature(s) rejected; nothing was imported (the report above lists each one)")]
    Rejected {
        /// How many.
        count: usize,
        /// The full report.
        report: Box<ImportReport>,
    },
}

/// A value for a message.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => format!("'{}' (text)", t.chars().take(40).collect::<String>()),
        Value::Blob(b) => format!("{} bytes of binary data", b.len()),
    }
}
