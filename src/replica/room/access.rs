//! The room's membership and keys: adding certificates and key grants (opening grants
//! addressed to this node), granting the current key to members that lack it (on the owner's
//! node), and removing a member. The room publishes the result as its [`super::Access`].

use std::sync::Arc;

use super::{Access, Room, RoomError};
use crate::core::access::{Cert, CertKind, KeyBytes, KeyGrant, Membership, Role};
use crate::core::envelope::DocKey;

impl Room {
    pub(super) fn may_write(&self) -> bool {
        self.access
            .membership
            .role_of(&self.ctx.me)
            .is_some_and(|role| role.may_write())
    }

    /// Checks and stores new certificates and grants, opens grants addressed to this node,
    /// and (on the owner's node) grants the current key to members that lack it; then publishes
    /// the new [`super::Access`].
    pub(super) async fn add_records(
        &mut self,
        certs: Vec<Cert>,
        grants: Vec<KeyGrant>,
    ) -> Result<usize, RoomError> {
        let mut next = self.access.membership.clone();
        let mut fresh: Vec<Vec<u8>> = Vec::new();
        for cert in certs {
            match next.add(cert.clone()) {
                Ok(true) => fresh.push(cert.encode()),
                Ok(false) => {}
                Err(e) => tracing::debug!(doc = %self.id, "certificate refused: {e}"),
            }
        }
        for grant in grants {
            match next.add_grant(grant.clone()) {
                Ok(true) => fresh.push(grant.encode()),
                Ok(false) => {}
                Err(e) => tracing::debug!(doc = %self.id, "key grant refused: {e}"),
            }
        }
        fresh.extend(self.grant_current_key(&mut next));
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
        if fresh.is_empty() && new_keys.is_empty() {
            return Ok(0);
        }
        self.ctx.store.add_certs(self.id, fresh.clone()).await?;
        for (epoch, key) in &new_keys {
            self.ctx.store.add_key(self.id, *epoch, key.0).await?;
            tracing::info!(doc = %self.id, epoch, "received the document's new key");
        }
        self.access = Arc::new(Access {
            membership: next,
            keys,
        });
        *crate::actor::unpoisoned(self.published.write()) = self.access.clone();
        Ok(fresh.len() + new_keys.len())
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

    /// Removes `target`: see [`RoomHandle::revoke`].
    pub(super) async fn revoke(&mut self, target: KeyBytes) -> Result<u32, RoomError> {
        let identity = self.ctx.identity.clone();
        let membership = &self.access.membership;
        let doc = self.id;
        let revoke =
            |subject| Cert::issue(doc, CertKind::Revocation, Role::Reader, subject, &identity);
        let mut certs = vec![revoke(target)];
        // The invitations it was admitted with go too, or it could admit itself again.
        for admission in membership.admissions_of(&target) {
            if membership.role_of_key(&admission.issuer).is_none() {
                certs.push(revoke(admission.issuer));
            }
        }
        // Members admitted through those invitations stay: the owner certifies them directly.
        let mut after = membership.clone();
        for cert in &certs {
            let _ = after.add(cert.clone());
        }
        for (member, role) in membership.member_keys() {
            if *member != target && *role != Role::Owner && after.role_of_key(member).is_none() {
                certs.push(Cert::issue(
                    doc,
                    CertKind::Member,
                    *role,
                    *member,
                    &identity,
                ));
            }
        }
        let epoch = self.access.keys.current().0 + 1;
        let key = DocKey::random();
        self.ctx.store.add_key(self.id, epoch, key.0).await?;
        Arc::make_mut(&mut self.access).keys.insert(epoch, key);
        // Publishes the new epoch with the records (the revocation is always new); grants
        // follow from `grant_current_key`.
        self.add_records(certs, Vec::new()).await?;
        tracing::info!(doc = %self.id, epoch, "removed a member; the document has a new key");
        Ok(epoch)
    }
}
