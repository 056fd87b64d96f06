//! Map label glyphs: MapLibre's `glyphs` ranges (SDF bitmaps in protobuf), rendered
//! from local font files by `pbf_font_tools` on first request and kept in memory, so
//! labels never come from a third-party font host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pbf_font_tools::Fontstack;
use pbf_font_tools::freetype::Library;
use pbf_font_tools::prost::Message;

/// Font size, SDF radius and cutoff MapLibre's own glyph servers use.
const SIZE: usize = 24;
const RADIUS: usize = 8;
const CUTOFF: f64 = 0.25;

/// Why a glyph range cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GlyphError {
    /// No font of the stack is installed.
    #[error("no font of '{stack}' is installed; available: {available}")]
    UnknownFont {
        /// The requested font stack.
        stack: String,
        /// The installed font names.
        available: String,
    },
    /// The range is not `N-(N+255)` with N a multiple of 256.
    #[error(
        "glyph range '{0}' must be like 0-255 or 256-511 (256 code points from a multiple of 256)"
    )]
    BadRange(String),
    /// FreeType failed.
    #[error("rendering glyphs from {path} failed: {msg}")]
    Render {
        /// Font file.
        path: String,
        /// Cause.
        msg: String,
    },
}

/// Bytes the rendered ranges may take (a range of DejaVu Sans is about 70 KB).
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Fonts one stack may name (MapLibre styles name two or three).
const MAX_STACK: usize = 8;

/// Rendered ranges by (installed fonts of the stack, first code point).
type RangeCache = crate::bounded::Cache<(Arc<str>, u32), Arc<Vec<u8>>>;

/// The installed fonts and the ranges rendered so far.
pub struct Glyphs {
    fonts: BTreeMap<String, PathBuf>,
    cache: RangeCache,
}

impl Glyphs {
    /// Finds the TrueType/OpenType fonts in `dir`, named as MapLibre names them
    /// ("family style", e.g. "DejaVu Sans Book"). A missing folder gives no fonts.
    pub fn scan(dir: &Path) -> Self {
        let mut fonts = BTreeMap::new();
        let lib = Library::init();
        if let (Ok(lib), Ok(entries)) = (lib, std::fs::read_dir(dir)) {
            for e in entries.flatten() {
                let path = e.path();
                let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
                if !matches!(ext.to_ascii_lowercase().as_str(), "ttf" | "otf") {
                    continue;
                }
                let Ok(face) = lib.new_face(&path, 0) else {
                    tracing::warn!(font = %path.display(), "not a font FreeType can read; skipped");
                    continue;
                };
                if let Some(family) = face.family_name() {
                    let name = match face.style_name() {
                        Some(style) => format!("{family} {style}"),
                        None => family,
                    };
                    fonts.insert(name, path);
                }
            }
        }
        let cache = crate::bounded::cache(
            CACHE_BYTES,
            64 * 1024,
            |k: &(Arc<str>, u32), v: &Arc<Vec<u8>>| (k.0.len() + v.len() + 64) as u64,
        );
        Glyphs { fonts, cache }
    }

    /// Installed font names.
    pub fn names(&self) -> Vec<String> {
        self.fonts.keys().cloned().collect()
    }

    /// The PBF for one range of a comma-separated font stack; each code point comes
    /// from the first font of the stack that has it.
    pub fn range(&self, stack: &str, range: &str) -> Result<Arc<Vec<u8>>, GlyphError> {
        let bad = || GlyphError::BadRange(range.chars().take(40).collect());
        let (a, b) = range.split_once('-').ok_or_else(bad)?;
        let (start, end): (u32, u32) =
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if start % 256 != 0 || end != start + 255 || end > 65_535 {
            return Err(bad());
        }
        // Only installed fonts make the key: a request cannot grow the cache by naming
        // fonts that do not exist, nor repeat one to get another entry.
        let mut names: Vec<&str> = Vec::new();
        for n in stack.split(',').map(str::trim) {
            if self.fonts.contains_key(n) && !names.contains(&n) && names.len() < MAX_STACK {
                names.push(n);
            }
        }
        if names.is_empty() {
            return Err(GlyphError::UnknownFont {
                stack: stack.chars().take(200).collect(),
                available: self.names().join(", "),
            });
        }
        let canonical: Arc<str> = names.join(",").into();
        self.cache
            .get_or_insert_with(&(canonical.clone(), start), || {
                self.render(&canonical, &names, start, end)
            })
    }

    fn render(
        &self,
        stack: &str,
        names: &[&str],
        start: u32,
        end: u32,
    ) -> Result<Arc<Vec<u8>>, GlyphError> {
        let paths: Vec<&PathBuf> = names.iter().filter_map(|n| self.fonts.get(*n)).collect();
        let mut parts = Vec::new();
        for p in paths {
            parts.push(
                pbf_font_tools::glyph_range_for_font(p, start, end, SIZE, RADIUS, CUTOFF).map_err(
                    |e| GlyphError::Render {
                        path: p
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        msg: e.to_string(),
                    },
                )?,
            );
        }
        // An empty range (no font covers it) is still a valid, empty stack.
        let glyphs = pbf_font_tools::combine_glyphs(parts).unwrap_or_else(|| {
            let mut g = pbf_font_tools::Glyphs::default();
            g.stacks.push(Fontstack {
                name: stack.to_string(),
                range: format!("{start}-{end}"),
                glyphs: Vec::new(),
            });
            g
        });
        Ok(Arc::new(glyphs.encode_to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let g = Glyphs::scan(Path::new("/nonexistent"));
        assert!(matches!(
            g.range("X", "0-100"),
            Err(GlyphError::BadRange(_))
        ));
        assert!(matches!(
            g.range("X", "1-256"),
            Err(GlyphError::BadRange(_))
        ));
        assert!(matches!(
            g.range("X", "0-255"),
            Err(GlyphError::UnknownFont { .. })
        ));
    }

    #[test]
    fn renders_dejavu_when_installed() {
        let g = Glyphs::scan(Path::new("/usr/share/fonts/truetype/dejavu"));
        if !g.names().iter().any(|n| n == "DejaVu Sans Book") {
            return; // fonts-dejavu-core missing: the server tests say so
        }
        let pbf = g.range("DejaVu Sans Book", "0-255").unwrap();
        let msg = pbf_font_tools::Glyphs::decode(pbf.as_slice()).unwrap();
        let stack = &msg.stacks[0];
        assert!(stack.glyphs.iter().any(|gl| gl.id == u32::from('ü')));
        assert!(stack.glyphs.len() > 180);
    }
}
