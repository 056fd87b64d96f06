//! Folding: when a layer's overlay has grown, a background thread builds a new base of
//! the same content (queries stay fast, memory stays bounded) and swaps it in, keeping
//! every change that was applied while it worked. Content and generation do not change,
//! so cached tiles stay valid.

use std::sync::Arc;

use super::{Catalog, Live, Snapshot};
use crate::index::Layer;

/// Overlay entries a layer of `n` features carries before it is folded: an edit copies
/// the overlay and every query scans it, a fold rebuilds the whole layer.
fn threshold(n: usize) -> usize {
    (n / 16).clamp(64, 1024)
}

impl Live {
    /// Starts folding a layer if its overlay is past the threshold and no fold of it runs.
    pub(super) fn maybe_fold(self: &Arc<Self>, name: &str) {
        let cat = self.catalog();
        let Some(snap) = cat.get(name).cloned() else {
            return;
        };
        if snap.overlay().len() <= threshold(snap.base().len()) {
            return;
        }
        {
            let mut running = self.folding.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(name.to_string()) {
                return;
            }
        }
        let live = self.clone();
        let owned = name.to_string();
        let spawned = std::thread::Builder::new()
            .name("fold".into())
            .spawn(move || {
                let name = owned;
                let started = std::time::Instant::now();
                let folded = Snapshot::new(snap.layer.folded(), None);
                let swapped = live.swap_folded(&name, &snap, &folded);
                live.folding
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
                drop((snap, folded));
                release_memory();
                tracing::info!(
                    layer = %name,
                    swapped,
                    ms = started.elapsed().as_millis() as u64,
                    "layer folded"
                );
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a fold; the layer keeps its overlay");
            self.folding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
        }
    }

    /// Swaps a folded snapshot in, with the changes applied since `from` laid over it.
    fn swap_folded(&self, name: &str, from: &Snapshot, folded: &Snapshot) -> bool {
        let _applying = self.lock();
        let cat = self.catalog();
        let Some(current) = cat.get(name) else {
            return false;
        };
        let Some(layer) = Layer::rebase(&folded.layer, &from.layer, &current.layer) else {
            return false;
        };
        let next = Snapshot::new(layer, Some(folded));
        self.current
            .store(Arc::new(cat.with_layer(name, Some(Arc::new(next)))));
        true
    }
}

impl Catalog {
    /// The same catalog with one layer replaced (`Some`) or removed (`None`), at the same
    /// generation.
    pub fn with_layer(&self, name: &str, layer: Option<Arc<Snapshot>>) -> Catalog {
        let mut layers = self.layers.clone();
        match (self.position(name), layer) {
            (Some(i), Some(l)) => layers[i] = l,
            (Some(i), None) => {
                layers.remove(i);
            }
            (None, Some(l)) => layers.push(l),
            (None, None) => {}
        }
        Catalog::from_layers(layers, self.generation)
    }
}

/// Gives the memory of a dropped base back to the system: the allocator would otherwise
/// keep the freed pages of a few hundred megabytes for good.
pub(super) fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
