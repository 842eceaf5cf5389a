//! Pure: the sync protocol. Gossip payloads (y-protocols messages), the `/peerdoc/sync/1`
//! request/response codecs, the responder's chunked transfers and the requester's pull session
//! state machine. Byte layouts are specified in PROTOCOL.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::AwarenessUpdate;
use yrs::updates::decoder::Decode;

use crate::doc::{check_leading_count, decode_sv};
use crate::envelope::{DocKey, EnvelopeError, Purpose, ENVELOPE_OVERHEAD};

/// The request-response protocol name.
pub const PROTOCOL: &str = "/peerdoc/sync/1";
/// Version byte that starts every sync request and response.
pub const WIRE_VERSION: u8 = 1;
/// Plaintext bytes of document data per sync response chunk.
pub const CHUNK_SIZE: usize = 48 * 1024;
/// Local updates larger than this are not gossiped; a `SyncStep1` announcement is, and peers
/// that are behind pull.
/// Keeps every gossip message well under gossipsub's 64 KiB limit.
pub const MAX_GOSSIP_UPDATE: usize = 48 * 1024;
/// Largest gossip message we accept or send (gossipsub's `max_transmit_size`).
pub const MAX_GOSSIP_MESSAGE: usize = 64 * 1024;
/// Largest transfer (one diff) a requester accepts.
pub const MAX_TRANSFER: u64 = 1 << 30;
/// Codec limits for one request / one response on the wire. Document data per response is
/// bounded by [`CHUNK_SIZE`]; the rest of the allowance is for state vectors, which grow with the
/// number of writers a document has seen.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long a responder keeps a large diff for follow-up chunk requests, and how many bytes of
/// such diffs it keeps at most.
pub const TRANSFER_TTL: Duration = Duration::from_secs(120);
pub const TRANSFER_CACHE_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    #[error("malformed sync message: {0}")]
    Malformed(&'static str),
    #[error("unsupported sync wire version {0}")]
    Version(u8),
    #[error("peer sent an inconsistent transfer: {0}")]
    BadTransfer(&'static str),
    #[error("transfer of {0} bytes exceeds the {MAX_TRANSFER}-byte limit")]
    TooLarge(u64),
    #[error("payload does not open with the document key: {0}")]
    Sealed(#[from] EnvelopeError),
}

/// Why a pull ended without the peer's diff.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PullError {
    #[error("peer sent a bad response: {0}")]
    Sync(#[from] SyncError),
    #[error("the peer does not have this document")]
    UnknownDoc,
    #[error("the peer refused the request (it holds a different key for this document)")]
    Refused,
    #[error("the peer kept expiring the transfer; try again later")]
    Expired,
}

fn malformed(what: &'static str) -> impl Fn(yrs::encoding::read::Error) -> SyncError {
    move |_| SyncError::Malformed(what)
}

// ---------------------------------------------------------------------------------------------
// y-protocols messages: gossip payloads and y-websocket frames

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

/// Largest number of messages accepted in one y-websocket frame.
const MAX_MESSAGES_PER_FRAME: usize = 1024;

impl YMessage {
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

// ---------------------------------------------------------------------------------------------
// Requests

/// A `/peerdoc/sync/1` request: the document's topic in clear (so the responder can find the
/// key) and a sealed [`RequestBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub topic: [u8; 32],
    pub sealed: Vec<u8>,
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33 + self.sealed.len());
        out.push(WIRE_VERSION);
        out.extend_from_slice(&self.topic);
        out.extend_from_slice(&self.sealed);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or(SyncError::Malformed("empty request"))?;
        if version != WIRE_VERSION {
            return Err(SyncError::Version(version));
        }
        if rest.len() < 32 + ENVELOPE_OVERHEAD {
            return Err(SyncError::Malformed("request too short"));
        }
        let (topic, sealed) = rest.split_at(32);
        Ok(SyncRequest {
            topic: topic.try_into().expect("32 bytes"),
            sealed: sealed.to_vec(),
        })
    }
}

