//! The seeded convergence simulation: replicas exchanging sealed gossip and chunked pulls over
//! a lossy, duplicating, reordering, partitioning network, with a virtual clock that makes
//! transfers expire mid-pull. Every protocol decision goes through the functions the node calls:
//! [`gossip`] (gossip-or-announce, merging queued edits into one message as a room
//! does, seal/open, when to pull), [`Responder`] (with the digest check that answers "nothing
//! new") and [`Pull`]. Only the network, the clock and a room's publish queue are simulated.

use std::time::{Duration, Instant};

use libp2p_identity::ed25519;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::StateVector;

use super::gossip::{self, Gossip};
use super::responder::{Opened, Responder};
use super::{Progress, Pull, PullError, RequestBody, SyncResponse, TRANSFER_TTL};
use crate::core::doc::{DocId, Document};
use crate::core::envelope::{DocKey, Keyring};

/// One simulated run.
struct Sim {
    rng: StdRng,
    key: Keyring,
    topic: [u8; 32],
    replicas: Vec<Document>,
    /// Each replica's identity key (it signs that replica's gossip).
    authors: Vec<ed25519::Keypair>,
    responders: Vec<Responder>,
    /// Partition group per replica: messages only flow within a group.
    group: Vec<usize>,
    /// In-flight gossip: (from, to, sealed payload).
    queue: Vec<(usize, usize, Vec<u8>)>,
    /// Each replica's gossip not sent yet (a room's publish queue, while more commands wait).
    outbox: Vec<Vec<Gossip>>,
    /// The virtual clock the responders see.
    now: Instant,
    /// Whether time may jump between the messages of a pull (so transfers expire mid-pull).
    time_jumps: bool,
    reach: Reach,
}

/// Chunk size of the simulated responders: smaller than the node's, so that the big edits
/// (~60 KB) take the chunked path.
const SIM_CHUNK: usize = 16 * 1024;

/// How often the run went down the paths that need big documents or long pauses.
#[derive(Debug, Default)]
struct Reach {
    announced: usize,
    continued: usize,
    expired: usize,
    /// Messages that carried several queued edits merged into one.
    merged: usize,
}

impl Sim {
    fn new(seed: u64, n: usize) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let replicas = (0..n)
            .map(|_| Document::with_client_id(rng.gen_range(1..u32::MAX as u64)))
            .collect();
        let authors = (0..n)
            .map(|_| {
                let mut secret = [0u8; 32];
                rng.fill(&mut secret);
                ed25519::SecretKey::try_from_bytes(secret)
                    .map(ed25519::Keypair::from)
                    .expect("any 32 bytes are an Ed25519 secret key")
            })
            .collect();
        let mut key = [0u8; 32];
        rng.fill(&mut key);
        Sim {
            rng,
            key: Keyring::from(DocKey(key)),
            topic: DocId([seed as u8; 16]).topic(),
            replicas,
            authors,
            responders: (0..n)
                .map(|_| Responder::with_chunk_size(SIM_CHUNK))
                .collect(),
            group: vec![0; n],
            queue: Vec::new(),
            outbox: vec![Vec::new(); n],
            now: Instant::now(),
            time_jumps: true,
            reach: Reach::default(),
        }
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn local_edit(&mut self, i: usize) {
        let len = self.replicas[i].text().len();
        let update = if len > 0 && self.chance(35) {
            let at = self.rng.gen_range(0..len);
            let n = self.rng.gen_range(1..=8);
            self.replicas[i].delete(at, n)
        } else {
            let at = self.rng.gen_range(0..=len);
            // Now and then an edit too big for gossip (~60 KB of UTF-8, over the node's 48 KiB
            // limit), so it is announced and pulled in chunks.
            let size = if self.chance(2) {
                40_000
            } else {
                self.rng.gen_range(1..6)
            };
            let s: String = (0..size)
                .map(|_| ['a', 'b', 'é', '\n', '€', 'z'][self.rng.gen_range(0..6)])
                .collect();
            self.replicas[i].insert(at, &s)
        };
        let Some(update) = update else { return };
        let message = gossip::for_local_edit(&self.replicas[i], update);
        if matches!(message, Gossip::Have(_)) {
            self.reach.announced += 1;
        }
        // A room sends at once when idle, and merges what queued up while it was busy.
        self.outbox[i].push(message);
        if self.chance(40) {
            self.send_queued(i);
        }
    }

