//! [`PullQueue`]: which pulls run. One pull per (peer, document) at a time, at most `max` at
//! once, the rest waiting in order; a pull wanted while the same one runs runs once more after
//! it (the running one may have asked before what is wanted now).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

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
