//! A change larger than one entry travels in parts: each entry's plaintext is
//! `varuint upload · varuint part · varuint parts · bytes`, and a reader joins the parts of one
//! upload (same uploader, same upload id, parts 0 to parts − 1 in order) before it applies
//! the change. An upload cut short (its uploader stopped) stays incomplete and is never
//! applied; the uploader sends the change again under a new id.

use std::collections::HashMap;

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use super::PART_SIZE;
use crate::core::access::KeyBytes;

/// Most parts of one upload: more than a document's 512 MiB at [`PART_SIZE`].
pub const MAX_PARTS: u32 = 1024;
/// Bytes of uploads not complete yet a reader holds at most (a document's size limit).
pub const MAX_OPEN_BYTES: usize = 512 << 20;
/// An upload begun this many entries before the one being read is given up: its uploader
/// stopped, and re-reading from its first part for ever would pin every reader there.
pub const ABANDONED_AFTER: u64 = 4 * MAX_PARTS as u64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed part of a held change: {0}")]
pub struct PartError(&'static str);

/// Splits `update` into the plaintexts of the entries that carry it, under `upload`.
pub fn split(update: &[u8], upload: u64) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = if update.is_empty() {
        vec![update]
    } else {
        update.chunks(PART_SIZE).collect()
    };
    let parts = pieces.len() as u32;
    pieces
        .into_iter()
        .enumerate()
        .map(|(part, piece)| {
            let mut out = Vec::with_capacity(piece.len() + 16);
            out.write_var(upload);
            out.write_var(part as u32);
            out.write_var(parts);
            out.write_all(piece);
            out
        })
        .collect()
}

/// One decoded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub upload: u64,
    pub part: u32,
    pub parts: u32,
    pub bytes: Vec<u8>,
}

impl Part {
    pub fn decode(plain: &[u8]) -> Result<Part, PartError> {
        let mut r = Cursor::new(plain);
        let upload: u64 = r.read_var().map_err(|_| PartError("truncated upload id"))?;
        let part: u32 = r.read_var().map_err(|_| PartError("truncated part"))?;
        let parts: u32 = r
            .read_var()
            .map_err(|_| PartError("truncated part count"))?;
        if parts == 0 || parts > MAX_PARTS || part >= parts {
            return Err(PartError("bad part number"));
        }
        let bytes = plain[r.next..].to_vec();
        if bytes.len() > PART_SIZE {
            return Err(PartError("part too long"));
        }
        Ok(Part {
            upload,
            part,
            parts,
            bytes,
        })
    }
}

/// Joins parts as they are read, in holder order.
#[derive(Debug, Default)]
pub struct Assembler {
    /// Uploads begun: (uploader, upload) → (offset of the first part, parts so far, bytes).
    open: HashMap<(KeyBytes, u64), (u64, u32, Vec<u8>)>,
}

/// What [`Assembler::push`] made of a part.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// The upload is complete: the whole change.
    Complete(Vec<u8>),
    /// More parts are to come.
    Waiting,
    /// The part does not follow the parts read before it (lost, repeated or out of order): the
    /// upload is dropped.
    Broken,
}

impl Assembler {
    /// Adds the part read at holder `offset` from `uploader`.
    pub fn push(&mut self, uploader: KeyBytes, offset: u64, part: Part) -> Joined {
        let key = (uploader, part.upload);
        // An uploader sends one upload at a time: a new one means the one before was cut
        // short (it sends the change again in this one).
        if part.part == 0 {
            self.open.retain(|(who, _), _| *who != uploader);
        }
        self.open
            .retain(|_, (first, _, _)| first.saturating_add(ABANDONED_AFTER) > offset);
        let open_bytes: usize = self.open.values().map(|(_, _, bytes)| bytes.len()).sum();
        if open_bytes + part.bytes.len() > MAX_OPEN_BYTES {
            self.open.remove(&key);
            return Joined::Broken;
        }
        let expected = self.open.get(&key).map_or(0, |(_, got, _)| *got);
        if part.part != expected {
            self.open.remove(&key);
            return Joined::Broken;
        }
        if part.parts == 1 {
            return Joined::Complete(part.bytes);
        }
        let entry = self.open.entry(key).or_insert((offset, 0, Vec::new()));
        entry.1 += 1;
        entry.2.extend_from_slice(&part.bytes);
        if entry.1 == part.parts {
            let (_, _, bytes) = self.open.remove(&key).unwrap_or_default();
            return Joined::Complete(bytes);
        }
        Joined::Waiting
    }

    /// The holder offset a reader must read again from to see every open upload whole: the
    /// first part of the oldest incomplete one.
    pub fn resume_from(&self) -> Option<u64> {
        self.open.values().map(|(offset, _, _)| *offset).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_change_splits_and_joins_again() {
        let update: Vec<u8> = (0..PART_SIZE * 2 + 10).map(|i| i as u8).collect();
        let plains = split(&update, 77);
        assert_eq!(plains.len(), 3);
        let mut joiner = Assembler::default();
        let me = [1; 32];
        let mut joined = Vec::new();
        for (offset, plain) in plains.iter().enumerate() {
            let part = Part::decode(plain).unwrap();
            match joiner.push(me, offset as u64 + 10, part) {
                Joined::Complete(bytes) => joined.push(bytes),
                Joined::Waiting => assert_eq!(joiner.resume_from(), Some(10)),
                Joined::Broken => panic!("parts in order are not broken"),
            }
        }
        assert_eq!(joined, vec![update]);
        assert_eq!(joiner.resume_from(), None);
        let small = split(b"tiny", 1);
        assert_eq!(small.len(), 1);
        assert_eq!(
            joiner.push(me, 0, Part::decode(&small[0]).unwrap()),
            Joined::Complete(b"tiny".to_vec())
        );
    }

    #[test]
    fn a_cut_short_upload_is_given_up_once_its_uploader_starts_another_or_long_after() {
        let update = vec![7u8; PART_SIZE + 1];
        let me = [3; 32];
        let mut joiner = Assembler::default();
        let first = split(&update, 1);
        assert_eq!(
            joiner.push(me, 5, Part::decode(&first[0]).unwrap()),
            Joined::Waiting
        );
        assert_eq!(joiner.resume_from(), Some(5));
        // The same uploader starts again: the first upload is not waited for any more.
        let second = split(&update, 2);
        assert_eq!(
            joiner.push(me, 9, Part::decode(&second[0]).unwrap()),
            Joined::Waiting
        );
        assert_eq!(joiner.resume_from(), Some(9));
        // Another uploader's upload, cut short long ago, is given up too.
        let other = split(&update, 3);
        let mut joiner = Assembler::default();
        joiner.push([4; 32], 0, Part::decode(&other[0]).unwrap());
        joiner.push(me, ABANDONED_AFTER + 1, Part::decode(&second[0]).unwrap());
        assert_eq!(joiner.resume_from(), Some(ABANDONED_AFTER + 1));
    }

    #[test]
    fn a_part_out_of_order_drops_its_upload() {
        let update = vec![7u8; PART_SIZE + 1];
        let plains = split(&update, 5);
        let mut joiner = Assembler::default();
        assert_eq!(
            joiner.push([2; 32], 0, Part::decode(&plains[1]).unwrap()),
            Joined::Broken
        );
        assert_eq!(joiner.resume_from(), None);
        assert!(Part::decode(&[1, 3, 2]).is_err(), "part 3 of 2");
        assert!(Part::decode(&[1, 0, 0]).is_err(), "zero parts");
        assert!(Part::decode(&[]).is_err());
    }
}
