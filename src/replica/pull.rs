//! One pull of one document from one peer over the network: the core's [`Pull`] state machine
//! driven by network requests, its result applied to the room. The sync driver runs pulls in
//! its own tasks; joining a document runs one directly.

use libp2p::PeerId;

use super::room::{RoomError, RoomHandle};
use crate::core::doc::{sv_has_unseen, DocError};
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
}

/// Result of one completed pull.
#[derive(Debug, Clone)]
pub(crate) struct PullOutcome {
    /// Our replica changed.
    pub(crate) changed: bool,
    /// Both replicas have seen the same operations (state vectors equal) after the pull.
    pub(crate) in_sync: bool,
}

/// Pulls what `peer` has of `room`'s document and we lack. Returns once applied.
pub(crate) async fn pull(
    net: &Net,
    room: &RoomHandle,
    peer: PeerId,
) -> Result<PullOutcome, PullFailure> {
    let local_sv = room.state_vector().await?;
    let (mut session, mut request) = Pull::start(room.key.clone(), room.topic, local_sv);
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
                let in_sync = !sv_has_unseen(&local_sv, &remote_sv)?
                    && !sv_has_unseen(&remote_sv, &local_sv)?;
                return Ok(PullOutcome {
                    changed: applied.delta.is_some(),
                    in_sync,
                });
            }
        }
    }
}
