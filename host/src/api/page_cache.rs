//! The last answers of `GET /v1/actions?action_plan_uuid=…` (the plain
//! list, in creation order), kept as bytes and served again while the
//! plan's event mark ([`crate::store::PlanEventsMark`]) has not moved: a
//! 1,000-action page of a plan nobody is changing costs one indexed query
//! instead of reading and writing a thousand rows.
//!
//! An answer is keyed by everything it is made of besides the rows: the
//! whole query (the `next` link repeats it), the base URL, the shape
//! (microversion, extras). It is kept only when the filter is the plan's
//! full uuid (a name or a prefix could come to name another plan) and with
//! the mark read before its rows (`store/plan_marks.rs`). At most
//! [`KEPT`] answers are kept, the oldest dropped first.

use super::action_json::Shape;
use crate::store::PlanEventsMark;
use axum::body::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The most answers kept (a 1,000-action page is about 330 kB).
pub const KEPT: usize = 32;

/// What an answer is made of besides its plan's rows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The plan's uuid.
    pub plan: String,
    /// The query's parameters, sorted.
    pub query: Vec<(String, String)>,
    /// The base URL of the links.
    pub base: String,
    /// The fields of each action.
    pub shape: Shape,
}

struct Kept {
    mark: PlanEventsMark,
    body: Bytes,
}

/// The answers kept.
#[derive(Default)]
pub struct ActionPages {
    kept: Mutex<(HashMap<PageKey, Kept>, VecDeque<PageKey>)>,
}

impl ActionPages {
    /// The answer kept for `key`, if it was made at `mark`.
    pub fn get(&self, key: &PageKey, mark: PlanEventsMark) -> Option<Bytes> {
        let kept = self.kept.lock().ok()?;
        kept.0
            .get(key)
            .filter(|k| k.mark == mark)
            .map(|k| k.body.clone())
    }

    /// Keeps `body`, made from rows read after `mark` was.
    pub fn put(&self, key: PageKey, mark: PlanEventsMark, body: Bytes) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        let (map, order) = &mut *kept;
        if map.insert(key.clone(), Kept { mark, body }).is_none() {
            order.push_back(key);
            while order.len() > KEPT {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> PageKey {
        PageKey {
            plan: format!("p{i}"),
            query: vec![("limit".into(), "1000".into())],
            base: "http://h".into(),
            shape: Shape {
                detail: false,
                status_message: true,
                extras: false,
            },
        }
    }

    #[test]
    fn an_answer_is_served_only_at_the_mark_it_was_made_at_and_the_oldest_go_first() {
        let pages = ActionPages::default();
        let m = PlanEventsMark { last: 9 };
        pages.put(key(0), m, Bytes::from_static(b"zero"));
        assert_eq!(pages.get(&key(0), m), Some(Bytes::from_static(b"zero")));
        // A write moves the mark: the answer is not served.
        assert_eq!(pages.get(&key(0), PlanEventsMark { last: 10 }), None);
        let mut other_shape = key(0);
        other_shape.shape.extras = true;
        assert_eq!(pages.get(&other_shape, m), None);
        for i in 1..=KEPT {
            pages.put(key(i), m, Bytes::from_static(b"x"));
        }
        assert_eq!(pages.get(&key(0), m), None, "the oldest is dropped");
        assert!(pages.get(&key(1), m).is_some());
        assert!(pages.get(&key(KEPT), m).is_some());
    }
}
