//! The room's part in a removal's cut, and the claims it rests on:
//! - claims: a writer's node signs a claim for each Yjs client its local editors (and its own
//!   API writes) write through, the first time it sees it, and sends it to the members at once,
//!   so that a removal can name the clients of the member it removes;
//! - the cut: whenever the membership voids clients (see
//!   [`crate::core::access::Membership::voided`]) and whenever more of their operations arrive,
//!   the room deletes them, stores the deletion and shows it, like a peer's change.

use crate::core::access::Cert;
use crate::core::doc::Voided;
use crate::core::update_check::dependencies_v1;

use super::{Outgoing, Room};

impl Room {
    /// The Yjs clients a change writes through, when they matter: on a shared document (a
    /// document never shared has neither claims nor cuts; when it is first shared, its owner
    /// claims every client in it, see [`Room::claim_history`]). Empty otherwise. Claimed, a
    /// client's text is attributed to its member (history) and a removal can name it (the cut).
    pub(super) fn clients_of(&self, delta: &[u8]) -> Vec<u64> {
        if !self.access.membership.is_shared() {
            return Vec::new();
        }
        let Ok(deps) = dependencies_v1(delta) else {
            return Vec::new();
        };
        let mut clients: Vec<u64> = deps.sections.iter().map(|(client, _, _)| *client).collect();
        clients.sort_unstable();
        clients.dedup();
        clients
    }

    /// Claims the `clients` of a local change (see [`Room::clients_of`]) that no member that
    /// writes has claimed. The owner claims too: a client it claims is never cut.
    pub(super) async fn claim_clients(&mut self, clients: &[u64]) {
        let membership = &self.access.membership;
        let clients: Vec<u64> = clients
            .iter()
            .copied()
            .filter(|client| !membership.is_claimed(*client))
            .collect();
        if clients.is_empty() {
            return;
        }
        let claims: Vec<Cert> = clients
            .iter()
            .map(|client| Cert::claim(self.id, *client, &self.ctx.identity))
            .collect();
        match self.add_records(claims, Vec::new(), Vec::new()).await {
            Ok(_) => {
                tracing::debug!(doc = %self.id, ?clients, "claimed the clients of local edits");
                if let Err(e) = self.ctx.outbox.try_send(Outgoing::Records(self.id)) {
                    // They travel with the next member exchange.
                    tracing::debug!(doc = %self.id, "outbox full, claims go with the next exchange: {e}");
                }
            }
            Err(e) => tracing::warn!(doc = %self.id, "cannot store a client claim: {e}"),
        }
    }

    /// The document was just shared: before, only this node (the owner) wrote in it, through
    /// every client its state names. It claims them all, so that history attributes that text.
    pub(super) async fn claim_history(&mut self) {
        let clients = match self.summary().await {
            Ok(summary) => crate::core::doc::decode_sv(&summary.sv)
                .map(|sv| {
                    sv.iter()
                        .map(|(client, _)| client.get())
                        .collect::<Vec<u64>>()
                })
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(doc = %self.id, "cannot claim the document's clients: {e}");
                return;
            }
        };
        self.claim_clients(&clients).await;
    }

    /// A peer's change: stored and shown ([`Room::persist_remote`]), then what it brought from
    /// a voided client deleted.
    pub(super) async fn take_remote(&mut self, delta: Option<Vec<u8>>) {
        let Some(delta) = delta else { return };
        let clients = self.clients_of(&delta);
        self.persist_remote(Some(delta)).await;
        self.cut_if_touched(&clients).await;
    }

    /// [`Room::enforce_cut`] if a change wrote through a voided client: the common case (no
    /// removal, or nothing from a removed member) costs a lookup per client of the change.
    pub(super) async fn cut_if_touched(&mut self, clients: &[u64]) {
        let voided = self.access.membership.voided();
        if clients.iter().any(|client| voided.contains_key(client)) {
            self.enforce_cut().await;
        }
    }

    /// Deletes what the membership voids and the document still shows (a removed member's
    /// writing after the cut), if anything: stored and shown as a peer's change is.
    pub(super) async fn enforce_cut(&mut self) {
        if self.access.membership.voided().is_empty() {
            return;
        }
        let access = self.access.clone();
        let mut done = std::mem::take(&mut self.cut_done);
        let result = self
            .guarded(|doc| doc.void(access.membership.voided(), &mut done))
            .await;
        self.cut_done = done;
        match result {
            Ok(Voided {
                delta: Some(delta),
                operations,
            }) => {
                self.ctx.metrics.refused("edit", "cut", operations);
                tracing::warn!(doc = %self.id, operations, "deleted what a removed member wrote after its removal's cut");
                self.persist_remote(Some(delta)).await;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(doc = %self.id, "cannot apply a removal's cut: {e}"),
        }
    }
}
