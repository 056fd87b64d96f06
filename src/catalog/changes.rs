//! Change events and the record of recent ones. Every commit the catalog applies becomes
//! one [`ChangeEvent`] per layer; the tile cache asks [`Recent`] whether anything changed
//! under a cached tile since it was rendered, so a tile from an older generation is
//! never served once a newer one is visible, whatever the order of render and commit.

use std::collections::VecDeque;

use crate::geom::Bbox;

/// Where a change happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Boxes {
    /// Extents (EPSG:3857) of the old and new versions of every changed feature.
    Some(Vec<Bbox>),
    /// Anywhere: the layer was rewritten, removed, or its settings changed.
    Whole,
}

impl Boxes {
    /// Whether the change touches a box (EPSG:3857).
    pub fn touches(&self, b: Bbox) -> bool {
        match self {
            Boxes::Whole => true,
            Boxes::Some(list) => list
                .iter()
                .any(|x| x[0] <= b[2] && b[0] <= x[2] && x[1] <= b[3] && b[1] <= x[3]),
        }
    }
}

/// One applied change of one layer.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// Layer name.
    pub layer: String,
    /// The catalog generation that made it visible.
    pub generation: u64,
    /// Where it changed.
    pub boxes: Boxes,
    /// Whether the layer's settings (access, properties, zooms, title) changed.
    pub settings_changed: bool,
}

/// How many events are kept; a cached tile older than all of them is re-rendered.
const KEEP: usize = 4096;

/// The most recent change events, oldest first.
#[derive(Debug, Default)]
pub struct Recent {
    events: VecDeque<ChangeEvent>,
    /// Generation of the newest event no longer kept.
    floor: u64,
}

impl Recent {
    /// Records applied events (in generation order).
    pub fn push(&mut self, events: &[ChangeEvent]) {
        for e in events {
            self.events.push_back(e.clone());
        }
        while self.events.len() > KEEP {
            if let Some(e) = self.events.pop_front() {
                self.floor = e.generation;
            }
        }
    }

    /// Whether `layer` changed within `bounds` after generation `since`, up to `until`.
    /// Unknown (events dropped) counts as changed.
    pub fn changed(&self, layer: &str, since: u64, until: u64, bounds: Bbox) -> bool {
        if since >= until {
            return false;
        }
        if since < self.floor {
            return true;
        }
        self.events
            .iter()
            .rev()
            .take_while(|e| e.generation > since)
            .filter(|e| e.generation <= until && e.layer == layer)
            .any(|e| e.boxes.touches(bounds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_under_the_box_and_in_the_range_count() {
        let mut r = Recent::default();
        let ev = |g, b: Boxes| ChangeEvent {
            layer: "parking".into(),
            generation: g,
            boxes: b,
            settings_changed: false,
        };
        r.push(&[
            ev(5, Boxes::Some(vec![[0.0, 0.0, 1.0, 1.0]])),
            ev(6, Boxes::Some(vec![[10.0, 10.0, 11.0, 11.0]])),
        ]);
        let tile = [0.5, 0.5, 2.0, 2.0];
        assert!(r.changed("parking", 4, 6, tile));
        assert!(!r.changed("parking", 5, 6, tile));
        assert!(!r.changed("trails", 4, 6, tile));
        assert!(r.changed("parking", 5, 6, [9.0, 9.0, 10.0, 10.0]));
        for g in 7..(7 + KEEP as u64) {
            r.push(&[ev(g, Boxes::Whole)]);
        }
        // Dropped events count as changes.
        assert!(r.changed("parking", 5, 10_000, [100.0, 100.0, 101.0, 101.0]));
    }
}
