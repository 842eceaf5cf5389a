//! The room's membership and keys: adding certificates and key grants (opening grants
//! addressed to this node), granting the current key to members that lack it (on the owner's
//! node), and removing a member. The room publishes the result as its [`super::Access`].

use std::sync::Arc;

use super::{Access, Removal, Room, RoomError};
use crate::core::access::{
    Cert, HoldRecord, KeyBytes, KeyGrant, Membership, NameError, NameRecord, RemovalPlan,
};
use crate::core::envelope::DocKey;

impl Room {
    pub(super) fn may_write(&self) -> bool {
        self.access
            .membership
            .role_of(&self.ctx.me)
            .is_some_and(|role| role.may_write())
    }

    /// Why this node may not write: it was removed, or it reads only.
    pub(super) fn not_writer(&self) -> RoomError {
        if self.removed_here() {
            RoomError::Removed(self.id)
        } else {
            RoomError::ReadOnly(self.id)
        }
    }

    /// Whether the owner removed this node (or every way it was admitted).
    pub(super) fn removed_here(&self) -> bool {
        let me = self.ctx.identity.public().to_bytes();
        self.access.membership.is_revoked_key(&me)
    }

    /// Checks and stores new certificates and grants, opens grants addressed to this node,
    /// and (on the owner's node) grants the current key to members that lack it; then publishes
    /// the new [`super::Access`]. Certificates that do not chain to the owner, or exceed their
    /// issuer's limit, are refused and counted.
    pub(super) async fn add_records(
        &mut self,
        certs: Vec<Cert>,
        grants: Vec<KeyGrant>,
        names: Vec<NameRecord>,
    ) -> Result<usize, RoomError> {
        let mut next = self.access.membership.clone();
        let added = next.add_all(certs);
        let metrics = &self.ctx.metrics;
        metrics.refused("certificate", "unchained", added.unchained as u64);
        metrics.refused("certificate", "over_limit", added.over_limit as u64);
        metrics.refused("certificate", "invalid", added.invalid as u64);
        if added.refused() > 0 {
            tracing::debug!(doc = %self.id, ?added, "certificates refused");
        }
        let mut fresh: Vec<Vec<u8>> = added.stored.iter().map(Cert::encode).collect();
        for grant in grants {
            match next.add_grant(grant.clone()) {
                Ok(true) => fresh.push(grant.encode()),
                Ok(false) => {}
                Err(e) => {
                    metrics.refused("certificate", "invalid", 1);
                    tracing::debug!(doc = %self.id, "key grant refused: {e}")
                }
            }
        }
        fresh.extend(self.grant_current_key(&mut next));
        let new_names = self.add_names(&mut next, names);
        let my_key = self.ctx.identity.public().to_bytes();
        let mut keys = self.access.keys.clone();
        let mut new_keys = Vec::new();
        for grant in next.grants_for(&my_key) {
            if keys.get(grant.epoch).is_none() {
                match grant.open(&self.ctx.identity) {
                    Some(key) => {
                        keys.insert(grant.epoch, key.clone());
                        new_keys.push((grant.epoch, key));
                    }
                    None => {
                        tracing::warn!(doc = %self.id, epoch = grant.epoch, "a key grant for this node does not open")
                    }
                }
            }
        }
        if fresh.is_empty() && new_keys.is_empty() && new_names.is_empty() {
            return Ok(0);
        }
        let was_removed = self.removed_here();
        let cut_changed = next.voided() != self.access.membership.voided();
        self.ctx.store.add_certs(self.id, fresh.clone()).await?;
        if !new_names.is_empty() {
            self.ctx
                .store
                .save_names(self.id, new_names.clone())
                .await?;
        }
        for (epoch, key) in &new_keys {
            self.ctx.store.add_key(self.id, *epoch, key.0).await?;
            tracing::info!(doc = %self.id, epoch, "received the document's new key");
        }
        self.access = Arc::new(Access {
            membership: next,
            keys,
        });
        *crate::actor::unpoisoned(self.published.write()) = self.access.clone();
        if !was_removed && self.removed_here() {
            tracing::warn!(doc = %self.id, "the owner removed this node from the document");
        }
        if cut_changed {
            self.enforce_cut().await;
        }
        Ok(fresh.len() + new_keys.len() + new_names.len())
    }

