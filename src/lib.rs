//! nordgeo: a vector-tile and OGC API Features server on a GeoPackage store.
//!
//! The data path reads top to bottom: `server` (request, handler) -> `catalog` (the
//! current snapshot of every layer) -> `index` (R-tree query) -> `geom`/`crs`
//! (geometry work) -> encoding (`tiles`, GeoJSON).
//! Every write goes through `write` (and `import`) -> `store` (one SQLite transaction
//! with history); the store's change capture brings it back to every `catalog`.

pub mod archives;
pub mod audience;
pub mod auth;
pub mod bounded;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod crs;
pub mod export;
pub mod export_tiles;
pub mod filter;
pub mod generate;
pub mod geom;
pub mod glyphs;
pub mod import;
pub mod index;
pub mod municipality;
pub mod pg;
pub mod server;
pub mod sprites;
pub mod store;
pub mod tiles;
pub mod write;
