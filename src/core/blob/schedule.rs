//! The plan of one download from several sources: which piece to ask of which source next.
//! Each source has up to [`IN_FLIGHT`] pieces asked at once, and different sources get
//! different pieces; a source that fails gives its pieces back, one that sent a bad piece is
//! banned for the rest of the download, and at the end pieces still in flight are asked of a
//! second source too (so one slow source does not hold the download). The caller does the
//! asking and the verifying; time plays no part.

use std::collections::{HashSet, VecDeque};

use super::Bitmap;

/// Pieces asked of one source at once.
pub const IN_FLIGHT: usize = 4;

#[derive(Debug, Default)]
struct Source {
    banned: bool,
    gone: bool,
    in_flight: HashSet<u32>,
    bytes: u64,
}

#[derive(Debug)]
pub struct Schedule {
    have: Bitmap,
    /// Missing pieces asked of nobody, in order.
    queue: VecDeque<u32>,
    sources: Vec<Source>,
}

impl Schedule {
    /// A plan for the pieces `have` lacks.
    pub fn new(have: Bitmap) -> Schedule {
        let queue = (0..have.len()).filter(|&p| !have.get(p)).collect();
        Schedule {
            have,
            queue,
            sources: Vec::new(),
        }
    }

    /// A new source; its number.
    pub fn add_source(&mut self) -> usize {
        self.sources.push(Source::default());
        self.sources.len() - 1
    }

