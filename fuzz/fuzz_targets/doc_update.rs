//! Applying untrusted yrs updates and state vectors to a document with content.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::doc::Document;

fuzz_target!(|data: &[u8]| {
    let mut doc = Document::new();
    doc.append_text("fuzz");
    let _ = doc.apply(data);
    let _ = doc.diff(data);
    let _ = doc.is_behind(data);
    let _ = doc.text();
});
