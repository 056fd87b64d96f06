//! The server's configuration: one TOML file, every key with a default, each overridden
//! by its `NORDGEO_*` environment variable or command-line flag (flag > environment >
//! file > default). Layer settings in the file are written into the store's layer
//! settings at start, so every command and every replica sees the same; the store stays
//! the one source of truth, and a file never loosens access it grants without
//! `--allow-loosening`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};
use crate::write::settings::Altered;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read {path}: {msg}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        msg: String,
    },
    /// Not valid TOML or an unknown key (the message names the line).
    #[error("{path}: {msg}")]
    Parse {
        /// File.
        path: String,
        /// Cause, with line and column.
        msg: String,
    },
    /// A value that cannot work.
    #[error("configuration: {0}")]
    Invalid(String),
    /// The store refused the layer settings.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Listen address.
    pub bind: SocketAddr,
    /// Public base URL for links (behind a reverse proxy).
    pub public_url: Option<String>,
    /// Tile cache in megabytes (0: off).
    pub cache_mb: usize,
    /// Folder with styles/, examples/ and web/node_modules/.
    pub files: PathBuf,
    /// Folder with the label fonts.
    pub fonts: PathBuf,
    /// Refuse PUT, PATCH and DELETE without If-Match.
    pub require_if_match: bool,
    /// Largest HTTP import, in megabytes.
    pub max_upload_mb: usize,
    /// Longest a read may take, in seconds.
    pub request_timeout_s: u64,
    /// Longest an HTTP import may run, in seconds (it then stops and writes nothing).
    pub import_timeout_s: f64,
    /// Origins allowed by CORS (`*` for any).
    pub cors_origins: Vec<String>,
    /// Reverse proxies (IP addresses) whose `Forwarded`/`X-Forwarded-*` headers are
    /// believed; without them links come from `public_url` or the address connected to.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Seconds a client may take to send its request headers.
    pub header_timeout_s: u64,
    /// A separate address serving `/metrics` without a token (on the main address it
    /// needs an admin token).
    pub metrics_bind: Option<SocketAddr>,
    /// The largest distance, in metres of the storage CRS, between a circular arc and
    /// the chords that stand in for it where output cannot carry arcs (GeoJSON, tiles).
    pub arc_tolerance_m: f64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            cache_mb: 256,
            files: PathBuf::from("."),
            fonts: PathBuf::from("/usr/share/fonts/truetype/dejavu"),
            require_if_match: false,
            max_upload_mb: 512,
            request_timeout_s: 60,
            import_timeout_s: 600.0,
            cors_origins: vec!["*".into()],
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            header_timeout_s: 10,
            metrics_bind: None,
            arc_tolerance_m: 0.01,
        }
    }
}

/// `[layers.NAME]`: what the portal shows of a layer and who may see it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayerSettings {
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Attribution shown on maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
    /// First zoom with tiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_zoom: Option<u8>,
    /// Zoom of full detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_zoom: Option<u8>,
    /// Readable only with a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restricted: Option<bool>,
    /// Properties only token holders see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal: Option<Vec<String>>,
    /// The column naming each feature's municipality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub municipality_column: Option<String>,
    /// This layer holds the municipalities' boundaries: the column naming each one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundaries: Option<String>,
    /// Metres outside its boundary a maintainer may still place a feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary_margin_m: Option<f64>,
    /// The columns that identify a feature (imports match by them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
    /// CQL2 conditions every feature must meet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
}

impl LayerSettings {
    /// As a change of the store's settings.
    pub fn to_settings(&self) -> crate::write::settings::Settings {
        crate::write::settings::Settings {
            title: self.title.clone(),
            description: self.description.clone(),
            attribution: self.attribution.clone(),
            municipality_column: self.municipality_column.clone(),
            restricted: self.restricted,
            internal: self.internal.clone(),
            min_zoom: self.min_zoom,
            max_zoom: self.max_zoom,
            boundaries: self.boundaries.clone(),
            boundary_margin_m: self.boundary_margin_m,
            key: self.key.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The store (`--store` and `NORDGEO_STORE` win): a GeoPackage file or a PostGIS
    /// database as postgresql://USER:PASSWORD@HOST:PORT/DATABASE.
    pub store: Option<String>,
    /// The schema of a PostGIS store (`--store-schema` and `NORDGEO_STORE_SCHEMA` win).
    pub store_schema: Option<String>,
    /// Server settings.
    pub server: ServerSettings,
    /// Layer settings by layer name.
    pub layers: BTreeMap<String, LayerSettings>,
    /// Tile archives (PMTiles, MBTiles) served at `/archives/{name}/…`.
    pub archives: BTreeMap<String, crate::archives::ArchiveSettings>,
    /// The citizens' portal.
    pub portal: PortalSettings,
}

/// `[portal]`: what the portal map draws underneath the municipal layers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSettings {
    /// The archive (a name under `[archives]`) the portal map uses as its basemap.
    pub basemap: Option<String>,
    /// Its schema: `openmaptiles`, `shortbread`, or `raster` (raster archives need not
    /// say so).
    pub basemap_schema: Option<String>,
}

impl Settings {
    /// Reads a file (none: all defaults).
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let Some(path) = path else {
            return Ok(Settings::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            msg: e.to_string().trim().to_string(),
        })
    }

