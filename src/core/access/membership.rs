//! [`Membership`]: a document's certificates and key grants, and the roles they prove.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use libp2p_identity::PeerId;

use super::{
    hold::HoldRecord, key_of, peer_of, AccessError, Cert, CertKind, KeyBytes, KeyGrant, NameRecord,
    Role, MAX_CERTS_PER_ISSUER, MAX_CLAIMS_PER_MEMBER, MAX_GRANTS, MAX_MEMBER_CLAIMS,
    MAX_MEMBER_ISSUED_CERTS, MAX_OWNER_CERTS,
};
use crate::core::doc::DocId;

/// A document's certificates and key grants, and the roles they prove.
#[derive(Debug, Clone)]
pub struct Membership {
    doc: DocId,
    owner: KeyBytes,
    certs: HashSet<Cert>,
    /// Certificates other than claims stored per issuer (for [`MAX_CERTS_PER_ISSUER`]).
    issued: HashMap<KeyBytes, usize>,
    /// Client claims stored per issuer (for [`MAX_CLAIMS_PER_MEMBER`]).
    claims: HashMap<KeyBytes, usize>,
    /// Certificates (claims not counted) and claims stored from issuers other than the owner
    /// (for [`MAX_MEMBER_ISSUED_CERTS`] and [`MAX_MEMBER_CLAIMS`]).
    by_members: (usize, usize),
    /// Key grants by (epoch, member).
    grants: HashMap<(u32, KeyBytes), KeyGrant>,
    /// Members' display names: the newest record each signed.
    names: HashMap<KeyBytes, NameRecord>,
    /// Holders of the document's sealed data: the newest record about each.
    holds: HashMap<KeyBytes, HoldRecord>,
    /// Derived: members' roles (the owner included).
    members: HashMap<KeyBytes, Role>,
    /// Derived: live invitations and the role each may admit up to.
    invitations: HashMap<KeyBytes, Role>,
    /// Derived: keys the owner revoked.
    revoked: HashSet<KeyBytes>,
    /// Derived: Yjs clients whose operations are void from a clock on (see
    /// [`Membership::voided`]).
    voided: BTreeMap<u64, u64>,
    /// Derived: Yjs clients claimed by members that may write.
    claimed: HashSet<u64>,
    /// Derived: the owner's revocations, then every certificate that grants a role, each after
    /// the certificate that made its issuer able to grant it (the order rosters travel in).
    chain: Vec<Cert>,
}

/// What [`Membership::add_all`] did with a batch of certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Added {
    /// The certificates stored (new here), in the order they were stored.
    pub stored: Vec<Cert>,
    /// Refused: their issuer holds no role that may grant them, even after the rest of the
    /// batch (they do not chain to the owner).
    pub unchained: usize,
    /// Refused: their issuer has issued [`MAX_CERTS_PER_ISSUER`] already, or all members
    /// together [`MAX_MEMBER_ISSUED_CERTS`].
    pub over_limit: usize,
    /// Refused: bad signature or another document.
    pub invalid: usize,
}

impl Added {
    /// How many certificates were new.
    pub fn new_count(&self) -> usize {
        self.stored.len()
    }

    /// Certificates refused for any reason.
    pub fn refused(&self) -> usize {
        self.unchained + self.over_limit + self.invalid
    }
}

impl Membership {
    pub fn new(doc: DocId, owner: KeyBytes) -> Membership {
        let mut membership = Membership {
            doc,
            owner,
            certs: HashSet::new(),
            issued: HashMap::new(),
            claims: HashMap::new(),
            by_members: (0, 0),
            grants: HashMap::new(),
            names: HashMap::new(),
            holds: HashMap::new(),
            members: HashMap::new(),
            invitations: HashMap::new(),
            revoked: HashSet::new(),
            voided: BTreeMap::new(),
            claimed: HashSet::new(),
            chain: Vec::new(),
        };
        membership.derive();
        membership
    }

    pub fn doc(&self) -> DocId {
        self.doc
    }

    pub fn owner(&self) -> KeyBytes {
        self.owner
    }

    /// Adds one certificate after checking it: it must be signed, for this document, chain to
    /// the owner now (its issuer holds a role that may grant it) and be within its issuer's
    /// limit. Returns whether it was new.
    pub fn add(&mut self, cert: Cert) -> Result<bool, AccessError> {
        let new = self.insert(cert)?;
        if new {
            self.derive();
        }
        Ok(new)
    }

