//! Every decoder of bytes that arrive from peers in the sync layer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::envelope::DocKey;
use peerdoc::sync::{Chunk, Pull, RequestBody, SyncRequest, SyncResponse, YMessage};

fuzz_target!(|data: &[u8]| {
    let _ = YMessage::decode(data);
    let _ = YMessage::decode_all(data);
    let _ = SyncRequest::decode(data);
    let _ = RequestBody::decode(data);
    let _ = SyncResponse::decode(data);
    let (mut pull, _) = Pull::start(DocKey([1; 32]), [2; 32], vec![0]);
    if let Ok(chunk) = Chunk::decode(data) {
        let _ = pull.on_chunk(chunk);
    }
    let _ = pull.on_response(data);
});