/// Responder side: the body of a request, opened with the key of the document its topic names.
pub fn open_request(key: &DocKey, request: &SyncRequest) -> Result<RequestBody, SyncError> {
    let plain = key.open(&request.topic, Purpose::SyncRequest, &request.sealed)?;
    RequestBody::decode(&plain)
}

/// Responder side: a chunk as a sealed response, or `TransferExpired` when there is none.
pub fn chunk_response(key: &DocKey, topic: &[u8; 32], chunk: Option<Chunk>) -> SyncResponse {
    match chunk {
        Some(chunk) => SyncResponse::Chunk(key.seal(topic, Purpose::SyncResponse, &chunk.encode())),
        None => SyncResponse::TransferExpired,
    }
}

/// Plaintext of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// Start a pull: here is my state vector, send what I lack (y-protocols SyncStep1 semantics).
    Start { sv: Vec<u8> },
    /// Next chunk of a transfer the responder started.
    Continue { transfer: u64, offset: u64 },
}

impl RequestBody {
    pub fn encode(&self) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        match self {
            RequestBody::Start { sv } => {
                out.write_u8(0);
                out.write_buf(sv);
            }
            RequestBody::Continue { transfer, offset } => {
                out.write_u8(1);
                out.write_var(*transfer);
                out.write_var(*offset);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let mut r = Cursor::new(bytes);
        let body = match r.read_u8().map_err(malformed("empty request body"))? {
            0 => {
                let sv = r.read_buf().map_err(malformed("truncated state vector"))?;
                decode_sv(sv).map_err(|_| SyncError::Malformed("bad state vector"))?;
                RequestBody::Start { sv: sv.to_vec() }
            }
            1 => RequestBody::Continue {
                transfer: r.read_var().map_err(malformed("truncated transfer id"))?,
                offset: r.read_var().map_err(malformed("truncated offset"))?,
            },
            _ => return Err(SyncError::Malformed("unknown request kind")),
        };
        if r.has_content() {
            return Err(SyncError::Malformed("trailing bytes after request body"));
        }
        Ok(body)
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

/// A `/peerdoc/sync/1` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// A sealed [`Chunk`].
    Chunk(Vec<u8>),
    /// The responder holds no document with that topic.
    UnknownDoc,
    /// The request did not open with the responder's key for that topic, or was malformed.
    BadRequest,
    /// The transfer named by a `Continue` is gone (expired or evicted): start again.
    TransferExpired,
}

impl SyncResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![WIRE_VERSION];
        match self {
            SyncResponse::Chunk(sealed) => {
                out.push(0);
                out.extend_from_slice(sealed);
            }
            SyncResponse::UnknownDoc => out.push(1),
            SyncResponse::BadRequest => out.push(2),
            SyncResponse::TransferExpired => out.push(3),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        match bytes {
            [] | [_] => Err(SyncError::Malformed("response too short")),
            [v, ..] if *v != WIRE_VERSION => Err(SyncError::Version(*v)),
            [_, 0, sealed @ ..] => Ok(SyncResponse::Chunk(sealed.to_vec())),
            [_, 1] => Ok(SyncResponse::UnknownDoc),
            [_, 2] => Ok(SyncResponse::BadRequest),
            [_, 3] => Ok(SyncResponse::TransferExpired),
            _ => Err(SyncError::Malformed("unknown response status")),
        }
    }
}

/// Plaintext of a `Chunk` response: bytes `offset..offset+data.len()` of a diff of `total` bytes
/// (a yrs v1 update), plus the responder's state vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub sv: Vec<u8>,
    /// 0 when the whole diff is in this one chunk.
    pub transfer: u64,
    pub total: u64,
    pub offset: u64,
    pub data: Vec<u8>,
}

