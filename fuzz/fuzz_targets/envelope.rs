//! Opening sealed payloads: never panics, never opens without the key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::envelope::{envelope_epoch, DocKey, Keyring, Purpose};

// peerdoc catches panics of the CRDT library (`catch_unwind`): let them unwind as in the node,
// instead of libfuzzer-sys's hook that aborts first. An uncaught panic still aborts (a crash).
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    let mut ring = Keyring::new(0, DocKey([7; 32]));
    ring.insert(1, DocKey([8; 32]));
    let _ = envelope_epoch(data);
    for purpose in [Purpose::Gossip, Purpose::SyncRequest, Purpose::SyncResponse] {
        // Without the sealing key nothing may open: a success here is a forgery.
        assert!(ring.open(&[1; 32], purpose, data).is_err());
    }
});
