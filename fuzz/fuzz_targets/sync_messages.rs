//! Every decoder of bytes that arrive from peers in the sync layer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::sync::{Chunk, Pull, RequestBody, SyncRequest, SyncResponse, YMessage};

fuzz_target!(|data: &[u8]| {
    let _ = YMessage::decode(data);
    let _ = YMessage::decode_all(data);
    let _ = SyncRequest::decode(data);
    let _ = RequestBody::decode(data);
    let _ = SyncResponse::decode(data);
    if let Ok(chunk) = Chunk::decode(data) {
        let (mut pull, _) = Pull::start(vec![0]);
        let _ = pull.on_chunk(chunk);
    }
});
