//! The seeded simulation of membership: an owner removes members (re-keying each time) while
//! writers edit, members go offline and come back, nodes restart and messages are lost. Every
//! decision goes through what the node calls: [`RemovalPlan`], [`KeyGrant`]s,
//! [`Membership::add_all`], roster pages ([`members::page`]), [`admit`] and [`records_for`] for
//! requests, [`admit_gossip`] for gossip, and the sync codecs ([`gossip`], [`Responder`],
//! [`Pull`]). Only the network, the clock and who is online are simulated.
//!
//! Writers claim their Yjs client at their first edit and send the claim to every online
//! member at once (as the node's room does); removals name the cut ([`RemovalPlan`]); every
//! replica voids what the cut names ([`Document::void`]) after each change.
//!
//! Invariants after every member is online again and anti-entropy has run:
//! - every remaining member holds the owner's membership verdicts (each removed member revoked)
//!   and the newest key;
//! - every remaining member, readers included, holds the owner's document exactly;
//! - no remaining member holds text a removed member wrote that the owner did not hold when it
//!   removed it (the cut);
//! - no removed member holds text that an honest node wrote after it knew of that removal.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p_identity::ed25519;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::admission::{admit_gossip, GossipVerdict};
use super::{Cert, CertKind, KeyBytes, KeyGrant, Membership, RemovalPlan, Role};
use crate::core::doc::{DocId, Document};
use crate::core::envelope::{DocKey, Keyring};
use crate::core::sync::gossip::{self, Gossip};
use crate::core::sync::Responder;

mod requests;

/// One simulated node.
struct Replica {
    identity: ed25519::Keypair,
    key: KeyBytes,
    doc: Document,
    membership: Membership,
    keys: Keyring,
    responder: Responder,
    online: bool,
    /// What [`Document::void`] covered so far.
    cut_done: HashMap<u64, u64>,
    /// A member exchange succeeded since it came online: it takes edits from gossip only
    /// then (as the node).
    heard_roster: bool,
}

impl Replica {
    /// Deletes what the cut voids, as the room does after every change.
    fn enforce_cut(&mut self) {
        self.doc
            .void(self.membership.voided(), &mut self.cut_done)
            .expect("a deletion is a valid update");
    }

    fn role(&self) -> Option<Role> {
        self.membership.role_of_key(&self.key)
    }

    /// Adds records as the room does: certificates in any order, grants, and the keys of the
    /// grants addressed to this replica.
    fn add_records(&mut self, certs: Vec<Cert>, grants: Vec<KeyGrant>) {
        self.membership.add_all(certs);
        for grant in grants {
            let _ = self.membership.add_grant(grant);
        }
        for grant in self.membership.grants_for(&self.key) {
            if self.keys.get(grant.epoch).is_none() {
                if let Some(key) = grant.open(&self.identity) {
                    self.keys.insert(grant.epoch, key);
                }
            }
        }
        self.enforce_cut();
    }
}

/// A text written into the shared document, for the invariants.
struct Written {
    token: String,
    author: usize,
    /// Members its author knew were removed when it wrote it.
    author_knew_removed: HashSet<KeyBytes>,
}

struct Sim {
    rng: StdRng,
    doc: DocId,
    topic: [u8; 32],
    nodes: Vec<Replica>,
    /// In-flight gossip: (from, to, signed sealed message).
    queue: Vec<(usize, usize, Vec<u8>)>,
    removed: Vec<usize>,
    /// Per removed member: the owner's text when it removed it (what the cut keeps).
    owner_text_at_removal: HashMap<usize, String>,
    written: Vec<Written>,
    next_token: usize,
    now: Instant,
}

