//! One pull of one document from one peer over the network: the core's [`Pull`] state machine
//! driven by network requests, its result applied to the room; and one member exchange (the
//! certificates it brings go to the room). Only the owner and writers are pulled from: what a
//! reader serves is never applied. The sync driver runs these in its own tasks; joining a
//! document runs them directly.

use libp2p::PeerId;

use super::room::{RoomError, RoomHandle};
use crate::core::doc::{sv_gap, DocError};
use crate::core::sync::members::{self, Roster};
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
        let progress = session
            .on_response(&response)
            .map_err(|source| PullFailure::Protocol { peer, source })?;
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

/// Exchanges rosters with `peer`: sends `mine`, adds the certificates and key grants of its
/// answer to the room. Returns its roster, and whether it brought anything new.
pub(crate) async fn exchange(
    net: &Net,
    room: &RoomHandle,
    peer: PeerId,
    mine: Roster,
) -> Result<(Roster, bool), PullFailure> {
    let request = members::request(&room.keys(), &room.topic, mine);
    let bytes = net.request(peer, request).await?;
    let roster = members::open_response(&room.keys(), &room.topic, &bytes)
        .map_err(|source| PullFailure::Protocol { peer, source })?;
    let new = room
        .add_records(roster.certs.clone(), roster.grants.clone())
        .await?;
    Ok((roster, new > 0))
}
