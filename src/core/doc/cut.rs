//! Voiding operations: the deletion that a removal's cut asks of every replica (see
//! [`crate::core::access::Membership::voided`]). Yjs deletions carry no author and merge by
//! union, so every replica deleting the same operations on its own converges without anyone
//! sending a word; a replica also passes its deletions on with every diff it serves.

use std::collections::{BTreeMap, HashMap};

use yrs::encoding::write::Write;
use yrs::{ReadTxn, Transact};

use super::{Applied, DocError, Document};

/// What [`Document::void`] deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Voided {
    /// The deletion (a yrs update holding only a delete set), if it changed this replica:
    /// to store and show, like any change.
    pub delta: Option<Vec<u8>>,
    /// Operations (clock units) newly covered.
    pub operations: u64,
}

impl Document {
    /// The next clock of each Yjs client this replica holds (its state vector, as a map).
    pub fn clocks(&self) -> HashMap<u64, u64> {
        self.doc
            .transact()
            .state_vector()
            .iter()
            .map(|(client, clock)| (client.get(), u64::from(*clock)))
            .collect()
    }

    /// Deletes the operations `voided` names (client → first void clock) that this replica
    /// holds and `done` (client → clock covered so far, kept by the caller between calls) does
    /// not cover yet. Cheap when nothing new arrived from a voided client.
    pub fn void(
        &mut self,
        voided: &BTreeMap<u64, u64>,
        done: &mut HashMap<u64, u64>,
    ) -> Result<Voided, DocError> {
        if voided.is_empty() {
            return Ok(Voided::default());
        }
        let clocks = self.clocks();
        let mut ranges: Vec<(u64, u64, u64)> = Vec::new();
        for (client, from) in voided {
            let Some(&end) = clocks.get(client) else {
                continue;
            };
            let start = done.get(client).copied().unwrap_or(0).max(*from);
            if end > start {
                ranges.push((*client, start, end - start));
            }
        }
        if ranges.is_empty() {
            return Ok(Voided::default());
        }
        let operations = ranges.iter().map(|(_, _, len)| len).sum();
        let Applied { delta, .. } = self.apply(&delete_set_update(&ranges))?;
        for (client, start, len) in ranges {
            done.insert(client, start + len);
        }
        Ok(Voided { delta, operations })
    }
}

/// A lib0 v1 update with no blocks and a delete set of `(client, clock, len)` ranges.
fn delete_set_update(ranges: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    out.write_var(0u64); // client sections with blocks
    out.write_var(ranges.len() as u64); // clients in the delete set
    for (client, clock, len) in ranges {
        out.write_var(*client);
        out.write_var(1u64); // ranges of this client
        out.write_var(*clock);
        out.write_var(*len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voiding_deletes_what_a_client_wrote_from_the_cut_and_what_arrives_later() {
        let mut honest = Document::with_client_id(1);
        let mut removed = Document::with_client_id(2);
        let base = honest.insert(0, "keep ").unwrap();
        removed.apply(&base).unwrap();
        let before = removed.append_text("before ").unwrap();
        honest.apply(&before).unwrap();
        // The owner held 7 operations of client 2 ("before ") when it removed it.
        let cut = BTreeMap::from([(2, 7)]);
        let after = removed.append_text("after").unwrap();
        honest.apply(&after).unwrap();
        let mut done = HashMap::new();
        let voided = honest.void(&cut, &mut done).unwrap();
        assert_eq!(voided.operations, 5);
        assert_eq!(honest.text(), "keep before ");
        // Nothing new: nothing to do.
        assert_eq!(honest.void(&cut, &mut done).unwrap(), Voided::default());
        // More from the removed client later: deleted too.
        let later = removed.append_text(" more").unwrap();
        honest.apply(&later).unwrap();
        assert_eq!(honest.void(&cut, &mut done).unwrap().operations, 5);
        assert_eq!(honest.text(), "keep before ");
        // A replica that gets the deletion as an update converges without voiding itself.
        let mut reader = Document::with_client_id(3);
        reader.apply(&honest.encode_state()).unwrap();
        assert_eq!(reader.text(), "keep before ");
        // Another replica voiding on its own reaches the same text, and the same state.
        let mut other = Document::with_client_id(4);
        other.apply(&removed.encode_state()).unwrap();
        other.apply(&base).unwrap();
        other.void(&cut, &mut HashMap::new()).unwrap();
        assert_eq!(other.text(), honest.text());
        assert_eq!(other.digest(), honest.digest());
    }
}
