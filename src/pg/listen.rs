//! Waking a server when the PostGIS store changed: `LISTEN` on its own connection, with
//! a bounded wait so a server also looks by itself (a replica cannot listen; a lost
//! notification must not delay a change for longer than one wait).

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use super::PgStore;

/// What woke the waiter.
#[derive(Debug, Default, Clone, Copy)]
pub struct Woken {
    /// Layer data or settings changed (or the wait ran out: look anyway).
    pub data: bool,
    /// Tokens changed (or the connection was re-made: read them again).
    pub tokens: bool,
}

/// A listening connection, re-made with backoff when lost.
pub struct Listener {
    url: String,
    schema: String,
    conn: Option<PgStore>,
    retry_at: Instant,
    backoff: Duration,
    /// Whether the last attempt to listen worked (for `/ready` and the log).
    pub listening: bool,
}

impl Listener {
    /// A listener for the store at `url` (connects on the first wait).
    pub fn new(url: &str, schema: &str) -> Listener {
        Listener {
            url: url.into(),
            schema: schema.into(),
            conn: None,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(250),
            listening: false,
        }
    }

    /// Waits up to `max` for a notification; returns what changed.
    pub fn wait(&mut self, max: Duration) -> Woken {
        let mut woken = Woken::default();
        if self.conn.as_ref().is_none_or(PgStore::is_closed) {
            self.conn = None;
            if Instant::now() >= self.retry_at {
                match self.connect() {
                    Ok(c) => {
                        self.conn = Some(c);
                        self.backoff = Duration::from_millis(250);
                        // Whatever happened while not listening is caught up now.
                        woken.tokens = true;
                        woken.data = true;
                    }
                    Err(e) => {
                        if self.listening {
                            tracing::warn!(error = %e, "not listening for changes of the PostGIS store; looking every {} ms", max.as_millis());
                        }
                        self.listening = false;
                        self.retry_at = Instant::now() + self.backoff;
                        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            // Nothing can tell us: look at everything, tokens too.
            std::thread::sleep(max);
            woken.data = true;
            woken.tokens = true;
            return woken;
        };
        let mut lost = false;
        {
            let mut notes = conn.client().notifications();
            let mut note = |n: postgres::Notification| {
                if n.payload() == "tokens" {
                    woken.tokens = true;
                }
            };
            match notes.timeout_iter(max).next() {
                Ok(Some(n)) => note(n),
                Ok(None) => {}
                Err(_) => lost = true,
            }
            // Take whatever else already arrived, without waiting again.
            let mut rest = notes.iter();
            loop {
                match rest.next() {
                    Ok(Some(n)) => note(n),
                    Ok(None) => break,
                    Err(_) => {
                        lost = true;
                        break;
                    }
                }
            }
        }
        if lost {
            self.conn = None;
        }
        // Without a notification, look anyway: cheap, and it covers a lost one.
        woken.data = true;
        woken
    }

    fn connect(&mut self) -> Result<PgStore, super::PgError> {
        let mut c = PgStore::connect(&self.url, &self.schema)?;
        c.client()
            .batch_execute("LISTEN nordgeo_changes")
            .map_err(|e| c.err(e))?;
        self.listening = true;
        Ok(c)
    }
}
