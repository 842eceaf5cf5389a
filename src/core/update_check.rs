//! A bounds check of untrusted lib0 v1 updates before yrs decodes them. yrs reserves memory
//! for the counts an update declares (clients, blocks, values) before reading what they
//! count, and decodes nested values recursively: ten bytes can make it reserve tens of
//! gigabytes, and a value nested 100,000 deep (200 KB) overflows the stack (checked: an abort
//! of the whole process, which no `catch_unwind` stops). [`check_update_v1`] walks the encoding once without allocating and
//! refuses an update whose counts exceed the bytes left, whose values nest deeper than
//! [`MAX_DEPTH`], or that has bytes after its end. Shared types nesting too deep is the other
//! way to overflow yrs's stack: `depth` ([`type_depth_v1`]).

use yrs::encoding::read::{Cursor, Read};

mod depth;
pub use depth::{type_depth_v1, MAX_TYPE_DEPTH};
use depth::{BlockRef, Parent};

/// Deepest nesting of arrays and maps inside a value (Yjs documents hold text; JSON content is
/// parsed by serde_json, which stops at 128).
pub const MAX_DEPTH: usize = 64;

/// Refuses updates that would make yrs allocate beyond their size or recurse too deep.
pub fn check_update_v1(bytes: &[u8]) -> Result<(), String> {
    dependencies_v1(bytes).map(|_| ())
}

/// What an update builds on, found by the same walk as [`check_update_v1`] (which it also
/// is): whether a replica holds everything the update needs ([`crate::core::doc::Document`]
/// applies network input only then).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dependencies {
    /// Per client section: the client, the clock of its first block, the clock after its last.
    pub sections: Vec<(u64, u64, u64)>,
    /// Operations the update's blocks refer to (left and right origins, parent items):
    /// client and clock.
    pub refs: Vec<(u64, u64)>,
    /// The update has a skip block: a hole its sender did not have.
    pub has_skip: bool,
    /// The update holds shared types (then check how deep they nest: [`type_depth_v1`]).
    pub has_types: bool,
}

/// [`check_update_v1`], and what the update builds on.
pub fn dependencies_v1(bytes: &[u8]) -> Result<Dependencies, String> {
    let mut r = Walker::new(bytes);
    r.update().map_err(|e| format!("bad update: {e}"))?;
    if r.r.has_content() {
        return Err("bad update: bytes after its end".into());
    }
    Ok(r.deps)
}

struct Walker<'a> {
    r: Cursor<'a>,
    deps: Dependencies,
    /// Every block, when the type depth is checked (`depth`).
    blocks: Option<Vec<BlockRef>>,
}

type Walk = Result<(), String>;

