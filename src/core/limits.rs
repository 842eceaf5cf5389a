//! Per-peer abuse limits of the sync protocol: [`PeerGuard`] decides, per request, whether to
//! serve it, refuse it, or ban the peer. Each peer has three token buckets: requests (generous:
//! an honest peer's anti-entropy and chunked catch-up stay far below), attachment pieces (a
//! budget of their own, sized for fast downloads) and faults (requests that
//! are malformed or do not open with the document's key, and requests over the rate). A peer
//! that runs out of faults is banned. Time is an argument.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// Sync requests a peer may send per second on average…
pub const REQUESTS_PER_SEC: f64 = 200.0;
/// …and at once.
pub const REQUEST_BURST: f64 = 400.0;
/// Attachment requests (a piece each, 256 KiB: 1 GB/s) a peer may send per second on average…
/// (apart from sync requests: a download runs many, and a source that refused them would
/// count them as faults and ban the downloader)
pub const PIECE_REQUESTS_PER_SEC: f64 = 4000.0;
/// …and at once.
pub const PIECE_REQUEST_BURST: f64 = 8000.0;
/// Faults a peer may commit per second on average…
pub const FAULTS_PER_SEC: f64 = 0.5;
/// …and at once, before it is banned.
pub const FAULT_BURST: f64 = 10.0;
/// Peers tracked at most; beyond, peers whose buckets are full again are forgotten (they are
/// indistinguishable from new peers), and if none are, an arbitrary one.
const MAX_PEERS: usize = 4096;

/// What to do with a peer's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// Do not answer (the request fails at the requester).
    Refuse,
    /// Refuse, and disconnect and refuse the peer for a while.
    Ban,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per key: `burst` tokens, refilled at `per_sec`.
#[derive(Debug)]
pub struct RateLimits<K> {
    buckets: HashMap<K, Bucket>,
    per_sec: f64,
    burst: f64,
}

impl<K: Hash + Eq + Clone> RateLimits<K> {
    pub fn new(per_sec: f64, burst: f64) -> Self {
        RateLimits {
            buckets: HashMap::new(),
            per_sec,
            burst,
        }
    }

