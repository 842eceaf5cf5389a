//! One pull of one document from one peer over the network: the core's [`Pull`] state machine
//! driven by network requests, its result applied to the room; and one member exchange, page
//! by page (the certificates it brings go to the room). Only the owner and writers are pulled
//! from: what a reader serves is never applied. A peer that serves us only membership records
//! (we were removed, or hold an old key) has them added to the room too. The sync driver runs
//! these in its own tasks; joining a document runs them directly.

use libp2p::PeerId;

use super::room::{RoomError, RoomHandle};
use crate::core::access::{Cert, NameRecord};
use crate::core::doc::{sv_gap, DocError};
use crate::core::sync::members::{self, Member, Roster};
use crate::core::sync::{Progress, Pull, PullError};
use crate::net::{Net, NetError};

#[derive(Debug, thiserror::Error)]
pub enum PullFailure {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error("peer sent an invalid state vector: {0}")]
    Doc(#[from] DocError),
    #[error("pull from {peer} failed: {source}")]
    Protocol { peer: PeerId, source: PullError },
    #[error(
        "{0} is not a writer of this document (as far as this node knows); not pulling from it"
    )]
    NotWriter(PeerId),
    #[error(
        "{peer} sends this node only membership records: this node is no member of the \
         document (removed, or its ticket no longer admits anyone), or held an old key"
    )]
    NotServed {
        peer: PeerId,
        /// The records were news here (perhaps the new key: pull again).
        news: bool,
    },
}

/// Result of one completed pull.
#[derive(Debug, Clone)]
pub(crate) struct PullOutcome {
    /// Our replica changed.
    pub(crate) changed: bool,
    /// How the replicas compare after the pull.
    pub(crate) gap: Gap,
}

/// How two replicas of a document compare, counted in operations (yrs clock units: characters
/// of inserted text): both zero when both have seen the same operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gap {
    /// Operations the peer has that this replica has not applied yet.
    pub(crate) to_fetch: u64,
    /// Operations this replica has that the peer has not (it fetches them in its own pulls).
    pub(crate) peer_lacks: u64,
}

/// Pulls what `peer` has of `room`'s document and we lack. Returns once applied.
pub(crate) async fn pull(
    net: &Net,
    room: &RoomHandle,
    peer: PeerId,
) -> Result<PullOutcome, PullFailure> {
    if !room
        .access()
        .membership
        .role_of(&peer)
        .is_some_and(|role| role.may_write())
    {
        return Err(PullFailure::NotWriter(peer));
    }
    let local = room.summary().await?;
    let (mut session, mut request) = Pull::start(room.keys(), room.topic, local);
    loop {
        let response = net.request(peer, request).await?;
        let progress = match session.on_response(&response) {
            Ok(progress) => progress,
            Err(PullError::RecordsOnly(records)) => {
                return Err(not_served(room, peer, *records).await);
            }
            Err(source) => return Err(PullFailure::Protocol { peer, source }),
        };
        match progress {
            Progress::Send(next) => request = next,
            Progress::Done { update, remote_sv } => {
                let applied = room.apply_remote(update).await?;
                let local_sv = room.state_vector().await?;
                let (to_fetch, peer_lacks) = sv_gap(&local_sv, &remote_sv)?;
                let gap = Gap {
                    to_fetch,
                    peer_lacks,
                };
                return Ok(PullOutcome {
                    changed: applied.delta.is_some(),
                    gap,
                });
            }
        }
    }
}

/// Adds the records a peer that does not serve us sent, and says so.
async fn not_served(room: &RoomHandle, peer: PeerId, records: Roster) -> PullFailure {
    match room
        .add_records(records.certs, records.grants, Vec::new())
        .await
    {
        Ok(new) => PullFailure::NotServed {
            peer,
            news: new > 0,
        },
        Err(e) => e.into(),
    }
}

/// What we offer in a member exchange.
pub(crate) enum Offer {
    /// Our whole roster, page by page: `members` to introduce, `extra` certificates first
    /// (a joiner's own, which do not chain here yet), and our own display name first.
    Roster {
        members: Vec<Member>,
        extra: Vec<Cert>,
        name: Option<NameRecord>,
    },
    /// Only these records (to a peer that is no member any more: its removal).
    Records(Vec<Cert>),
}

/// Exchanges rosters with `peer`, sealed in key `epoch` (one the peer holds): sends ours page
/// by page and adds the certificates and key grants of each answer to the room. Returns the
/// members it introduced, and whether it brought anything new.
pub(crate) async fn exchange(
    net: &Net,
    room: &RoomHandle,
    peer: PeerId,
    offer: &Offer,
    epoch: u32,
) -> Result<(Vec<Member>, bool), PullFailure> {
    let keys = room.keys().answering(epoch);
    let mut learned = Vec::new();
    let mut news = false;
    let mut page = 0;
    loop {
        let mine = match offer {
            Offer::Roster {
                members,
                extra,
                name,
            } => {
                let mut mine = members::page(&room.access().membership, members.clone(), page);
                if page == 0 {
                    mine.certs.splice(0..0, extra.iter().cloned());
                    mine.names.splice(0..0, name.iter().cloned());
                }
                mine
            }
            Offer::Records(certs) => Roster {
                certs: certs.clone(),
                ..Roster::default()
            },
        };
        let request = members::request(&keys, &room.topic, mine.clone());
        let bytes = net.request(peer, request).await?;
        let theirs = match members::open_response(&keys, &room.topic, &bytes) {
            Ok(theirs) => theirs,
            Err(PullError::RecordsOnly(records)) => {
                return Err(not_served(room, peer, *records).await)
            }
            Err(source) => return Err(PullFailure::Protocol { peer, source }),
        };
        let pages = theirs.pages.max(mine.pages).max(1);
        news |= room
            .add_records(theirs.certs, theirs.grants, theirs.names)
            .await?
            > 0;
        news |= room.add_holds(theirs.holds).await? > 0;
        learned.extend(theirs.members);
        page += 1;
        if page >= pages {
            return Ok((learned, news));
        }
    }
}