    /// Adds a batch of certificates in any order: a certificate whose issuer is admitted by
    /// another one of the batch counts once that one is in. What never chains is refused.
    pub fn add_all(&mut self, certs: impl IntoIterator<Item = Cert>) -> Added {
        let mut added = Added::default();
        let mut waiting: Vec<Cert> = certs.into_iter().collect();
        loop {
            let before = waiting.len();
            let mut next = Vec::new();
            for cert in waiting {
                match self.insert(cert.clone()) {
                    Ok(true) => added.stored.push(cert),
                    Ok(false) => {}
                    Err(AccessError::Unchained) => next.push(cert),
                    Err(AccessError::IssuerFull) => added.over_limit += 1,
                    Err(_) => added.invalid += 1,
                }
            }
            waiting = next;
            if waiting.len() == before || waiting.is_empty() {
                break;
            }
            // Roles of this round's certificates may let the waiting ones chain.
            self.derive();
        }
        added.unchained = waiting.len();
        if !added.stored.is_empty() {
            self.derive();
        }
        added
    }

    /// Checks and stores one certificate without deriving roles again.
    fn insert(&mut self, cert: Cert) -> Result<bool, AccessError> {
        if cert.doc != self.doc {
            return Err(AccessError::OtherDocument);
        }
        if self.certs.contains(&cert) {
            return Ok(false);
        }
        if !self.chains(&cert) {
            return Err(AccessError::Unchained);
        }
        let limited = self.over_limit(&cert);
        if limited {
            return Err(AccessError::IssuerFull);
        }
        if !cert.verify() {
            return Err(AccessError::BadSignature);
        }
        let (counter, total) = match cert.kind {
            CertKind::Claim => (&mut self.claims, &mut self.by_members.1),
            _ => (&mut self.issued, &mut self.by_members.0),
        };
        *counter.entry(cert.issuer).or_default() += 1;
        if cert.issuer != self.owner {
            *total += 1;
        }
        self.certs.insert(cert);
        Ok(true)
    }

    /// Whether storing `cert` would pass its issuer's limit. The owner's revocations and cuts
    /// are never limited: a removal must always take.
    fn over_limit(&self, cert: &Cert) -> bool {
        let count =
            |table: &HashMap<KeyBytes, usize>, key: &KeyBytes| table.get(key).copied().unwrap_or(0);
        let (member_certs, member_claims) = self.by_members;
        match cert.kind {
            CertKind::Revocation | CertKind::Cut if cert.issuer == self.owner => false,
            _ if cert.issuer == self.owner => {
                count(&self.issued, &self.owner) + count(&self.claims, &self.owner)
                    >= MAX_OWNER_CERTS
            }
            CertKind::Claim => {
                count(&self.claims, &cert.issuer) >= MAX_CLAIMS_PER_MEMBER
                    || member_claims >= MAX_MEMBER_CLAIMS
            }
            _ => {
                count(&self.issued, &cert.issuer) >= MAX_CERTS_PER_ISSUER
                    || member_certs >= MAX_MEMBER_ISSUED_CERTS
            }
        }
    }

    /// Whether the certificate's issuer, as the roles stand, may issue it.
    fn chains(&self, cert: &Cert) -> bool {
        let member_may_grant = self
            .members
            .get(&cert.issuer)
            .is_some_and(|role| role.may_write());
        match cert.kind {
            CertKind::Revocation | CertKind::Cut => cert.issuer == self.owner,
            // Only a member that writes claims a client; a removed one claims nothing more.
            CertKind::Claim => member_may_grant,
            CertKind::Invitation => member_may_grant,
            CertKind::Member => member_may_grant || self.invitations.contains_key(&cert.issuer),
        }
    }

