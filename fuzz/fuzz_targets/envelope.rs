//! Opening sealed payloads: never panics, never opens without the key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::envelope::{DocKey, Purpose};

fuzz_target!(|data: &[u8]| {
    let key = DocKey([7; 32]);
    for purpose in [Purpose::Gossip, Purpose::SyncRequest, Purpose::SyncResponse] {
        // Without the sealing key nothing may open: a success here is a forgery.
        assert!(key.open(&[1; 32], purpose, data).is_err());
    }
});