    /// Takes one token for `key`; false if it has none left.
    pub fn take(&mut self, key: &K, now: Instant) -> bool {
        if self.buckets.len() >= MAX_PEERS && !self.buckets.contains_key(key) {
            self.forget_full(now);
            if self.buckets.len() >= MAX_PEERS {
                if let Some(any) = self.buckets.keys().next().cloned() {
                    self.buckets.remove(&any);
                }
            }
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn forget(&mut self, key: &K) {
        self.buckets.remove(key);
    }

    /// Drops buckets that have refilled: their keys start afresh either way.
    fn forget_full(&mut self, now: Instant) {
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
        });
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The sync protocol's per-peer limits.
#[derive(Debug)]
pub struct PeerGuard<K> {
    requests: RateLimits<K>,
    pieces: RateLimits<K>,
    faults: RateLimits<K>,
}

impl<K: Hash + Eq + Clone> Default for PeerGuard<K> {
    fn default() -> Self {
        PeerGuard {
            requests: RateLimits::new(REQUESTS_PER_SEC, REQUEST_BURST),
            pieces: RateLimits::new(PIECE_REQUESTS_PER_SEC, PIECE_REQUEST_BURST),
            faults: RateLimits::new(FAULTS_PER_SEC, FAULT_BURST),
        }
    }
}

impl<K: Hash + Eq + Clone> PeerGuard<K> {
    /// A request arrived from `peer`.
    pub fn request(&mut self, peer: &K, now: Instant) -> Verdict {
        if self.requests.take(peer, now) {
            Verdict::Serve
        } else {
            self.fault(peer, now)
        }
    }

    /// An attachment request arrived from `peer`.
    pub fn piece_request(&mut self, peer: &K, now: Instant) -> Verdict {
        if self.pieces.take(peer, now) {
            Verdict::Serve
        } else {
            self.fault(peer, now)
        }
    }

    /// `peer` sent something malformed or undecryptable.
    pub fn fault(&mut self, peer: &K, now: Instant) -> Verdict {
        if self.faults.take(peer, now) {
            Verdict::Refuse
        } else {
            Verdict::Ban
        }
    }

    /// `peer` disconnected: its buckets go (a reconnect starts afresh, but a banned peer
    /// cannot reconnect while banned).
    pub fn forget(&mut self, peer: &K) {
        self.requests.forget(peer);
        self.pieces.forget(peer);
        self.faults.forget(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut limits = RateLimits::new(2.0, 3.0);
        assert!((0..3).all(|_| limits.take(&1, t0)));
        assert!(!limits.take(&1, t0));
        assert!(limits.take(&2, t0), "other keys are not affected");
        let later = t0 + Duration::from_millis(500);
        assert!(limits.take(&1, later), "one token back after half a second");
        assert!(!limits.take(&1, later));
        let much_later = t0 + Duration::from_secs(3600);
        assert!(
            (0..3).all(|_| limits.take(&1, much_later)),
            "refill caps at the burst"
        );
        assert!(!limits.take(&1, much_later));
    }

    #[test]
    fn a_flooding_peer_is_refused_then_banned_and_an_honest_one_is_served() {
        let t0 = Instant::now();
        let mut guard = PeerGuard::default();
        let mut verdicts = Vec::new();
        // 1000 requests within one second from "flood".
        for i in 0..1000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            verdicts.push(guard.request(&"flood", now));
            // An honest peer's anti-entropy and catch-up meanwhile: 50 requests a second.
            if i % 20 == 0 {
                assert_eq!(guard.request(&"honest", now), Verdict::Serve);
            }
        }
        let first_refused = verdicts.iter().position(|v| *v != Verdict::Serve).unwrap();
        assert!(first_refused >= REQUEST_BURST as usize);
        assert!(verdicts.contains(&Verdict::Refuse));
        assert_eq!(verdicts.last(), Some(&Verdict::Ban));
    }

    #[test]
    fn a_download_s_piece_requests_do_not_spend_the_sync_budget() {
        let t0 = Instant::now();
        let mut guard = PeerGuard::default();
        // A second of a fast download: 1000 pieces (256 MB/s).
        for i in 0..1000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(guard.piece_request(&1, now), Verdict::Serve);
        }
        assert_eq!(
            guard.request(&1, t0 + Duration::from_secs(1)),
            Verdict::Serve
        );
        // A flood of them is refused and then banned like any flood.
        let mut last = Verdict::Serve;
        for _ in 0..20_000 {
            last = guard.piece_request(&2, t0);
        }
        assert_eq!(last, Verdict::Ban);
    }

    #[test]
    fn faults_are_forgiven_slowly_and_ban_when_they_pile_up() {
        let t0 = Instant::now();
        let mut guard = PeerGuard::default();
        for _ in 0..FAULT_BURST as usize {
            assert_eq!(guard.fault(&1, t0), Verdict::Refuse);
        }
        assert_eq!(guard.fault(&1, t0), Verdict::Ban);
        let later = t0 + Duration::from_secs_f64(1.0 / FAULTS_PER_SEC);
        assert_eq!(
            guard.fault(&1, later),
            Verdict::Refuse,
            "one fault forgiven"
        );
        guard.forget(&1);
        assert_eq!(guard.fault(&1, later), Verdict::Refuse, "forgotten");
    }

    #[test]
    fn memory_is_bounded_by_forgetting_refilled_peers() {
        let t0 = Instant::now();
        let mut limits = RateLimits::new(1.0, 2.0);
        for key in 0..MAX_PEERS as u32 {
            limits.take(&key, t0);
        }
        let later = t0 + Duration::from_secs(10);
        limits.take(&u32::MAX, later);
        assert_eq!(limits.len(), 1, "refilled peers were forgotten");
    }
}