    /// Recomputes the roles from the owner outwards: a certificate counts once its issuer's
    /// role may grant it. Roles only grow, so each key is visited at most once per role.
    fn derive(&mut self) {
        // Only the owner revokes, and the owner cannot be revoked.
        let revocations: Vec<&Cert> = self
            .certs
            .iter()
            .filter(|c| c.kind == CertKind::Revocation && c.issuer == self.owner)
            .filter(|c| c.subject != self.owner)
            .collect();
        let revoked: HashSet<KeyBytes> = revocations.iter().map(|c| c.subject).collect();
        let mut chain: Vec<Cert> = revocations.into_iter().cloned().collect();
        let mut cuts: Vec<&Cert> = self
            .certs
            .iter()
            .filter(|c| c.kind == CertKind::Cut && c.issuer == self.owner)
            .collect();
        // Deterministic order, so that every node pages the same roster the same way.
        chain.sort_by_key(|c| c.subject);
        cuts.sort_by_key(|c| c.subject);
        chain.extend(cuts.iter().map(|c| (*c).clone()));
        let mut by_issuer: HashMap<KeyBytes, Vec<&Cert>> = HashMap::new();
        for cert in &self.certs {
            let grants_role = matches!(cert.kind, CertKind::Member | CertKind::Invitation);
            if grants_role && !revoked.contains(&cert.subject) {
                by_issuer.entry(cert.issuer).or_default().push(cert);
            }
        }
        for certs in by_issuer.values_mut() {
            certs.sort_by_key(|c| (c.subject, c.kind as u8, c.role));
        }
        // What each key may grant: members by their role, invitations by theirs.
        let mut members: HashMap<KeyBytes, Role> = HashMap::from([(self.owner, Role::Owner)]);
        let mut invitations: HashMap<KeyBytes, Role> = HashMap::new();
        let mut queue: VecDeque<KeyBytes> = VecDeque::from([self.owner]);
        while let Some(issuer) = queue.pop_front() {
            let as_member = members.get(&issuer).copied().filter(|r| r.may_write());
            let as_invitation = invitations.get(&issuer).copied();
            for cert in by_issuer
                .get(&issuer)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let granted = match cert.kind {
                    CertKind::Revocation | CertKind::Claim | CertKind::Cut => None,
                    // The owner's own key as an invitation means nothing (and, the owner being
                    // beyond revocation, it could never be closed).
                    CertKind::Invitation if cert.subject == self.owner => None,
                    // Invitations come from the owner and writers.
                    CertKind::Invitation => as_member.map(|_| cert.role),
                    // Members are admitted by the owner, writers, or an invitation up to its role.
                    CertKind::Member => match (as_member, as_invitation) {
                        (Some(_), _) => Some(cert.role),
                        (None, Some(limit)) => Some(cert.role.min(limit)),
                        (None, None) => None,
                    },
                };
                let Some(role) = granted else { continue };
                let table = match cert.kind {
                    CertKind::Member => &mut members,
                    _ => &mut invitations,
                };
                if table.get(&cert.subject).is_none_or(|known| *known < role) {
                    table.insert(cert.subject, role);
                    chain.push((*cert).clone());
                    queue.push_back(cert.subject);
                }
            }
        }
        // Claims of members that write travel after every role; a removed member's stay
        // where they are (they count for the cut there, see below).
        let mut claims: Vec<&Cert> = self
            .certs
            .iter()
            .filter(|c| c.kind == CertKind::Claim)
            .filter(|c| members.get(&c.issuer).is_some_and(|r| r.may_write()))
            .collect();
        claims.sort_by_key(|c| (c.issuer, c.subject));
        self.claimed = claims.iter().filter_map(|c| c.client()).collect();
        chain.extend(claims.into_iter().cloned());
        self.voided = self.derive_voided(&revoked);
        self.members = members;
        self.invitations = invitations;
        self.revoked = revoked;
        self.chain = chain;
    }

    /// The owner's cuts, and every client a removed member claimed that no cut names and no
    /// member that writes claims too (void from its start: the owner knew none of it).
    /// Needs `claimed` derived first.
    fn derive_voided(&self, revoked: &HashSet<KeyBytes>) -> BTreeMap<u64, u64> {
        let mut voided: BTreeMap<u64, u64> = BTreeMap::new();
        for cert in &self.certs {
            if let (Some(client), Some(clock)) = (cert.client(), cert.cut_clock()) {
                if cert.issuer == self.owner {
                    let from = voided.entry(client).or_insert(clock);
                    *from = (*from).min(clock);
                }
            }
        }
        for cert in &self.certs {
            if cert.kind == CertKind::Claim && revoked.contains(&cert.issuer) {
                if let Some(client) = cert.client().filter(|c| !self.claimed.contains(c)) {
                    voided.entry(client).or_insert(0);
                }
            }
        }
        voided
    }

    /// The certificates that matter, in the order they must travel: the owner's revocations
    /// first, then each certificate that grants a role after the one that lets its issuer
    /// grant it. A receiver adding them in this order, page by page, refuses none.
    pub fn chain(&self) -> &[Cert] {
        &self.chain
    }

    /// Yjs clients whose operations are void, each from a clock on: the owner's cuts (a
    /// removed member's clients, at the clocks the owner held when it removed it), and the
    /// clients a removed member claimed that no cut names (from 0). Every replica deletes
    /// those operations when it learns this, and whenever more of them arrive.
    pub fn voided(&self) -> &BTreeMap<u64, u64> {
        &self.voided
    }

    /// Whether a member that may write claimed `client` (so a node need not claim it again).
    pub fn is_claimed(&self, client: u64) -> bool {
        self.claimed.contains(&client)
    }

    /// Who wrote through Yjs client `client`: the member whose claim of it counts (a member
    /// that may write, or one the owner removed; on a collision, the smallest key). `None` if
    /// no member claimed it.
    pub fn claimant(&self, client: u64) -> Option<KeyBytes> {
        self.certs
            .iter()
            .filter(|c| c.kind == CertKind::Claim && c.client() == Some(client))
            .map(|c| c.issuer)
            .filter(|issuer| {
                self.members.get(issuer).is_some_and(|r| r.may_write())
                    || self.revoked.contains(issuer)
            })
            .min()
    }

    /// Whether the document was ever shared: a ticket was made for it (an invitation), or this
    /// node joined it, so it holds certificates. A document never shared is announced nowhere.
    pub fn is_shared(&self) -> bool {
        // Claims are counted apart: any other certificate means it was shared.
        !self.issued.is_empty()
    }

    /// Invitations that still admit members, with the role each admits up to.
    pub fn invitations(&self) -> impl Iterator<Item = (&KeyBytes, &Role)> {
        self.invitations.iter()
    }

    /// Whether the owner removed `peer`.
    pub fn is_revoked(&self, peer: &PeerId) -> bool {
        key_of(peer).is_ok_and(|k| self.revoked.contains(&k))
    }

    /// Whether the owner revoked this key (a member or an invitation).
    pub fn is_revoked_key(&self, key: &KeyBytes) -> bool {
        self.revoked.contains(key)
    }

    /// The role a key holds, if it is a member.
    pub fn role_of_key(&self, key: &KeyBytes) -> Option<Role> {
        self.members.get(key).copied()
    }

    /// The member certificates that admitted `key` (to revoke the invitations behind them).
    pub fn admissions_of(&self, key: &KeyBytes) -> Vec<&Cert> {
        self.certs
            .iter()
            .filter(|c| c.kind == CertKind::Member && c.subject == *key)
            .collect()
    }

    /// Members' keys and roles, the owner included.
    pub fn member_keys(&self) -> impl Iterator<Item = (&KeyBytes, &Role)> {
        self.members.iter()
    }

    /// Adds a key grant after checking that the owner signed it for this document. Returns
    /// whether it was new.
    pub fn add_grant(&mut self, grant: KeyGrant) -> Result<bool, AccessError> {
        if grant.doc != self.doc {
            return Err(AccessError::OtherDocument);
        }
        let slot = (grant.epoch, grant.member);
        if self.grants.contains_key(&slot) {
            return Ok(false);
        }
        if self.grants.len() >= MAX_GRANTS {
            return Err(AccessError::Full);
        }
        if !grant.verify(&self.owner) {
            return Err(AccessError::BadSignature);
        }
        self.grants.insert(slot, grant);
        Ok(true)
    }

    /// Every key grant held.
    pub fn grants(&self) -> impl Iterator<Item = &KeyGrant> {
        self.grants.values()
    }

    /// The grants addressed to `member`.
    pub fn grants_for(&self, member: &KeyBytes) -> Vec<&KeyGrant> {
        self.grants
            .values()
            .filter(|g| g.member == *member)
            .collect()
    }

    /// The role `peer` holds, if it is a member.
    pub fn role_of(&self, peer: &PeerId) -> Option<Role> {
        key_of(peer)
            .ok()
            .and_then(|k| self.members.get(&k).copied())
    }

    /// Members and their roles, the owner first.
    pub fn members(&self) -> Vec<(PeerId, Role)> {
        let mut list: Vec<(PeerId, Role)> = self
            .members
            .iter()
            .filter_map(|(key, role)| Some((peer_of(key)?, *role)))
            .collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        list
    }

    /// Every certificate held (valid or still waiting for its issuer's).
    pub fn certs(&self) -> impl Iterator<Item = &Cert> {
        self.certs.iter()
    }
}

mod signed;
#[cfg(test)]
mod tests;