impl Chunk {
    pub fn encode(&self) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(self.data.len() + self.sv.len() + 32);
        out.write_buf(&self.sv);
        out.write_var(self.transfer);
        out.write_var(self.total);
        out.write_var(self.offset);
        out.write_buf(&self.data);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let mut r = Cursor::new(bytes);
        let sv = r.read_buf().map_err(malformed("truncated state vector"))?;
        decode_sv(sv).map_err(|_| SyncError::Malformed("bad state vector"))?;
        let chunk = Chunk {
            sv: sv.to_vec(),
            transfer: r.read_var().map_err(malformed("truncated transfer id"))?,
            total: r.read_var().map_err(malformed("truncated total"))?,
            offset: r.read_var().map_err(malformed("truncated offset"))?,
            data: r.read_buf().map_err(malformed("truncated data"))?.to_vec(),
        };
        if r.has_content() {
            return Err(SyncError::Malformed("trailing bytes after chunk"));
        }
        Ok(chunk)
    }
}

// ---------------------------------------------------------------------------------------------
// Responder: transfers

/// Large diffs a responder is handing out chunk by chunk, bounded in age and total bytes.
#[derive(Default)]
pub struct Transfers {
    entries: HashMap<u64, Transfer>,
    bytes: usize,
}

struct Transfer {
    diff: Vec<u8>,
    sv: Vec<u8>,
    created: Instant,
}

impl Transfers {
    /// The first chunk answering a `Start`: the whole diff if it fits, else a new transfer.
    pub fn start(&mut self, diff: Vec<u8>, sv: Vec<u8>, chunk_size: usize) -> Chunk {
        if diff.len() <= chunk_size {
            return Chunk {
                sv,
                transfer: 0,
                total: diff.len() as u64,
                offset: 0,
                data: diff,
            };
        }
        self.expire(Instant::now());
        while self.bytes + diff.len() > TRANSFER_CACHE_BYTES && !self.entries.is_empty() {
            let oldest = *self
                .entries
                .iter()
                .min_by_key(|(_, t)| t.created)
                .map(|(id, _)| id)
                .expect("not empty");
            self.remove(oldest);
        }
        let id = loop {
            let id = rand::thread_rng().gen_range(1..u64::MAX);
            if !self.entries.contains_key(&id) {
                break id;
            }
        };
        self.bytes += diff.len();
        self.entries.insert(
            id,
            Transfer {
                diff,
                sv,
                created: Instant::now(),
            },
        );
        self.chunk(id, 0, chunk_size).expect("just inserted")
    }

    /// The chunk at `offset` of transfer `id`, or `None` if it is gone or `offset` is bad.
    /// The last chunk ends the transfer.
    pub fn chunk(&mut self, id: u64, offset: u64, chunk_size: usize) -> Option<Chunk> {
        let t = self.entries.get(&id)?;
        let start = usize::try_from(offset).ok().filter(|o| *o < t.diff.len())?;
        let end = (start + chunk_size).min(t.diff.len());
        let chunk = Chunk {
            sv: t.sv.clone(),
            transfer: id,
            total: t.diff.len() as u64,
            offset,
            data: t.diff[start..end].to_vec(),
        };
        if end == t.diff.len() {
            self.remove(id);
        }
        Some(chunk)
    }

    fn remove(&mut self, id: u64) {
        if let Some(t) = self.entries.remove(&id) {
            self.bytes -= t.diff.len();
        }
    }

    fn expire(&mut self, now: Instant) {
        let old: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, t)| now.duration_since(t.created) > TRANSFER_TTL)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Requester: one pull session

/// How often a pull restarts after the responder expired its transfer.
const MAX_PULL_RESTARTS: usize = 3;

/// The requester's side of one pull from one peer for one document: builds the sealed
/// requests, opens and checks the responses, reassembles the chunks.
pub struct Pull {
    key: DocKey,
    topic: [u8; 32],
    local_sv: Vec<u8>,
    restarts: usize,
    transfer: Option<u64>,
    total: u64,
    buf: Vec<u8>,
}

/// What to do after a chunk arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this request next.
    Next(RequestBody),
    /// The diff is complete: apply `update`; `remote_sv` is the responder's state vector.
    Done { update: Vec<u8>, remote_sv: Vec<u8> },
}

