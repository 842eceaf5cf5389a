//! A replica's state, as sync compares it: [`Summary`] (state vector and digest), the digest's
//! canonical form, decoding untrusted state vectors, state vectors as text, and the empty
//! update. Pure functions of yrs values.

use std::panic::catch_unwind;

use yrs::updates::decoder::Decode;
use yrs::{Snapshot, StateVector};

use crate::core::doc::DocError;

/// The encoding of an update that carries nothing (no operations, no deletions): the answer to
/// a sync request from a replica in exactly our state.
pub const EMPTY_UPDATE: [u8; 2] = [0, 0];

/// Domain separator of [`Document::digest`].
const DIGEST_CONTEXT: &str = "peerdoc 2026-11 document state digest v1";

/// The digest of a replica's [`Snapshot`] (its state vector and delete set) in canonical form:
/// clients sorted, deleted ranges sorted and merged. See `PROTOCOL.md`.
pub(crate) fn digest_of(snapshot: &Snapshot) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
    let mut clocks: Vec<(u64, u32)> = snapshot
        .state_map
        .iter()
        .map(|(client, clock)| (client.get(), *clock))
        .collect();
    clocks.sort_unstable();
    hasher.update(&(clocks.len() as u64).to_le_bytes());
    for (client, clock) in clocks {
        hasher.update(&client.to_le_bytes());
        hasher.update(&clock.to_le_bytes());
    }
    let mut deleted: Vec<(u64, Vec<std::ops::Range<u32>>)> = snapshot
        .delete_set
        .iter()
        .map(|(client, ranges)| (client.get(), merged(ranges.iter().cloned().collect())))
        .filter(|(_, ranges)| !ranges.is_empty())
        .collect();
    deleted.sort_unstable_by_key(|(client, _)| *client);
    hasher.update(&(deleted.len() as u64).to_le_bytes());
    for (client, ranges) in deleted {
        hasher.update(&client.to_le_bytes());
        hasher.update(&(ranges.len() as u64).to_le_bytes());
        for range in ranges {
            hasher.update(&range.start.to_le_bytes());
            hasher.update(&range.end.to_le_bytes());
        }
    }
    *hasher.finalize().as_bytes()
}

/// What a sync request tells about the requester's replica: its state vector and
/// [`crate::core::doc::Document::digest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub sv: Vec<u8>,
    pub digest: [u8; 32],
}

/// Whether a replica at `remote_sv` whose digest is `remote_digest` holds exactly the state
/// whose digest is `ours`: then it lacks nothing, and a sync request is answered with
/// [`EMPTY_UPDATE`] without a diff (or loading the document). A malformed state vector is an
/// error either way.
pub fn holds_our_state(
    ours: &[u8; 32],
    remote_sv: &[u8],
    remote_digest: &[u8; 32],
) -> Result<bool, DocError> {
    decode_sv(remote_sv)?;
    Ok(ours == remote_digest)
}

