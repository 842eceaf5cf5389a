//! The sync driver's pulls: whom to pull from (writers only; a peer whose role is unknown is
//! asked for its roster first), running them in tasks, and [`PullQueue`], which pulls run: one
//! pull per (peer, document) at a time, at most `max` at once, the rest waiting in order; a pull
//! wanted while the same one runs runs once more after it (the running one may have asked
//! before what is wanted now).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::time::Instant;

use libp2p::PeerId;

use super::{Report, SyncDriver};
use crate::core::doc::DocId;
use crate::replica::pull::{pull, PullFailure, PullOutcome};

impl SyncDriver {
    /// Pulls `doc` from `peer` if it is a writer; if its role is unknown, asks for its roster.
    pub(super) fn want_pull(&mut self, peer: PeerId, doc: DocId) {
        if peer == self.net.peer_id() {
            return;
        }
        let Some(room) = self.rooms.get(&doc) else {
            return;
        };
        let access = room.access();
        // Removed here: nobody serves us any more; what we have stays.
        if access.membership.is_revoked(&self.net.peer_id()) {
            return;
        }
        match access.membership.role_of(&peer) {
            // Rosters first: the exchange pulls when it is done.
            Some(role) if role.may_write() && !self.rosters.has_heard(&peer, &doc) => {
                self.exchange_members(peer, doc, true)
            }
            Some(role) if role.may_write() => {
                if self.pulls.want((peer, doc)) {
                    self.start_pull(peer, doc);
                }
            }
            // Readers never serve what we apply.
            Some(_) => {}
            None => self.exchange_members(peer, doc, true),
        }
    }

    fn start_pull(&mut self, peer: PeerId, doc: DocId) {
        let Some(room) = self.rooms.get(&doc) else {
            // The document was deleted meanwhile: its slot goes to the next pull.
            return self.pull_finished(peer, doc);
        };
        let net = self.net.clone();
        let reports = self.reports.clone();
        let timer = self.settings.metrics.sync.clone();
        self.spawn_task(async move {
            let started = Instant::now();
            let result = pull(&net, &room, peer).await;
            if result.is_ok() {
                timer.observe(started.elapsed().as_secs_f64());
            }
            let _ = reports.send(Report::PullDone { peer, doc, result }).await;
        });
    }

    fn pull_finished(&mut self, peer: PeerId, doc: DocId) {
        for (peer, doc) in self.pulls.finished((peer, doc)) {
            self.start_pull(peer, doc);
        }
    }

    pub(super) fn on_pull_done(
        &mut self,
        peer: PeerId,
        doc: DocId,
        result: Result<PullOutcome, PullFailure>,
    ) {
        match result {
            Ok(outcome) => {
                if outcome.changed {
                    tracing::debug!(doc = %doc, %peer, "caught up from peer");
                }
                self.synced
                    .insert((doc, peer), (Instant::now(), outcome.gap));
                self.vouch(peer);
                self.exchange_members(peer, doc, false);
            }
            // Records only: pass on what they brought; the newest key comes, with the removals
            // it came with, by a member exchange (which then pulls again).
            Err(PullFailure::NotServed { news, .. }) => {
                if news {
                    self.spread_records(doc);
                }
                self.exchange_members(peer, doc, true);
            }
            Err(e) => tracing::debug!(doc = %doc, %peer, "pull failed: {e}"),
        }
        self.pull_finished(peer, doc);
    }
}

pub(super) struct PullQueue<K> {
    max: usize,
    running: HashSet<K>,
    again: HashSet<K>,
    waiting: VecDeque<K>,
    waiting_set: HashSet<K>,
}

impl<K: Copy + Eq + Hash> PullQueue<K> {
    pub(super) fn new(max: usize) -> Self {
        PullQueue {
            max,
            running: HashSet::new(),
            again: HashSet::new(),
            waiting: VecDeque::new(),
            waiting_set: HashSet::new(),
        }
    }

    /// Records that `key` should be pulled; true if the caller should start it now (it then
    /// counts as running until [`PullQueue::finished`]).
    pub(super) fn want(&mut self, key: K) -> bool {
        if self.running.contains(&key) {
            self.again.insert(key);
            false
        } else if self.waiting_set.contains(&key) {
            false
        } else if self.running.len() < self.max {
            self.running.insert(key);
            true
        } else {
            self.waiting.push_back(key);
            self.waiting_set.insert(key);
            false
        }
    }

    /// `key` ended (or could not start); returns the pulls to start now, already running.
    pub(super) fn finished(&mut self, key: K) -> Vec<K> {
        self.running.remove(&key);
        let mut start = Vec::new();
        if self.again.remove(&key) {
            self.running.insert(key);
            start.push(key);
        }
        while self.running.len() < self.max {
            let Some(next) = self.waiting.pop_front() else {
                break;
            };
            self.waiting_set.remove(&next);
            self.running.insert(next);
            start.push(next);
        }
        start
    }

    #[cfg(test)]
    fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_run_one_per_key_and_the_rest_wait_in_order() {
        let mut q = PullQueue::new(2);
        assert!(q.want(1));
        assert!(!q.want(1), "already running");
        assert!(q.want(2));
        assert!(!q.want(3), "full: waits");
        assert!(!q.want(4));
        assert!(!q.want(3), "already waiting");
        assert_eq!(q.running(), 2);
        // 1 was wanted again while running: it runs once more, before the waiting ones.
        assert_eq!(q.finished(1), vec![1]);
        assert_eq!(q.finished(1), vec![3]);
        assert_eq!(q.finished(2), vec![4]);
        assert_eq!(q.finished(3), Vec::<i32>::new());
        assert_eq!(q.finished(4), Vec::<i32>::new());
        assert_eq!(q.running(), 0);
    }
}
