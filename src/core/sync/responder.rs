//! [`Responder`]: the answering side of `/peerdoc/sync/1`. It opens a request with the key of
//! the document its topic names, answers a `Start` with the first chunk of the diff the
//! requester lacks (and says whether the requester has operations we lack, so we pull them
//! back), and answers a `Continue` from its [`Transfers`]. The node's sync driver and the
//! simulation call the same three steps; only computing the diff differs (a room task vs a local
//! `Document`).

use std::time::Instant;

use rand::Rng;

use super::{Chunk, RequestBody, SyncError, SyncRequest, SyncResponse, Transfers, CHUNK_SIZE};
use crate::core::doc::sv_has_unseen;
use crate::core::envelope::{envelope_epoch, EnvelopeError, Keyring, Purpose};

/// Why a request gets no document data.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a sync request at all.
    #[error("not a sync request: {0}")]
    Malformed(SyncError),
    /// We hold no document with that topic.
    #[error("no document with that topic here")]
    UnknownDoc,
    /// The body does not open with our key for that topic, or does not decode inside.
    #[error("request for a document we hold does not open with its key: {0}")]
    WrongKey(SyncError),
    /// Sealed with a key epoch this node does not have yet (the requester is ahead).
    #[error("request is sealed with the key of epoch {0}, which this node does not have yet")]
    UnknownEpoch(u32),
}

impl Refusal {
    /// The response that tells the requester. A request for a topic we hold that does not open
    /// is answered exactly as one for a topic we do not hold: a stranger learns nothing of what
    /// this node keeps.
    pub fn response(&self) -> SyncResponse {
        match self {
            Refusal::Malformed(_) => SyncResponse::BadRequest,
            Refusal::UnknownDoc | Refusal::WrongKey(_) | Refusal::UnknownEpoch(_) => {
                SyncResponse::UnknownDoc
            }
        }
    }

    /// A label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::UnknownDoc => "unknown_doc",
            Refusal::WrongKey(_) => "wrong_key",
            Refusal::UnknownEpoch(_) => "unknown_epoch",
        }
    }
}

/// A request whose body opened with the key of the document its topic names.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub topic: [u8; 32],
    pub body: RequestBody,
    /// The key epoch the request was sealed in: answers are sealed in it too (the requester
    /// may not have a newer key yet).
    pub epoch: u32,
}

/// The answer to a `Start`.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub response: SyncResponse,
    /// The requester's state vector shows operations we lack: pull from it.
    pub requester_ahead: bool,
}

/// The responder's state: the transfers it is handing out.
pub struct Responder {
    transfers: Transfers,
    /// Document bytes per chunk: [`CHUNK_SIZE`] on the wire.
    chunk_size: usize,
}

impl Default for Responder {
    fn default() -> Responder {
        Responder::with_chunk_size(CHUNK_SIZE)
    }
}

impl Responder {
    /// A responder that cuts diffs into chunks of `chunk_size` bytes (the simulation uses
    /// small ones, so that its documents take the chunked path).
    pub fn with_chunk_size(chunk_size: usize) -> Responder {
        Responder {
            transfers: Transfers::default(),
            chunk_size,
        }
    }

    /// Decodes a request and opens its body with the key `key_of` returns for its topic.
    pub fn open(
        bytes: &[u8],
        key_of: impl FnOnce(&[u8; 32]) -> Option<Keyring>,
    ) -> Result<Opened, Refusal> {
        let request = SyncRequest::decode(bytes).map_err(Refusal::Malformed)?;
        let key = key_of(&request.topic).ok_or(Refusal::UnknownDoc)?;
        let body = open_body(&key, &request).map_err(|e| match e {
            SyncError::Sealed(EnvelopeError::UnknownEpoch(epoch)) => Refusal::UnknownEpoch(epoch),
            e => Refusal::WrongKey(e),
        })?;
        Ok(Opened {
            topic: request.topic,
            body,
            epoch: envelope_epoch(&request.sealed).unwrap_or(0),
        })
    }

