//! Single exchanges with a holder that the node asks for outside the rounds: asking it to
//! hold a document (or to let it go), and a joiner's first read when no member is online.

use libp2p::PeerId;
use libp2p_identity::ed25519;

use super::round::Round;
use super::HoldingError;
use crate::core::access::HoldRecord;
use crate::core::hold::HeldState;
use crate::metrics::Metrics;
use crate::net::Net;
use crate::replica::room::RoomHandle;
use crate::replica::store::{HolderRow, Store};

/// Asks `holder` to hold `room`'s document: sends the roster with `record` (signed by this
/// node) and returns the holder's state once it accepted.
pub(crate) async fn ask_to_hold(
    net: &Net,
    room: &RoomHandle,
    holder: PeerId,
    record: &HoldRecord,
    identity: &ed25519::Keypair,
    metrics: &Metrics,
) -> Result<HeldState, HoldingError> {
    let round = Round {
        net,
        room,
        holder,
        identity,
        metrics,
    };
    round.send_records(std::slice::from_ref(record), &[]).await
}

/// A joiner's first exchange with a holder (no member online): admits itself there with its
/// own certificates (`certs`: the ticket's invitation and its member certificate), takes the
/// holder's roster, and reads every entry. Returns what it knows of the holder then, and how
/// many changes it applied.
pub(crate) async fn join_from(
    net: &Net,
    store: &Store,
    room: &RoomHandle,
    holder: PeerId,
    certs: &[crate::core::access::Cert],
    identity: &ed25519::Keypair,
    metrics: &Metrics,
) -> Result<usize, HoldingError> {
    let round = Round {
        net,
        room,
        holder,
        identity,
        metrics,
    };
    let mut row = HolderRow {
        peer: holder.to_string(),
        ..HolderRow::default()
    };
    row.state = round.send_records(&[], certs).await?;
    round.take_roster().await?;
    let applied = round.fetch(&mut row).await?;
    room.summary().await?;
    row.reached = crate::replica::store::unix_now();
    store.save_holder(room.id, row).await?;
    Ok(applied)
}