    /// Adds hold records newer than those held (signed by the owner or a writer), stores
    /// them, and publishes the new [`super::Access`]. Others are refused and counted.
    pub(super) async fn add_holds(&mut self, holds: Vec<HoldRecord>) -> Result<usize, RoomError> {
        let now_ms = crate::replica::store::unix_now_ms();
        let mut next = self.access.membership.clone();
        let mut fresh = Vec::new();
        for hold in holds {
            match next.add_hold(hold.clone(), now_ms) {
                Ok(true) => fresh.push(hold.encode()),
                Ok(false) => {}
                Err(e) => {
                    let why = crate::replica::held::hold_refusal(&e);
                    self.ctx.metrics.refused("hold", why, 1);
                    tracing::debug!(doc = %self.id, "hold record refused: {e}");
                }
            }
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        self.ctx.store.add_certs(self.id, fresh.clone()).await?;
        self.access = Arc::new(Access {
            membership: next,
            keys: self.access.keys.clone(),
        });
        *crate::actor::unpoisoned(self.published.write()) = self.access.clone();
        Ok(fresh.len())
    }

    /// Adds members' display names newer than those held; returns the new ones to store.
    /// Records of keys that are no members, or dated far ahead, are refused and counted.
    fn add_names(
        &self,
        membership: &mut Membership,
        names: Vec<NameRecord>,
    ) -> Vec<(KeyBytes, Vec<u8>)> {
        let now_ms = crate::replica::store::unix_now_ms();
        let mut fresh = Vec::new();
        for record in names {
            match membership.add_name(record.clone(), now_ms) {
                Ok(true) => fresh.push((record.member, record.encode())),
                Ok(false) => {}
                Err(e) => {
                    let why = match e {
                        NameError::NotMember => "not_member",
                        NameError::FromTheFuture => "from_the_future",
                        _ => "invalid",
                    };
                    self.ctx.metrics.refused("name", why, 1);
                    tracing::debug!(doc = %self.id, "display name refused: {e}");
                }
            }
        }
        fresh
    }

    /// On the owner's node, after a removal: seals the current epoch's key to every member that
    /// has no grant for it yet (members who joined later, or were missed). Returns the encoded
    /// new grants.
    fn grant_current_key(&self, membership: &mut Membership) -> Vec<Vec<u8>> {
        let me = self.ctx.identity.public().to_bytes();
        let (epoch, key) = self.access.keys.current();
        if epoch == 0 || membership.owner() != me {
            return Vec::new();
        }
        let missing: Vec<KeyBytes> = membership
            .member_keys()
            .filter(|(k, _)| **k != me)
            .map(|(k, _)| *k)
            .filter(|k| !membership.grants_for(k).iter().any(|g| g.epoch == epoch))
            .collect();
        let mut fresh = Vec::new();
        for member in missing {
            let mut ephemeral = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut ephemeral);
            match KeyGrant::issue(self.id, epoch, key, member, &self.ctx.identity, ephemeral)
                .and_then(|grant| membership.add_grant(grant.clone()).map(|_| grant))
            {
                Ok(grant) => fresh.push(grant.encode()),
                Err(e) => tracing::warn!(doc = %self.id, "cannot grant the key to a member: {e}"),
            }
        }
        fresh
    }

    /// Removes `target`: see [`super::RoomHandle::revoke`]. Fails, changing nothing, if the plan
    /// cannot be made or did not take.
    pub(super) async fn revoke(
        &mut self,
        target: KeyBytes,
        keep: Vec<KeyBytes>,
    ) -> Result<Removal, RoomError> {
        // The cut falls where this replica stands now.
        let clocks = self.loaded().await?.clocks();
        let plan = RemovalPlan::new(
            &self.access.membership,
            &self.ctx.identity,
            target,
            &keep,
            &clocks,
        )
        .map_err(|e| RoomError::Removal(self.id, e))?;
        let epoch = self.access.keys.current().0 + 1;
        let key = DocKey::random();
        self.ctx.store.add_key(self.id, epoch, key.0).await?;
        Arc::make_mut(&mut self.access).keys.insert(epoch, key);
        // Publishes the new epoch with the records; grants follow from `grant_current_key`.
        self.add_records(plan.records, Vec::new(), Vec::new())
            .await?;
        if self.access.membership.role_of_key(&target).is_some() {
            return Err(RoomError::Removal(
                self.id,
                crate::core::access::RemovalError::DidNotTake("the removed member kept its role"),
            ));
        }
        tracing::info!(doc = %self.id, epoch, cascaded = plan.cascaded.len(), "removed a member; the document has a new key");
        Ok(Removal {
            epoch,
            cascaded: plan.cascaded,
            recertified: plan.recertified.len(),
            invitations: plan.invitations,
        })
    }
}
