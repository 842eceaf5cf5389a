//! What members sign beside their certificates, kept in a [`Membership`]: each member's
//! display name, and the records of which nodes hold the document. Newest wins for both.

use super::Membership;
use crate::core::access::hold::{HoldError, HoldRecord, MAX_HOLDERS};
use crate::core::access::name::MAX_FUTURE_MS;
use crate::core::access::{KeyBytes, NameError, NameRecord};

impl Membership {
    /// Adds a member's display name if it is newer than the one held. Only a member (or a
    /// removed one: history still shows who wrote what) names itself; `now_ms` bounds how far
    /// ahead a record may be dated. Returns whether it was new.
    pub fn add_name(&mut self, record: NameRecord, now_ms: u64) -> Result<bool, NameError> {
        if !self.members.contains_key(&record.member) && !self.revoked.contains(&record.member) {
            return Err(NameError::NotMember);
        }
        if record.at_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(NameError::FromTheFuture);
        }
        match self.names.get(&record.member) {
            Some(held) if !record.replaces(held) => Ok(false),
            _ => {
                self.names.insert(record.member, record);
                Ok(true)
            }
        }
    }

    /// The display name `key` signed last, if any.
    pub fn name_of(&self, key: &KeyBytes) -> Option<&str> {
        self.names.get(key).map(|r| r.name.as_str())
    }

    /// Every display name held.
    pub fn names(&self) -> impl Iterator<Item = &NameRecord> {
        self.names.values()
    }

    /// Adds a hold record if it is newer than the one held about its holder. Only the owner
    /// or a writer decides where the document is kept; `now_ms` bounds how far ahead a record
    /// may be dated. Returns whether it was new.
    pub fn add_hold(&mut self, record: HoldRecord, now_ms: u64) -> Result<bool, HoldError> {
        if record.doc != self.doc {
            return Err(HoldError::OtherDocument);
        }
        if !self
            .members
            .get(&record.issuer)
            .is_some_and(|role| role.may_write())
        {
            return Err(HoldError::NotWriter);
        }
        if record.at_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(HoldError::FromTheFuture);
        }
        let active = self.holds.values().filter(|r| r.holds).count();
        if record.holds && !self.is_holder(&record.holder) && active >= MAX_HOLDERS {
            return Err(HoldError::TooMany);
        }
        Ok(self.restore_hold(record))
    }

    /// Adds a hold record read back from storage (checked when it arrived: its issuer may
    /// have been removed since, and the decision stands). Returns whether it was new.
    pub fn restore_hold(&mut self, record: HoldRecord) -> bool {
        if record.doc != self.doc {
            return false;
        }
        match self.holds.get(&record.holder) {
            Some(held) if !record.replaces(held) => false,
            _ => {
                self.holds.insert(record.holder, record);
                true
            }
        }
    }

    /// The hold records to send in a roster: those of the holders first, the newest first.
    pub fn holds_to_send(&self) -> Vec<&HoldRecord> {
        let mut holds: Vec<&HoldRecord> = self.holds.values().collect();
        holds.sort_by_key(|r| (std::cmp::Reverse(r.holds), std::cmp::Reverse(r.at_ms)));
        holds
    }

    /// Every hold record held (the newest about each holder, holding or released).
    pub fn holds(&self) -> impl Iterator<Item = &HoldRecord> {
        self.holds.values()
    }

    /// The keys of the nodes that hold the document now, in key order.
    pub fn holders(&self) -> Vec<KeyBytes> {
        let mut keys: Vec<KeyBytes> = self
            .holds
            .values()
            .filter(|r| r.holds)
            .map(|r| r.holder)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Whether `holder` holds the document now.
    pub fn is_holder(&self, holder: &KeyBytes) -> bool {
        self.holds.get(holder).is_some_and(|r| r.holds)
    }
}
