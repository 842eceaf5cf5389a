//! Codec property tests and the seeded convergence simulation: replicas exchanging sealed
//! gossip and chunked pulls over a lossy, duplicating, reordering, partitioning network.

use super::*;
use crate::doc::{DocId, Document};
use crate::envelope::{DocKey, Purpose};

impl Progress {
    /// Sealed requests differ in their random nonce: compare them by their opened body.
    fn map_sealed(self) -> (Option<RequestBody>, bool) {
        match self {
            Progress::Send(bytes) => {
                let req = SyncRequest::decode(&bytes).unwrap();
                (Some(open_request(&DocKey([3; 32]), &req).unwrap()), false)
            }
            Progress::Done { .. } => (None, true),
        }
    }
}
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::StateVector;

fn sv_of(doc: &Document) -> StateVector {
    StateVector::decode_v1(&doc.state_vector()).unwrap()
}

proptest! {
    #[test]
    fn y_messages_round_trip(data in proptest::collection::vec(any::<u8>(), 0..500), kind in 0..5u8) {
        let mut d = Document::new();
        d.append_text(&String::from_utf8_lossy(&data));
        let m = match kind {
            0 => YMessage::Update(data),
            1 => YMessage::SyncStep2(data),
            2 => YMessage::SyncStep1(d.state_vector()),
            3 => YMessage::QueryAwareness,
            _ => YMessage::Awareness(vec![1, 7, 3, 2, b'{', b'}']),
        };
        prop_assert_eq!(YMessage::decode(&m.encode()).unwrap(), m.clone());
        let mut frame = m.encode();
        frame.extend(YMessage::QueryAwareness.encode());
        prop_assert_eq!(YMessage::decode_all(&frame).unwrap(), vec![m, YMessage::QueryAwareness]);
    }

    #[test]
    fn request_and_response_round_trip(
        topic in any::<[u8; 32]>(),
        sealed in proptest::collection::vec(any::<u8>(), ENVELOPE_OVERHEAD..300),
        transfer in any::<u64>(),
        offset in any::<u64>(),
        total in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let req = SyncRequest { topic, sealed: sealed.clone() };
        prop_assert_eq!(SyncRequest::decode(&req.encode()).unwrap(), req);
        let body = RequestBody::Continue { transfer, offset };
        prop_assert_eq!(RequestBody::decode(&body.encode()).unwrap(), body);
        let start = RequestBody::Start { sv: Document::new().state_vector() };
        prop_assert_eq!(RequestBody::decode(&start.encode()).unwrap(), start);
        for resp in [SyncResponse::Chunk(sealed), SyncResponse::UnknownDoc, SyncResponse::BadRequest, SyncResponse::TransferExpired] {
            prop_assert_eq!(SyncResponse::decode(&resp.encode()).unwrap(), resp);
        }
        let chunk = Chunk { sv: Document::new().state_vector(), transfer, total, offset, data };
        prop_assert_eq!(Chunk::decode(&chunk.encode()).unwrap(), chunk);
    }

    #[test]
    fn decoders_never_panic_on_random_bytes(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = YMessage::decode(&raw);
        let _ = YMessage::decode_all(&raw);
        let _ = SyncRequest::decode(&raw);
        let _ = RequestBody::decode(&raw);
        let _ = SyncResponse::decode(&raw);
        let _ = Chunk::decode(&raw);
        let (mut pull, _) = Pull::start(DocKey([1; 32]), [2; 32], vec![0]);
        if let Ok(chunk) = Chunk::decode(&raw) {
            let _ = pull.on_chunk(chunk);
        }
        let _ = pull.on_response(&raw);
    }
}

#[test]
fn pull_rejects_inconsistent_transfers() {
    let sv = Document::new().state_vector();
    let chunk = |transfer, total, offset, data: &[u8]| Chunk {
        sv: sv.clone(),
        transfer,
        total,
        offset,
        data: data.to_vec(),
    };
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    assert!(
        p.on_chunk(chunk(1, 10, 3, b"abc")).is_err(),
        "must start at 0"
    );
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    assert_eq!(
        p.on_chunk(chunk(0, MAX_TRANSFER + 1, 0, b"")),
        Err(SyncError::TooLarge(MAX_TRANSFER + 1))
    );
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    assert!(
        p.on_chunk(chunk(0, 10, 0, b"abc")).is_err(),
        "single chunk must be whole"
    );
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    assert!(
        p.on_chunk(chunk(7, 6, 0, b"abcdefg")).is_err(),
        "more than announced"
    );
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    assert_eq!(
        p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap(),
        Step::Next(RequestBody::Continue {
            transfer: 7,
            offset: 3
        })
    );
    assert!(
        p.on_chunk(chunk(8, 6, 3, b"def")).is_err(),
        "other transfer"
    );
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap();
    assert!(p.on_chunk(chunk(7, 6, 2, b"def")).is_err(), "wrong offset");
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap();
    assert!(
        p.on_chunk(chunk(7, 6, 3, b"")).is_err(),
        "empty chunk stalls"
    );
    let (mut p, _) = Pull::start(DocKey([0; 32]), [0; 32], sv.clone());
    p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap();
    assert!(matches!(
        p.on_chunk(chunk(7, 6, 3, b"def")).unwrap(),
        Step::Done { update, .. } if update == b"abcdef"
    ));
}