    /// Sends what replica `i` has queued, merged as a room merges it.
    fn send_queued(&mut self, i: usize) {
        let queued = std::mem::take(&mut self.outbox[i]);
        let updates = queued
            .iter()
            .filter(|g| matches!(g, Gossip::Update(_)))
            .count();
        let messages = gossip::coalesce(queued);
        let sent = messages
            .iter()
            .filter(|g| matches!(g, Gossip::Update(_)))
            .count();
        if sent < updates {
            self.reach.merged += 1;
        }
        for message in messages {
            self.send(i, &message);
        }
    }

    /// Seals and signs a message of replica `i`, and puts it on the network to each peer
    /// (or not, or twice).
    fn send(&mut self, i: usize, message: &Gossip) {
        let sealed = gossip::seal(&self.key, &self.topic, message);
        let sealed = gossip::sign(&self.authors[i], &self.topic, &sealed);
        for j in 0..self.replicas.len() {
            if j == i || self.group[j] != self.group[i] || self.chance(20) {
                continue;
            }
            self.queue.push((i, j, sealed.clone()));
            if self.chance(10) {
                self.queue.push((i, j, sealed.clone()));
            }
        }
    }

    fn deliver_random(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let k = self.rng.gen_range(0..self.queue.len());
        let (from, to, sealed) = self.queue.swap_remove(k);
        let (author, sealed) = gossip::verify(&self.topic, &sealed).unwrap();
        assert_eq!(
            author,
            libp2p_identity::PublicKey::from(self.authors[from].public()).to_peer_id()
        );
        let received = match gossip::open(&self.key, &self.topic, sealed).unwrap() {
            Gossip::Update(u) => gossip::receive_update(&mut self.replicas[to], &u, |_| true),
            Gossip::Have(sv) => gossip::receive_have(&self.replicas[to], &sv),
            Gossip::Awareness(_) => unreachable!("the simulation sends no presence"),
        }
        .unwrap();
        if received.pull && self.group[from] == self.group[to] {
            self.pull(to, from, 15);
        }
    }

    /// Between two messages: sometimes a long pause (past the transfer TTL).
    fn tick(&mut self) {
        let jump = if self.time_jumps && self.chance(10) {
            TRANSFER_TTL + Duration::from_secs(1)
        } else {
            Duration::from_millis(self.rng.gen_range(0..50))
        };
        self.now += jump;
    }

    /// Replica `i` pulls from replica `j` through the node's wire path; when `j`'s responder
    /// sees that `i` is ahead, `j` pulls back, as the node does. Each message is lost with
    /// `loss` percent probability, which abandons the session. Returns whether it completed.
    fn pull(&mut self, i: usize, j: usize, loss: u32) -> bool {
        let (done, requester_ahead) = self.pull_once(i, j, loss);
        if requester_ahead {
            self.pull_once(j, i, loss);
        }
        done
    }

    fn pull_once(&mut self, i: usize, j: usize, loss: u32) -> (bool, bool) {
        let (mut pull, mut request) =
            Pull::start(self.key.clone(), self.topic, self.replicas[i].summary());
        let mut requester_ahead = false;
        loop {
            if self.chance(loss) {
                return (false, requester_ahead);
            }
            self.tick();
            let key = self.key.clone();
            let Opened { topic, body, .. } = Responder::open(&request, |topic| {
                (*topic == self.topic).then(|| key.clone())
            })
            .unwrap();
            let response = match body {
                RequestBody::Start { sv, digest } => {
                    let diff = self.replicas[j].diff_unless_same(&sv, &digest).unwrap();
                    let local_sv = self.replicas[j].state_vector();
                    let answer = self.responders[j].answer_start(
                        &key,
                        &topic,
                        diff,
                        local_sv,
                        &sv,
                        self.now,
                        &mut self.rng,
                    );
                    requester_ahead = answer.requester_ahead;
                    answer.response
                }
                RequestBody::Members(_) => unreachable!("the simulation exchanges no members"),
                RequestBody::Continue { transfer, offset } => {
                    self.reach.continued += 1;
                    let response = self.responders[j]
                        .answer_continue(&key, &topic, transfer, offset, self.now);
                    if response == SyncResponse::TransferExpired {
                        self.reach.expired += 1;
                    }
                    response
                }
            };
            if self.chance(loss) {
                return (false, requester_ahead);
            }
            match pull.on_response(&response.encode()) {
                Ok(Progress::Send(next)) => request = next,
                Ok(Progress::Done { update, .. }) => {
                    self.replicas[i].apply(&update).unwrap();
                    return (true, requester_ahead);
                }
                Err(PullError::Expired) => return (false, requester_ahead),
                Err(e) => panic!("pull {i} <- {j} failed: {e}"),
            }
        }
    }

