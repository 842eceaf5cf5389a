//! What the room tells others: local subscribers (editor sessions) every change, the network
//! (through `publish`) its local edits and presence; and presence itself (awareness updates applied, what changed
//! fanned out).

use super::{Change, Origin, Room, RoomError};
use crate::core::sync::gossip::Gossip;
use crate::core::sync::{Frame, YMessage};
use crate::replica::presence::{Owner, Presence};

impl Room {
    /// Tells local subscribers (editor sessions), if there are any.
    pub(super) fn tell(&self, change: Change) {
        if let Some(changes) = &self.changes {
            let _ = changes.send(change);
        }
    }

    /// Applies an awareness update and fans out what changed; returns the clients it names.
    pub(super) fn apply_awareness(
        &mut self,
        update: &[u8],
        origin: Origin,
        owner: Option<Owner>,
    ) -> Result<Vec<u64>, RoomError> {
        let presence = self
            .presence
            .get_or_insert_with(|| Presence::new(self.ctx.clock.clone()));
        let (clients, changed) = presence.apply(update, owner)?;
        if let Some(changed) = changed {
            self.fan_out_presence(changed, origin, origin != Origin::Remote);
        }
        Ok(clients)
    }

    /// Drops presence states not renewed in time, and tells local sessions. (Every node
    /// expires on its own: nothing to announce.)
    pub(super) fn expire_presence(&mut self) {
        if let Some(gone) = self.presence.as_mut().and_then(Presence::expire) {
            self.fan_out_presence(gone, Origin::Remote, false);
        }
    }

    /// Tells local sessions about a presence change and, if `announce`, peers.
    pub(super) fn fan_out_presence(&mut self, update: Vec<u8>, origin: Origin, announce: bool) {
        self.tell(Change::applied(
            origin,
            Frame::new(YMessage::Awareness(update.clone())),
        ));
        if announce {
            self.send_out(Gossip::Awareness(update));
        }
    }
}
