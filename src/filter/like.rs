//! `LIKE` patterns: `%` any run, `_` one character, `\` escapes either.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// A literal character.
    Char(char),
    /// `_`
    One,
    /// `%`
    Any,
}

/// Compiles a pattern.
pub fn compile(pattern: &str) -> Vec<Part> {
    let mut out = Vec::new();
    let mut cs = pattern.chars();
    while let Some(c) = cs.next() {
        out.push(match c {
            '\\' => Part::Char(cs.next().unwrap_or('\\')),
            '%' => Part::Any,
            '_' => Part::One,
            c => Part::Char(c),
        });
    }
    out
}

/// Whether `s` matches, in linear space with the usual backtrack-to-last-`%` method.
pub fn matches(pattern: &[Part], s: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pattern.get(p) {
            Some(Part::Any) => {
                star = Some((p, i));
                p += 1;
            }
            Some(Part::One) => {
                p += 1;
                i += 1;
            }
            Some(Part::Char(c)) if *c == s[i] => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|x| *x == Part::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_escapes() {
        let m = |p: &str, s: &str| matches(&compile(p), s);
        assert!(m("Kita%", "Kita Sonnenschein"));
        assert!(!m("kita%", "Kita Sonnenschein"));
        assert!(m("%Mühle%", "Straße Alte Mühle"));
        assert!(m("_b_", "äbc"));
        assert!(!m("_b_", "abcd"));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(m("%a%b%c", "xxaxxbxxc"));
        assert!(m("%", ""));
        assert!(!m("a", ""));
    }
}
