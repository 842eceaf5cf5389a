//! [`Pull`]: the requester's side of one pull of one document from one peer. It builds the
//! sealed requests, opens and checks the responses, reassembles chunked transfers and restarts
//! expired ones. The node's pull tasks and the simulation drive the same state machine.

use super::{Chunk, PullError, RequestBody, SyncError, SyncRequest, SyncResponse, MAX_TRANSFER};
use crate::core::doc::Summary;
use crate::core::envelope::{Keyring, Purpose};

/// How often a pull restarts after the responder expired its transfer.
const MAX_PULL_RESTARTS: usize = 3;

/// The requester's side of one pull from one peer for one document: builds the sealed
/// requests, opens and checks the responses, reassembles the chunks.
pub struct Pull {
    key: Keyring,
    topic: [u8; 32],
    local: Summary,
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
    /// Begins a pull of the document `topic` from a replica in state `local`; send the
    /// returned request bytes.
    pub fn start(key: Keyring, topic: [u8; 32], local: Summary) -> (Pull, Vec<u8>) {
        let pull = Pull {
            key,
            topic,
            local,
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
            sv: self.local.sv.clone(),
            digest: self.local.digest,
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
            SyncResponse::Records(sealed) => {
                let roster = super::members::open_roster(&self.key, &self.topic, &sealed)?;
                return Err(PullError::RecordsOnly(Box::new(roster)));
            }
            SyncResponse::Members(_) => {
                return Err(SyncError::Malformed("a members response to a pull").into())
            }
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
mod tests {
    use super::*;
    use crate::core::doc::Document;
    use crate::core::sync::responder::{open_body, seal_chunk};

    impl Progress {
        /// Sealed requests differ in their random nonce: compare them by their opened body.
        fn map_sealed(self) -> (Option<RequestBody>, bool) {
            match self {
                Progress::Send(bytes) => {
                    let req = SyncRequest::decode(&bytes).unwrap();
                    (Some(open_body(&Keyring::test(3), &req).unwrap()), false)
                }
                Progress::Done { .. } => (None, true),
            }
        }
    }

    #[test]
    fn pull_rejects_inconsistent_transfers() {
        let sv = Document::new().state_vector();
        let chunk = |transfer, total, offset, data: &[u8]| Chunk {
            sv: sv.clone(),
            transfer,
            total,
            offset,
            data: data.to_vec(),
        };
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        assert!(
            p.on_chunk(chunk(1, 10, 3, b"abc")).is_err(),
            "must start at 0"
        );
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        assert_eq!(
            p.on_chunk(chunk(0, MAX_TRANSFER + 1, 0, b"")),
            Err(SyncError::TooLarge(MAX_TRANSFER + 1))
        );
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        assert!(
            p.on_chunk(chunk(0, 10, 0, b"abc")).is_err(),
            "single chunk must be whole"
        );
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        assert!(
            p.on_chunk(chunk(7, 6, 0, b"abcdefg")).is_err(),
            "more than announced"
        );
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        assert_eq!(
            p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap(),
            Step::Next(RequestBody::Continue {
                transfer: 7,
                offset: 3
            })
        );
        assert!(
            p.on_chunk(chunk(8, 6, 3, b"def")).is_err(),
            "other transfer"
        );
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap();
        assert!(p.on_chunk(chunk(7, 6, 2, b"def")).is_err(), "wrong offset");
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap();
        assert!(
            p.on_chunk(chunk(7, 6, 3, b"")).is_err(),
            "empty chunk stalls"
        );
        let (mut p, _) = Pull::start(Keyring::test(0), [0; 32], Document::new().summary());
        p.on_chunk(chunk(7, 6, 0, b"abc")).unwrap();
        assert!(matches!(
            p.on_chunk(chunk(7, 6, 3, b"def")).unwrap(),
            Step::Done { update, .. } if update == b"abcdef"
        ));
    }

    #[test]
    fn pull_responses_map_to_progress_or_errors() {
        let key = Keyring::test(3);
        let topic = [4; 32];
        let sv = Document::new().state_vector();
        let summary = Document::new().summary();
        let start = |_: &Vec<u8>| Pull::start(key.clone(), topic, summary.clone());

        // The first request is a sealed Start the responder can open.
        let (mut p, first) = start(&sv);
        let req = SyncRequest::decode(&first).unwrap();
        assert_eq!(
            open_body(&key, &req).unwrap(),
            RequestBody::Start {
                sv: sv.clone(),
                digest: summary.digest
            }
        );
        assert!(
            open_body(&Keyring::test(9), &req).is_err(),
            "another key cannot open it"
        );

        // Expired transfers restart from scratch a few times, then give up.
        for _ in 0..3 {
            assert_eq!(
                p.on_response(&SyncResponse::TransferExpired.encode())
                    .unwrap()
                    .map_sealed(),
                (
                    Some(RequestBody::Start {
                        sv: sv.clone(),
                        digest: summary.digest
                    }),
                    false
                )
            );
        }
        assert_eq!(
            p.on_response(&SyncResponse::TransferExpired.encode()),
            Err(PullError::Expired)
        );
        let (mut p, _) = start(&sv);
        assert_eq!(
            p.on_response(&SyncResponse::UnknownDoc.encode()),
            Err(PullError::UnknownDoc)
        );
        assert_eq!(
            p.on_response(&SyncResponse::BadRequest.encode()),
            Err(PullError::Refused)
        );

        // A chunk sealed with another key is refused; a good one completes the pull.
        let chunk = Chunk {
            sv: sv.clone(),
            transfer: 0,
            total: 3,
            offset: 0,
            data: b"abc".to_vec(),
        };
        let wrong = seal_chunk(&Keyring::test(9), &topic, Some(chunk.clone())).encode();
        assert!(matches!(
            p.on_response(&wrong),
            Err(PullError::Sync(SyncError::Sealed(_)))
        ));
        let right = seal_chunk(&key, &topic, Some(chunk)).encode();
        assert_eq!(
            p.on_response(&right).unwrap(),
            Progress::Done {
                update: b"abc".to_vec(),
                remote_sv: sv
            }
        );
    }
}
