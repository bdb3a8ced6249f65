//! Concurrent requests for the same kept page (`page_cache.rs`) share one
//! answer: the check of the plan's event mark and, when it moved, the
//! page's build run once for all the requests waiting, not once each.
//!
//! A request never gets an answer older than itself: it takes the answer
//! of a run that *started* after it arrived, or runs one itself. Arrivals
//! and starts draw from one counter, so "started after" is a comparison of
//! two numbers. Requests for one page queue in arrival order (tokio's
//! mutex is fair): while a run is under way, the ones arriving wait; the
//! first of them runs the next one, which starts after all of them
//! arrived, and the others take its answer. N concurrent requests cost at
//! most two runs, and a run that failed is not shared (each request then
//! runs its own, to get its own error).

use axum::body::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The last answer of one page: the number its run started at, its bytes.
type Slot = Arc<tokio::sync::Mutex<Option<(u64, Bytes)>>>;

/// Pages' runs; above this many, the pages nobody is waiting for are
/// forgotten.
const PAGES: usize = 64;

/// The runs of pages keyed by `K`.
pub struct Flights<K> {
    clock: AtomicU64,
    slots: Mutex<HashMap<K, Slot>>,
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Self {
            clock: AtomicU64::new(1),
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Flights<K> {
    /// The answer for `key` of a `run` started after this call: its own,
    /// or that of a concurrent caller's.
    pub async fn run<E, F, Fut>(&self, key: &K, run: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let arrived = self.clock.fetch_add(1, Ordering::SeqCst);
        let slot = {
            let Ok(mut slots) = self.slots.lock() else {
                return run().await;
            };
            if slots.len() >= PAGES && !slots.contains_key(key) {
                slots.retain(|_, s| Arc::strong_count(s) > 1);
            }
            Arc::clone(slots.entry(key.clone()).or_default())
        };
        let mut last = slot.lock().await;
        if let Some((started, body)) = &*last
            && *started > arrived
        {
            return Ok(body.clone());
        }
        let started = self.clock.fetch_add(1, Ordering::SeqCst);
        let out = run().await;
        *last = out.as_ref().ok().map(|body| (started, body.clone()));
        out
    }

    /// How many pages have a slot (for tests).
    #[cfg(test)]
    fn pages(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A slow run whose answer is the number of runs started before it.
    async fn counted(runs: &AtomicUsize) -> Result<Bytes, String> {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok(Bytes::from(n.to_string()))
    }

    fn number(b: &Bytes) -> usize {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_share_at_most_two_runs_and_never_an_older_one() {
        let flights = Arc::new(Flights::<&'static str>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        // One run under way when 32 callers arrive.
        let first = {
            let (f, r) = (Arc::clone(&flights), Arc::clone(&runs));
            tokio::spawn(async move { f.run(&"p", || counted(&r)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let callers: Vec<_> = (0..32)
            .map(|_| {
                let (f, r) = (Arc::clone(&flights), Arc::clone(&runs));
                tokio::spawn(async move { f.run(&"p", || counted(&r)).await })
            })
            .collect();
        assert_eq!(number(&first.await.expect("join").expect("run")), 0);
        for c in callers {
            // They arrived while run 0 was under way: its answer is older
            // than they are; they get run 1's.
            assert_eq!(number(&c.await.expect("join").expect("run")), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "33 callers, two runs");
        // A caller arriving after every run ended runs again.
        let later = flights.run(&"p", || counted(&runs)).await.expect("run");
        assert_eq!(number(&later), 2);
        // Another page has runs of its own.
        let other = flights.run(&"q", || counted(&runs)).await.expect("run");
        assert_eq!(number(&other), 3);
    }

    #[tokio::test]
    async fn a_failed_run_is_not_shared_and_pages_nobody_waits_for_are_forgotten() {
        let flights = Flights::<usize>::default();
        let failed: Result<Bytes, String> = flights.run(&0, || async { Err("no".into()) }).await;
        assert_eq!(failed, Err("no".to_string()));
        let ok: Result<Bytes, String> = flights
            .run(&0, || async { Ok(Bytes::from_static(b"yes")) })
            .await;
        assert_eq!(ok, Ok(Bytes::from_static(b"yes")));
        for k in 1..=PAGES + 5 {
            let _: Result<Bytes, String> = flights.run(&k, || async { Ok(Bytes::new()) }).await;
        }
        assert!(flights.pages() <= PAGES, "{}", flights.pages());
    }
}
