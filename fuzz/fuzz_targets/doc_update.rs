//! Applying untrusted yrs updates and state vectors to a document with content.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::doc::Document;

// peerdoc catches panics of the CRDT library (`catch_unwind`): let them unwind as in the node,
// instead of libfuzzer-sys's hook that aborts first. An uncaught panic still aborts (a crash).
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    let mut doc = Document::new();
    doc.append_text("fuzz");
    let _ = doc.apply(data);
    let _ = doc.diff(data);
    let _ = doc.is_behind(data);
    let _ = doc.text();
});
