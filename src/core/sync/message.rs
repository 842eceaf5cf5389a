//! y-protocols messages ([`YMessage`]): the payload of gossip and the frames of y-websocket
//! sessions, with a bounded decoder for untrusted awareness updates.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::AwarenessUpdate;
use yrs::updates::decoder::Decode;

use super::{malformed, SyncError};
use crate::core::doc::{check_leading_count, decode_sv};

/// One y-protocols message. Gossip carries `Update`, `SyncStep1` (as "I have this state: pull if
/// you are behind") and `Awareness`; y-websocket sessions use all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YMessage {
    /// A state vector (y-protocols sync step 1).
    SyncStep1(Vec<u8>),
    /// A diff answering a step 1 (y-protocols sync step 2).
    SyncStep2(Vec<u8>),
    /// An incremental document update.
    Update(Vec<u8>),
    /// An awareness (presence) update, as y-protocols awareness update bytes.
    Awareness(Vec<u8>),
    /// "Send me all awareness states."
    QueryAwareness,
}

/// A [`YMessage`] shared by every session that sends it, encoded once (by the first to ask):
/// cheap to clone, and it reads as the message it holds.
#[derive(Debug, Clone)]
pub struct Frame(Arc<FrameInner>);

#[derive(Debug)]
struct FrameInner {
    message: YMessage,
    encoded: OnceLock<Bytes>,
}

impl Frame {
    pub fn new(message: YMessage) -> Frame {
        Frame(Arc::new(FrameInner {
            message,
            encoded: OnceLock::new(),
        }))
    }

    /// The message's encoding, made on the first call.
    pub fn encoded(&self) -> Bytes {
        self.0
            .encoded
            .get_or_init(|| Bytes::from(self.0.message.encode()))
            .clone()
    }
}

impl std::ops::Deref for Frame {
    type Target = YMessage;
    fn deref(&self) -> &YMessage {
        &self.0.message
    }
}

/// Largest number of messages accepted in one y-websocket frame.
const MAX_MESSAGES_PER_FRAME: usize = 1024;

impl YMessage {
    /// The encoding of `YMessage::Update(update)`, without owning the update.
    pub fn encode_update(update: &[u8]) -> Vec<u8> {
        use yrs::sync::protocol::*;
        let mut out: Vec<u8> = Vec::with_capacity(update.len() + 8);
        out.write_var(MSG_SYNC);
        out.write_var(MSG_SYNC_UPDATE);
        out.write_buf(update);
        out
    }

    pub fn encode(&self) -> Vec<u8> {
        use yrs::sync::protocol::*;
        let mut out: Vec<u8> = Vec::new();
        let mut sync = |tag: u8, data: &[u8]| {
            out.write_var(MSG_SYNC);
            out.write_var(tag);
            out.write_buf(data);
        };
        match self {
            YMessage::SyncStep1(sv) => sync(MSG_SYNC_STEP_1, sv),
            YMessage::SyncStep2(u) => sync(MSG_SYNC_STEP_2, u),
            YMessage::Update(u) => sync(MSG_SYNC_UPDATE, u),
            YMessage::Awareness(a) => {
                out.write_var(MSG_AWARENESS);
                out.write_buf(a);
            }
            YMessage::QueryAwareness => out.write_var(MSG_QUERY_AWARENESS),
        }
        out
    }

