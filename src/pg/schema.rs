//! nordgeo's own tables in a PostGIS store, beside the layers.

use super::{PgError, PgStore};

/// The tables and the capture function, `{s}` standing for the quoted schema. The
/// settings table has the GeoPackage store's columns plus where a published table is.
const DDL: &str = r#"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.nordgeo_layers (
  table_name text PRIMARY KEY,
  title text, description text, attribution text, municipality_column text,
  public_properties text, internal_properties text, min_zoom integer, max_zoom integer,
  restricted boolean NOT NULL DEFAULT false, boundaries text, boundary_margin_m double precision,
  key_columns text, rules text,
  source_schema text, source_table text, fid_column text, geom_column text
);
CREATE TABLE IF NOT EXISTS {s}.nordgeo_capture (
  seq bigserial PRIMARY KEY,
  layer text NOT NULL,
  fid bigint,
  what text NOT NULL DEFAULT 'feature',
  at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.nordgeo_capture_pruned (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  upto bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.nordgeo_changes (
  id bigserial PRIMARY KEY,
  layer text NOT NULL,
  kind text NOT NULL,
  mode text,
  municipality text,
  source text,
  actor text NOT NULL,
  at text NOT NULL DEFAULT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
  added bigint NOT NULL DEFAULT 0,
  removed bigint NOT NULL DEFAULT 0,
  note text
);
CREATE TABLE IF NOT EXISTS {s}.nordgeo_tokens (
  name text PRIMARY KEY,
  hash text NOT NULL UNIQUE,
  role text NOT NULL,
  municipality text,
  collections text,
  created text NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
  expires text,
  revoked text
);
CREATE TABLE IF NOT EXISTS {s}.nordgeo_access_log (
  id bigserial PRIMARY KEY,
  at text NOT NULL DEFAULT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
  token text NOT NULL,
  collection text NOT NULL,
  fids text NOT NULL,
  request text NOT NULL
);
CREATE OR REPLACE FUNCTION {s}.nordgeo_capture() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- One writing transaction at a time (in every schema whose tables this capture
  -- table follows: the key names the capture table's schema, not the table's) from its first captured change to its commit:
  -- capture numbers then become visible in order, so a reader's cursor never passes a
  -- number that a transaction still running would commit later.
  PERFORM pg_advisory_xact_lock(hashtext('nordgeo_capture:{s}'));
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO {s}.nordgeo_capture (layer, what) VALUES (TG_ARGV[0], 'layer');
  ELSIF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO {s}.nordgeo_capture (layer, fid) SELECT $1, %I FROM nordgeo_new', TG_ARGV[1]) USING TG_ARGV[0];
  ELSIF TG_OP = 'UPDATE' THEN
    EXECUTE format('INSERT INTO {s}.nordgeo_capture (layer, fid) SELECT $1, f FROM (SELECT %1$I AS f FROM nordgeo_old UNION SELECT %1$I FROM nordgeo_new) u', TG_ARGV[1]) USING TG_ARGV[0];
  ELSE
    EXECUTE format('INSERT INTO {s}.nordgeo_capture (layer, fid) SELECT $1, %I FROM nordgeo_old', TG_ARGV[1]) USING TG_ARGV[0];
  END IF;
  PERFORM pg_notify('nordgeo_changes', TG_ARGV[0]);
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION {s}.nordgeo_capture_turn() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- Taken before a statement touches any row: a writer never holds row locks while it
  -- waits for its turn, so writers of tracked tables cannot deadlock over it.
  PERFORM pg_advisory_xact_lock(hashtext('nordgeo_capture:{s}'));
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION {s}.nordgeo_capture_settings() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('nordgeo_capture:{s}'));
  INSERT INTO {s}.nordgeo_capture (layer, what)
    VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.table_name ELSE NEW.table_name END, 'settings');
  PERFORM pg_notify('nordgeo_changes', 'settings');
  RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS nordgeo_capture_settings ON {s}.nordgeo_layers;
CREATE TRIGGER nordgeo_capture_settings AFTER INSERT OR UPDATE OR DELETE ON {s}.nordgeo_layers
  FOR EACH ROW EXECUTE FUNCTION {s}.nordgeo_capture_settings();
"#;

/// The advisory lock every writer of the store's capture takes (see the function above).
pub fn capture_lock(store: &PgStore) -> String {
    format!(
        "SELECT pg_advisory_xact_lock(hashtext('nordgeo_capture:{}'))",
        super::layers::q(store.schema())
    )
}

/// Creates nordgeo's tables and functions where missing (one instance at a time).
pub fn ensure(store: &mut PgStore) -> Result<(), PgError> {
    let ddl = DDL.replace("{s}", &super::layers::q(store.schema()));
    let lock = format!(
        "SELECT pg_advisory_xact_lock(hashtext('nordgeo_schema:{}'))",
        store.schema()
    );
    let done = (|| {
        let mut tx = store.client().transaction()?;
        tx.batch_execute(&lock)?;
        tx.batch_execute(&ddl)?;
        tx.commit()
    })();
    done.map_err(|e| store.err(e))
}