/// A state vector as text, one `client:clock` per client in client order: the same for the same
/// vector (its lib0 encoding lists clients in no particular order).
pub fn sv_text(sv: &[u8]) -> Result<String, DocError> {
    let mut clocks: Vec<(u64, u32)> = decode_sv(sv)?
        .iter()
        .map(|(client, clock)| (client.get(), *clock))
        .collect();
    clocks.sort_unstable();
    Ok(clocks
        .iter()
        .map(|(client, clock)| format!("{client}:{clock}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// True if the replica at `remote_sv` has seen operations the one at `local_sv` has not.
pub fn sv_has_unseen(local_sv: &[u8], remote_sv: &[u8]) -> Result<bool, DocError> {
    Ok(unseen(&decode_sv(local_sv)?, &decode_sv(remote_sv)?) > 0)
}

/// How far apart two replicas are, each vector decoded once: (operations only the remote has
/// seen, operations only the local replica has seen). Operations are inserted items, counted
/// as yrs clocks count them: characters of text.
pub fn sv_gap(local_sv: &[u8], remote_sv: &[u8]) -> Result<(u64, u64), DocError> {
    let (local, remote) = (decode_sv(local_sv)?, decode_sv(remote_sv)?);
    Ok((unseen(&local, &remote), unseen(&remote, &local)))
}

/// Operations `remote` has seen that `local` has not.
fn unseen(local: &StateVector, remote: &StateVector) -> u64 {
    remote
        .iter()
        .map(|(client, clock)| u64::from(clock.saturating_sub(local.get(client))))
        .sum()
}

/// Ranges sorted, with overlapping and touching ones joined: one form for the same set.
fn merged(mut ranges: Vec<std::ops::Range<u32>>) -> Vec<std::ops::Range<u32>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<std::ops::Range<u32>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

/// Rejects input whose leading count could not possibly fit in its bytes. yrs decoders reserve
/// memory for such counts before reading the entries, so a few bytes claiming millions of
/// entries would make a node allocate gigabytes (found by fuzzing). `min_entry` is the smallest
/// encoding of one entry.
pub fn check_leading_count(bytes: &[u8], min_entry: u64) -> Result<(), String> {
    use yrs::encoding::read::{Cursor, Read};
    let count: u64 = Cursor::new(bytes).read_var().map_err(|e| e.to_string())?;
    if count > bytes.len() as u64 / min_entry {
        return Err(format!("claims {count} entries in {} bytes", bytes.len()));
    }
    Ok(())
}

/// Decodes an untrusted state vector: bounded (see [`check_leading_count`]) and under
/// `catch_unwind`, because yrs asserts on some invalid client ids.
pub fn decode_sv(bytes: &[u8]) -> Result<StateVector, DocError> {
    // Every entry is at least two bytes: client id and clock, one varuint each.
    check_leading_count(bytes, 2).map_err(DocError::BadStateVector)?;
    catch_unwind(|| StateVector::decode_v1(bytes))
        .map_err(|_| DocError::BadStateVector("decoder panicked".into()))?
        .map_err(|e| DocError::BadStateVector(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::doc::{Applied, Document};

    #[test]
    fn the_gap_counts_what_each_replica_lacks() {
        let mut a = Document::new();
        let mut b = Document::new();
        b.apply(&a.append_text("abc").unwrap()).unwrap();
        a.append_text("de").unwrap();
        b.append_text("xyzw").unwrap();
        let (a_lacks, b_lacks) = sv_gap(&a.state_vector(), &b.state_vector()).unwrap();
        assert_eq!((a_lacks, b_lacks), (4, 2));
        assert_eq!(
            sv_gap(&a.state_vector(), &a.state_vector()).unwrap(),
            (0, 0)
        );
        assert!(sv_has_unseen(&a.state_vector(), &b.state_vector()).unwrap());
    }

    #[test]
    fn digest_says_whether_two_replicas_hold_the_same_state() {
        let mut a = Document::new();
        let mut b = Document::new();
        assert_eq!(a.digest(), b.digest());
        let base = a.append_text("hello world").unwrap();
        assert_ne!(a.digest(), b.digest());
        b.apply(&base).unwrap();
        assert_eq!(a.digest(), b.digest());
        // A deletion does not advance the state vector, but it changes the digest.
        let delete = a.delete(0, 6).unwrap();
        assert_eq!(a.state_vector(), b.state_vector());
        assert_ne!(a.digest(), b.digest());
        // The same deletions in pieces end in the same digest (ranges are merged).
        let mut c = Document::new();
        c.apply(&base).unwrap();
        c.delete(0, 3).unwrap();
        c.delete(0, 3).unwrap();
        b.apply(&delete).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.text(), c.text());
        // Deletions name the items they delete: c deleted the same items as a, in two steps.
        assert_eq!(a.digest(), c.digest());
    }

    #[test]
    fn sv_text_is_canonical() {
        let mut a = Document::with_client_id(7);
        let mut b = Document::with_client_id(3);
        let ua = a.append_text("a").unwrap();
        let ub = b.append_text("bb").unwrap();
        a.apply(&ub).unwrap();
        b.apply(&ua).unwrap();
        assert_eq!(sv_text(&a.state_vector()).unwrap(), "3:2,7:1");
        assert_eq!(sv_text(&b.state_vector()).unwrap(), "3:2,7:1");
        assert!(sv_text(b"\xff").is_err());
    }

    #[test]
    fn diff_unless_same_is_empty_only_for_the_same_state() {
        let mut a = Document::new();
        let base = a.append_text("abc").unwrap();
        let mut b = Document::new();
        b.apply(&base).unwrap();
        let empty = a.diff_unless_same(&b.state_vector(), &b.digest()).unwrap();
        assert_eq!(empty, EMPTY_UPDATE);
        assert_eq!(b.apply(&empty).unwrap(), Applied::default());
        a.delete(0, 1).unwrap();
        let diff = a.diff_unless_same(&b.state_vector(), &b.digest()).unwrap();
        assert_ne!(diff, EMPTY_UPDATE);
        b.apply(&diff).unwrap();
        assert_eq!((b.text(), b.digest()), (a.text(), a.digest()));
        assert!(a.diff_unless_same(b"\xff", &b.digest()).is_err());
    }
}
