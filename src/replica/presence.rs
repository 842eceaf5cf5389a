//! [`Presence`]: the awareness (cursor, name, colour) states of one document's editors, local
//! and remote. It applies awareness updates, removes clients whose sessions ended, and expires
//! clients that stopped renewing their state. It reads time only through the clock it is given,
//! so expiry is tested without waiting. Presence is never stored.
//!
//! Presence is input from editors and peers, so it is bounded: entries per update, clients per
//! editor session, per peer and per document (and a client belongs to whoever added it), bytes per state (which must be JSON). Removal and expiry are
//! one pass over the states, and entries of departed clients (yrs keeps them) are dropped now
//! and then, so a flood of short-lived clients cannot grow a document's presence without bound.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use yrs::sync::awareness::AwarenessUpdateSummary;
use yrs::sync::Awareness;
use yrs::updates::encoder::Encode;
use yrs::Doc;

use crate::core::sync::{decode_awareness, SyncError};

/// Presence states not renewed for this long are dropped (y-protocols clients renew every 15 s).
pub(crate) const PRESENCE_TIMEOUT_MS: u64 = 30_000;
/// Most entries in one awareness update (a browser tab sends one).
pub(crate) const MAX_ENTRIES_PER_UPDATE: usize = 64;
/// Most present clients one editor session may add.
pub(crate) const MAX_CLIENTS_PER_SESSION: usize = 8;
/// Most present clients one peer may add (the sessions of its own editors).
pub(crate) const MAX_CLIENTS_PER_PEER: usize = 64;
/// Most present clients in one document.
pub(crate) const MAX_CLIENTS: usize = 1024;
/// Largest state of one client (name, colour, cursor: well under 1 KiB in practice).
pub(crate) const MAX_STATE_BYTES: usize = 8 * 1024;
/// Entries kept (departed clients included) before departed ones are dropped.
const MAX_TRACKED: usize = 4 * MAX_CLIENTS;

/// Milliseconds on some monotonic clock; only differences matter.
pub(crate) type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The monotonic clock (tests use a manual one).
pub(crate) fn system_clock() -> Clock {
    let start = std::time::Instant::now();
    Arc::new(move || start.elapsed().as_millis() as u64)
}

pub(crate) struct Presence {
    awareness: Awareness,
    doc: Doc,
    clock: Clock,
    /// Which editor session or peer added which client (for the per-owner bounds).
    owners: HashMap<yrs::ClientID, Owner>,
}

/// Who adds presence clients: a local editor session, or a peer (the author of gossip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Session(u64),
    Peer(libp2p::PeerId),
}

impl Owner {
    fn max_clients(self) -> usize {
        match self {
            Owner::Session(_) => MAX_CLIENTS_PER_SESSION,
            Owner::Peer(_) => MAX_CLIENTS_PER_PEER,
        }
    }
}

impl Presence {
    /// Presence of its own: awareness needs a yrs `Doc` for its client id, not the document's
    /// content, so presence stays while the document is unloaded.
    pub(crate) fn new(clock: Clock) -> Presence {
        let doc = Doc::new();
        Presence {
            awareness: awareness(doc.clone(), &clock),
            doc,
            clock,
            owners: HashMap::new(),
        }
    }

