//! Opening sealed payloads: never panics, never opens without the key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::envelope::{DocKey, Purpose};

// peerdoc catches panics of the CRDT library (`catch_unwind`): let them unwind as in the node,
// instead of libfuzzer-sys's hook that aborts first. An uncaught panic still aborts (a crash).
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    let key = DocKey([7; 32]);
    for purpose in [Purpose::Gossip, Purpose::SyncRequest, Purpose::SyncResponse] {
        // Without the sealing key nothing may open: a success here is a forgery.
        assert!(key.open(&[1; 32], purpose, data).is_err());
    }
});