    /// The next piece to ask of `source`, if it may be asked one now.
    pub fn next(&mut self, source: usize) -> Option<u32> {
        let s = self.sources.get(source)?;
        if s.banned || s.gone || s.in_flight.len() >= IN_FLIGHT {
            return None;
        }
        while let Some(piece) = self.queue.pop_front() {
            if !self.have.get(piece) && !self.in_flight_anywhere(piece) {
                self.sources[source].in_flight.insert(piece);
                return Some(piece);
            }
        }
        // The end: a piece another source has had the longest, asked of this one too.
        let mut waiting: Vec<u32> = self
            .sources
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != source)
            .flat_map(|(_, s)| s.in_flight.iter().copied())
            .filter(|&p| !self.have.get(p))
            .filter(|&p| !self.sources[source].in_flight.contains(&p))
            .filter(|&p| self.askers(p) < 2)
            .collect();
        waiting.sort_unstable();
        let piece = *waiting.first()?;
        self.sources[source].in_flight.insert(piece);
        Some(piece)
    }

    /// `source` sent `piece`, verified, of `bytes` bytes. True if it was new.
    pub fn arrived(&mut self, source: usize, piece: u32, bytes: u64) -> bool {
        let Some(s) = self.sources.get_mut(source) else {
            return false;
        };
        s.in_flight.remove(&piece);
        s.bytes += bytes;
        let new = !self.have.get(piece);
        self.have.set(piece);
        new
    }

    /// Asking `source` for `piece` failed (an error, a refusal, a timeout).
    pub fn failed(&mut self, source: usize, piece: u32) {
        if let Some(s) = self.sources.get_mut(source) {
            s.in_flight.remove(&piece);
        }
        self.give_back(piece);
    }

    /// `source` sent a piece that does not match the hash: it is asked nothing more.
    pub fn corrupt(&mut self, source: usize, piece: u32) {
        if let Some(s) = self.sources.get_mut(source) {
            s.banned = true;
        }
        self.failed(source, piece);
        self.drop_in_flight(source);
    }

    /// `source` left (or does not have the blob): its pieces go to the others.
    pub fn gone(&mut self, source: usize) {
        if let Some(s) = self.sources.get_mut(source) {
            s.gone = true;
        }
        self.drop_in_flight(source);
    }

    pub fn is_banned(&self, source: usize) -> bool {
        self.sources.get(source).is_some_and(|s| s.banned)
    }
    /// Sources that may still be asked.
    pub fn usable(&self) -> usize {
        self.sources.iter().filter(|s| !s.banned && !s.gone).count()
    }
    /// Pieces asked and not answered yet, over all sources.
    pub fn in_flight(&self) -> usize {
        self.sources.iter().map(|s| s.in_flight.len()).sum()
    }
    pub fn is_done(&self) -> bool {
        self.have.is_full()
    }
    pub fn have(&self) -> &Bitmap {
        &self.have
    }
    /// Verified bytes received from `source` (duplicates at the end included).
    pub fn bytes_from(&self, source: usize) -> u64 {
        self.sources.get(source).map_or(0, |s| s.bytes)
    }

    fn askers(&self, piece: u32) -> usize {
        self.sources
            .iter()
            .filter(|s| s.in_flight.contains(&piece))
            .count()
    }
    fn in_flight_anywhere(&self, piece: u32) -> bool {
        self.askers(piece) > 0
    }
    fn give_back(&mut self, piece: u32) {
        if !self.have.get(piece) && !self.in_flight_anywhere(piece) && !self.queue.contains(&piece)
        {
            self.queue.push_front(piece);
        }
    }
    fn drop_in_flight(&mut self, source: usize) {
        let pieces: Vec<u32> = match self.sources.get_mut(source) {
            Some(s) => s.in_flight.drain().collect(),
            None => return,
        };
        for piece in pieces {
            self.give_back(piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sources_get_different_pieces_up_to_their_limit() {
        let mut s = Schedule::new(Bitmap::new(20));
        let (a, b) = (s.add_source(), s.add_source());
        let mut asked = HashSet::new();
        for src in [a, b] {
            while let Some(p) = s.next(src) {
                assert!(asked.insert(p), "piece {p} asked twice");
            }
        }
        assert_eq!(asked.len(), 2 * IN_FLIGHT);
    }

    #[test]
    fn a_corrupting_source_is_banned_and_its_pieces_go_elsewhere() {
        let mut s = Schedule::new(Bitmap::new(3));
        let (bad, good) = (s.add_source(), s.add_source());
        let first = s.next(bad).unwrap();
        let second = s.next(bad).unwrap();
        s.corrupt(bad, first);
        assert!(s.is_banned(bad));
        assert_eq!(s.next(bad), None);
        let mut got = Vec::new();
        while let Some(p) = s.next(good) {
            got.push(p);
        }
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2], "{first} and {second} were given back");
        for p in got {
            s.arrived(good, p, 10);
        }
        assert!(s.is_done());
        assert_eq!(s.bytes_from(good), 30);
    }

    #[test]
    fn the_last_pieces_are_asked_of_a_second_source() {
        let mut s = Schedule::new(Bitmap::new(1));
        let (slow, fast) = (s.add_source(), s.add_source());
        assert_eq!(s.next(slow), Some(0));
        assert_eq!(s.next(fast), Some(0), "the end: asked twice");
        assert!(s.arrived(fast, 0, 1));
        assert!(!s.arrived(slow, 0, 1), "the duplicate is not new");
    }

    #[test]
    fn a_piece_that_arrived_is_not_asked_again_while_a_slow_source_still_has_it() {
        let mut s = Schedule::new(Bitmap::new(2));
        let (slow, fast) = (s.add_source(), s.add_source());
        assert_eq!(s.next(slow), Some(0));
        assert_eq!(s.next(slow), Some(1));
        assert_eq!(s.next(fast), Some(0));
        assert!(s.arrived(fast, 0, 1));
        assert_eq!(s.next(fast), Some(1), "only the missing piece");
        assert_eq!(s.next(fast), None, "not piece 0 again");
    }

    #[test]
    fn what_is_had_is_not_asked_again() {
        let mut have = Bitmap::new(4);
        have.set(0);
        have.set(2);
        let mut s = Schedule::new(have);
        let a = s.add_source();
        assert_eq!((s.next(a), s.next(a), s.next(a)), (Some(1), Some(3), None));
    }

    proptest! {
        /// Whatever sources fail, leave or corrupt, as long as one honest source stays, every
        /// piece arrives, and no piece is asked of a banned or gone source.
        #[test]
        fn any_mix_of_failures_completes_with_one_honest_source(
            pieces in 1u32..40,
            events in proptest::collection::vec((0usize..4, 0u8..4), 0..200),
        ) {
            let mut s = Schedule::new(Bitmap::new(pieces));
            let sources: Vec<usize> = (0..4).map(|_| s.add_source()).collect();
            let honest = sources[0];
            let mut flying: Vec<(usize, u32)> = Vec::new();
            for (src, what) in events {
                let src = if src == honest { 1 } else { src };
                while let Some(p) = s.next(src) { flying.push((src, p)); }
                let Some(i) = flying.iter().position(|(f, _)| *f == src) else { continue };
                let (_, p) = flying.remove(i);
                match what {
                    0 => { s.arrived(src, p, 1); }
                    1 => s.failed(src, p),
                    2 => { s.corrupt(src, p); flying.retain(|(f, _)| *f != src); }
                    _ => { s.gone(src); flying.retain(|(f, _)| *f != src); }
                }
                prop_assert!(s.in_flight() >= flying.len());
            }
            for (src, p) in std::mem::take(&mut flying) {
                if src == honest { flying.push((src, p)) } else { s.failed(src, p) }
            }
            let mut rounds = 0;
            while !s.is_done() {
                while let Some(p) = s.next(honest) { flying.push((honest, p)); }
                for (src, p) in std::mem::take(&mut flying) {
                    if src == honest { s.arrived(src, p, 1); } else { s.failed(src, p); }
                }
                rounds += 1;
                prop_assert!(rounds < 1000, "stuck");
            }
        }
    }
}
