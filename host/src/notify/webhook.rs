//! The webhook sink: each event POSTed as JSON to a URL, in order, from the
//! outbox. A POST is tried `1 + retries` times (200 ms doubling between
//! them) before the attempt fails; the publisher then tries again later from
//! the same event, so an endpoint that is down loses nothing.

use super::outbox::Deliver;
use super::secret::SecretUrl;
use crate::store::{EventRow, Store};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// A webhook publisher.
pub struct WebhookSink {
    url: SecretUrl,
    key: String,
    retries: u32,
    timeout: Duration,
    batch: usize,
}

impl WebhookSink {
    /// A publisher posting to `url`.
    pub fn new(url: &str, retries: u32, timeout: Duration, batch: usize) -> Self {
        let url = SecretUrl::new(url);
        Self {
            key: format!("webhook {url}"),
            url,
            retries,
            timeout: timeout.max(Duration::from_millis(100)),
            batch: batch.max(1),
        }
    }
}

fn post(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .map_err(|e| e.to_string())?;
    let resp = agent.run(req).map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}

impl Deliver for WebhookSink {
    fn key(&self) -> &str {
        &self.key
    }

    fn batch(&self) -> usize {
        self.batch
    }

    fn deliver(
        &mut self,
        _store: &Store,
        events: &[EventRow],
        stop: &AtomicBool,
    ) -> Result<usize, (usize, String)> {
        for (i, event) in events.iter().enumerate() {
            let body = serde_json::to_string(event).map_err(|e| (i, e.to_string()))?;
            let mut delay = Duration::from_millis(200);
            let mut attempt = 0;
            loop {
                match post(self.url.expose(), &body, self.timeout) {
                    Ok(()) => break,
                    Err(e) if attempt >= self.retries => {
                        return Err((i, format!("event {}: {}", event.id, self.url.redact(&e))));
                    }
                    Err(e) => {
                        if super::outbox::nap(delay, stop) {
                            return Err((
                                i,
                                format!("event {}: {}", event.id, self.url.redact(&e)),
                            ));
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                        attempt += 1;
                    }
                }
            }
        }
        Ok(events.len())
    }
}