#[test]
fn pull_responses_map_to_progress_or_errors() {
    let key = DocKey([3; 32]);
    let topic = [4; 32];
    let sv = Document::new().state_vector();
    let start = |sv: &Vec<u8>| Pull::start(key.clone(), topic, sv.clone());

    // The first request is a sealed Start the responder can open.
    let (mut p, first) = start(&sv);
    let req = SyncRequest::decode(&first).unwrap();
    assert_eq!(
        open_request(&key, &req).unwrap(),
        RequestBody::Start { sv: sv.clone() }
    );
    assert!(
        open_request(&DocKey([9; 32]), &req).is_err(),
        "another key cannot open it"
    );

    // Expired transfers restart from scratch a few times, then give up.
    for _ in 0..3 {
        assert_eq!(
            p.on_response(&SyncResponse::TransferExpired.encode())
                .unwrap()
                .map_sealed(),
            (Some(RequestBody::Start { sv: sv.clone() }), false)
        );
    }
    assert_eq!(
        p.on_response(&SyncResponse::TransferExpired.encode()),
        Err(PullError::Expired)
    );
    let (mut p, _) = start(&sv);
    assert_eq!(
        p.on_response(&SyncResponse::UnknownDoc.encode()),
        Err(PullError::UnknownDoc)
    );
    assert_eq!(
        p.on_response(&SyncResponse::BadRequest.encode()),
        Err(PullError::Refused)
    );

    // A chunk sealed with another key is refused; a good one completes the pull.
    let chunk = Chunk {
        sv: sv.clone(),
        transfer: 0,
        total: 3,
        offset: 0,
        data: b"abc".to_vec(),
    };
    let wrong = chunk_response(&DocKey([9; 32]), &topic, Some(chunk.clone())).encode();
    assert!(matches!(
        p.on_response(&wrong),
        Err(PullError::Sync(SyncError::Sealed(_)))
    ));
    let right = chunk_response(&key, &topic, Some(chunk)).encode();
    assert_eq!(
        p.on_response(&right).unwrap(),
        Progress::Done {
            update: b"abc".to_vec(),
            remote_sv: sv
        }
    );
}

#[test]
fn transfers_hand_out_chunks_then_forget() {
    let mut t = Transfers::default();
    let sv = vec![0];
    let small = t.start(vec![1, 2, 3], sv.clone(), 10);
    assert_eq!((small.transfer, small.total, small.data.len()), (0, 3, 3));
    assert!(t.is_empty());
    let first = t.start((0..25).collect(), sv, 10);
    assert_eq!((first.total, first.data.len()), (25, 10));
    assert_eq!(t.len(), 1);
    assert!(
        t.chunk(first.transfer, 25, 10).is_none(),
        "offset past the end"
    );
    let second = t.chunk(first.transfer, 10, 10).unwrap();
    assert_eq!(second.data, (10..20).collect::<Vec<u8>>());
    let last = t.chunk(first.transfer, 20, 10).unwrap();
    assert_eq!(last.data, (20..25).collect::<Vec<u8>>());
    assert!(t.is_empty(), "finished transfers are dropped");
    assert!(t.chunk(first.transfer, 20, 10).is_none());
}

// ---------------------------------------------------------------------------------------------
// Simulation

/// Tunables of one simulated run.
struct Sim {
    rng: StdRng,
    key: DocKey,
    topic: [u8; 32],
    replicas: Vec<Document>,
    transfers: Vec<Transfers>,
    /// Partition group per replica: messages only flow within a group.
    group: Vec<usize>,
    /// In-flight gossip: (from, to, sealed payload).
    queue: Vec<(usize, usize, Vec<u8>)>,
    chunk_size: usize,
    max_gossip_update: usize,
}

