//! [`Presence`]: the awareness (cursor, name, colour) states of one document's editors, local
//! and remote. It applies awareness updates, removes clients whose sessions ended, and expires
//! clients that stopped renewing their state. It reads time only through the clock it is given,
//! so expiry is tested without waiting. Presence is never stored.

use std::sync::Arc;

use yrs::sync::Awareness;
use yrs::updates::encoder::Encode;
use yrs::Doc;

use crate::core::sync::{decode_awareness, SyncError};

/// Presence states not renewed for this long are dropped (y-protocols clients renew every 15 s).
pub(crate) const PRESENCE_TIMEOUT_MS: u64 = 30_000;

/// Milliseconds on some monotonic clock; only differences matter.
pub(crate) type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A clock on tokio's time, so `tokio::time::pause` and `advance` drive presence expiry in tests.
pub(crate) fn tokio_clock() -> Clock {
    let start = tokio::time::Instant::now();
    Arc::new(move || start.elapsed().as_millis() as u64)
}

pub(crate) struct Presence {
    awareness: Awareness,
    clock: Clock,
}

impl Presence {
    pub(crate) fn new(doc: Doc, clock: Clock) -> Presence {
        let for_awareness = clock.clone();
        Presence {
            awareness: Awareness::with_clock(doc, move || for_awareness()),
            clock,
        }
    }

    /// Applies an awareness update. Returns the clients it names and, if anything changed, the
    /// awareness update that describes the change (what to fan out).
    pub(crate) fn apply(
        &mut self,
        update: &[u8],
    ) -> Result<(Vec<u64>, Option<Vec<u8>>), SyncError> {
        let update = decode_awareness(update)?;
        let clients = update.clients.keys().map(|c| c.get()).collect();
        let changed = self
            .awareness
            .apply_update_summary(update)
            .map_err(|e| SyncError::Malformed(awareness_error(&e)))?
            .map(|summary| summary.all_changes())
            .unwrap_or_default();
        if changed.is_empty() {
            return Ok((clients, None));
        }
        let encoded = self
            .awareness
            .update_with_clients(changed)
            .ok()
            .map(|u| u.encode_v1());
        Ok((clients, encoded))
    }

    /// All current states as one awareness update, if there are any.
    pub(crate) fn state(&self) -> Option<Vec<u8>> {
        self.awareness
            .update()
            .ok()
            .filter(|u| !u.clients.is_empty())
            .map(|u| u.encode_v1())
    }

    /// Marks clients as gone. Returns the awareness update announcing it, if any was present.
    pub(crate) fn remove(&mut self, clients: Vec<u64>) -> Option<Vec<u8>> {
        let gone: Vec<yrs::ClientID> = clients
            .into_iter()
            .map(yrs::ClientID::new)
            .filter(|c| {
                self.awareness
                    .iter()
                    .any(|(id, s)| id == *c && s.data.is_some())
            })
            .collect();
        if gone.is_empty() {
            return None;
        }
        for client in &gone {
            self.awareness.remove_state(*client);
        }
        self.awareness
            .update_with_clients(gone)
            .ok()
            .map(|u| u.encode_v1())
    }

    /// Drops clients that stopped renewing their state (crashed browsers, vanished peers).
    /// Returns the awareness update describing the removal, if any.
    pub(crate) fn expire(&mut self) -> Option<Vec<u8>> {
        let now = (self.clock)();
        let stale: Vec<u64> = self
            .awareness
            .iter()
            .filter(|(_, s)| {
                s.data.is_some() && now.saturating_sub(s.last_updated) > PRESENCE_TIMEOUT_MS
            })
            .map(|(id, _)| id.get())
            .collect();
        self.remove(stale)
    }
}

fn awareness_error(e: &yrs::sync::awareness::Error) -> &'static str {
    match e {
        yrs::sync::awareness::Error::ClientNotFound(_) => "unknown client",
        yrs::sync::awareness::Error::Serde(_) => "state is not JSON",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};

    use super::*;

    pub(crate) fn presence_update(client: u64, clock: u32, json: &str) -> Vec<u8> {
        let mut clients = HashMap::new();
        clients.insert(
            yrs::ClientID::new(client),
            AwarenessUpdateEntry {
                clock,
                json: json.into(),
            },
        );
        AwarenessUpdate { clients }.encode_v1()
    }

    fn clients(update: Option<Vec<u8>>) -> usize {
        update.map_or(0, |u| decode_awareness(&u).unwrap().clients.len())
    }

    #[test]
    fn states_expire_exactly_after_the_timeout_of_a_manual_clock() {
        let now = Arc::new(AtomicU64::new(1_000));
        let read = now.clone();
        let mut presence = Presence::new(Doc::new(), Arc::new(move || read.load(Ordering::SeqCst)));
        presence
            .apply(&presence_update(7, 1, r#"{"user":{"name":"ada"}}"#))
            .unwrap();
        now.fetch_add(PRESENCE_TIMEOUT_MS, Ordering::SeqCst);
        assert_eq!(presence.expire(), None, "not yet: exactly at the timeout");
        presence
            .apply(&presence_update(8, 1, r#"{"user":{"name":"bob"}}"#))
            .unwrap();
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(
            clients(presence.expire()),
            1,
            "ada expires, bob renewed later"
        );
        assert_eq!(clients(presence.state()), 1, "bob remains");
        now.fetch_add(PRESENCE_TIMEOUT_MS, Ordering::SeqCst);
        assert_eq!(clients(presence.expire()), 1, "then bob");
        assert_eq!(presence.state(), None);
    }
}
