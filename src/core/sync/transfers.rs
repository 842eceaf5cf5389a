//! [`Transfers`]: the large diffs a responder hands out chunk by chunk, bounded in age
//! ([`TRANSFER_TTL`]) and in total bytes ([`TRANSFER_CACHE_BYTES`]). Time and randomness (the
//! transfer ids) are arguments, so expiry is tested deterministically.

use std::collections::HashMap;
use std::time::Instant;

use rand::Rng;

use super::{Chunk, TRANSFER_CACHE_BYTES, TRANSFER_TTL};

/// Large diffs a responder is handing out chunk by chunk.
#[derive(Default)]
pub struct Transfers {
    entries: HashMap<u64, Transfer>,
    bytes: usize,
}

struct Transfer {
    diff: Vec<u8>,
    sv: Vec<u8>,
    created: Instant,
}

impl Transfers {
    /// The first chunk answering a `Start`: the whole diff if it fits, else a new transfer
    /// with a fresh random id.
    pub fn start(
        &mut self,
        diff: Vec<u8>,
        sv: Vec<u8>,
        chunk_size: usize,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Chunk {
        if diff.len() <= chunk_size {
            return Chunk {
                sv,
                transfer: 0,
                total: diff.len() as u64,
                offset: 0,
                data: diff,
            };
        }
        self.expire(now);
        while self.bytes + diff.len() > TRANSFER_CACHE_BYTES {
            let Some(oldest) = self.oldest() else { break };
            self.remove(oldest);
        }
        let id = loop {
            let id = rng.gen_range(1..u64::MAX);
            if !self.entries.contains_key(&id) {
                break id;
            }
        };
        let first = Chunk {
            sv: sv.clone(),
            transfer: id,
            total: diff.len() as u64,
            offset: 0,
            data: diff[..chunk_size].to_vec(),
        };
        self.bytes += diff.len();
        self.entries.insert(
            id,
            Transfer {
                diff,
                sv,
                created: now,
            },
        );
        first
    }

    /// The chunk at `offset` of transfer `id`, or `None` if it is gone, expired, or `offset` is
    /// bad. The last chunk ends the transfer.
    pub fn chunk(
        &mut self,
        id: u64,
        offset: u64,
        chunk_size: usize,
        now: Instant,
    ) -> Option<Chunk> {
        self.expire(now);
        let t = self.entries.get(&id)?;
        let start = usize::try_from(offset).ok().filter(|o| *o < t.diff.len())?;
        let end = (start + chunk_size).min(t.diff.len());
        let chunk = Chunk {
            sv: t.sv.clone(),
            transfer: id,
            total: t.diff.len() as u64,
            offset,
            data: t.diff[start..end].to_vec(),
        };
        if end == t.diff.len() {
            self.remove(id);
        }
        Some(chunk)
    }

    fn oldest(&self) -> Option<u64> {
        self.entries
            .iter()
            .min_by_key(|(_, t)| t.created)
            .map(|(id, _)| *id)
    }

    fn remove(&mut self, id: u64) {
        if let Some(t) = self.entries.remove(&id) {
            self.bytes -= t.diff.len();
        }
    }

    fn expire(&mut self, now: Instant) {
        let old: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.created) > TRANSFER_TTL)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn transfers_hand_out_chunks_then_forget() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let mut t = Transfers::default();
        let sv = vec![0];
        let small = t.start(vec![1, 2, 3], sv.clone(), 10, now, &mut rng);
        assert_eq!((small.transfer, small.total, small.data.len()), (0, 3, 3));
        assert!(t.is_empty());
        let first = t.start((0..25).collect(), sv, 10, now, &mut rng);
        assert_eq!((first.total, first.data.len()), (25, 10));
        assert_eq!(t.len(), 1);
        assert!(
            t.chunk(first.transfer, 25, 10, now).is_none(),
            "offset past the end"
        );
        let second = t.chunk(first.transfer, 10, 10, now).unwrap();
        assert_eq!(second.data, (10..20).collect::<Vec<u8>>());
        let last = t.chunk(first.transfer, 20, 10, now).unwrap();
        assert_eq!(last.data, (20..25).collect::<Vec<u8>>());
        assert!(t.is_empty(), "finished transfers are dropped");
        assert!(t.chunk(first.transfer, 20, 10, now).is_none());
    }

    #[test]
    fn transfers_expire_after_their_ttl_exactly() {
        let mut rng = StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let mut t = Transfers::default();
        let first = t.start((0..30).collect(), vec![0], 10, t0, &mut rng);
        let at_ttl = t0 + TRANSFER_TTL;
        assert!(
            t.chunk(first.transfer, 10, 10, at_ttl).is_some(),
            "still there at the TTL"
        );
        let past = at_ttl + Duration::from_millis(1);
        assert!(
            t.chunk(first.transfer, 20, 10, past).is_none(),
            "gone just after the TTL"
        );
        assert!(t.is_empty(), "expired transfers free their bytes");
    }

    #[test]
    fn transfer_ids_follow_the_rng_so_runs_repeat() {
        let ids = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut t = Transfers::default();
            let now = Instant::now();
            (0..3)
                .map(|_| t.start(vec![7; 20], vec![0], 10, now, &mut rng).transfer)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(5), ids(5));
        assert_ne!(ids(5), ids(6));
    }
}
