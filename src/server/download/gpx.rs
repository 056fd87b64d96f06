//! GPX 1.1 for hikers' devices and apps: each line feature one track, named, in WGS 84.

use std::fmt::Write as _;

use geo::Geometry;

/// The document's start, with the collection's title as metadata.
pub fn head(title: &str, link: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<gpx version=\"1.1\" creator=\"nordgeo\" xmlns=\"http://www.topografix.com/GPX/1/1\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:schemaLocation=\"http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd\">\n\
<metadata><name>{}</name><link href=\"{}\"/></metadata>\n",
        esc(title),
        esc(link)
    )
}

/// The document's end.
pub const TAIL: &str = "</gpx>\n";

/// One track: `lonlat` is the line geometry in WGS 84 (x longitude, y latitude); each
/// part becomes a segment. Other geometries write nothing.
pub fn track(out: &mut String, name: &str, desc: &str, lonlat: &Geometry<f64>) {
    let parts: Vec<&geo::LineString<f64>> = match lonlat {
        Geometry::LineString(l) => vec![l],
        Geometry::MultiLineString(m) => m.0.iter().collect(),
        _ => return,
    };
    let _ = write!(out, "<trk><name>{}</name>", esc(name));
    if !desc.is_empty() {
        let _ = write!(out, "<desc>{}</desc>", esc(desc));
    }
    for l in parts {
        out.push_str("<trkseg>");
        for c in &l.0 {
            let _ = write!(out, "<trkpt lat=\"{}\" lon=\"{}\"/>", c.y, c.x);
        }
        out.push_str("</trkseg>");
    }
    out.push_str("</trk>\n");
}

/// Escapes text for XML content and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // Characters XML 1.0 does not allow are left out.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_per_line_with_escaped_name() {
        let mut s = String::new();
        let g: Geometry<f64> = geo::LineString::from(vec![(10.5, 51.4), (10.6, 51.5)]).into();
        track(&mut s, "Weg <A & B>", "", &g);
        assert_eq!(
            s,
            "<trk><name>Weg &lt;A &amp; B&gt;</name><trkseg><trkpt lat=\"51.4\" lon=\"10.5\"/>\
<trkpt lat=\"51.5\" lon=\"10.6\"/></trkseg></trk>\n"
        );
    }
}
