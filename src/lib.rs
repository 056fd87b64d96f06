//! nordgeo: a vector-tile and OGC API Features server on a GeoPackage store.
//!
//! The data path reads top to bottom: `server` (request, handler) -> `index` (R-tree
//! query on an in-memory snapshot) -> `geom`/`crs` (geometry work) -> encoding.
//! Writes go `import` -> `store` (one SQLite transaction with history).

pub mod auth;
pub mod cli;
pub mod config;
pub mod crs;
pub mod edit;
pub mod export;
pub mod export_tiles;
pub mod filter;
pub mod generate;
pub mod geom;
pub mod glyphs;
pub mod import;
pub mod index;
pub mod server;
pub mod store;
pub mod tiles;
