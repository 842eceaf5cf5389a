//! Hold requests and responses on `/peerdoc/sync/1` (they start with [`HOLD_WIRE`]; sync
//! messages with 1). Members talk to a holder in clear over the connection's own encryption:
//! what travels is the roster (signed certificates, key grants sealed to members, hold
//! records) and sealed entries. Every decoder bounds its counts before allocating and refuses
//! trailing bytes.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use super::parts::MAX_PARTS;
use super::{Refusal, FETCH_BYTES, HOLD_WIRE, MAX_ENTRY};
use crate::core::access::KeyBytes;
use crate::core::doc::DocId;
use crate::core::sync::members::{self, Roster};
use crate::core::sync::MAX_RESPONSE_BYTES;

/// Most entries in one fetch response.
pub const MAX_FETCHED: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed hold message: {0}")]
pub struct WireError(pub &'static str);

/// A request to a holder about the document of `topic` owned by `owner` (the holder keeps
/// documents apart by both: a document id says nothing of its owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    pub topic: [u8; 32],
    pub owner: KeyBytes,
    pub body: HoldBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldBody {
    /// `0x00`: membership records to add (the first from a member the holder does not keep
    /// the document for yet makes it start to, if a hold record asks it to).
    Records { doc: DocId, roster: Roster },
    /// `0x01`: keep this entry (an encoded [`super::Entry`] signed by the requester).
    Append { entry: Vec<u8> },
    /// `0x02`: the entries from holder offset `from` on.
    Fetch { from: u64 },
    /// `0x03`: page `page` of the holder's roster of the document.
    Roster { page: u32 },
    /// `0x04`: part `part` of `parts` of a snapshot (an encoded [`super::Entry`] of kind
    /// snapshot, signed by the requester) that replaces every entry below offset `covers`;
    /// it takes effect when its last part is kept.
    Snapshot {
        covers: u64,
        part: u32,
        parts: u32,
        entry: Vec<u8>,
    },
    /// `0x05`: part `part` of the snapshot that replaced the entries below `state.base`.
    FetchSnapshot { part: u32 },
}

/// A holder's account of a document it keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldState {
    /// The offset the next entry will get (every entry below it was acknowledged).
    pub head: u64,
    /// Bytes kept for the document (entries).
    pub bytes: u64,
    /// Unix time in ms of the last entry kept (0: none).
    pub last_write_ms: u64,
    /// Entries below this offset were replaced by a snapshot (0: none was).
    pub base: u64,
    /// A number the holder drew when it began to hold the document: another one means it
    /// started over (released and asked again, or its store restored), and a member reads it
    /// from the start again.
    pub incarnation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldResponse {
    /// `0x00`: done (records taken, or an entry kept durably); the document's state after it.
    Held(HeldState),
    /// `0x01`: entries from the offset asked, in order, as many as fit; more from the last
    /// offset + 1 while it is below `state.head`.
    Entries {
        state: HeldState,
        entries: Vec<(u64, Vec<u8>)>,
    },
    /// `0x02`: a page of the holder's roster (its member list is empty).
    Roster(Roster),
    /// `0x03`: refused, and why.
    Refused(Refusal),
    /// `0x04`: a part of the snapshot that replaced the entries below `covers`.
    SnapshotPart {
        covers: u64,
        part: u32,
        parts: u32,
        entry: Vec<u8>,
    },
}

impl HoldRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![HOLD_WIRE];
        let kind = match &self.body {
            HoldBody::Records { .. } => 0,
            HoldBody::Append { .. } => 1,
            HoldBody::Fetch { .. } => 2,
            HoldBody::Roster { .. } => 3,
            HoldBody::Snapshot { .. } => 4,
            HoldBody::FetchSnapshot { .. } => 5,
        };
        out.push(kind);
        out.extend_from_slice(&self.topic);
        out.extend_from_slice(&self.owner);
        match &self.body {
            HoldBody::Records { doc, roster } => {
                out.extend_from_slice(&doc.0);
                members::encode(roster, &mut out);
            }
            HoldBody::Append { entry } => out.write_buf(entry),
            HoldBody::Fetch { from } => out.write_var(*from),
            HoldBody::Roster { page } => out.write_var(*page),
            HoldBody::Snapshot {
                covers,
                part,
                parts,
                entry,
            } => write_snapshot_part(&mut out, *covers, *part, *parts, entry),
            HoldBody::FetchSnapshot { part } => out.write_var(*part),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<HoldRequest, WireError> {
        let [HOLD_WIRE, kind, rest @ ..] = bytes else {
            return Err(WireError("not a hold request"));
        };
        if rest.len() < 64 {
            return Err(WireError("truncated"));
        }
        let (topic, rest) = rest.split_at(32);
        let (owner, rest) = rest.split_at(32);
        let mut r = Cursor::new(rest);
        let body = match kind {
            0 => {
                let doc = r
                    .read_exact(16)
                    .map_err(|_| WireError("truncated doc id"))?;
                let doc = DocId(doc.try_into().map_err(|_| WireError("doc id"))?);
                let roster = members::decode(&mut r).map_err(|_| WireError("bad roster"))?;
                HoldBody::Records { doc, roster }
            }
            1 => {
                let entry = r.read_buf().map_err(|_| WireError("truncated entry"))?;
                if entry.len() > MAX_ENTRY {
                    return Err(WireError("entry too long"));
                }
                HoldBody::Append {
                    entry: entry.to_vec(),
                }
            }
            2 => HoldBody::Fetch {
                from: r.read_var().map_err(|_| WireError("truncated offset"))?,
            },
            3 => HoldBody::Roster {
                page: r.read_var().map_err(|_| WireError("truncated page"))?,
            },
            4 => {
                let (covers, part, parts, entry) = read_snapshot_part(&mut r)?;
                HoldBody::Snapshot {
                    covers,
                    part,
                    parts,
                    entry,
                }
            }
            5 => HoldBody::FetchSnapshot {
                part: r.read_var().map_err(|_| WireError("truncated part"))?,
            },
            _ => return Err(WireError("unknown request kind")),
        };
        if r.has_content() {
            return Err(WireError("trailing bytes"));
        }
        Ok(HoldRequest {
            topic: topic.try_into().map_err(|_| WireError("topic"))?,
            owner: owner.try_into().map_err(|_| WireError("owner"))?,
            body,
        })
    }
}

fn write_state(out: &mut Vec<u8>, state: &HeldState) {
    out.write_var(state.head);
    out.write_var(state.bytes);
    out.write_var(state.last_write_ms);
    out.write_var(state.base);
    out.write_var(state.incarnation);
}

/// `varuint covers · varuint part · varuint parts · varbuf entry`.
fn write_snapshot_part(out: &mut Vec<u8>, covers: u64, part: u32, parts: u32, entry: &[u8]) {
    out.write_var(covers);
    out.write_var(part);
    out.write_var(parts);
    out.write_buf(entry);
}

/// [`write_snapshot_part`]'s fields, with `part < parts <= MAX_PARTS`.
fn read_snapshot_part(r: &mut Cursor) -> Result<(u64, u32, u32, Vec<u8>), WireError> {
    let covers = r.read_var().map_err(|_| WireError("truncated offset"))?;
    let part: u32 = r.read_var().map_err(|_| WireError("truncated part"))?;
    let parts: u32 = r
        .read_var()
        .map_err(|_| WireError("truncated part count"))?;
    if parts == 0 || parts > MAX_PARTS || part >= parts {
        return Err(WireError("bad part number"));
    }
    let entry = r.read_buf().map_err(|_| WireError("truncated entry"))?;
    if entry.len() > MAX_ENTRY {
        return Err(WireError("entry too long"));
    }
    Ok((covers, part, parts, entry.to_vec()))
}

fn read_state(r: &mut Cursor) -> Result<HeldState, WireError> {
    let mut next =
        || -> Result<u64, WireError> { r.read_var().map_err(|_| WireError("truncated state")) };
    let state = HeldState {
        head: next()?,
        bytes: next()?,
        last_write_ms: next()?,
        base: next()?,
        incarnation: next()?,
    };
    if state.base > state.head {
        return Err(WireError("base beyond head"));
    }
    Ok(state)
}

impl HoldResponse {
    /// Encodes; a fetch answer keeps entries while they fit in [`FETCH_BYTES`] (at least one).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![HOLD_WIRE];
        match self {
            HoldResponse::Held(state) => {
                out.push(0);
                write_state(&mut out, state);
            }
            HoldResponse::Entries { state, entries } => {
                out.push(1);
                write_state(&mut out, state);
                let mut size = 0;
                let fitting = entries
                    .iter()
                    .take(MAX_FETCHED)
                    .take_while(|(_, entry)| {
                        size += entry.len();
                        size <= FETCH_BYTES || size == entry.len()
                    })
                    .count();
                out.write_var(fitting as u32);
                for (offset, entry) in &entries[..fitting] {
                    out.write_var(*offset);
                    out.write_buf(entry);
                }
            }
            HoldResponse::Roster(roster) => {
                out.push(2);
                members::encode(roster, &mut out);
            }
            HoldResponse::Refused(why) => {
                out.push(3);
                out.push(*why as u8);
            }
            HoldResponse::SnapshotPart {
                covers,
                part,
                parts,
                entry,
            } => {
                out.push(4);
                write_snapshot_part(&mut out, *covers, *part, *parts, entry);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<HoldResponse, WireError> {
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(WireError("response too long"));
        }
        let [HOLD_WIRE, status, rest @ ..] = bytes else {
            return Err(WireError("not a hold response"));
        };
        let mut r = Cursor::new(rest);
        let response = match status {
            0 => HoldResponse::Held(read_state(&mut r)?),
            1 => {
                let state = read_state(&mut r)?;
                let count: u32 = r.read_var().map_err(|_| WireError("truncated count"))?;
                if count as usize > MAX_FETCHED {
                    return Err(WireError("too many entries"));
                }
                let mut entries = Vec::with_capacity(count as usize);
                let mut last = None;
                for _ in 0..count {
                    let offset: u64 = r.read_var().map_err(|_| WireError("truncated offset"))?;
                    if last.is_some_and(|last| offset <= last) || offset >= state.head {
                        return Err(WireError("entries out of order"));
                    }
                    last = Some(offset);
                    let entry = r.read_buf().map_err(|_| WireError("truncated entry"))?;
                    if entry.len() > MAX_ENTRY {
                        return Err(WireError("entry too long"));
                    }
                    entries.push((offset, entry.to_vec()));
                }
                HoldResponse::Entries { state, entries }
            }
            2 => {
                HoldResponse::Roster(members::decode(&mut r).map_err(|_| WireError("bad roster"))?)
            }
            3 => {
                let code = r.read_u8().map_err(|_| WireError("truncated refusal"))?;
                HoldResponse::Refused(Refusal::from_code(code).ok_or(WireError("unknown refusal"))?)
            }
            4 => {
                let (covers, part, parts, entry) = read_snapshot_part(&mut r)?;
                HoldResponse::SnapshotPart {
                    covers,
                    part,
                    parts,
                    entry,
                }
            }
            _ => return Err(WireError("unknown status")),
        };
        if r.has_content() {
            return Err(WireError("trailing bytes"));
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use libp2p_identity::ed25519;

    use super::*;
    use crate::core::access::HoldRecord;

    #[test]
    fn requests_and_responses_round_trip() {
        let doc = DocId([6; 16]);
        let owner = ed25519::Keypair::generate();
        let roster = Roster {
            holds: vec![HoldRecord::sign(doc, [1; 32], 3, true, &owner)],
            pages: 1,
            ..Roster::default()
        };
        let bodies = [
            HoldBody::Records {
                doc,
                roster: roster.clone(),
            },
            HoldBody::Append {
                entry: vec![1, 2, 3],
            },
            HoldBody::Fetch { from: 300 },
            HoldBody::Roster { page: 2 },
            HoldBody::Snapshot {
                covers: 40,
                part: 1,
                parts: 3,
                entry: vec![4; 9],
            },
            HoldBody::FetchSnapshot { part: 2 },
        ];
        for body in bodies {
            let request = HoldRequest {
                topic: doc.topic(),
                owner: owner.public().to_bytes(),
                body,
            };
            let bytes = request.encode();
            assert_eq!(HoldRequest::decode(&bytes), Ok(request));
            assert!(HoldRequest::decode(&[bytes.clone(), vec![0]].concat()).is_err());
            for cut in 0..bytes.len() {
                assert!(HoldRequest::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        let state = HeldState {
            head: 9,
            bytes: 1000,
            last_write_ms: 1_700_000_000_000,
            base: 4,
            incarnation: 77,
        };
        let responses = [
            HoldResponse::Held(state),
            HoldResponse::Entries {
                state,
                entries: vec![(3, vec![5; 10]), (8, vec![6; 3])],
            },
            HoldResponse::Roster(roster),
            HoldResponse::Refused(Refusal::NotWriter),
            HoldResponse::SnapshotPart {
                covers: 4,
                part: 0,
                parts: 1,
                entry: vec![1, 2],
            },
        ];
        for response in responses {
            let bytes = response.encode();
            assert_eq!(HoldResponse::decode(&bytes), Ok(response));
            assert!(HoldResponse::decode(&[bytes.clone(), vec![0]].concat()).is_err());
        }
    }

    #[test]
    fn a_fetch_answer_keeps_what_fits_and_refuses_disorder() {
        let state = HeldState {
            head: 10,
            ..HeldState::default()
        };
        let big = vec![0u8; FETCH_BYTES / 2 + 1];
        let entries = vec![(1, big.clone()), (2, big.clone()), (3, big)];
        let bytes = HoldResponse::Entries { state, entries }.encode();
        let HoldResponse::Entries { entries, .. } = HoldResponse::decode(&bytes).unwrap() else {
            panic!("entries")
        };
        assert_eq!(entries.len(), 1, "two halves and a byte do not fit");
        let disordered = HoldResponse::Entries {
            state,
            entries: vec![(5, vec![1]), (4, vec![2])],
        }
        .encode();
        assert!(HoldResponse::decode(&disordered).is_err());
        let beyond_head = HoldResponse::Entries {
            state,
            entries: vec![(10, vec![1])],
        }
        .encode();
        assert!(HoldResponse::decode(&beyond_head).is_err());
    }
}
