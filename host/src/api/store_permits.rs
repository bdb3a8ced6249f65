//! How many of the API's store calls run at once: at most `concurrency`,
//! and at most `concurrency_while_applying` while this `serve` applies a
//! plan, so that the applier's own database work goes first (on
//! PostgreSQL each store call keeps a backend process busy at the
//! server's priority).
//!
//! Invariant: a call takes the general permit before the applying one, so
//! no two calls wait for each other's.

use super::state::Applying;
use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

/// The permits of the API's store calls.
pub struct StorePermits {
    all: Semaphore,
    applying: Semaphore,
    plans: Applying,
}

/// A store call's right to run; dropped when the call ends.
pub struct StorePermit<'a> {
    _all: SemaphorePermit<'a>,
    _applying: Option<SemaphorePermit<'a>>,
}

impl StorePermits {
    /// `concurrency` calls at once, `while_applying` (at most
    /// `concurrency`) while `plans` counts a plan being applied.
    pub fn new(concurrency: usize, while_applying: usize, plans: Applying) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            all: Semaphore::new(concurrency),
            applying: Semaphore::new(while_applying.clamp(1, concurrency)),
            plans,
        }
    }

    /// Waits for a permit.
    pub async fn acquire(&self) -> Result<StorePermit<'_>, AcquireError> {
        let all = self.all.acquire().await?;
        let applying = match self.plans.any() {
            true => Some(self.applying.acquire().await?),
            false => None,
        };
        Ok(StorePermit {
            _all: all,
            _applying: applying,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// The most calls that held a permit at once, of `n` started together.
    async fn most_at_once(permits: Arc<StorePermits>, n: usize) -> usize {
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let (p, now, most) = (Arc::clone(&permits), Arc::clone(&now), Arc::clone(&most));
                tokio::spawn(async move {
                    let _permit = p.acquire().await.expect("permit");
                    let at = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(at, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for c in calls {
            c.await.expect("call");
        }
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn while_a_plan_is_applied_store_calls_go_one_at_a_time_and_all_may_run_after() {
        let plans = Applying::default();
        let permits = Arc::new(StorePermits::new(8, 1, plans.clone()));
        assert_eq!(
            most_at_once(Arc::clone(&permits), 8).await,
            8,
            "no plan: all eight"
        );
        let applying = plans.enter();
        assert_eq!(
            most_at_once(Arc::clone(&permits), 8).await,
            1,
            "a plan: one at a time"
        );
        let second = plans.enter();
        drop(applying);
        assert_eq!(
            most_at_once(Arc::clone(&permits), 8).await,
            1,
            "still one plan"
        );
        drop(second);
        assert_eq!(
            most_at_once(permits, 8).await,
            8,
            "the plans ended: all eight again"
        );
    }

    #[test]
    fn the_bound_while_applying_is_at_least_one_and_at_most_the_general_one() {
        let p = StorePermits::new(4, 100, Applying::default());
        assert_eq!(p.applying.available_permits(), 4);
        let p = StorePermits::new(4, 0, Applying::default());
        assert_eq!(p.applying.available_permits(), 1);
    }
}
