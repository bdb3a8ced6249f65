//! A `serve` host's heartbeat (docs/fleet.md): its services' rows beaten
//! on a thread of its own, over a connection of its own, so that a long
//! audit run or a slow round of `serve`'s loop does not make the host look
//! FAILED to the others. What the rows say (`status_message`) is set by the
//! loop (why the host could not reach its database, and when it came back).

use crate::store::Store;
use crate::store::fleet::Role;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the thread looks for its stop.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The heartbeat thread; it stops when dropped.
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    message: Arc<Mutex<Option<String>>>,
}

/// What the thread beats.
pub struct Beat {
    /// The database (a file: reopened only while it is still the one
    /// `serve` started with).
    pub db: crate::store::Location,
    /// Its identity when `serve` started (device, inode).
    pub identity: Option<Option<(u64, u64)>>,
    /// The host id.
    pub host: String,
    /// Its roles: one row each.
    pub roles: Vec<Role>,
    /// How often.
    pub every: Duration,
}

impl Heartbeat {
    /// Beats once now, over `store` (so that the host is listed before
    /// `serve` says it started; a database it cannot write is an error),
    /// then every `beat.every` on a thread of its own.
    pub fn start(store: &mut Store, beat: Beat) -> Result<Self, crate::store::StoreError> {
        for r in &beat.roles {
            store.heartbeat(&beat.host, *r, None)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let message: Arc<Mutex<Option<String>>> = Arc::default();
        let (s, m) = (Arc::clone(&stop), Arc::clone(&message));
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || run(beat, &s, &m))
            .ok();
        Ok(Self {
            stop,
            thread,
            message,
        })
    }

    /// What the rows say from the next beat on.
    pub fn say(&self, message: String) {
        *self.message.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(beat: Beat, stop: &AtomicBool, message: &Mutex<Option<String>>) {
    let mut store: Option<Store> = None;
    let mut next = Instant::now() + beat.every;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() < next {
            std::thread::sleep(STOP_POLL.min(next.saturating_duration_since(Instant::now())));
            continue;
        }
        next = Instant::now() + beat.every;
        if store.is_none() {
            store = super::serve::reopen(&beat.db, beat.identity).ok();
        }
        let Some(s) = store.as_mut() else {
            continue;
        };
        let said = message.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for r in &beat.roles {
            if let Err(e) = s.heartbeat(&beat.host, *r, said.as_deref()) {
                // serve's loop says why the database cannot be reached;
                // a fresh connection for the next beat.
                tracing::debug!("host {}: heartbeat: {e}", beat.host);
                store = None;
                break;
            }
        }
    }
}
