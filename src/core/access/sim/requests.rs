//! The simulation's requests: a pull and a member exchange between two nodes, answered as the
//! node's sync driver answers them ([`admit`], [`records_for`], roster pages).

use super::super::admission::{admit, records_for, Admission, Asked};
use super::Sim;
use crate::core::sync::members::{self, Roster};
use crate::core::sync::responder::Opened;
use crate::core::sync::{Progress, Pull, PullError, RequestBody, Responder};

impl Sim {
    /// `i` pulls from `j` as the node does: rosters first, then only from a writer it knows;
    /// `j` answers by
    /// [`admit`]; records only go to `i`'s membership.
    pub(super) fn pull(&mut self, i: usize, j: usize) {
        if i == j || !self.nodes[i].online || !self.nodes[j].online {
            return;
        }
        // Rosters first, as the node does on every new connection.
        self.exchange(i, j);
        let me = self.nodes[i].key;
        if self.nodes[i].membership.is_revoked_key(&me)
            || !self.nodes[i]
                .membership
                .role_of_key(&self.nodes[j].key)
                .is_some_and(|r| r.may_write())
        {
            return;
        }
        let (mut pull, mut request) = Pull::start(
            self.nodes[i].keys.clone(),
            self.topic,
            self.nodes[i].doc.summary(),
        );
        loop {
            let keys = self.nodes[j].keys.clone();
            let Ok(Opened { body, epoch, .. }) = Responder::open(&request, |_| Some(keys)) else {
                // Sealed in an epoch `j` lacks: `j` asks `i` for its grant.
                self.exchange(j, i);
                return;
            };
            let current = self.nodes[j].keys.current().0;
            let keys = self.nodes[j].keys.answering(epoch);
            let responder_key = self.nodes[j].key;
            let admission = admit(
                &self.nodes[j].membership,
                &responder_key,
                &me,
                epoch,
                current,
                Asked::Content,
            );
            let Sim {
                nodes,
                rng,
                topic,
                now,
                ..
            } = self;
            let responder = &mut nodes[j];
            let response = match admission {
                Admission::RecordsOnly(_) => members::seal_records(
                    &keys,
                    topic,
                    records_for(&responder.membership, &me, &[]),
                ),
                Admission::Serve => match body {
                    RequestBody::Start { sv, .. } => {
                        let diff = responder.doc.diff(&sv).expect("valid state vector");
                        let local_sv = responder.doc.state_vector();
                        responder
                            .responder
                            .answer_start(&keys, topic, diff, local_sv, &sv, *now, rng)
                            .response
                    }
                    RequestBody::Continue { transfer, offset } => responder
                        .responder
                        .answer_continue(&keys, topic, transfer, offset, *now),
                    RequestBody::Members(_) => unreachable!("a pull sends no members"),
                },
            };
            match pull.on_response(&response.encode()) {
                Ok(Progress::Send(next)) => request = next,
                Ok(Progress::Done { update, .. }) => {
                    // As the node's room does with a pulled diff.
                    self.nodes[i]
                        .doc
                        .apply_complete(&update)
                        .expect("a valid diff");
                    self.nodes[i].enforce_cut();
                    return;
                }
                Err(PullError::RecordsOnly(records)) => {
                    // As the node does: the records, then a member exchange for the rest.
                    self.nodes[i].add_records(records.certs, records.grants);
                    self.exchange(i, j);
                    return;
                }
                Err(e) => panic!("pull {i} <- {j} failed: {e}"),
            }
        }
    }

    /// `i` exchanges rosters with `j`, page by page, sealed in the newest epoch both hold;
    /// `j` adds `i`'s records first, then answers by [`admit`].
    pub(super) fn exchange(&mut self, i: usize, j: usize) {
        if i == j || !self.nodes[i].online || !self.nodes[j].online {
            return;
        }
        let Some(epoch) = (0..=self.nodes[i].keys.current().0)
            .rev()
            .find(|e| self.nodes[i].keys.get(*e).is_some() && self.nodes[j].keys.get(*e).is_some())
        else {
            return;
        };
        let requester = self.nodes[i].key;
        // Removed here: it has nothing to tell anyone (as the node).
        if self.nodes[i].membership.is_revoked_key(&requester) {
            return;
        }
        let revoked_peer = self.nodes[i].membership.is_revoked_key(&self.nodes[j].key);
        let mut page = 0;
        loop {
            let mine = if revoked_peer {
                Roster {
                    certs: records_for(&self.nodes[i].membership, &self.nodes[j].key, &[]),
                    ..Roster::default()
                }
            } else {
                members::page(&self.nodes[i].membership, Vec::new(), page)
            };
            self.nodes[j].add_records(mine.certs.clone(), mine.grants.clone());
            let responder = &self.nodes[j];
            let current = responder.keys.current().0;
            match admit(
                &responder.membership,
                &responder.key,
                &requester,
                epoch,
                current,
                Asked::Members,
            ) {
                Admission::RecordsOnly(_) => {
                    let certs = records_for(&responder.membership, &requester, &mine.certs);
                    self.nodes[i].add_records(certs, Vec::new());
                    return;
                }
                Admission::Serve => {
                    let theirs = members::page(&responder.membership, Vec::new(), page);
                    let pages = theirs.pages.max(mine.pages).max(1);
                    self.nodes[i].add_records(theirs.certs, theirs.grants);
                    self.nodes[i].heard_roster = true;
                    self.nodes[j].heard_roster = true;
                    page += 1;
                    if page >= pages || revoked_peer {
                        return;
                    }
                }
            }
        }
    }
}