    /// Answers a `Start` from a requester at `requester_sv`, given the diff it lacks and our
    /// state vector, taken together.
    #[allow(clippy::too_many_arguments)]
    pub fn answer_start(
        &mut self,
        key: &Keyring,
        topic: &[u8; 32],
        diff: Vec<u8>,
        local_sv: Vec<u8>,
        requester_sv: &[u8],
        now: Instant,
        rng: &mut impl Rng,
    ) -> Answer {
        // Both vectors were decoded before (the request body, our own document): an error here
        // cannot happen, and "not ahead" is the safe answer if it did.
        let requester_ahead = sv_has_unseen(&local_sv, requester_sv).unwrap_or(false);
        let chunk = self
            .transfers
            .start(diff, local_sv, self.chunk_size, now, rng);
        Answer {
            response: seal_chunk(key, topic, Some(chunk)),
            requester_ahead,
        }
    }

    /// Answers a `Continue`: the next chunk, or `TransferExpired` if the transfer is gone.
    pub fn answer_continue(
        &mut self,
        key: &Keyring,
        topic: &[u8; 32],
        transfer: u64,
        offset: u64,
        now: Instant,
    ) -> SyncResponse {
        let chunk = self.transfers.chunk(transfer, offset, self.chunk_size, now);
        seal_chunk(key, topic, chunk)
    }

    /// Transfers in progress.
    pub fn transfers(&self) -> usize {
        self.transfers.len()
    }
}

/// The body of a request, opened with the document key.
pub fn open_body(key: &Keyring, request: &SyncRequest) -> Result<RequestBody, SyncError> {
    let plain = key.open(&request.topic, Purpose::SyncRequest, &request.sealed)?;
    RequestBody::decode(&plain)
}

/// A chunk as a sealed response, or `TransferExpired` when there is none.
pub fn seal_chunk(key: &Keyring, topic: &[u8; 32], chunk: Option<Chunk>) -> SyncResponse {
    match chunk {
        Some(chunk) => SyncResponse::Chunk(key.seal(topic, Purpose::SyncResponse, &chunk.encode())),
        None => SyncResponse::TransferExpired,
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::core::doc::Document;
    use crate::core::sync::Pull;

    #[test]
    fn requests_are_refused_for_garbage_unknown_docs_and_wrong_keys() {
        let key = Keyring::test(1);
        let (_, request) = Pull::start(key.clone(), [2; 32], Document::new().summary());
        assert!(matches!(
            Responder::open(&[9, 9], |_| Some(key.clone())),
            Err(Refusal::Malformed(_))
        ));
        let unknown = Responder::open(&request, |_| None).unwrap_err();
        assert_eq!(unknown.response(), SyncResponse::UnknownDoc);
        let wrong = Responder::open(&request, |_| Some(Keyring::test(7))).unwrap_err();
        assert!(matches!(wrong, Refusal::WrongKey(SyncError::Sealed(_))));
        assert_eq!(
            wrong.response(),
            unknown.response(),
            "a held topic that does not open looks like an unknown one"
        );
        let opened = Responder::open(&request, |topic| {
            assert_eq!(
                topic, &[2; 32],
                "the key is looked up by the request's topic"
            );
            Some(key.clone())
        })
        .unwrap();
        assert!(matches!(opened.body, RequestBody::Start { .. }));
    }

    #[test]
    fn a_start_says_when_the_requester_is_ahead() {
        let mut rng = StdRng::seed_from_u64(3);
        let key = Keyring::test(1);
        let mut ours = Document::new();
        ours.append_text("ours");
        let mut theirs = Document::new();
        let mut responder = Responder::default();
        let mut answer = |requester: &Document| {
            let diff = ours.diff(&requester.state_vector()).unwrap();
            responder.answer_start(
                &key,
                &[0; 32],
                diff,
                ours.state_vector(),
                &requester.state_vector(),
                Instant::now(),
                &mut rng,
            )
        };
        assert!(!answer(&theirs).requester_ahead, "an empty requester");
        theirs.append_text("theirs");
        let answer = answer(&theirs);
        assert!(answer.requester_ahead, "the requester has edits we lack");
        assert!(matches!(answer.response, SyncResponse::Chunk(_)));
    }
}
