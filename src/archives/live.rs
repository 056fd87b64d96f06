//! An archive as its file is now: a request that may follow a change to the file (its
//! directory's inotify queue is not empty, or no watch is possible there) compares the
//! file's identity (device, inode, size, modification time) with the open one's, and a
//! file renamed over it is opened in its place, once, before the tile is read. A
//! replacement that cannot be opened is an error on every request until it is fixed —
//! never the old file's tiles.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::watch::DirWatch;
use super::{ArchiveError, TileArchive, file_name};

/// What identifies the file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    let m = std::fs::metadata(path)?;
    Ok(Identity {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// The open file and what it was.
pub struct Opened {
    /// The archive.
    pub archive: Box<dyn TileArchive>,
    identity: Identity,
    /// Changes with every file opened: part of the tiles' ETags.
    pub generation: u64,
}

/// A served archive.
pub struct LiveArchive {
    /// Its name in the configuration and URLs.
    pub name: String,
    /// Attribution from the configuration, instead of the file's.
    pub attribution: Option<String>,
    path: PathBuf,
    current: ArcSwap<Result<Opened, String>>,
    reopening: Mutex<()>,
    /// Set while a check runs: a request that finds the watch's queue already drained
    /// must wait for the check instead of taking the file it replaces.
    checking: AtomicBool,
    /// The last generation handed out: never reused, so no cached tile of an earlier
    /// file can be taken for the current one's.
    generation: AtomicU64,
    watch: Option<DirWatch>,
}

/// Clears the `checking` flag when a check ends, however it ends.
struct Checking<'a>(&'a AtomicBool);

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl LiveArchive {
    /// The attribution to show: the configuration's, else the file's.
    pub fn attribution<'a>(&'a self, info: &'a super::ArchiveInfo) -> Option<&'a str> {
        self.attribution
            .as_deref()
            .or(info.attribution.as_deref())
            .filter(|a| !a.trim().is_empty())
    }

    /// Opens the file; a corrupt or missing one is refused (at start).
    pub fn open(name: &str, path: &Path) -> Result<LiveArchive, ArchiveError> {
        // Watching first: a replacement while the file is being opened is then an event.
        let watch = DirWatch::new(path);
        let id = identity(path).map_err(|e| ArchiveError::Io {
            name: name.into(),
            file: file_name(path),
            msg: e.to_string(),
        })?;
        let archive = super::open(name, path)?;
        Ok(LiveArchive {
            name: name.into(),
            attribution: None,
            path: path.into(),
            current: ArcSwap::from_pointee(Ok(Opened {
                archive,
                identity: id,
                generation: 1,
            })),
            reopening: Mutex::new(()),
            checking: AtomicBool::new(false),
            generation: AtomicU64::new(1),
            watch,
        })
    }

    /// The archive as the file is now.
    pub fn get(&self) -> Result<Arc<Result<Opened, String>>, ArchiveError> {
        // The order matters: a rename queues its event before it returns, and the queue
        // is drained only after `checking` is set, so a request after the rename sees
        // the event, or the check in progress, or the check's result.
        if let Some(w) = &self.watch
            && !w.pending()
            && !self.checking.load(Ordering::SeqCst)
        {
            let cur = self.current.load_full();
            if cur.is_ok() {
                return Ok(cur);
            }
        }
        self.check()
    }

    /// Looks at the file and opens it if it is not the one open.
    fn check(&self) -> Result<Arc<Result<Opened, String>>, ArchiveError> {
        let _one = self.reopening.lock().unwrap_or_else(|p| p.into_inner());
        self.checking.store(true, Ordering::SeqCst);
        let _done = Checking(&self.checking);
        let cur = self.current.load_full();
        if let Some(w) = &self.watch
            && !w.drain()
            && cur.is_ok()
        {
            return Ok(cur);
        }
        let now = match identity(&self.path) {
            Ok(now) => now,
            Err(e) => {
                let e = ArchiveError::Io {
                    name: self.name.clone(),
                    file: file_name(&self.path),
                    msg: e.to_string(),
                };
                // Kept as the state so that every request looks at the file until it is back.
                self.current.store(Arc::new(Err(e.to_string())));
                return Err(e);
            }
        };
        if matches!(&*cur, Ok(o) if o.identity == now) {
            return Ok(cur);
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let next = match super::open(&self.name, &self.path) {
            Ok(archive) => {
                tracing::info!(archive = %self.name, "tile archive replaced: serving the new file");
                Ok(Opened {
                    archive,
                    identity: now,
                    generation,
                })
            }
            Err(e) => {
                tracing::error!(archive = %self.name, error = %e, "the replaced tile archive cannot be opened");
                Err(e.to_string())
            }
        };
        self.current.store(Arc::new(next));
        Ok(self.current.load_full())
    }
}
