//! Markdown for rich documents (what `write` and the API take): any text parses without a
//! panic or unbounded recursion, renders, and a document holds exactly what it parsed to.
//! (Stability after one pass is asserted by the corpus and property tests; this target still
//! finds rare inputs that need a second pass, e.g. a code span next to backslashes: see
//! `core::doc::rich::markdown`.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::doc::rich::markdown::{parse, render};
use peerdoc::core::doc::Document;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let blocks = parse(text);
    let once = render(&blocks);
    let _ = render(&parse(&once));
    let mut doc = Document::new();
    doc.make_rich();
    doc.replace_markdown(text);
    assert_eq!(doc.blocks(), blocks, "the document holds what was parsed");
    assert_eq!(doc.markdown(), once);
});