impl Sim {
    fn new(seed: u64, n: usize) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let replicas = (0..n)
            .map(|_| Document::with_client_id(rng.gen_range(1..u32::MAX as u64)))
            .collect();
        let mut key = [0u8; 32];
        rng.fill(&mut key);
        Sim {
            rng,
            key: DocKey(key),
            topic: DocId([seed as u8; 16]).topic(),
            replicas,
            transfers: (0..n).map(|_| Transfers::default()).collect(),
            group: vec![0; n],
            queue: Vec::new(),
            chunk_size: 64,
            max_gossip_update: 96,
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
            let size = if self.chance(5) {
                300
            } else {
                self.rng.gen_range(1..6)
            };
            let s: String = (0..size)
                .map(|_| ['a', 'b', 'é', '\n', '€', 'z'][self.rng.gen_range(0..6)])
                .collect();
            self.replicas[i].insert(at, &s)
        };
        let Some(update) = update else { return };
        let payload = if update.len() > self.max_gossip_update {
            YMessage::SyncStep1(self.replicas[i].state_vector())
        } else {
            YMessage::Update(update)
        };
        let sealed = self
            .key
            .seal(&self.topic, Purpose::Gossip, &payload.encode());
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
        let plain = self
            .key
            .open(&self.topic, Purpose::Gossip, &sealed)
            .unwrap();
        match YMessage::decode(&plain).unwrap() {
            YMessage::Update(u) => {
                if self.replicas[to].apply(&u).unwrap().incomplete
                    && self.group[from] == self.group[to]
                {
                    self.pull(to, from, 15);
                }
            }
            YMessage::SyncStep1(sv) => {
                if self.replicas[to].is_behind(&sv).unwrap() && self.group[from] == self.group[to] {
                    self.pull(to, from, 15);
                }
            }
            other => unreachable!("the simulation sends no {other:?}"),
        }
    }

    /// Replica `i` pulls from replica `j` through the same wire path as the node (`Pull`,
    /// `open_request`, `Transfers`, `chunk_response`). Each message is lost with `loss` percent
    /// probability, which abandons the session. Returns whether it completed.
    fn pull(&mut self, i: usize, j: usize, loss: u32) -> bool {
        let (mut pull, mut request) = Pull::start(
            self.key.clone(),
            self.topic,
            self.replicas[i].state_vector(),
        );
        loop {
            if self.chance(loss) {
                return false;
            }
            // Responder j.
            let req = SyncRequest::decode(&request).unwrap();
            assert_eq!(req.topic, self.topic);
            let chunk = match open_request(&self.key, &req).unwrap() {
                RequestBody::Start { sv } => {
                    let diff = self.replicas[j].diff(&sv).unwrap();
                    let my_sv = self.replicas[j].state_vector();
                    Some(self.transfers[j].start(diff, my_sv, self.chunk_size))
                }
                RequestBody::Continue { transfer, offset } => {
                    self.transfers[j].chunk(transfer, offset, self.chunk_size)
                }
            };
            let response = chunk_response(&self.key, &self.topic, chunk).encode();
            if self.chance(loss) {
                return false;
            }
            // Requester i.
            match pull.on_response(&response).unwrap() {
                Progress::Send(next) => request = next,
                Progress::Done { update, .. } => {
                    self.replicas[i].apply(&update).unwrap();
                    return true;
                }
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
                40..=69 => self.deliver_random(),
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
        // Heal, let some stragglers arrive late, drop the rest, then one anti-entropy round.
        self.group = vec![0; n];
        for _ in 0..self.queue.len() / 2 {
            self.deliver_random();
        }
        self.queue.clear();
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    assert!(self.pull(i, j, 0), "lossless pull must complete");
                }
            }
        }
    }

    fn assert_converged(&self, seed: u64) {
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
fn replicas_converge_under_loss_duplication_reordering_and_partitions() {
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
        sim.replicas[0].text()
    };
    assert_eq!(run(42), run(42));
    assert!(!run(42).is_empty(), "the simulation really edits");
}

#[test]
fn malformed_y_messages_are_errors() {
    for bad in [
        &[][..],                                         // empty frame
        &[0x00][..],                                     // sync without a type
        &[0x00, 0x02, 0x05, 1][..],                      // update claims 5 bytes, has 1
        &[0x00, 0x07, 0x00][..],                         // unknown sync type
        &[0x09][..],                                     // unknown message type
        &[0x80, 0x80, 0x80][..],                         // truncated varint
        &[0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f][..], // huge length
        &[0x01, 0x03, 0x01, 0x01][..],                   // truncated awareness
    ] {
        assert!(YMessage::decode_all(bad).is_err(), "{bad:?}");
    }
}
