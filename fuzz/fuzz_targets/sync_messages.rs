//! Every decoder of bytes that arrive from peers in the sync layer. Inputs are also sealed with
//! a known key, so the fuzzer reaches the decoders behind the envelope (what a key holder gone
//! bad could send).
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::doc::Document;
use peerdoc::core::envelope::{DocKey, Keyring, Purpose};
use peerdoc::core::sync::{gossip, members};
use peerdoc::core::sync::{
    Chunk, Pull, RequestBody, Responder, SyncRequest, SyncResponse, YMessage,
};

// peerdoc catches panics of the CRDT library (`catch_unwind`): let them unwind as in the node,
// instead of libfuzzer-sys's hook that aborts first. An uncaught panic still aborts (a crash).
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    let key = Keyring::from(DocKey([1; 32]));
    let topic = [2; 32];
    let _ = YMessage::decode(data);
    let _ = YMessage::decode_all(data);
    let _ = peerdoc::core::sync::decode_awareness(data);
    let _ = SyncRequest::decode(data);
    let _ = RequestBody::decode(data);
    let _ = SyncResponse::decode(data);
    let (mut pull, _) = Pull::start(key.clone(), topic, Document::new().summary());
    if let Ok(chunk) = Chunk::decode(data) {
        let _ = pull.on_chunk(chunk);
    }
    let _ = pull.on_response(data);
    let _ = gossip::verify(&topic, data);
    let _ = gossip::open(&key, &topic, data);
    let _ = gossip::open(&key, &topic, &key.seal(&topic, Purpose::Gossip, data));
    let _ = Responder::open(data, |_| Some(key.clone()));
    let _ = members::open_response(&key, &topic, data);
    let sealed_members = [&[1, 4][..], &key.seal(&topic, Purpose::Members, data)].concat();
    let _ = peerdoc::core::access::KeyGrant::decode(data);
    let _ = members::open_response(&key, &topic, &sealed_members);
    // The same roster as a `Records` answer (a requester that is not served).
    let sealed_records = [&[1, 5][..], &key.seal(&topic, Purpose::Members, data)].concat();
    let _ = members::open_response(&key, &topic, &sealed_records);
    let request = SyncRequest {
        topic,
        sealed: key.seal(&topic, Purpose::SyncRequest, data),
    };
    let _ = Responder::open(&request.encode(), |_| Some(key.clone()));
});
