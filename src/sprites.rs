//! Sprite sheets for map styles: the SVG icons of a folder (`styles/icons/`) rendered
//! with resvg at 1× and 2× and packed in rows into one PNG, with the JSON index
//! MapLibre reads (`{"parking": {"x", "y", "width", "height", "pixelRatio"}}`).

use std::path::Path;

use resvg::{tiny_skia, usvg};

/// Errors making a sprite sheet.
#[derive(Debug, thiserror::Error)]
pub enum SpriteError {
    /// The folder cannot be read.
    #[error("the icons cannot be read: {0}")]
    Read(String),
    /// An icon is not an SVG resvg can draw.
    #[error("icon '{0}' is not a drawable SVG: {1}")]
    Svg(String, String),
    /// The PNG cannot be written.
    #[error("the sprite sheet cannot be encoded: {0}")]
    Encode(String),
}

/// A sprite sheet at one pixel ratio.
#[derive(Debug, Clone)]
pub struct Sheet {
    /// The PNG.
    pub png: Vec<u8>,
    /// The index, as JSON.
    pub index: serde_json::Value,
}

/// Widest sheet, in pixels; icons wrap into the next row after it.
const MAX_WIDTH: u32 = 512;
/// Pixels between icons, so neighbours never bleed into each other when scaled.
const GAP: u32 = 2;
/// Icons in a sheet at most, and their largest side at 1× (a folder is not a dump).
const MAX_ICONS: usize = 256;
const MAX_SIDE: f32 = 128.0;

/// Renders every `*.svg` of `dir` (sorted by name, the name without `.svg` as the
/// sprite id) at `ratio` (1 or 2).
pub fn render(dir: &Path, ratio: u32) -> Result<Sheet, SpriteError> {
    let mut files: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| SpriteError::Read(e.kind().to_string()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".svg")?.to_string();
            Some((id, e.path()))
        })
        .collect();
    files.sort();
    files.truncate(MAX_ICONS);
    let opts = usvg::Options::default();
    let mut icons: Vec<(String, tiny_skia::Pixmap)> = Vec::with_capacity(files.len());
    for (id, path) in files {
        let data = std::fs::read(&path).map_err(|e| SpriteError::Read(e.kind().to_string()))?;
        let tree = usvg::Tree::from_data(&data, &opts)
            .map_err(|e| SpriteError::Svg(id.clone(), e.to_string()))?;
        let size = tree.size();
        let scale = (MAX_SIDE / size.width().max(size.height())).min(1.0) * ratio as f32;
        let (w, h) = (
            (size.width() * scale).ceil() as u32,
            (size.height() * scale).ceil() as u32,
        );
        let mut pm = tiny_skia::Pixmap::new(w.max(1), h.max(1))
            .ok_or_else(|| SpriteError::Svg(id.clone(), "empty size".into()))?;
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(scale, scale),
            &mut pm.as_mut(),
        );
        icons.push((id, pm));
    }
    // Rows, left to right, each as tall as its tallest icon.
    let limit = MAX_WIDTH * ratio;
    let mut places = Vec::with_capacity(icons.len());
    let (mut x, mut y, mut row_h, mut width) = (0u32, 0u32, 0u32, 1u32);
    for (_, pm) in &icons {
        if x > 0 && x + pm.width() > limit {
            x = 0;
            y += row_h + GAP;
            row_h = 0;
        }
        places.push((x, y));
        x += pm.width() + GAP;
        row_h = row_h.max(pm.height());
        width = width.max(x);
    }
    let height = (y + row_h).max(1);
    let mut sheet = tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| SpriteError::Encode("empty sheet".into()))?;
    let mut index = serde_json::Map::new();
    for ((id, pm), (x, y)) in icons.iter().zip(&places) {
        sheet.draw_pixmap(
            *x as i32,
            *y as i32,
            pm.as_ref(),
            &tiny_skia::PixmapPaint::default(),
            tiny_skia::Transform::identity(),
            None,
        );
        index.insert(
            id.clone(),
            serde_json::json!({"x": x, "y": y, "width": pm.width(), "height": pm.height(), "pixelRatio": ratio}),
        );
    }
    let png = sheet
        .encode_png()
        .map_err(|e| SpriteError::Encode(e.to_string()))?;
    Ok(Sheet {
        png,
        index: serde_json::Value::Object(index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icons_are_packed_at_both_ratios() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("styles/icons");
        let one = render(&dir, 1).unwrap();
        let two = render(&dir, 2).unwrap();
        for id in ["parking", "kita", "trailhead", "viewpoint"] {
            let a = &one.index[id];
            let b = &two.index[id];
            assert_eq!(
                a["width"].as_u64().unwrap() * 2,
                b["width"].as_u64().unwrap()
            );
            assert_eq!(b["pixelRatio"], 2);
        }
        assert!(one.png.starts_with(b"\x89PNG"));
    }
}
