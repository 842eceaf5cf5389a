//! Joining a shared document: admit this node with the ticket's invitation (a member
//! certificate it signs itself), reach the sharer at the ticket's addresses, or, if it does not
//! answer, whoever the DHT says holds the document; exchange rosters (certificates) with them
//! and pull from the first writer that has it. If that fails, a plain join keeps nothing; a
//! waiting join (`join --wait`) keeps the document and its ticket and tries again every
//! `redial_interval`, also after a restart, until a member answers.

use libp2p::PeerId;

use super::{names, Error, Node, DHT_RETRY};
use crate::actor::unpoisoned;
use crate::core::access::Cert;
use crate::core::doc::rich::Kind as DocKind;
use crate::core::doc::DocId;
use crate::core::sync::PullError;
use crate::core::ticket::Ticket;
use crate::net::NetError;
use crate::replica::pull::{exchange, pull, Offer, PullFailure};
use crate::replica::room::RoomHandle;
use crate::replica::store::{unix_now, DocMeta};
use crate::DocInfo;

impl Node {
    /// Joins a shared document: reaches the sharer, fetches the document, and keeps it in sync.
    /// On any failure nothing is kept.
    pub async fn join(&self, ticket: &str, name: Option<&str>) -> Result<DocInfo, Error> {
        self.join_with(ticket, name, false).await
    }

    /// Like [`Node::join`], but if no member can be reached (or none can serve the document
    /// yet), keeps the document, empty and marked `joining`, and completes the join in the
    /// background once a member answers, also after a restart. Errors in the ticket or the
    /// request still fail at once.
    pub async fn join_or_wait(&self, ticket: &str, name: Option<&str>) -> Result<DocInfo, Error> {
        self.join_with(ticket, name, true).await
    }