impl Sim {
    fn new(seed: u64, n: usize) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let doc = DocId([seed as u8; 16]);
        let identities: Vec<ed25519::Keypair> = (0..n)
            .map(|_| {
                let mut secret = [0u8; 32];
                rng.fill(&mut secret);
                ed25519::SecretKey::try_from_bytes(secret)
                    .map(ed25519::Keypair::from)
                    .expect("any 32 bytes are an Ed25519 secret key")
            })
            .collect();
        let owner = &identities[0];
        let owner_key = owner.public().to_bytes();
        let mut first = [0u8; 32];
        rng.fill(&mut first);
        // The owner admits the others directly: writers and a reader or two.
        let certs: Vec<Cert> = (1..n)
            .map(|i| {
                let role = if i % 3 == 2 {
                    Role::Reader
                } else {
                    Role::Writer
                };
                let subject = identities[i].public().to_bytes();
                Cert::issue(doc, CertKind::Member, role, subject, owner)
            })
            .collect();
        let nodes = identities
            .into_iter()
            .map(|identity| {
                let key = identity.public().to_bytes();
                let mut membership = Membership::new(doc, owner_key);
                membership.add_all(certs.clone());
                Replica {
                    doc: Document::with_client_id(rng.gen_range(1..u32::MAX as u64)),
                    membership,
                    keys: Keyring::new(0, DocKey(first)),
                    responder: Responder::default(),
                    online: true,
                    cut_done: HashMap::new(),
                    heard_roster: true,
                    identity,
                    key,
                }
            })
            .collect();
        Sim {
            rng,
            doc,
            topic: doc.topic(),
            nodes,
            queue: Vec::new(),
            removed: Vec::new(),
            owner_text_at_removal: HashMap::new(),
            written: Vec::new(),
            next_token: 0,
            now: Instant::now(),
        }
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn pick_online(&mut self) -> Option<usize> {
        let online: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].online)
            .collect();
        (!online.is_empty()).then(|| online[self.rng.gen_range(0..online.len())])
    }

    /// A writer edits (a removed writer that does not know yet edits too) and gossips the
    /// update to every online node, sealed in its newest key.
    fn edit(&mut self, i: usize) {
        if !self.nodes[i].role().is_some_and(|r| r.may_write()) {
            return;
        }
        let token = format!("<{}>", self.next_token);
        self.next_token += 1;
        let text = self.nodes[i].doc.text();
        let at = self.rng.gen_range(0..=text.len());
        // Edits land between tokens only, so each token stays whole.
        let at = text[..at].rfind('>').map_or(0, |p| p + 1);
        let at = text[..at].chars().count();
        let Some(update) = self.nodes[i].doc.insert(at, &token) else {
            return;
        };
        let author_knew_removed = self
            .removed
            .iter()
            .map(|r| self.nodes[*r].key)
            .filter(|k| self.nodes[i].membership.is_revoked_key(k))
            .collect();
        self.written.push(Written {
            token,
            author: i,
            author_knew_removed,
        });
        self.claim(i);
        let node = &self.nodes[i];
        let sealed = gossip::seal(&node.keys, &self.topic, &Gossip::Update(update));
        let signed = gossip::sign(&node.identity, &self.topic, &sealed);
        for j in 0..self.nodes.len() {
            if j != i && self.nodes[j].online && !self.chance(15) {
                self.queue.push((i, j, signed.clone()));
            }
        }
    }

    fn deliver(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let k = self.rng.gen_range(0..self.queue.len());
        let (from, to, signed) = self.queue.swap_remove(k);
        if !self.nodes[to].online {
            return;
        }
        let (_, sealed) = gossip::verify(&self.topic, &signed).expect("the simulation signs");
        let author = self.nodes[from].key;
        let Ok(message) = gossip::open(&self.nodes[to].keys, &self.topic, sealed) else {
            // A key it lacks: the node asks for its grant.
            self.exchange(to, from);
            return;
        };
        match admit_gossip(&self.nodes[to].membership, &author, Role::Writer) {
            GossipVerdict::Accept if !self.nodes[to].heard_roster => self.exchange(to, from),
            GossipVerdict::Accept => {
                if let Gossip::Update(update) = message {
                    let node = &mut self.nodes[to];
                    let received = gossip::receive_update(&mut node.doc, &update, |client| {
                        node.membership.is_claimed(client)
                    })
                    .expect("the simulation's updates are valid");
                    if received.unclaimed {
                        return self.exchange(to, from);
                    }
                    self.nodes[to].enforce_cut();
                    if received.pull {
                        self.pull(to, from);
                    }
                }
            }
            GossipVerdict::Unknown => self.exchange(to, from),
            GossipVerdict::Removed | GossipVerdict::NotAllowed(_) => {}
        }
    }

    /// The owner removes a member as `peerdoc revoke` does: the plan, a new epoch, a grant for
    /// each remaining member; then tells every online member at once.
    fn remove(&mut self) {
        let candidates: Vec<usize> = (1..self.nodes.len())
            .filter(|i| self.nodes[0].role_of_node(&self.nodes[*i]).is_some())
            .collect();
        // Keep at least two members besides the owner, so the document stays shared.
        if candidates.len() <= 2 {
            return;
        }
        let target = candidates[self.rng.gen_range(0..candidates.len())];
        let target_key = self.nodes[target].key;
        let owner = &self.nodes[0];
        let plan = RemovalPlan::new(
            &owner.membership,
            &owner.identity,
            target_key,
            &[],
            &owner.doc.clocks(),
        )
        .expect("the owner can always remove a member");
        self.owner_text_at_removal
            .insert(target, self.nodes[0].doc.text());
        let epoch = owner.keys.current().0 + 1;
        let mut fresh = [0u8; 32];
        self.rng.fill(&mut fresh);
        let key = DocKey(fresh);
        let owner = &mut self.nodes[0];
        owner.keys.insert(epoch, key.clone());
        owner.membership.add_all(plan.records);
        assert!(owner.membership.role_of_key(&target_key).is_none());
        let remaining: Vec<KeyBytes> = self.nodes[0]
            .membership
            .member_keys()
            .filter(|(k, _)| **k != self.nodes[0].key)
            .map(|(k, _)| *k)
            .collect();
        for member in remaining {
            let mut ephemeral = [0u8; 32];
            self.rng.fill(&mut ephemeral);
            let owner = &self.nodes[0];
            let grant = KeyGrant::issue(self.doc, epoch, &key, member, &owner.identity, ephemeral)
                .expect("a member's key is a valid Ed25519 key");
            self.nodes[0]
                .membership
                .add_grant(grant)
                .expect("the owner's grant");
        }
        self.removed.push(target);
        for j in 1..self.nodes.len() {
            self.exchange(0, j);
        }
    }

    /// A writer's first edit: it claims its client and sends the claim to every online member
    /// at once, as the node's room does.
    fn claim(&mut self, i: usize) {
        let node = &self.nodes[i];
        let client = node.doc.ydoc().client_id().get();
        if node.membership.is_claimed(client) {
            return;
        }
        let claim = Cert::claim(self.doc, client, &node.identity);
        self.nodes[i].add_records(vec![claim], Vec::new());
        for j in 0..self.nodes.len() {
            self.exchange(i, j);
        }
    }

    fn run(&mut self, steps: usize) {
        let n = self.nodes.len();
        for _ in 0..steps {
            match self.rng.gen_range(0..100) {
                0..=34 => {
                    if let Some(i) = self.pick_online() {
                        self.edit(i);
                    }
                }
                35..=59 => self.deliver(),
                60..=64 => {
                    if !self.queue.is_empty() {
                        let k = self.rng.gen_range(0..self.queue.len());
                        self.queue.swap_remove(k);
                    }
                }
                65..=74 => {
                    let (i, j) = (self.rng.gen_range(0..n), self.rng.gen_range(0..n));
                    self.pull(i, j);
                }
                75..=82 => {
                    let (i, j) = (self.rng.gen_range(0..n), self.rng.gen_range(0..n));
                    self.exchange(i, j);
                }
                83..=86 => self.remove(),
                87..=93 => {
                    // Offline, or back; the owner too.
                    let i = self.rng.gen_range(0..n);
                    self.nodes[i].online = !self.nodes[i].online;
                    self.nodes[i].heard_roster = false;
                }
                _ => {
                    // A restart: what was in flight to or from it is gone.
                    let i = self.rng.gen_range(0..n);
                    self.queue.retain(|(from, to, _)| *from != i && *to != i);
                }
            }
        }
        // Heal: everyone online, the rest of the gossip arrives, then anti-entropy rounds
        // (member exchanges and pulls between every pair) until nothing changes.
        for node in &mut self.nodes {
            node.online = true;
        }
        while !self.queue.is_empty() {
            self.deliver();
        }
        for _ in 0..3 {
            for i in 0..n {
                for j in 0..n {
                    self.exchange(i, j);
                }
            }
            for i in 0..n {
                for j in 0..n {
                    self.pull(i, j);
                }
            }
        }
    }

    fn assert_invariants(&self, seed: u64) {
        let owner = &self.nodes[0];
        let newest = owner.keys.current().0;
        let remaining: Vec<usize> = (0..self.nodes.len())
            .filter(|i| owner.role_of_node(&self.nodes[*i]).is_some())
            .collect();
        for &r in &self.removed {
            assert!(owner.membership.is_revoked_key(&self.nodes[r].key));
        }
        for &i in &remaining {
            let node = &self.nodes[i];
            for &r in &self.removed {
                assert!(
                    node.membership.is_revoked_key(&self.nodes[r].key),
                    "seed {seed}: member {i} does not know that {r} was removed"
                );
            }
            assert_eq!(
                node.keys.current().0,
                newest,
                "seed {seed}: member {i} lacks the newest key"
            );
            assert_eq!(
                node.doc.text(),
                owner.doc.text(),
                "seed {seed}: member {i} differs from the owner"
            );
            for written in &self.written {
                let Some(kept) = self.owner_text_at_removal.get(&written.author) else {
                    continue;
                };
                assert!(
                    kept.contains(&written.token) || !node.doc.text().contains(&written.token),
                    "seed {seed}: member {i} holds {} that removed member {} wrote beyond the cut",
                    written.token,
                    written.author
                );
            }
        }
        for &r in &self.removed {
            let text = self.nodes[r].doc.text();
            let key = self.nodes[r].key;
            for written in &self.written {
                if written.author_knew_removed.contains(&key) {
                    assert!(
                        !text.contains(&written.token),
                        "seed {seed}: removed member {r} holds {} written after its removal was known",
                        written.token
                    );
                }
            }
        }
    }
}

