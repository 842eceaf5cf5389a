//! The node's holders API. As a member: ask a node to hold a document sealed
//! ([`Node::replicate`]), list its holders ([`Node::replicas`]), let one go
//! ([`Node::unreplicate`]). As a holder: the documents it keeps for others ([`Node::held`]).
//! The rules are the core's ([`crate::core::hold`]); the rounds are `replica::holding`'s.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use super::{DocRef, Error, Node};
use crate::core::access::Cert;
use crate::core::access::{key_of, peer_of, HoldRecord, MAX_HOLDERS};
use crate::core::doc::DocId;
use crate::core::hold::Refusal;
use crate::core::ticket::{Ticket, MAX_HOLDER_ADDRS, MAX_TICKET_HOLDERS};
use crate::replica::holding::{ask_to_hold, join_from, HoldingError};
use crate::replica::room::RoomHandle;
use crate::replica::store::{unix_now_ms, DocMeta};

/// A holder of one of this node's documents, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderInfo {
    pub peer: PeerId,
    /// It holds the document now (`false`: it was let go).
    pub holds: bool,
    /// The owner or writer that asked (or released) it, and when (Unix ms).
    pub decided_by: Option<PeerId>,
    pub decided_at_ms: u64,
    /// Unix seconds of this node's last exchange with it that succeeded (`None`: never).
    pub reached: Option<i64>,
    /// Bytes it keeps for the document, and its entries, as it said then.
    pub bytes: u64,
    pub entries: u64,
    /// Entries this node has read of them.
    pub read: u64,
    /// Unix ms of the last entry it kept (`None`: none yet).
    pub last_write_ms: Option<u64>,
    /// Why the last exchange failed, if it did.
    pub error: Option<String>,
}

/// A document this node keeps sealed for its members (it cannot read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldInfo {
    pub doc: DocId,
    /// Its topic, as 64 hex characters (what the network names it by).
    pub topic: String,
    pub owner: Option<PeerId>,
    /// Unix seconds when this node began to hold it.
    pub created: i64,
    pub bytes: u64,
    pub entries: u64,
    /// Entries below this offset were replaced by a member's snapshot (0: none yet).
    pub compacted_below: u64,
    pub last_write_ms: Option<u64>,
}

