//! What a replica holds beyond a state another node is known to hold (a holder, which cannot
//! say what it holds: it cannot read it). A state is a yrs [`Snapshot`] (state vector and
//! delete set), kept encoded by the member that tracks it.

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Snapshot, Transact, Update};

use super::{DocError, Document};

/// A change and the state it brings its receiver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// A Yjs update v1: the operations the known state lacks, and the deletions it lacks.
    pub update: Vec<u8>,
    /// This replica's state (encoded [`Snapshot`]): what the receiver holds once it has
    /// `update` on top of the known state.
    pub state: Vec<u8>,
}

impl Document {
    /// This replica's state as an encoded [`Snapshot`].
    pub fn snapshot_state(&self) -> Vec<u8> {
        self.doc.transact().snapshot().encode_v1()
    }

    /// What this replica holds beyond `known` (an encoded [`Snapshot`]; `None`: nothing known),
    /// or `None` if nothing. Unlike [`Document::diff`], the deletions `known` holds are left
    /// out, so repeated changes do not carry the whole delete set each time.
    pub fn changes_since(&self, known: Option<&[u8]>) -> Result<Option<Since>, DocError> {
        let known = match known {
            Some(bytes) => Snapshot::decode_v1(bytes)
                .map_err(|e| DocError::BadStateVector(format!("known state: {e}")))?,
            None => Snapshot::default(),
        };
        let txn = self.doc.transact();
        let now = txn.snapshot();
        let new_deletions = now.delete_set.diff(&known.delete_set);
        let has_new_deletions = new_deletions.iter().any(|(_, ranges)| !ranges.is_empty());
        let has_new_blocks = now
            .state_map
            .iter()
            .any(|(client, clock)| known.state_map.get(client) < *clock);
        if !has_new_blocks && !has_new_deletions {
            return Ok(None);
        }
        // `encode_diff` writes the blocks, then the whole delete set (`now.delete_set`'s
        // encoding): swap that tail for the deletions `known` lacks.
        let full = txn.encode_diff_v1(&known.state_map);
        let whole_ds = now.delete_set.encode_v1();
        let update = match full.strip_suffix(whole_ds.as_slice()) {
            Some(blocks) => [blocks, &new_deletions.encode_v1()].concat(),
            // Not the layout expected: the whole diff is still right, only larger.
            None => full,
        };
        Ok(Some(Since {
            update,
            state: now.encode_v1(),
        }))
    }
}

/// The state a receiver holds once it has `update` on top of `known` (both encoded): its
/// operations count only where they continue what `known` holds for their client (a holder's
/// entries arrive in order, each after what it builds on), and its deletions all count.
pub fn known_plus(known: Option<&[u8]>, update: &[u8]) -> Result<Vec<u8>, DocError> {
    let mut known = match known {
        Some(bytes) => Snapshot::decode_v1(bytes)
            .map_err(|e| DocError::BadStateVector(format!("known state: {e}")))?,
        None => Snapshot::default(),
    };
    let update = Update::decode_v1(update).map_err(|e| DocError::BadUpdate(e.to_string()))?;
    // `Update::state_vector` counts only clients whose blocks start at clock 0: take the
    // extent of each client's insertions instead.
    for (client, ranges) in update.insertions(true).iter() {
        let mut ranges: Vec<std::ops::Range<u32>> = ranges.iter().cloned().collect();
        ranges.sort_unstable_by_key(|r| r.start);
        let mut held = known.state_map.get(client);
        for range in ranges {
            if range.start > held {
                break;
            }
            held = held.max(range.end);
        }
        known.state_map.set_max(*client, held);
    }
    known.delete_set.merge_with(update.delete_set().clone());
    Ok(known.encode_v1())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_since_a_known_state_carry_only_what_it_lacks_and_rebuild_the_same_text() {
        let mut a = Document::with_client_id(1);
        a.insert(0, "hello world, a long enough text");
        let first = a.changes_since(None).unwrap().expect("something to send");
        let mut holder_view = Document::with_client_id(9);
        holder_view.apply(&first.update).unwrap();
        assert_eq!(a.changes_since(Some(&first.state)).unwrap(), None);

        a.delete(0, 6);
        a.insert(0, "bye ");
        let second = a
            .changes_since(Some(&first.state))
            .unwrap()
            .expect("a deletion and an insertion");
        holder_view.apply(&second.update).unwrap();
        assert_eq!(holder_view.text(), a.text());

        // Deletions already known are not sent again.
        let len = a.text().chars().count();
        a.delete(len - 6, 6);
        let third = a.changes_since(Some(&second.state)).unwrap().unwrap();
        let whole_delete_set = a.diff(&a.state_vector()).unwrap();
        assert!(
            third.update.len() < whole_delete_set.len(),
            "{} bytes, the whole delete set {}",
            third.update.len(),
            whole_delete_set.len()
        );
        holder_view.apply(&third.update).unwrap();
        assert_eq!(holder_view.text(), a.text());
        assert!(a.changes_since(Some(&[0xff, 0xff])).is_err());
    }

    #[test]
    fn a_known_state_grows_by_what_it_is_given_in_order_only() {
        let mut a = Document::with_client_id(1);
        a.insert(0, "one ");
        let first = a.changes_since(None).unwrap().unwrap();
        a.insert(4, "two ");
        a.delete(0, 2);
        let second = a.changes_since(Some(&first.state)).unwrap().unwrap();
        // In order: the receiver's state is the sender's.
        let known = known_plus(None, &first.update).unwrap();
        let known = known_plus(Some(&known), &second.update).unwrap();
        assert_eq!(a.changes_since(Some(&known)).unwrap(), None);
        // The second alone does not continue an empty state: its operations do not count,
        // its deletions do.
        let gap = known_plus(None, &second.update).unwrap();
        let lacking = a
            .changes_since(Some(&gap))
            .unwrap()
            .expect("the first operations");
        let mut b = Document::with_client_id(2);
        b.apply(&lacking.update).unwrap();
        b.apply(&second.update).unwrap();
        assert_eq!(b.text(), a.text());
    }
}