    /// Applies an awareness update from `owner` (an editor session or a peer). Returns the
    /// clients it names and, if anything changed, the awareness update that describes the
    /// change (what to fan out). An update over a bound, or naming a client another owner
    /// added, changes nothing.
    pub(crate) fn apply(
        &mut self,
        update: &[u8],
        owner: Option<Owner>,
    ) -> Result<(Vec<u64>, Option<Vec<u8>>), SyncError> {
        let mut update = decode_awareness(update)?;
        if update.clients.len() > MAX_ENTRIES_PER_UPDATE {
            return Err(SyncError::Malformed(
                "too many presence entries in one update",
            ));
        }
        for entry in update.clients.values() {
            check_state(&entry.json)?;
        }
        if let Some(owner) = owner {
            // Editors echo the states they hear (y-websocket does): entries naming clients
            // someone else added are dropped, never applied.
            update
                .clients
                .retain(|id, _| self.owners.get(id).is_none_or(|o| *o == owner));
        }
        // Renewals (the usual update) are checked without a pass over every state: only a
        // client that arrives counts against the bounds.
        let arriving = update
            .clients
            .iter()
            .filter(|(id, entry)| &*entry.json != "null" && !self.is_present(**id))
            .count();
        if arriving > 0 {
            if self.present().len() + arriving > MAX_CLIENTS {
                return Err(SyncError::Malformed(
                    "the document has too many present editors",
                ));
            }
            if let Some(owner) = owner {
                let owned = self.owners.values().filter(|o| **o == owner).count();
                if owned + arriving > owner.max_clients() {
                    return Err(SyncError::Malformed(match owner {
                        Owner::Session(_) => "too many presence clients for one session",
                        Owner::Peer(_) => "too many presence clients from one peer",
                    }));
                }
            }
        }
        let named: Vec<yrs::ClientID> = update.clients.keys().copied().collect();
        let summary = self
            .awareness
            .apply_update_summary(update)
            .map_err(|e| SyncError::Malformed(awareness_error(&e)))?
            .unwrap_or(AwarenessUpdateSummary {
                added: Vec::new(),
                updated: Vec::new(),
                removed: Vec::new(),
            });
        // Who owns what: clients are the owner's from their arrival until they leave.
        if let Some(owner) = owner {
            for id in &summary.added {
                self.owners.insert(*id, owner);
            }
        }
        for id in &summary.removed {
            self.owners.remove(id);
        }
        let clients = named
            .iter()
            .filter(|id| owner.is_none() || self.owners.get(*id) == owner.as_ref())
            .map(|id| id.get())
            .collect();
        let changed = summary.all_changes();
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

    /// No client is present.
    pub(crate) fn is_empty(&self) -> bool {
        self.awareness.iter().all(|(_, state)| state.data.is_none())
    }

    /// All current states as one awareness update, if there are any.
    pub(crate) fn state(&self) -> Option<Vec<u8>> {
        self.awareness
            .update()
            .ok()
            .filter(|u| !u.clients.is_empty())
            .map(|u| u.encode_v1())
    }

    /// Marks clients as gone: those `owner` owns (all, for `None`). Returns the awareness
    /// update announcing it, if any was present. One pass over the states, whatever the number
    /// of clients.
    pub(crate) fn remove(&mut self, clients: Vec<u64>, owner: Option<Owner>) -> Option<Vec<u8>> {
        let present = self.present();
        let clients: Vec<yrs::ClientID> = clients
            .into_iter()
            .map(yrs::ClientID::new)
            .filter(|id| owner.is_none() || self.owners.get(id) == owner.as_ref())
            .collect();
        for client in &clients {
            // Also clients that already left: their owner no longer owns them.
            self.owners.remove(client);
        }
        let gone: Vec<yrs::ClientID> = clients
            .into_iter()
            .filter(|c| present.contains(c))
            .collect();
        if gone.is_empty() {
            return None;
        }
        for client in &gone {
            self.awareness.remove_state(*client);
        }
        let announcement = self
            .awareness
            .update_with_clients(gone)
            .ok()
            .map(|u| u.encode_v1());
        self.compact();
        announcement
    }

    /// Whether `client` has a state (its JSON was checked on the way in; this reads past it).
    fn is_present(&self, client: yrs::ClientID) -> bool {
        self.awareness
            .state::<serde::de::IgnoredAny>(client)
            .is_some()
    }

    /// Clients with a state.
    fn present(&self) -> HashSet<yrs::ClientID> {
        self.awareness
            .iter()
            .filter(|(_, s)| s.data.is_some())
            .map(|(id, _)| id)
            .collect()
    }

    /// Drops the entries yrs keeps for departed clients once there are many: a fresh awareness
    /// with the present states only (their clocks kept, so nothing old can overwrite them).
    fn compact(&mut self) {
        if self.awareness.iter().count() <= MAX_TRACKED {
            return;
        }
        let present: Vec<yrs::ClientID> = self.present().into_iter().collect();
        let Ok(states) = self.awareness.update_with_clients(present) else {
            return;
        };
        let mut fresh = awareness(self.doc.clone(), &self.clock);
        if fresh.apply_update(states).is_ok() {
            self.awareness = fresh;
        }
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
        self.remove(stale, None)
    }
}

fn awareness(doc: Doc, clock: &Clock) -> Awareness {
    let clock = clock.clone();
    Awareness::with_clock(doc, move || clock())
}

/// A state must be JSON (or `null`, "gone") of at most [`MAX_STATE_BYTES`].
fn check_state(json: &str) -> Result<(), SyncError> {
    if json.len() > MAX_STATE_BYTES {
        return Err(SyncError::Malformed("presence state too large"));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(json)
        .map(|_| ())
        .map_err(|_| SyncError::Malformed("presence state is not JSON"))
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
        let mut presence = Presence::new(Arc::new(move || read.load(Ordering::SeqCst)));
        presence
            .apply(&presence_update(7, 1, r#"{"user":{"name":"ada"}}"#), None)
            .unwrap();
        now.fetch_add(PRESENCE_TIMEOUT_MS, Ordering::SeqCst);
        assert_eq!(presence.expire(), None, "not yet: exactly at the timeout");
        presence
            .apply(&presence_update(8, 1, r#"{"user":{"name":"bob"}}"#), None)
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

    fn many(clients: std::ops::Range<u64>, json: &str) -> Vec<u8> {
        let mut update = AwarenessUpdate {
            clients: HashMap::new(),
        };
        for client in clients {
            update.clients.insert(
                yrs::ClientID::new(client),
                AwarenessUpdateEntry {
                    clock: 1,
                    json: json.into(),
                },
            );
        }
        update.encode_v1()
    }

    fn fixed_clock() -> Clock {
        Arc::new(|| 0)
    }

    #[test]
    fn floods_of_entries_huge_states_and_non_json_change_nothing() {
        let mut presence = Presence::new(fixed_clock());
        let state = r#"{"user":{"name":"x"}}"#;
        // 30,000 entries in one frame (the attack from the issue) is refused whole.
        assert!(presence.apply(&many(1..30_001, state), None).is_err());
        assert_eq!(presence.state(), None);
        let huge = format!(r#"{{"user":{{"name":"{}"}}}}"#, "x".repeat(MAX_STATE_BYTES));
        assert!(presence.apply(&presence_update(1, 1, &huge), None).is_err());
        assert!(presence
            .apply(&presence_update(1, 1, "not json {"), None)
            .is_err());
        assert_eq!(presence.state(), None, "nothing was applied");
        assert!(presence.apply(&presence_update(1, 1, state), None).is_ok());
    }

    #[test]
    fn a_session_and_a_document_hold_a_bounded_number_of_clients() {
        let mut presence = Presence::new(fixed_clock());
        let state = r#"{"cursor":null}"#;
        let per_session = MAX_CLIENTS_PER_SESSION as u64;
        presence
            .apply(&many(1..per_session + 1, state), Some(Owner::Session(7)))
            .unwrap();
        assert!(
            presence
                .apply(&presence_update(100, 1, state), Some(Owner::Session(7)))
                .is_err(),
            "one client more than a session may have"
        );
        assert!(presence
            .apply(&presence_update(100, 1, state), Some(Owner::Session(8)))
            .is_ok());
        // Peers fill the document up to its bound, in small updates.
        let mut next = 1_000;
        while presence.apply(&many(next..next + 64, state), None).is_ok() {
            next += 64;
        }
        let present = clients(presence.state());
        assert!(
            present <= MAX_CLIENTS && present + 64 > MAX_CLIENTS,
            "filled up to the bound, not past it: {present}"
        );
    }

    #[test]
    fn a_peer_holds_a_bounded_number_of_clients_and_cannot_take_over_others() {
        let mut presence = Presence::new(fixed_clock());
        let state = r#"{"cursor":null}"#;
        let (mallory, alice) = (
            Some(Owner::Peer(libp2p::PeerId::random())),
            Some(Owner::Peer(libp2p::PeerId::random())),
        );
        let mut next = 0;
        while presence
            .apply(&many(next..next + 8, state), mallory)
            .is_ok()
        {
            next += 8;
        }
        assert_eq!(clients(presence.state()), MAX_CLIENTS_PER_PEER);
        // Another peer and a local session still get in.
        presence.apply(&many(5_000..5_008, state), alice).unwrap();
        presence
            .apply(&presence_update(9_000, 1, state), Some(Owner::Session(1)))
            .unwrap();
        // Nobody may update or remove a client another owner added: such entries are dropped
        // (editors echo what they hear), as is removing them when a session ends.
        let hijack = presence_update(5_000, 99, "null");
        let (named, changed) = presence.apply(&hijack, mallory).unwrap();
        assert!(named.is_empty() && changed.is_none());
        assert!(presence
            .apply(&presence_update(9_000, 99, "null"), alice)
            .unwrap()
            .1
            .is_none());
        assert_eq!(presence.remove(vec![5_000, 9_000], mallory), None);
        assert_eq!(clients(presence.state()), MAX_CLIENTS_PER_PEER + 9);
        // Its owner can.
        presence.apply(&hijack, alice).unwrap();
        assert_eq!(clients(presence.state()), MAX_CLIENTS_PER_PEER + 8);
        // Clients that left do not count: a peer whose editors come and go is never full.
        let mallorys: Vec<u64> = (0..MAX_CLIENTS_PER_PEER as u64).collect();
        for id in &mallorys {
            presence
                .apply(&presence_update(*id, 2, "null"), mallory)
                .unwrap();
        }
        presence
            .apply(&many(20_000..20_008, state), mallory)
            .unwrap();
    }

    #[test]
    fn removal_is_linear_and_departed_clients_do_not_pile_up() {
        let mut presence = Presence::new(fixed_clock());
        let state = r#"{"a":1}"#;
        // Many rounds of clients arriving and leaving: yrs would keep an entry for each.
        for round in 0..20u64 {
            let ids = round * 1000..round * 1000 + 64;
            for chunk in ids.clone().step_by(64) {
                presence
                    .apply(&many(chunk..chunk + 64, state), None)
                    .unwrap();
            }
            assert!(presence.remove(ids.collect(), None).is_some());
        }
        assert!(presence.awareness.iter().count() <= MAX_TRACKED);
        assert_eq!(presence.state(), None);
        // Removing clients that are not there announces nothing.
        assert_eq!(presence.remove((0..10_000).collect(), None), None);
    }
}