impl<'a> Walker<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Walker {
            r: Cursor::new(bytes),
            deps: Dependencies::default(),
            blocks: None,
        }
    }

    fn remaining(&self) -> usize {
        self.r.buf.len().saturating_sub(self.r.next)
    }

    fn var(&mut self) -> Result<u64, String> {
        self.r.read_var::<u64>().map_err(|e| e.to_string())
    }

    /// A count of things that each take at least `min` bytes.
    fn count(&mut self, what: &str, min: usize) -> Result<u64, String> {
        let n = self.var()?;
        if n > (self.remaining() / min) as u64 {
            return Err(format!(
                "claims {n} {what} with {} bytes left",
                self.remaining()
            ));
        }
        Ok(n)
    }

    fn u8(&mut self) -> Result<u8, String> {
        self.r.read_u8().map_err(|e| e.to_string())
    }

    fn buf(&mut self) -> Walk {
        self.r.read_buf().map(|_| ()).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Walk {
        self.r.read_string().map(|_| ()).map_err(|e| e.to_string())
    }

    fn skip(&mut self, n: usize) -> Walk {
        self.r.read_exact(n).map(|_| ()).map_err(|e| e.to_string())
    }

    fn update(&mut self) -> Walk {
        // Each client section is at least three bytes: block count, client id, first clock.
        let clients = self.count("clients", 3)?;
        for _ in 0..clients {
            let blocks = self.count("blocks", 2)?;
            let client = self.var()?;
            // yrs adds up clocks in u32: a client's blocks must not run past it.
            let first = self.var()?;
            let mut clock = first;
            for _ in 0..blocks {
                clock = clock.saturating_add(self.block(client, clock)?);
                if clock > u64::from(u32::MAX) {
                    return Err("block clocks overflow".into());
                }
            }
            self.deps.sections.push((client, first, clock));
        }
        let clients = self.count("delete set clients", 2)?;
        for _ in 0..clients {
            self.var()?; // client
            let ranges = self.count("deleted ranges", 2)?;
            for _ in 0..ranges {
                let end = self.var()?.saturating_add(self.var()?); // clock + length
                if end > u64::from(u32::MAX) {
                    return Err("deleted range overflows".into());
                }
            }
        }
        Ok(())
    }

    /// Walks one block (`client`'s, at `clock`); returns its length in clock units (as yrs
    /// counts it).
    fn block(&mut self, client: u64, clock: u64) -> Result<u64, String> {
        let (len, parent, is_type) = self.block_parts()?;
        if let Some(blocks) = &mut self.blocks {
            blocks.push(BlockRef {
                client,
                clock,
                len,
                parent,
                is_type,
            });
        }
        Ok(len)
    }

    /// One block's length, where it sits and whether it holds a shared type.
    fn block_parts(&mut self) -> Result<(u64, Parent, bool), String> {
        const GC: u8 = 0;
        const SKIP: u8 = 10;
        const HAS_ORIGIN: u8 = 0b1000_0000;
        const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
        const HAS_PARENT_SUB: u8 = 0b0010_0000;
        let info = self.u8()?;
        if info == SKIP {
            self.deps.has_skip = true;
        }
        if info == GC || info == SKIP {
            return Ok((self.var()?, Parent::Unknown, false)); // length
        }
        let mut parent = Parent::Unknown;
        if info & HAS_ORIGIN != 0 {
            let id = (self.var()?, self.var()?);
            self.deps.refs.push(id);
            parent = Parent::Beside(id.0, id.1);
        }
        if info & HAS_RIGHT_ORIGIN != 0 {
            let id = (self.var()?, self.var()?);
            self.deps.refs.push(id);
            if let Parent::Unknown = parent {
                parent = Parent::Beside(id.0, id.1);
            }
        }
        if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
            if self.var()? == 1 {
                self.string()?; // named root type
                parent = Parent::Root;
            } else {
                let id = (self.var()?, self.var()?); // parent item id
                self.deps.refs.push(id);
                parent = Parent::Item(id.0, id.1);
            }
            if info & HAS_PARENT_SUB != 0 {
                self.string()?;
            }
        }
        let is_type = info & 0b1111 == 7;
        self.deps.has_types |= is_type;
        let len = match info & 0b1111 {
            1 => self.var(), // deleted length
            2 => {
                // JSON: yrs reads count + 1 strings.
                let n = self.count("JSON values", 1)?;
                for _ in 0..=n {
                    self.string()?;
                }
                Ok(n + 1)
            }
            3 => self.buf().map(|_| 1),
            4 => {
                // A string's length is in UTF-16 code units.
                let s = self.r.read_string().map_err(|e| e.to_string())?;
                Ok(s.encode_utf16().count() as u64)
            }
            5 => self.string().map(|_| 1), // embed (JSON text)
            6 => {
                self.string()?; // format key
                self.string().map(|_| 1) // format value (JSON text)
            }
            7 => {
                // type ref; an XML element carries its tag name
                if self.u8()? == 3 {
                    self.string()?;
                }
                Ok(1)
            }
            8 => {
                let n = self.count("values", 1)?;
                for _ in 0..n {
                    self.any(0)?;
                }
                Ok(n)
            }
            9 => {
                self.string()?; // sub-document guid
                self.any(0).map(|_| 1) // its options
            }
            other => Err(format!("unknown content type {other}")),
        }?;
        Ok((len, parent, is_type))
    }

    fn any(&mut self, depth: usize) -> Walk {
        if depth >= MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        match self.u8()? {
            127 | 126 | 121 | 120 => Ok(()), // undefined, null, false, true
            125 => self
                .r
                .read_var::<i64>()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            124 => self.skip(4),
            123 | 122 => self.skip(8),
            119 | 116 => self.buf(), // string (validated as UTF-8 by yrs), buffer
            118 => {
                let n = self.count("map entries", 2)?;
                for _ in 0..n {
                    self.string()?;
                    self.any(depth + 1)?;
                }
                Ok(())
            }
            117 => {
                let n = self.count("array values", 1)?;
                for _ in 0..n {
                    self.any(depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("unknown value type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{
        Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, Update, WriteTxn, XmlFragment,
    };

    /// An update from a real document with every content kind the check walks.
    fn rich_update() -> Vec<u8> {
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        let text = txn.get_or_insert_text("content");
        text.insert(&mut txn, 0, "hello world");
        text.remove_range(&mut txn, 2, 3);
        text.format(&mut txn, 0, 2, [("bold".into(), Any::Bool(true))].into());
        text.insert_embed(&mut txn, 1, Any::from(vec![Any::from(1.5), Any::Null]));
        let array = txn.get_or_insert_array("list");
        array.insert(
            &mut txn,
            0,
            Any::from(vec![Any::from(-7i64), Any::from("s")]),
        );
        array.insert(&mut txn, 1, Any::Buffer(vec![1, 2, 3].into()));
        array.insert(&mut txn, 2, yrs::ArrayPrelim::default());
        let map = txn.get_or_insert_map("meta");
        map.insert(&mut txn, "k", Any::from(f64::MAX));
        map.insert(&mut txn, "nested", yrs::MapPrelim::default());
        map.insert(&mut txn, "doc", yrs::Doc::new());
        let frag = txn.get_or_insert_xml_fragment("xml");
        frag.insert(&mut txn, 0, yrs::XmlElementPrelim::empty("p"));
        drop(txn);
        let txn = doc.transact();
        txn.encode_state_as_update_v1(&StateVector::default())
    }

    #[test]
    fn real_updates_pass() {
        let update = rich_update();
        Update::decode_v1(&update).unwrap();
        check_update_v1(&update).unwrap();
        check_update_v1(&Update::new().encode_v1()).unwrap();
    }

    #[test]
    fn every_truncation_of_a_real_update_and_trailing_bytes_are_refused() {
        let update = rich_update();
        for end in 0..update.len() {
            assert!(
                check_update_v1(&update[..end]).is_err(),
                "prefix of {end} bytes"
            );
        }
        assert!(check_update_v1(&[update.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn huge_counts_are_refused() {
        // One client claiming 2^32-1 blocks: yrs would reserve ~100 GB.
        let mut bomb = vec![1];
        bomb.extend([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0]);
        assert!(check_update_v1(&bomb).unwrap_err().contains("claims"));
        // A value array claiming a billion entries.
        let mut bomb = vec![
            1, 1, 5, 0, 8, 1, 7, b'c', b'o', b'n', b't', b'e', b'n', b't',
        ];
        bomb.extend([0x80, 0x94, 0xeb, 0xdc, 0x03]);
        assert!(check_update_v1(&bomb).is_err());
    }

    #[test]
    fn clocks_past_u32_are_refused() {
        // Found by fuzzing: a client starting near u32::MAX whose blocks run past it made yrs
        // overflow its clock arithmetic. One client, 1 block, client 5, clock u32::MAX - 1, a
        // GC block of length 5.
        let mut bad = vec![1, 1, 5, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 5, 0];
        assert!(check_update_v1(&bad).unwrap_err().contains("overflow"));
        bad[9] = 1; // length 1: ends exactly at u32::MAX
        check_update_v1(&bad).unwrap();
        // A deleted range past u32::MAX.
        let range = [0, 1, 5, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 2];
        assert!(check_update_v1(&range).unwrap_err().contains("overflow"));
        let artifact = [
            0x01, 0x02, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x02, 0x01,
            0x01, 0x63, 0x00, 0x01, 0x30, 0x06, 0x01, 0x01, 0x66, 0x01, 0x62, 0x04, 0x74, 0x72,
            0x75, 0x65, 0x00,
        ];
        assert!(check_update_v1(&artifact).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        // client section: 1 block, client 5, clock 0; an Any block in root "c" holding one
        // value: arrays nested 100,000 deep.
        let mut deep = vec![1, 1, 5, 0, 8, 1, 1, b'c', 1];
        for _ in 0..100_000 {
            deep.extend([117, 1]);
        }
        deep.push(126);
        deep.push(0); // empty delete set
        assert!(check_update_v1(&deep).unwrap_err().contains("nest"));
        // The same at a shallow depth is a valid update.
        let shallow = [
            &[1, 1, 5, 0, 8, 1, 1, b'c', 1][..],
            &[117, 1, 117, 1, 126, 0],
        ]
        .concat();
        check_update_v1(&shallow).unwrap();
        Update::decode_v1(&shallow).unwrap();
    }
}
