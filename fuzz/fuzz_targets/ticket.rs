//! Ticket decoding: any string, and any body with a valid checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::ticket::Ticket;

// peerdoc catches panics of the CRDT library (`catch_unwind`): let them unwind as in the node,
// instead of libfuzzer-sys's hook that aborts first. An uncaught panic still aborts (a crash).
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Ticket::decode(s);
    }
    let mut body = data.to_vec();
    body.extend_from_slice(&blake3::hash(data).as_bytes()[..4]);
    let _ = Ticket::decode(&format!("peerdoc1{}", bs58::encode(body).into_string()));
});