    fn run(&mut self, steps: usize) {
        let n = self.replicas.len();
        for _ in 0..steps {
            match self.rng.gen_range(0..100) {
                0..=39 => {
                    let i = self.rng.gen_range(0..n);
                    self.local_edit(i);
                }
                40..=59 => self.deliver_random(),
                60..=69 => {
                    let i = self.rng.gen_range(0..n);
                    self.send_queued(i);
                }
                70..=74 => {
                    if !self.queue.is_empty() {
                        let k = self.rng.gen_range(0..self.queue.len());
                        self.queue.swap_remove(k);
                    }
                }
                75..=79 => {
                    let groups = self.rng.gen_range(1..=3);
                    self.group = (0..n).map(|_| self.rng.gen_range(0..groups)).collect();
                }
                80..=92 => {
                    let i = self.rng.gen_range(0..n);
                    let j = self.rng.gen_range(0..n);
                    if i != j && self.group[i] == self.group[j] {
                        self.pull(i, j, 15);
                    }
                }
                _ => self.group = vec![0; n],
            }
        }
        // Heal, send what is queued, let some stragglers arrive late, drop the rest, then one
        // anti-entropy round on a network that neither loses messages nor pauses.
        self.group = vec![0; n];
        for i in 0..n {
            self.send_queued(i);
        }
        for _ in 0..self.queue.len() / 2 {
            self.deliver_random();
        }
        self.queue.clear();
        self.time_jumps = false;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    assert!(self.pull(i, j, 0), "lossless pull must complete");
                }
            }
        }
    }

    fn assert_converged(&self, seed: u64) {
        let sv_of = |doc: &Document| StateVector::decode_v1(&doc.state_vector()).unwrap();
        let first = &self.replicas[0];
        for (i, r) in self.replicas.iter().enumerate().skip(1) {
            assert_eq!(
                r.text(),
                first.text(),
                "seed {seed}: replica {i} text differs"
            );
            assert_eq!(
                sv_of(r),
                sv_of(first),
                "seed {seed}: replica {i} state vector differs"
            );
        }
        for a in &self.replicas {
            for b in &self.replicas {
                let mut probe = Document::new();
                probe.apply(&b.encode_state()).unwrap();
                assert!(
                    probe
                        .apply(&a.diff(&b.state_vector()).unwrap())
                        .unwrap()
                        .delta
                        .is_none(),
                    "seed {seed}: a diff between converged replicas still changes something"
                );
            }
        }
    }
}

#[test]
fn replicas_converge_under_loss_duplication_reordering_partitions_and_expiry() {
    for seed in 0..300u64 {
        let n = 3 + (seed % 3) as usize;
        let mut sim = Sim::new(seed, n);
        sim.run(150);
        sim.assert_converged(seed);
    }
}

#[test]
fn simulation_is_deterministic_per_seed() {
    let run = |seed| {
        let mut sim = Sim::new(seed, 4);
        sim.run(150);
        (sim.replicas[0].text(), sim.now)
    };
    let (text, _) = run(42);
    assert_eq!(run(42).0, text);
    assert!(!text.is_empty(), "the simulation really edits");
}

#[test]
fn the_simulation_reaches_announcements_merged_edits_chunked_transfers_and_expiry() {
    // Guards the simulation's reach: were it to stop announcing big edits, splitting transfers
    // or expiring them, those paths would silently go untested.
    let mut total = Reach::default();
    for seed in 0..60u64 {
        let mut sim = Sim::new(seed, 3);
        sim.run(150);
        total.announced += sim.reach.announced;
        total.continued += sim.reach.continued;
        total.expired += sim.reach.expired;
        total.merged += sim.reach.merged;
    }
    assert!(total.announced > 0, "{total:?}");
    assert!(total.merged > 0, "{total:?}");
    assert!(total.continued > 0, "{total:?}");
    assert!(total.expired > 0, "{total:?}");
}