impl Node {
    /// Asks the node at `target` (a peer id it can reach, or a `/…/p2p/<peer id>` address) to
    /// keep the document sealed for its members, then brings it up to date. Only the owner and
    /// writers choose holders; the choice travels signed with the document's membership.
    pub async fn replicate<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        target: &str,
    ) -> Result<HolderInfo, Error> {
        let room = self.room_choosing_holders(doc.into()).await?;
        let (holder, addrs) = parse_target(target)?;
        if holder == self.peer_id() {
            return Err(Error::HolderIsSelf);
        }
        let key = key_of(&holder).map_err(|_| Error::BadHolder(target.to_string()))?;
        let membership = room.access().membership.clone();
        if !membership.is_holder(&key) && membership.holders().len() >= MAX_HOLDERS {
            return Err(Error::TooManyHolders);
        }
        let net = &self.inner.net;
        if !addrs.is_empty() {
            let saved = addrs.iter().map(|a| a.to_string()).collect();
            self.inner
                .store
                .save_peer(holder.to_string(), saved)
                .await?;
        }
        net.dial(holder, addrs)
            .await
            .map_err(|e| Error::HolderUnreachable(holder, e.to_string()))?;
        let record = HoldRecord::sign(room.id, key, unix_now_ms(), true, &self.inner.identity);
        ask_to_hold(
            net,
            &room,
            holder,
            &record,
            &self.inner.identity,
            self.metrics(),
        )
        .await
        .map_err(|e| holder_error(holder, e))?;
        room.add_holds(vec![record]).await?;
        // The other members hear of it at their next exchange; connected ones at once.
        self.inner.sync.changed(room.id).await;
        self.inner
            .holding
            .round_now(room.clone(), holder)
            .await
            .map_err(|e| holder_error(holder, e))?;
        // The attachments added before it was chosen: it fetches them in the background.
        self.offer_all(&room, holder).await?;
        self.replicas(room.id)
            .await?
            .into_iter()
            .find(|h| h.peer == holder)
            .ok_or(Error::NotAHolder(holder.to_string()))
    }

    /// The document's holders (and those let go), with what each held when last reached.
    pub async fn replicas<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<Vec<HolderInfo>, Error> {
        let room = self.room(doc.into()).await?;
        let rows = self.inner.store.holders(room.id).await?;
        let errors = self.inner.holding.errors(room.id).await;
        let access = room.access();
        let mut holders: Vec<HolderInfo> = access
            .membership
            .holds()
            .filter_map(|record| {
                let peer = peer_of(&record.holder)?;
                let row = rows.iter().find(|r| r.peer == peer.to_string());
                Some(HolderInfo {
                    peer,
                    holds: record.holds,
                    decided_by: peer_of(&record.issuer),
                    decided_at_ms: record.at_ms,
                    reached: row.map(|r| r.reached).filter(|at| *at > 0),
                    bytes: row.map_or(0, |r| r.state.bytes),
                    entries: row.map_or(0, |r| r.state.head),
                    read: row.map_or(0, |r| r.cursor),
                    last_write_ms: row.map(|r| r.state.last_write_ms).filter(|at| *at > 0),
                    error: errors.get(&peer).cloned(),
                })
            })
            .collect();
        holders.sort_by(|a, b| b.holds.cmp(&a.holds).then(a.peer.cmp(&b.peer)));
        Ok(holders)
    }

    /// Lets a holder go: signs that it holds the document no more and tells it, so it drops
    /// what it kept. Returns whether the holder confirmed (an unreachable one drops it when it
    /// is told again: run this again once it is online).
    pub async fn unreplicate<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        peer: &str,
    ) -> Result<bool, Error> {
        let room = self.room_choosing_holders(doc.into()).await?;
        let (holder, addrs) = parse_target(peer)?;
        let key = key_of(&holder).map_err(|_| Error::BadHolder(peer.to_string()))?;
        let known = room.access().membership.holds().any(|r| r.holder == key);
        if !known {
            return Err(Error::NotAHolder(holder.to_string()));
        }
        let record = HoldRecord::sign(room.id, key, unix_now_ms(), false, &self.inner.identity);
        room.add_holds(vec![record.clone()]).await?;
        self.inner.sync.changed(room.id).await;
        let net = &self.inner.net;
        if net.dial(holder, addrs).await.is_err() {
            return Ok(false);
        }
        match ask_to_hold(
            net,
            &room,
            holder,
            &record,
            &self.inner.identity,
            self.metrics(),
        )
        .await
        {
            // It answers that it holds it no more.
            Err(HoldingError::Refused(Refusal::NotAsked | Refusal::UnknownDoc)) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => {
                tracing::debug!(%holder, "release not confirmed: {e}");
                Ok(false)
            }
        }
    }

    /// The documents this node keeps sealed for others (empty unless it is a holder).
    pub async fn held(&self) -> Result<Vec<HeldInfo>, Error> {
        let Some(held) = &self.inner.held else {
            return Ok(Vec::new());
        };
        Ok(held
            .list()
            .await?
            .into_iter()
            .map(|h| HeldInfo {
                doc: h.doc,
                topic: hex::encode(h.key.topic),
                owner: peer_of(&h.key.owner),
                created: h.created,
                bytes: h.state.bytes,
                entries: h.state.head,
                compacted_below: h.state.base,
                last_write_ms: Some(h.state.last_write_ms).filter(|at| *at > 0),
            })
            .collect())
    }

    /// The document's room, if this node may choose its holders (the owner or a writer).
    async fn room_choosing_holders(&self, doc: DocRef<'_>) -> Result<RoomHandle, Error> {
        let room = self.room(doc).await?;
        if !self.may_write(&room) {
            return Err(Error::NotWriterForHolders);
        }
        Ok(room)
    }

    /// Whether this node is the document's owner or a writer.
    pub(super) fn may_write(&self, room: &RoomHandle) -> bool {
        room.access()
            .membership
            .role_of(&self.peer_id())
            .is_some_and(|role| role.may_write())
    }

    /// Joins from the ticket's holders (no member online): admits this node at the first that
    /// answers with `certs`, and reads the whole document from it.
    pub(super) async fn join_from_holders(
        &self,
        meta: &DocMeta,
        ticket: &Ticket,
        certs: Vec<Cert>,
    ) -> Result<(), Error> {
        let (room, listed) = match self.inner.rooms.get(&meta.id) {
            Some(room) => (room, true),
            None => (
                RoomHandle::open(meta, self.inner.room_ctx.clone()).await?,
                false,
            ),
        };
        let net = &self.inner.net;
        let mut failure = Error::NoWriter;
        self.remember_holders(ticket).await;
        for (holder, addrs) in &ticket.holders {
            if let Err(e) = net.dial(*holder, addrs.clone()).await {
                failure = Error::HolderUnreachable(*holder, e.to_string());
                continue;
            }
            let joined = join_from(
                net,
                &self.inner.store,
                &room,
                *holder,
                &certs,
                &self.inner.identity,
                self.metrics(),
            )
            .await;
            match joined {
                Ok(applied) => {
                    // Its own certificates chain now that the holder's roster is in.
                    room.add_certs(certs).await?;
                    tracing::info!(doc = %meta.id, %holder, applied, "joined from a holder: no member was online");
                    if !listed {
                        self.list_room(&room).await;
                    }
                    return Ok(());
                }
                Err(e) => failure = holder_error(*holder, e),
            }
        }
        if !listed {
            room.close().await;
        }
        Err(failure)
    }

    /// Stores where the ticket's holders listen (the member's rounds with each reach it there).
    pub(super) async fn remember_holders(&self, ticket: &Ticket) {
        for (holder, addrs) in &ticket.holders {
            let saved = addrs.iter().map(|a| a.to_string()).collect();
            if let Err(e) = self.inner.store.save_peer(holder.to_string(), saved).await {
                tracing::warn!(%holder, "cannot remember a holder's addresses: {e}");
            }
        }
    }

    /// Holders to name in a ticket: each holder of the document with up to
    /// [`MAX_HOLDER_ADDRS`] of the addresses this node knows for it.
    pub(super) async fn ticket_holders(&self, room: &RoomHandle) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let known = self.inner.store.known_peers().await.unwrap_or_default();
        room.access()
            .membership
            .holders()
            .iter()
            .filter_map(peer_of)
            .take(MAX_TICKET_HOLDERS)
            .map(|peer| {
                let addrs = known
                    .iter()
                    .find(|(p, _)| *p == peer.to_string())
                    .map(|(_, addrs)| {
                        addrs
                            .iter()
                            .filter_map(|a| a.parse().ok())
                            .take(MAX_HOLDER_ADDRS)
                            .collect()
                    })
                    .unwrap_or_default();
                (peer, addrs)
            })
            .collect()
    }

    /// Whether `query` names a document this node holds sealed (by id, id prefix or topic).
    pub(super) async fn holds_sealed(&self, query: &str) -> bool {
        let query = query.trim().to_ascii_lowercase();
        if query.len() < super::names::MIN_PREFIX_LEN {
            return false;
        }
        self.held().await.is_ok_and(|held| {
            held.iter()
                .any(|h| h.doc.to_string().starts_with(&query) || h.topic.starts_with(&query))
        })
    }
}

/// A holder named by a peer id or an address ending in `/p2p/<peer id>`.
fn parse_target(target: &str) -> Result<(PeerId, Vec<Multiaddr>), Error> {
    let target = target.trim();
    if let Ok(peer) = target.parse::<PeerId>() {
        return Ok((peer, Vec::new()));
    }
    let addr: Multiaddr = target
        .parse()
        .map_err(|_| Error::BadHolder(target.to_string()))?;
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Ok((peer, vec![base])),
        _ => Err(Error::BadHolder(target.to_string())),
    }
}

fn holder_error(holder: PeerId, e: HoldingError) -> Error {
    match e {
        HoldingError::Refused(why) => Error::HolderRefused(holder, why),
        e => Error::HolderUnreachable(holder, e.to_string()),
    }
}