    /// Checks what can be checked without the network: zoom ranges, folders, and
    /// (with a store) that every configured layer and column exists.
    pub fn check(&self, store: Option<&Store>) -> Result<(), ConfigError> {
        let s = &self.server;
        if let Some(u) = &s.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "server.public_url '{u}' must start with http:// or https://"
            )));
        }
        if s.request_timeout_s == 0 {
            return Err(ConfigError::Invalid(
                "server.request_timeout_s must be at least 1".into(),
            ));
        }
        if !(s.import_timeout_s > 0.0 && s.import_timeout_s < 1e7) {
            return Err(ConfigError::Invalid(
                "server.import_timeout_s must be a number of seconds above 0".into(),
            ));
        }
        for name in self.archives.keys() {
            if !crate::store::layer::valid_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "archives.{name}: an archive name is letters, digits and '_' (it is part of URLs)"
                )));
            }
        }
        if let Some(b) = &self.portal.basemap
            && !self.archives.contains_key(b)
        {
            return Err(ConfigError::Invalid(format!(
                "portal.basemap = '{b}' names no archive; add [archives.{b}] with path = \"FILE.pmtiles\""
            )));
        }
        if let Some(s) = &self.portal.basemap_schema
            && !["openmaptiles", "shortbread", "raster"].contains(&s.as_str())
        {
            return Err(ConfigError::Invalid(format!(
                "portal.basemap_schema = '{s}': use openmaptiles, shortbread or raster"
            )));
        }
        if !(s.arc_tolerance_m >= 0.0001 && s.arc_tolerance_m <= 10.0) {
            return Err(ConfigError::Invalid(format!(
                "server.arc_tolerance_m = {} must lie between 0.0001 and 10 (metres)",
                s.arc_tolerance_m
            )));
        }
        if s.max_connections == 0 || s.header_timeout_s == 0 {
            return Err(ConfigError::Invalid(
                "server.max_connections and server.header_timeout_s must be at least 1".into(),
            ));
        }
        if s.cors_origins.is_empty() {
            return Err(ConfigError::Invalid(
                "server.cors_origins is empty: list the portal's origins, or \"*\"".into(),
            ));
        }
        for (name, l) in &self.layers {
            if let (Some(a), Some(b)) = (l.min_zoom, l.max_zoom)
                && a > b
            {
                return Err(ConfigError::Invalid(format!(
                    "layers.{name}: min_zoom {a} is above max_zoom {b}"
                )));
            }
            if l.max_zoom.is_some_and(|z| z > 22) {
                return Err(ConfigError::Invalid(format!(
                    "layers.{name}: max_zoom must be 22 or less"
                )));
            }
            let Some(store) = store else { continue };
            let def = store.layer(name).map_err(|_| {
                ConfigError::Invalid(format!("layers.{name}: the store has no layer '{name}'"))
            })?;
            let cols: Vec<&str> = l
                .internal
                .iter()
                .flatten()
                .chain(&l.municipality_column)
                .chain(&l.boundaries)
                .map(String::as_str)
                .collect();
            if let Some(bad) = cols
                .iter()
                .find(|c| !def.columns.iter().any(|x| x.name == **c))
            {
                return Err(ConfigError::Invalid(format!(
                    "layers.{name}: the layer has no property '{bad}'"
                )));
            }
        }
        Ok(())
    }

    /// What starting with this file would change in each layer's settings in the store.
    pub fn layer_changes(&self, store: &Store) -> Result<Vec<(String, Vec<Altered>)>, ConfigError> {
        let mut out = Vec::new();
        for (name, l) in &self.layers {
            let meta = store.meta(name)?;
            let (_, altered) = crate::write::settings::apply(&meta, &l.to_settings());
            if !altered.is_empty() {
                out.push((name.clone(), altered));
            }
        }
        Ok(out)
    }

    /// Writes the layer settings into the store (only what differs), through the one
    /// write path. A setting that would show more than the store allows now is refused
    /// unless `may_loosen`. Returns how many layers changed.
    pub fn apply_layers(&self, store: &Store, may_loosen: bool) -> Result<usize, ConfigError> {
        let mut changed = 0;
        for (name, l) in &self.layers {
            let (_, altered) = crate::write::settings::set(
                store,
                name,
                &l.to_settings(),
                "configuration",
                may_loosen,
            )
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            changed += usize::from(!altered.is_empty());
        }
        Ok(changed)
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        // A database password in the store address is not printed.
        let mut shown = self.clone();
        shown.store = shown.store.map(|s| without_password(&s));
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

/// A connection address with its password replaced by `***`.
fn without_password(address: &str) -> String {
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_settings_leave_out_the_database_password() {
        let s = Settings {
            store: Some("postgresql://nordgeo:geheim@db:5432/geo".into()),
            ..Settings::default()
        };
        let t = s.to_toml();
        assert!(
            t.contains("postgresql://nordgeo:***@db:5432/geo") && !t.contains("geheim"),
            "{t}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = toml::from_str::<Settings>("[server]\nbnd = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("bnd"), "{e}");
        let s: Settings =
            toml::from_str("[layers.parking]\nmin_zoom = 12\nmax_zoom = 10\n").unwrap();
        assert!(s.check(None).is_err());
        let s: Settings = toml::from_str("[server]\ncache_mb = 64\n").unwrap();
        assert_eq!(s.server.cache_mb, 64);
        assert_eq!(s.server.max_upload_mb, 512);
        assert!(s.check(None).is_ok());
    }
}
