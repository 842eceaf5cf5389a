//! Joining a shared document: admit this node with the ticket's invitation (a member
//! certificate it signs itself), reach the sharer at the ticket's addresses, or, if it does not
//! answer, whoever the DHT says holds the document; exchange rosters (certificates) with them
//! and pull from the first writer that has it; keep nothing if that fails.

use libp2p::PeerId;

use super::{names, Error, Node, DHT_RETRY};
use crate::core::access::Cert;
use crate::core::sync::members::Roster;
use crate::core::sync::PullError;
use crate::core::ticket::Ticket;
use crate::replica::pull::{exchange, pull, PullFailure};
use crate::replica::store::{unix_now, DocMeta};
use crate::DocInfo;

impl Node {
    /// Joins a shared document: reaches the sharer, fetches the document, and keeps it in sync.
    /// On any failure nothing is kept.
    pub async fn join(&self, ticket: &str, name: Option<&str>) -> Result<DocInfo, Error> {
        let ticket = Ticket::decode(ticket)?;
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
        let members = self.reach_members(&ticket).await?;
        let meta = DocMeta {
            id: ticket.doc,
            name,
            key: ticket.key.clone(),
            created: unix_now(),
            owner: ticket.owner,
            key_epoch: ticket.epoch,
        };
        self.inner.store.create_doc(meta.clone()).await?;
        if let Err(e) = self
            .first_pull(&meta, &members, vec![invitation, admission])
            .await
        {
            self.forget(&meta).await;
            return Err(e);
        }
        let addrs = ticket.addrs.iter().map(|a| a.to_string()).collect();
        if let Err(e) = self
            .inner
            .store
            .save_peer(ticket.peer.to_string(), addrs)
            .await
        {
            tracing::warn!("cannot remember the sharer's addresses: {e}");
        }
        self.inner.sync.opened(meta.id).await;
        Ok(self.info(&meta))
    }

    /// Connects to members of the ticket's document: the sharer at the ticket's addresses, or,
    /// if it cannot be reached, whoever the DHT says holds the document. Returns them, the
    /// sharer first.
    async fn reach_members(&self, ticket: &Ticket) -> Result<Vec<PeerId>, Error> {
        let timeout = self.inner.config.request_timeout;
        let net = &self.inner.net;
        let sharer = match tokio::time::timeout(
            timeout,
            net.dial(ticket.peer, ticket.addrs.clone()),
        )
        .await
        {
            Ok(Ok(())) => return Ok(vec![ticket.peer]),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}s", timeout.as_secs()),
        };
        // A node that just started may not have reached its DHT peers yet: look again until the
        // timeout.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut reached = Vec::new();
        while reached.is_empty() && tokio::time::Instant::now() < deadline {
            let lookup = net.find_providers(ticket.doc.topic());
            let found = tokio::time::timeout_at(deadline, lookup).await;
            for peer in found.ok().and_then(Result::ok).unwrap_or_default() {
                // The lookup has started dialling them; this waits for the outcome.
                if let Ok(Ok(())) =
                    tokio::time::timeout_at(deadline, net.dial(peer, Vec::new())).await
                {
                    reached.push(peer);
                }
            }
            if reached.is_empty() {
                tokio::time::sleep(DHT_RETRY).await;
            }
        }
        if reached.is_empty() {
            return Err(Error::Unreachable {
                peer: ticket.peer,
                reason: format!("{sharer}; and the DHT knows no reachable member"),
            });
        }
        Ok(reached)
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
        let room = self.open_room(meta).await?;
        room.add_certs(certs).await?;
        let timeout = self.inner.config.request_timeout;
        let mut failure = None;
        for &member in members {
            let access = room.access();
            let mine = Roster {
                members: Vec::new(),
                certs: access.membership.certs().cloned().collect(),
                grants: Vec::new(),
            };
            match tokio::time::timeout(timeout, exchange(&self.inner.net, &room, member, mine))
                .await
            {
                Ok(Err(PullFailure::Protocol {
                    source: PullError::UnknownDoc,
                    ..
                })) => {
                    failure = Some(Error::NotShared);
                    continue;
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
                let error =
                    match tokio::time::timeout(timeout, pull(&self.inner.net, &room, member)).await
                    {
                        Ok(Ok(_)) => return Ok(()),
                        Ok(Err(PullFailure::Protocol {
                            source: PullError::UnknownDoc,
                            ..
                        })) => Error::NotShared,
                        Ok(Err(e)) => Error::JoinSync(e),
                        Err(_) => Error::Unreachable {
                            peer: member,
                            reason: format!(
                                "the sync did not finish within {}s",
                                timeout.as_secs()
                            ),
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
