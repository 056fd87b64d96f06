//! SQL functions every writing connection registers: the `ST_*` functions the GeoPackage
//! R-tree triggers call (a connection without them cannot insert into a GDAL-made file
//! either), and `nordgeo_slug` for municipality matching.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use crate::geom::gpkg;

/// Registers `ST_IsEmpty`, `ST_MinX`, `ST_MaxX`, `ST_MinY`, `ST_MaxY` and `nordgeo_slug`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("ST_IsEmpty", 1, flags, |ctx| {
        let blob = ctx.get_raw(0).as_blob_or_null()?;
        Ok(blob.map(|b| gpkg::envelope(b).is_none()))
    })?;
    for (name, idx) in [
        ("ST_MinX", 0usize),
        ("ST_MinY", 1),
        ("ST_MaxX", 2),
        ("ST_MaxY", 3),
    ] {
        conn.create_scalar_function(name, 1, flags, move |ctx| {
            let blob = ctx.get_raw(0).as_blob_or_null()?;
            Ok(blob.and_then(gpkg::envelope).map(|e| e[idx]))
        })?;
    }
    conn.create_scalar_function("nordgeo_slug", 1, flags, |ctx| {
        let s = ctx.get_raw(0).as_str_or_null()?;
        Ok(s.map(slug))
    })?;
    Ok(())
}

/// A name folded for matching: lower case, umlauts spelled out, runs of other characters
/// turned into one '-' ("Heringen/Helme" -> "heringen-helme", "Kyffhäuserland" ->
/// "kyffhaeuserland").
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut dash = false;
    for ch in s.trim().chars().flat_map(char::to_lowercase) {
        let rep: &str = match ch {
            'ä' => "ae",
            'ö' => "oe",
            'ü' => "ue",
            'ß' => "ss",
            c if c.is_alphanumeric() => {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                out.push(c);
                continue;
            }
            _ => {
                dash = true;
                continue;
            }
        };
        if dash && !out.is_empty() {
            out.push('-');
        }
        dash = false;
        out.push_str(rep);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs() {
        assert_eq!(slug("Heringen/Helme"), "heringen-helme");
        assert_eq!(slug(" Kyffhäuserland "), "kyffhaeuserland");
        assert_eq!(slug("werther"), "werther");
    }
}