/// What to do after a response arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Send these request bytes next.
    Send(Vec<u8>),
    /// The diff is complete: apply `update`; `remote_sv` is the responder's state vector.
    Done { update: Vec<u8>, remote_sv: Vec<u8> },
}

impl Pull {
    /// Begins a pull of the document `topic` from a replica at `local_sv`; send the returned
    /// request bytes.
    pub fn start(key: DocKey, topic: [u8; 32], local_sv: Vec<u8>) -> (Pull, Vec<u8>) {
        let pull = Pull {
            key,
            topic,
            local_sv,
            restarts: 0,
            transfer: None,
            total: 0,
            buf: Vec::new(),
        };
        let request = pull.first_request();
        (pull, request)
    }

    fn first_request(&self) -> Vec<u8> {
        self.request(&RequestBody::Start {
            sv: self.local_sv.clone(),
        })
    }

    fn request(&self, body: &RequestBody) -> Vec<u8> {
        SyncRequest {
            topic: self.topic,
            sealed: self
                .key
                .seal(&self.topic, Purpose::SyncRequest, &body.encode()),
        }
        .encode()
    }

    /// Handles the response bytes to the last request.
    pub fn on_response(&mut self, bytes: &[u8]) -> Result<Progress, PullError> {
        let sealed = match SyncResponse::decode(bytes)? {
            SyncResponse::Chunk(sealed) => sealed,
            SyncResponse::UnknownDoc => return Err(PullError::UnknownDoc),
            SyncResponse::BadRequest => return Err(PullError::Refused),
            SyncResponse::TransferExpired if self.restarts < MAX_PULL_RESTARTS => {
                self.restarts += 1;
                self.transfer = None;
                self.total = 0;
                self.buf.clear();
                return Ok(Progress::Send(self.first_request()));
            }
            SyncResponse::TransferExpired => return Err(PullError::Expired),
        };
        let plain = self
            .key
            .open(&self.topic, Purpose::SyncResponse, &sealed)
            .map_err(SyncError::from)?;
        Ok(match self.on_chunk(Chunk::decode(&plain)?)? {
            Step::Next(body) => Progress::Send(self.request(&body)),
            Step::Done { update, remote_sv } => Progress::Done { update, remote_sv },
        })
    }

    pub fn on_chunk(&mut self, chunk: Chunk) -> Result<Step, SyncError> {
        if chunk.total > MAX_TRANSFER {
            return Err(SyncError::TooLarge(chunk.total));
        }
        match self.transfer {
            None => {
                if chunk.offset != 0 {
                    return Err(SyncError::BadTransfer("first chunk does not start at 0"));
                }
                self.transfer = Some(chunk.transfer);
                self.total = chunk.total;
            }
            Some(id) => {
                if chunk.transfer != id || chunk.total != self.total {
                    return Err(SyncError::BadTransfer("chunk from another transfer"));
                }
                if chunk.offset != self.buf.len() as u64 {
                    return Err(SyncError::BadTransfer("chunk at the wrong offset"));
                }
            }
        }
        let received = self.buf.len() as u64 + chunk.data.len() as u64;
        if received > self.total {
            return Err(SyncError::BadTransfer("more data than announced"));
        }
        if chunk.data.is_empty() && received < self.total {
            return Err(SyncError::BadTransfer("empty chunk before the end"));
        }
        if received < self.total && chunk.transfer == 0 {
            return Err(SyncError::BadTransfer("incomplete single-chunk transfer"));
        }
        self.buf.extend_from_slice(&chunk.data);
        if received == self.total {
            Ok(Step::Done {
                update: std::mem::take(&mut self.buf),
                remote_sv: chunk.sv,
            })
        } else {
            Ok(Step::Next(RequestBody::Continue {
                transfer: chunk.transfer,
                offset: received,
            }))
        }
    }
}

#[cfg(test)]
mod tests;
