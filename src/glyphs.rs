//! Map label glyphs: MapLibre's `glyphs` ranges (SDF bitmaps in protobuf), rendered
//! from local font files by `pbf_font_tools` on first request and kept in memory, so
//! labels never come from a third-party font host.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pbf_font_tools::Fontstack;
use pbf_font_tools::freetype::Library;
use pbf_font_tools::prost::Message;

/// Font size, SDF radius and cutoff MapLibre's own glyph servers use.
const SIZE: usize = 24;
const RADIUS: usize = 8;
const CUTOFF: f64 = 0.25;

/// Why a glyph range cannot be served.
#[derive(Debug, thiserror::Error)]
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

/// Rendered ranges by (font stack, first code point).
type RangeCache = Mutex<HashMap<(String, u32), Arc<Vec<u8>>>>;

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
        Glyphs {
            fonts,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Installed font names.
    pub fn names(&self) -> Vec<String> {
        self.fonts.keys().cloned().collect()
    }

    /// The PBF for one range of a comma-separated font stack; each code point comes
    /// from the first font of the stack that has it.
    pub fn range(&self, stack: &str, range: &str) -> Result<Arc<Vec<u8>>, GlyphError> {
        let bad = || GlyphError::BadRange(range.to_string());
        let (a, b) = range.split_once('-').ok_or_else(bad)?;
        let (start, end): (u32, u32) =
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if start % 256 != 0 || end != start + 255 || end > 65_535 {
            return Err(bad());
        }
        let key = (stack.to_string(), start);
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let paths: Vec<&PathBuf> = stack
            .split(',')
            .filter_map(|n| self.fonts.get(n.trim()))
            .collect();
        if paths.is_empty() {
            return Err(GlyphError::UnknownFont {
                stack: stack.to_string(),
                available: self.names().join(", "),
            });
        }
        let mut parts = Vec::new();
        for p in paths {
            parts.push(
                pbf_font_tools::glyph_range_for_font(p, start, end, SIZE, RADIUS, CUTOFF).map_err(
                    |e| GlyphError::Render {
                        path: p.display().to_string(),
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
                range: range.to_string(),
                glyphs: Vec::new(),
            });
            g
        });
        let bytes = Arc::new(glyphs.encode_to_vec());
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, bytes.clone());
        }
        Ok(bytes)
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
