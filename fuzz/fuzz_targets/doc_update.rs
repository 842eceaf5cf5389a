//! Applying untrusted yrs updates and state vectors to a document with content, and reading
//! versions from untrusted snapshots (a writer records them in the document).
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::doc::history::decode_snapshot;
use peerdoc::core::doc::Document;

// peerdoc catches panics of the CRDT library (`catch_unwind`): let them unwind as in the node,
// instead of libfuzzer-sys's hook that aborts first. An uncaught panic still aborts (a crash).
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    let mut doc = Document::new();
    doc.append_text("fuzz");
    doc.record_version("v1", 1, None, None);
    doc.append_text(" more");
    let _ = doc.apply(data);
    let _ = doc.diff(data);
    let _ = doc.is_behind(data);
    let _ = doc.text();
    // Versions in the document (the update may have added entries of its own).
    let versions = doc.versions();
    for version in &versions {
        let _ = doc.changes(None, &version.snapshot);
    }
    if let Ok(snapshot) = decode_snapshot(data) {
        if let Ok(mut at) = doc.at(&snapshot) {
            let _ = at.spans(versions.first().map(|v| &v.snapshot), &snapshot);
            let _ = at.text();
        }
        let _ = doc.changes(versions.first().map(|v| &v.snapshot), &snapshot);
    }
});