    /// Decodes exactly one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let mut r = Cursor::new(bytes);
        let msg = Self::read(&mut r)?;
        if r.has_content() {
            return Err(SyncError::Malformed("trailing bytes after message"));
        }
        Ok(msg)
    }

    /// Decodes every message of a y-websocket frame (one or more, back to back).
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<Self>, SyncError> {
        let mut r = Cursor::new(bytes);
        let mut out = Vec::new();
        while r.has_content() {
            if out.len() == MAX_MESSAGES_PER_FRAME {
                return Err(SyncError::Malformed("too many messages in one frame"));
            }
            out.push(Self::read(&mut r)?);
        }
        if out.is_empty() {
            return Err(SyncError::Malformed("empty frame"));
        }
        Ok(out)
    }

    fn read(r: &mut Cursor) -> Result<Self, SyncError> {
        use yrs::sync::protocol::*;
        let tag: u8 = r.read_var().map_err(malformed("truncated message type"))?;
        Ok(match tag {
            MSG_SYNC => {
                let kind: u8 = r.read_var().map_err(malformed("truncated sync type"))?;
                let data = r.read_buf().map_err(malformed("truncated sync payload"))?;
                match kind {
                    MSG_SYNC_STEP_1 => {
                        decode_sv(data).map_err(|_| SyncError::Malformed("bad state vector"))?;
                        YMessage::SyncStep1(data.to_vec())
                    }
                    MSG_SYNC_STEP_2 => YMessage::SyncStep2(data.to_vec()),
                    MSG_SYNC_UPDATE => YMessage::Update(data.to_vec()),
                    _ => return Err(SyncError::Malformed("unknown sync message type")),
                }
            }
            MSG_AWARENESS => {
                let a = r
                    .read_buf()
                    .map_err(malformed("truncated awareness update"))?;
                decode_awareness(a)?;
                YMessage::Awareness(a.to_vec())
            }
            MSG_QUERY_AWARENESS => YMessage::QueryAwareness,
            _ => return Err(SyncError::Malformed("unknown message type")),
        })
    }
}

/// Decodes untrusted awareness update bytes: bounded (see [`check_leading_count`]) and under
/// `catch_unwind` (yrs asserts on some client ids).
pub fn decode_awareness(bytes: &[u8]) -> Result<AwarenessUpdate, SyncError> {
    // Each entry is at least three bytes: client id, clock, state length.
    check_leading_count(bytes, 3)
        .map_err(|_| SyncError::Malformed("awareness update claims more entries than it holds"))?;
    std::panic::catch_unwind(|| AwarenessUpdate::decode_v1(bytes))
        .map_err(|_| SyncError::Malformed("awareness decoder panicked"))?
        .map_err(|_| SyncError::Malformed("bad awareness update"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::doc::Document;

    proptest! {
        #[test]
        fn y_messages_round_trip(data in proptest::collection::vec(any::<u8>(), 0..500), kind in 0..5u8) {
            let mut d = Document::new();
            d.append_text(&String::from_utf8_lossy(&data));
            let m = match kind {
                0 => YMessage::Update(data),
                1 => YMessage::SyncStep2(data),
                2 => YMessage::SyncStep1(d.state_vector()),
                3 => YMessage::QueryAwareness,
                _ => YMessage::Awareness(vec![1, 7, 3, 2, b'{', b'}']),
            };
            prop_assert_eq!(YMessage::decode(&m.encode()).unwrap(), m.clone());
            let mut frame = m.encode();
            frame.extend(YMessage::QueryAwareness.encode());
            prop_assert_eq!(YMessage::decode_all(&frame).unwrap(), vec![m, YMessage::QueryAwareness]);
        }

        #[test]
        fn decoders_never_panic_on_random_bytes(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = YMessage::decode(&raw);
            let _ = YMessage::decode_all(&raw);
            let _ = decode_awareness(&raw);
        }
    }

    #[test]
    fn encode_update_matches_encode() {
        let update = vec![1, 2, 3, 250];
        assert_eq!(
            YMessage::encode_update(&update),
            YMessage::Update(update).encode()
        );
    }

    #[test]
    fn malformed_y_messages_are_errors() {
        for bad in [
            &[][..],                                         // empty frame
            &[0x00][..],                                     // sync without a type
            &[0x00, 0x02, 0x05, 1][..],                      // update claims 5 bytes, has 1
            &[0x00, 0x07, 0x00][..],                         // unknown sync type
            &[0x09][..],                                     // unknown message type
            &[0x80, 0x80, 0x80][..],                         // truncated varint
            &[0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f][..], // huge length
            &[0x01, 0x03, 0x01, 0x01][..],                   // truncated awareness
        ] {
            assert!(YMessage::decode_all(bad).is_err(), "{bad:?}");
        }
    }
}
