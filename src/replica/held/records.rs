//! A held document's membership as the holder keeps it: records from members added (the new
//! ones to store, by kind), and the membership rebuilt from the stored records.

use std::sync::Arc;

use super::Held;
use crate::core::access::{Cert, HoldRecord, KeyGrant, Membership, NameRecord};
use crate::core::sync::members::Roster;
use crate::metrics::Metrics;
use crate::replica::store::HeldDoc;

/// Stored record kinds (`held_records.kind`).
const CERT: u8 = 0;
const GRANT: u8 = 1;
const HOLD: u8 = 2;
const NAME: u8 = 3;

/// Adds a roster's records to a held document's membership; returns the new ones to store.
pub(super) fn add_roster(
    membership: &mut Membership,
    roster: Roster,
    metrics: &Metrics,
) -> Vec<(u8, Vec<u8>)> {
    let now_ms = crate::replica::store::unix_now_ms();
    let added = membership.add_all(roster.certs);
    metrics.refused("certificate", "unchained", added.unchained as u64);
    metrics.refused("certificate", "invalid", added.invalid as u64);
    let mut fresh: Vec<(u8, Vec<u8>)> = added.stored.iter().map(|c| (CERT, c.encode())).collect();
    for grant in roster.grants {
        if let Ok(true) = membership.add_grant(grant.clone()) {
            fresh.push((GRANT, grant.encode()));
        }
    }
    for hold in roster.holds {
        match membership.add_hold(hold.clone(), now_ms) {
            Ok(true) => fresh.push((HOLD, hold.encode())),
            Ok(false) => {}
            Err(e) => metrics.refused("hold", hold_refusal(&e), 1),
        }
    }
    for name in roster.names {
        if let Ok(true) = membership.add_name(name.clone(), now_ms) {
            fresh.push((NAME, name.encode()));
        }
    }
    fresh
}

/// A refused hold record's reason in metrics.
pub(crate) fn hold_refusal(e: &crate::core::access::HoldError) -> &'static str {
    use crate::core::access::HoldError;
    match e {
        HoldError::NotWriter => "not_writer",
        HoldError::FromTheFuture => "from_the_future",
        HoldError::TooMany => "too_many",
        _ => "invalid",
    }
}

/// A held document's membership from its stored records.
pub(super) fn rebuild(held: &HeldDoc) -> Held {
    let mut membership = Membership::new(held.doc, held.key.owner);
    let mut certs = Vec::new();
    let (mut grants, mut holds, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, bytes) in &held.records {
        match *kind {
            CERT => certs.extend(Cert::decode(bytes).ok()),
            GRANT => grants.extend(KeyGrant::decode(bytes).ok()),
            HOLD => holds.extend(HoldRecord::decode(bytes).ok()),
            NAME => names.extend(NameRecord::decode(bytes).ok()),
            _ => tracing::error!("skipping a held record of unknown kind {kind}"),
        }
    }
    membership.add_all(certs);
    for grant in grants {
        let _ = membership.add_grant(grant);
    }
    for hold in holds {
        membership.restore_hold(hold);
    }
    for name in names {
        let _ = membership.add_name(name, u64::MAX);
    }
    Held {
        doc: held.doc,
        membership: Arc::new(membership),
    }
}