impl Replica {
    /// The role `other` holds in this replica's view.
    fn role_of_node(&self, other: &Replica) -> Option<Role> {
        self.membership.role_of_key(&other.key)
    }
}

/// Seeds per run: 300 in the test suite; more with `PEERDOC_SIM_SEEDS` (the long run in
/// BENCHMARKS.md).
fn seeds() -> u64 {
    std::env::var("PEERDOC_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

#[test]
fn removals_rekey_and_converge_under_offline_members_restarts_and_loss() {
    let mut removals = 0;
    let mut written_after = 0;
    let mut beyond_cut = 0;
    for seed in 0..seeds() {
        let n = 5 + (seed % 3) as usize;
        let mut sim = Sim::new(seed, n);
        sim.run(200);
        sim.assert_invariants(seed);
        removals += sim.removed.len();
        written_after += sim
            .written
            .iter()
            .filter(|w| !w.author_knew_removed.is_empty())
            .count();
        beyond_cut += sim
            .written
            .iter()
            .filter(|w| {
                sim.owner_text_at_removal
                    .get(&w.author)
                    .is_some_and(|kept| !kept.contains(&w.token))
            })
            .count();
    }
    // Guards the simulation's reach: removals happened, and text was written after them.
    assert!(removals > seeds() as usize / 2, "{removals} removals");
    assert!(written_after > 0);
    // And removed members wrote beyond their cut (which the invariants find nowhere).
    assert!(beyond_cut > 0);
    eprintln!(
        "{} seeds, {removals} removals, {written_after} texts written after a removal was known, \
         {beyond_cut} texts removed members wrote beyond their cut",
        seeds()
    );
}
