//! [`Command`]: every request a room's task takes, each with where its answer goes. The
//! room's loop (`room.rs`) serves them; [`super::RoomHandle`] sends them.

use libp2p::PeerId;
use tokio::sync::{broadcast, oneshot};

use super::{Change, DiffAndSv, GossipDone, Origin, Removal, RoomError, VersionEntry};
use crate::core::access::{Cert, HoldRecord, KeyBytes, KeyGrant, NameRecord};
use crate::core::doc::rich::{Format, Kind};
use crate::core::doc::since::Since;
use crate::core::doc::{Applied, Summary};
use crate::core::sync::gossip::Gossip;

pub(super) enum Command {
    /// A gossip message from its author; `done` gets the outcome once it is applied.
    ReceiveGossip(Gossip, PeerId, GossipDone),
    ApplyRemote(Vec<u8>, oneshot::Sender<Result<Applied, RoomError>>),
    ApplyLocal(Vec<u8>, Origin, oneshot::Sender<Result<(), RoomError>>),
    Replace(String, oneshot::Sender<Result<(), RoomError>>),
    Append(String, oneshot::Sender<Result<(), RoomError>>),
    ApplyAwareness(
        Vec<u8>,
        Origin,
        oneshot::Sender<Result<Vec<u64>, RoomError>>,
    ),
    AwarenessState(oneshot::Sender<Option<Vec<u8>>>),
    RemoveAwareness(Vec<u64>, Origin, oneshot::Sender<()>),
    /// The document in a format (`Markdown`: what `cat` prints, Markdown or plain text).
    Export(Format, oneshot::Sender<Result<String, RoomError>>),
    /// Makes a new document rich (its first edit).
    MakeRich(oneshot::Sender<Result<(), RoomError>>),
    Kind(oneshot::Sender<Result<Kind, RoomError>>),
    /// Records a version now, named or not; answers its id.
    RecordVersion(Option<String>, oneshot::Sender<Result<String, RoomError>>),
    /// Names a version (by id, prefix or name); answers its id.
    NameVersion(String, String, oneshot::Sender<Result<String, RoomError>>),
    Versions(oneshot::Sender<Result<Vec<VersionEntry>, RoomError>>),
    /// A version's content in a format.
    ExportAt(String, Format, oneshot::Sender<Result<String, RoomError>>),
    /// A version's text marked with what changed since the version before.
    Preview(
        String,
        oneshot::Sender<Result<Vec<crate::core::doc::history::Span>, RoomError>>,
    ),
    /// Makes the document equal to a version; answers the restore's version id (`None`: it
    /// was equal already).
    Restore(String, oneshot::Sender<Result<Option<String>, RoomError>>),
    StateVector(oneshot::Sender<Result<Vec<u8>, RoomError>>),
    Summary(oneshot::Sender<Result<Summary, RoomError>>),
    /// What a replica at a state vector lacks (nothing if its digest says it is in our state),
    /// and our state vector.
    Diff(
        Vec<u8>,
        Option<[u8; 32]>,
        oneshot::Sender<Result<DiffAndSv, RoomError>>,
    ),
    /// A receiver of every change from now on (editor sessions).
    Subscribe(oneshot::Sender<broadcast::Receiver<Change>>),
    /// Certificates, key grants and display names from a ticket or a peer; answers how many
    /// were new.
    AddRecords(
        Vec<Cert>,
        Vec<KeyGrant>,
        Vec<NameRecord>,
        oneshot::Sender<Result<usize, RoomError>>,
    ),
    /// Hold records (which nodes keep the document sealed); answers how many were new.
    AddHolds(Vec<HoldRecord>, oneshot::Sender<Result<usize, RoomError>>),
    /// What the document holds beyond a known state (see [`Since`]).
    ChangesSince(
        Option<Vec<u8>>,
        oneshot::Sender<Result<Option<Since>, RoomError>>,
    ),
    /// The owner removes a member (by key), keeping the listed members it admitted:
    /// revocations, a new epoch, grants.
    Revoke(
        KeyBytes,
        Vec<KeyBytes>,
        oneshot::Sender<Result<Removal, RoomError>>,
    ),
    Close(oneshot::Sender<()>),
    /// Test hook: the room does nothing else until `release` fires (a busy or stuck room).
    #[cfg(test)]
    Stall(oneshot::Receiver<()>),
    /// Test hook: whether the document is loaded.
    #[cfg(test)]
    IsLoaded(oneshot::Sender<bool>),
    /// Test hook: the periodic presence check, now.
    #[cfg(test)]
    CheckPresence(oneshot::Sender<()>),
}
