//! Municipality names have one spelling each: the one in the layer of municipality
//! boundaries (`set-layer LAYER --boundaries COLUMN`). A value written anywhere is
//! cleaned (trimmed, Unicode NFC, no control or invisible format characters), then
//! matched against the known names regardless of case and umlaut spelling, and stored
//! in their spelling — so "WERTHER", " werther\t" and "Werther\u{200b}" are all
//! "Werther", and "Wertherr" is refused with the list of names.

use unicode_normalization::UnicodeNormalization;

use crate::store::functions::slug;
use crate::store::layer::q;
use crate::store::{Store, StoreError};

/// Invisible format characters people paste along with names (zero-width spaces and
/// joiners, direction marks, word joiners, the byte-order mark, soft hyphens).
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}')
}

/// A value trimmed, NFC-normalised, without control or invisible characters.
pub fn clean(s: &str) -> String {
    s.nfc()
        .filter(|c| !c.is_control() && !invisible(*c))
        .collect::<String>()
        .trim()
        .to_string()
}

/// The known spelling of a municipality (any spelling of it is accepted), or why not.
/// With no known municipalities any cleaned, non-empty name is accepted.
pub fn canonical(value: &str, known: &[String]) -> Result<String, String> {
    let v = clean(value);
    if v.is_empty() {
        return Err("the municipality is empty".into());
    }
    if known.is_empty() {
        return Ok(v);
    }
    let s = slug(&v);
    known.iter().find(|k| slug(k) == s).cloned().ok_or_else(|| {
        format!(
            "'{}' is not a municipality here; the municipalities are: {}",
            v.chars().take(80).collect::<String>(),
            known.join(", ")
        )
    })
}

/// The municipalities named in the store's boundary layer, sorted (none without one).
pub fn known(store: &Store) -> Result<Vec<String>, StoreError> {
    for def in store.layers()? {
        let Some(col) = store.meta(&def.table)?.boundaries else {
            continue;
        };
        let sql = format!(
            "SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY 1",
            c = q(&col),
            t = q(&def.table)
        );
        let mut st = store.conn().prepare(&sql).map_err(|e| store.err(e))?;
        let names = st
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| store.err(e))?;
        return Ok(names);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling() {
        let known = vec!["Heringen/Helme".to_string(), "Werther".to_string()];
        for v in [
            "WERTHER",
            " werther\t",
            "Werther\u{200b}",
            "Werther\u{0}",
            "werther ",
        ] {
            assert_eq!(canonical(v, &known).unwrap(), "Werther", "{v:?}");
        }
        assert_eq!(
            canonical("heringen helme", &known).unwrap(),
            "Heringen/Helme"
        );
        let e = canonical("Wertherr", &known).unwrap_err();
        assert!(e.contains("Heringen/Helme, Werther"), "{e}");
        assert!(canonical("\u{200b} ", &known).is_err());
        // NFD input (u + combining diaeresis) becomes NFC.
        assert_eq!(clean("Kyffha\u{0308}userland"), "Kyffhäuserland");
    }
}