    async fn join_with(
        &self,
        ticket_text: &str,
        name: Option<&str>,
        wait: bool,
    ) -> Result<DocInfo, Error> {
        let ticket = Ticket::decode(ticket_text)?;
        let invitation = ticket.invitation_cert()?;
        let admission = ticket.admit(self.inner.identity.public().to_bytes())?;
        if ticket.peer == self.peer_id() {
            return Err(Error::OwnTicket);
        }
        let docs = self.inner.store.list_docs().await?;
        if let Some(existing) = docs.iter().find(|m| m.id == ticket.doc) {
            return Err(Error::AlreadyJoined(existing.name.clone()));
        }
        let wanted = names::validate_name(name.unwrap_or(&ticket.name)).or_else(|e| {
            // A sharer's name we cannot use locally is replaced, not an error.
            if name.is_some() {
                Err(e)
            } else {
                Ok("shared".to_string())
            }
        })?;
        let name = names::unique_name(&wanted, &docs);
        let meta = DocMeta {
            id: ticket.doc,
            name,
            key: ticket.key.clone(),
            created: unix_now(),
            owner: ticket.owner,
            key_epoch: ticket.epoch,
        };
        let certs = vec![invitation, admission];
        // A waiting join is listed (as joining) from the start, not only once the first
        // attempt gave up; a plain one only once a member answered.
        if wait {
            self.inner.store.create_doc(meta.clone()).await?;
            unpoisoned(self.inner.joining.lock()).insert(meta.id);
        }
        let members = self.reach_members(&ticket).await;
        // No member online: the document's holders (the ticket names them) keep it sealed.
        let from_holders = members.is_err() && !ticket.holders.is_empty();
        if !wait && (members.is_ok() || from_holders) {
            self.inner.store.create_doc(meta.clone()).await?;
        }
        let result = match members {
            Ok(members) => self.first_pull(&meta, &members, certs.clone()).await,
            Err(e) if from_holders => self
                .join_from_holders(&meta, &ticket, certs.clone())
                .await
                .map_err(|held| unreachable_and(e, &held)),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                unpoisoned(self.inner.joining.lock()).remove(&meta.id);
                self.joined(&ticket, &meta).await;
                self.info(&meta).await
            }
            Err(e) if wait && may_succeed_later(&e) => {
                tracing::info!(doc = %meta.id, "join not finished ({e}); waiting for a member");
                self.keep_waiting(ticket_text, &ticket, &meta, certs).await
            }
            Err(e) => {
                unpoisoned(self.inner.joining.lock()).remove(&meta.id);
                // (Deleting a document never stored does nothing.)
                self.forget(&meta).await;
                Err(e)
            }
        }
    }

    /// The end of a join: the sharer's addresses remembered, the document synced from now on.
    async fn joined(&self, ticket: &Ticket, meta: &DocMeta) {
        self.remember_sharer(ticket).await;
        self.remember_holders(ticket).await;
        // Its kind came with its content: listed from now on without loading it.
        if let Some(room) = self.inner.rooms.get(&meta.id) {
            if room.kind().await.is_ok_and(|kind| kind == DocKind::Rich) {
                if let Err(e) = self.inner.store.set_rich(meta.id).await {
                    tracing::warn!(doc = %meta.id, "cannot record that the document is rich: {e}");
                }
            }
        }
        self.inner.sync.opened(meta.id).await;
    }

    /// Stores the sharer's addresses from the ticket: the node redials known peers.
    async fn remember_sharer(&self, ticket: &Ticket) {
        let addrs = ticket.addrs.iter().map(|a| a.to_string()).collect();
        if let Err(e) = self
            .inner
            .store
            .save_peer(ticket.peer.to_string(), addrs)
            .await
        {
            tracing::warn!("cannot remember the sharer's addresses: {e}");
        }
    }

    /// Keeps a join that found no member: the document (empty, with this node's
    /// certificates) and its ticket are stored, and a task completes the join later.
    async fn keep_waiting(
        &self,
        ticket_text: &str,
        ticket: &Ticket,
        meta: &DocMeta,
        certs: Vec<Cert>,
    ) -> Result<DocInfo, Error> {
        if self.inner.rooms.get(&meta.id).is_none() {
            if !self
                .inner
                .store
                .list_docs()
                .await?
                .iter()
                .any(|m| m.id == meta.id)
            {
                self.inner.store.create_doc(meta.clone()).await?;
            }
            let room = self.open_room(meta).await?;
            room.add_certs(certs).await?;
            self.announce(&room).await;
        }
        self.inner
            .store
            .set_pending_join(meta.id, Some(ticket_text.to_string()))
            .await?;
        // The sharer is the first place to look, now and after a restart.
        self.remember_sharer(ticket).await;
        self.wait_for_member(meta.id, ticket_text.to_string());
        self.info(meta).await
    }

    /// Starts the task that completes a waiting join (at start, for each one stored).
    pub(super) fn wait_for_member(&self, doc: DocId, ticket: String) {
        unpoisoned(self.inner.joining.lock()).insert(doc);
        let node = self.clone();
        self.inner.joins.spawn(async move {
            let cancel = node.inner.cancel.clone();
            let connected = node.inner.peer_connected.clone();
            loop {
                // A peer connecting may be a member: try at once, not at the next redial.
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(node.inner.config.redial_interval) => {}
                    _ = connected.notified() => {}
                }
                match node.complete_join(doc, &ticket).await {
                    Ok(true) => {
                        tracing::info!(%doc, "joined: a member answered");
                        break;
                    }
                    // Deleted meanwhile: nothing to complete.
                    Ok(false) => break,
                    Err(e) => tracing::debug!(%doc, "still waiting for a member: {e}"),
                }
            }
            unpoisoned(node.inner.joining.lock()).remove(&doc);
        });
    }

    /// One attempt to complete a waiting join. `Ok(false)`: the document is gone.
    async fn complete_join(&self, doc: DocId, ticket_text: &str) -> Result<bool, Error> {
        let Some(meta) = self
            .inner
            .store
            .list_docs()
            .await?
            .into_iter()
            .find(|m| m.id == doc)
        else {
            return Ok(false);
        };
        let ticket = Ticket::decode(ticket_text)?;
        let certs = vec![
            ticket.invitation_cert()?,
            ticket.admit(self.inner.identity.public().to_bytes())?,
        ];
        match self.reach_members(&ticket).await {
            Ok(members) => self.first_pull(&meta, &members, certs).await?,
            Err(e) if !ticket.holders.is_empty() => self
                .join_from_holders(&meta, &ticket, certs)
                .await
                .map_err(|held| unreachable_and(e, &held))?,
            Err(e) => return Err(e),
        }
        self.inner.store.set_pending_join(doc, None).await?;
        self.joined(&ticket, &meta).await;
        Ok(true)
    }

    /// Connects to members of the ticket's document: the sharer at the ticket's addresses, or
    /// whoever the DHT says holds the document. Both are tried again until `request_timeout`
    /// (the sharer may come back meanwhile; a node that just started may not have reached its
    /// DHT peers yet), or once, for a third of it, when the ticket names holders (they serve
    /// the document when no member does). Returns them, the sharer first.
    async fn reach_members(&self, ticket: &Ticket) -> Result<Vec<PeerId>, Error> {
        let timeout = self.inner.config.request_timeout;
        let net = &self.inner.net;
        let deadline = tokio::time::Instant::now() + timeout;
        // A dial that hangs (an address that drops packets) must leave time for the DHT.
        let per_dial = timeout / 3;
        let mut sharer = String::new();
        loop {
            let dial_until = deadline.min(tokio::time::Instant::now() + per_dial);
            let lookup_until = if ticket.holders.is_empty() {
                deadline
            } else {
                tokio::time::Instant::now() + per_dial
            };
            let dial = net.dial(ticket.peer, ticket.addrs.clone());
            let reason = match tokio::time::timeout_at(dial_until, dial).await {
                Ok(Ok(())) => return Ok(vec![ticket.peer]),
                Ok(Err(NetError::Dial { reason, .. })) => reason,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer".into(),
            };
            // The first attempt's reason says most (later ones may find the addresses already
            // given up on), unless it was only silence.
            if sharer.is_empty() || sharer == "no answer" {
                sharer = reason;
            }
            let lookup = net.find_providers(ticket.doc.topic());
            let found = tokio::time::timeout_at(lookup_until, lookup).await;
            let mut reached = Vec::new();
            for peer in found.ok().and_then(Result::ok).unwrap_or_default() {
                // The lookup has started dialling them; this waits for the outcome.
                if let Ok(Ok(())) =
                    tokio::time::timeout_at(lookup_until, net.dial(peer, Vec::new())).await
                {
                    reached.push(peer);
                }
            }
            if !reached.is_empty() {
                return Ok(reached);
            }
            // The document's holders serve it when no member does: one look is enough.
            if !ticket.holders.is_empty() || tokio::time::Instant::now() + DHT_RETRY >= deadline {
                return Err(Error::Unreachable {
                    peer: ticket.peer,
                    reason: format!("{sharer}; the DHT knows no other member online"),
                });
            }
            tokio::time::sleep(DHT_RETRY).await;
        }
    }

    /// Opens the joined document's room with this node's certificates, and pulls the document
    /// from the first reachable writer (rosters are exchanged first, so the members' roles are
    /// known).
    async fn first_pull(
        &self,
        meta: &DocMeta,
        members: &[PeerId],
        certs: Vec<Cert>,
    ) -> Result<(), Error> {
        let (room, listed) = match self.inner.rooms.get(&meta.id) {
            Some(room) => (room, true),
            // Listed only once the first pull is done: the sync driver pulls every listed
            // document from every peer sharing it, and fetched the same document again in
            // parallel (the sharer sent it twice: BENCHMARKS.md, row 4).
            None => (
                RoomHandle::open(meta, self.inner.room_ctx.clone()).await?,
                false,
            ),
        };
        let result = self.pull_first(&room, meta, members, certs).await;
        match (&result, listed) {
            (Ok(()), false) => self.list_room(&room).await,
            (Err(_), false) => room.close().await,
            _ => {}
        }
        result
    }

    /// Makes an open room part of the node: listed, and, once shared, announced.
    pub(super) async fn list_room(&self, room: &RoomHandle) {
        self.inner.rooms.insert(room.clone());
        if room.access().membership.is_shared() {
            self.announce(room).await;
        }
    }

    /// Announces a shared document: its gossip topic subscribed, its topic provided in the DHT.
    /// A document never shared is announced nowhere (no peer learns this node holds it).
    pub(super) async fn announce(&self, room: &RoomHandle) {
        self.inner.net.subscribe(room.id.topic_name()).await;
        self.inner.net.provide(room.id.topic()).await;
    }

    /// [`Node::first_pull`] into `room`.
    async fn pull_first(
        &self,
        room: &RoomHandle,
        meta: &DocMeta,
        members: &[PeerId],
        certs: Vec<Cert>,
    ) -> Result<(), Error> {
        // Our own certificates chain only once the sharer's roster is in: they travel first.
        room.add_certs(certs.clone()).await?;
        let offer = Offer::Roster {
            members: Vec::new(),
            extra: certs,
            name: self.inner.name.borrow().clone(),
        };
        let timeout = self.inner.config.request_timeout;
        let epoch = room.keys().current().0;
        let mut failure = None;
        for &member in members {
            match tokio::time::timeout(
                timeout,
                exchange(&self.inner.net, room, member, &offer, epoch),
            )
            .await
            {
                Ok(Err(PullFailure::Protocol {
                    source: PullError::UnknownDoc,
                    ..
                })) => {
                    failure = Some(Error::NotShared);
                    continue;
                }
                // The member answered with records only: if they say the ticket (or this node)
                // was removed, no member will ever admit it.
                Ok(Err(PullFailure::NotServed { .. })) if self.ticket_revoked(room, &offer) => {
                    return Err(Error::TicketRevoked);
                }
                Ok(Err(e)) => tracing::debug!(peer = %member, "roster exchange failed: {e}"),
                Ok(Ok(_)) | Err(_) => {}
            }
            if !room
                .access()
                .membership
                .role_of(&member)
                .is_some_and(|role| role.may_write())
            {
                failure.get_or_insert(Error::NoWriter);
                continue;
            }
            // A connection can be replaced under a pull (a hole punch replaces the relayed
            // one): a pull that lost its connection is tried once more.
            for attempt in 0..2 {
                let error = match tokio::time::timeout(timeout, pull(&self.inner.net, room, member))
                    .await
                {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(PullFailure::Protocol {
                        source: PullError::UnknownDoc,
                        ..
                    })) => Error::NotShared,
                    Ok(Err(e)) => Error::JoinSync(e),
                    Err(_) => Error::Unreachable {
                        peer: member,
                        reason: format!("the sync did not finish within {}s", timeout.as_secs()),
                    },
                };
                tracing::debug!(doc = %meta.id, peer = %member, attempt, "first pull failed: {error}");
                let retry = matches!(error, Error::JoinSync(PullFailure::Net(_)));
                failure = Some(error);
                if !retry {
                    break;
                }
            }
        }
        Err(failure.unwrap_or(Error::NotShared))
    }
}

impl Node {
    /// Whether the owner revoked this node, or the invitation its own certificates (in
    /// `offer`) came with, as far as `room` knows.
    fn ticket_revoked(&self, room: &RoomHandle, offer: &Offer) -> bool {
        let access = room.access();
        let membership = &access.membership;
        let me = self.inner.identity.public().to_bytes();
        let own = match offer {
            Offer::Roster { extra, .. } => extra.as_slice(),
            Offer::Records(_) => &[],
        };
        membership.role_of_key(&me).is_none()
            && (membership.is_revoked_key(&me)
                || own
                    .iter()
                    .any(|c| c.subject == me && membership.is_revoked_key(&c.issuer)))
    }
}

/// A join that reached neither a member nor a holder: what each said.
fn unreachable_and(members: Error, holders: &Error) -> Error {
    match members {
        Error::Unreachable { peer, reason } => Error::Unreachable {
            peer,
            reason: format!("{reason}; and the document's holders: {holders}"),
        },
        other => other,
    }
}

/// Whether a failed join may succeed once another member comes online (not a refusal).
fn may_succeed_later(e: &Error) -> bool {
    matches!(
        e,
        Error::Unreachable { .. } | Error::JoinSync(PullFailure::Net(_)) | Error::NoWriter
    )
}
