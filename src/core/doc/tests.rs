//! Document tests: ids and topics, applying and refusing updates, text edits, digests.

use super::text_diff::{TextEdit, CHAR_DIFF_MAX};
use super::*;
use proptest::prelude::*;

#[test]
fn doc_id_round_trips_and_rejects_junk() {
    let id = DocId::random();
    assert_eq!(DocId::parse(&id.to_string()).unwrap(), id);
    assert!(DocId::parse("xyz").is_err());
    assert!(DocId::parse("abcd").is_err());
    assert_ne!(id.topic(), DocId::random().topic());
    assert!(id.topic_name().starts_with("pd1/"));
    assert_eq!(id.topic_name().len(), 47);
    assert_eq!(parse_topic_name(&id.topic_name()), Some(id.topic()));
    assert_eq!(parse_topic_name("pd1/zz"), None);
    assert_eq!(parse_topic_name(&format!("pd1/{}", "A".repeat(44))), None);
    assert_eq!(
        parse_topic_name(&format!("peerdoc/1/{}", hex::encode(id.topic()))),
        None
    );
    assert_eq!(parse_topic_name("other"), None);
    assert!(!id.topic_name().contains(&id.to_string()));
}

#[test]
fn replace_is_a_minimal_diff_that_keeps_concurrent_edits() {
    let mut a = Document::new();
    let base = a.replace_text("alpha\nbeta\ngamma\ndelta\n").unwrap();
    let mut b = Document::new();
    b.apply(&base).unwrap();
    // a rewrites lines 1 and 4; b concurrently edits line 3.
    let ua = a.replace_text("ALPHA\nbeta\ngamma\nDELTA\n").unwrap();
    let ub = b.replace_text("alpha\nbeta\ngamma ray\ndelta\n").unwrap();
    a.apply(&ub).unwrap();
    b.apply(&ua).unwrap();
    assert_eq!(a.text(), "ALPHA\nbeta\ngamma ray\nDELTA\n");
    assert_eq!(a.text(), b.text());
}

#[test]
fn edits_skip_the_common_ends_and_large_rewrites_diff_by_line() {
    // Multi-byte characters at the edges of the common prefix and suffix.
    let edits = text_edits("héllo wörld", "héllo brave wörld");
    assert_eq!(
        edits,
        vec![TextEdit {
            at: 6,
            delete: 0,
            insert: "brave ".into()
        }]
    );
    assert!(text_edits("same ✓", "same ✓").is_empty());
    // Past CHAR_DIFF_MAX the middle is diffed by line: a changed line is replaced whole, the
    // lines around it are untouched, and the result is the target.
    let old: String = (0..60_000).map(|i| format!("line {i:06}\n")).collect();
    let new = old.replace("line 030000\n", "line 03000X\n") + "tail\n";
    let new = new.replacen("line 000001\n", "", 1);
    assert!(old.len() + new.len() > CHAR_DIFF_MAX);
    let edits = text_edits(&old, &new);
    assert!(edits.len() <= 3, "{}", edits.len());
    assert!(edits.iter().all(|e| e.insert.len() < 20), "{edits:?}");
    // Line mode: the line with one changed character is replaced whole (12 UTF-16 units).
    assert!(
        edits
            .iter()
            .any(|e| e.delete == 12 && e.insert == "line 03000X\n"),
        "{edits:?}"
    );
    let mut d = Document::new();
    d.replace_text(&old);
    d.replace_text(&new);
    assert!(d.text() == new);
}

#[test]
fn splice_counts_utf16_and_clamps() {
    let mut a = Document::new();
    a.splice(0, 0, "h\u{1F600}llo").unwrap();
    // The emoji is two UTF-16 code units: offset 3 is after it.
    a.splice(3, 1, "e").unwrap();
    assert_eq!(a.text(), "h\u{1F600}elo");
    a.splice(99, 5, "!").unwrap();
    assert_eq!(a.text(), "h\u{1F600}elo!");
    assert!(a.splice(7, 0, "").is_none(), "nothing to do");
    let mut b = Document::new();
    b.apply(&a.encode_state()).unwrap();
    assert_eq!(b.text(), a.text());
}

#[test]
fn apply_reports_only_real_changes() {
    let mut a = Document::new();
    let u = a.append_text("hi").unwrap();
    let mut b = Document::new();
    assert!(b.apply(&u).unwrap().delta.is_some());
    assert!(b.apply(&u).unwrap().delta.is_none(), "duplicate is a no-op");
    assert!(b.apply(b"\xff\xff\xff garbage").is_err());
    assert_eq!(b.text(), "hi");
}

#[test]
fn state_vector_allocation_bombs_are_refused() {
    // Inputs found by cargo fuzz: tiny, but claiming tens of millions of entries.
    for bomb in [&[0x85, 0x87, 0xff, 0x23][..], &[138, 205, 185, 49][..]] {
        assert!(matches!(decode_sv(bomb), Err(DocError::BadStateVector(_))));
    }
    let mut doc = Document::new();
    assert!(matches!(
        doc.apply(&[156, 130, 217, 56]),
        Err(DocError::BadUpdate(_))
    ));
    let d = Document::new();
    assert!(decode_sv(&d.state_vector()).is_ok());
}

/// An update found by cargo fuzz on which yrs 0.28.1 panics (store.rs, `unwrap` on `None`).
pub(crate) const PANICKING_UPDATE: &[u8] = &[
    1, 2, 0, 255, 255, 255, 255, 255, 255, 9, 0, 5, 0, 127, 0, 96, 32, 0, 127, 0, 64, 32, 0, 63, 0,
    0, 93, 0, 0, 9,
];

#[test]
fn a_panic_inside_yrs_is_an_error_not_a_crash() {
    let mut d = Document::new();
    d.append_text("keep");
    let result = d.apply(PANICKING_UPDATE);
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn diff_brings_a_replica_up_to_date_including_deletes() {
    let mut a = Document::new();
    a.replace_text("hello brave new world");
    let mut b = Document::new();
    b.apply(&a.diff(&b.state_vector()).unwrap()).unwrap();
    a.replace_text("hello world");
    assert!(
        !b.is_behind(&a.state_vector()).unwrap(),
        "deletes do not move the sv"
    );
    b.apply(&a.diff(&b.state_vector()).unwrap()).unwrap();
    assert_eq!(b.text(), "hello world");
}

/// `replace_text` applies its diff in one pass (a delta). Edit by edit, as it once did, gives
/// the same items (created in another order), so the same text, and the same merge with a
/// concurrent edit.
fn replace_edit_by_edit(d: &mut Document, new: &str) -> Option<Vec<u8>> {
    let edits = text_edits(&d.text(), new);
    let mut txn = d.doc.transact_mut();
    for edit in edits.iter().rev() {
        if edit.delete > 0 {
            d.text.remove_range(&mut txn, edit.at, edit.delete);
        }
        if !edit.insert.is_empty() {
            d.text.insert(&mut txn, edit.at, &edit.insert);
        }
    }
    txn.has_changes().then(|| txn.encode_update_v1())
}

proptest! {
    #[test]
    fn replace_text_reaches_any_target(old in "\\PC{0,40}", new in "\\PC{0,40}") {
        let mut d = Document::new();
        d.replace_text(&old);
        d.replace_text(&new);
        prop_assert_eq!(d.text(), new);
    }

    #[test]
    fn replace_text_in_one_pass_merges_as_edit_by_edit(
        texts in proptest::collection::vec("[abc\\n]{0,30}|\\PC{0,30}", 3..6),
    ) {
        let n = texts.len();
        let (mut one_pass, mut by_edit) = (Document::with_client_id(7), Document::with_client_id(7));
        let mut theirs = Document::with_client_id(9);
        for text in &texts[..n - 2] {
            one_pass.replace_text(text);
            by_edit.replace_text(text);
        }
        theirs.apply(&one_pass.diff(&theirs.state_vector()).unwrap()).unwrap();
        let concurrent = theirs.replace_text(&texts[n - 1]);
        let (a, b) = (one_pass.replace_text(&texts[n - 2]), replace_edit_by_edit(&mut by_edit, &texts[n - 2]));
        prop_assert_eq!(a.as_ref().map(Vec::len), b.as_ref().map(Vec::len));
        prop_assert_eq!(one_pass.text(), texts[n - 2].clone());
        if let Some(update) = concurrent {
            one_pass.apply(&update).unwrap();
            by_edit.apply(&update).unwrap();
        }
        prop_assert_eq!(one_pass.text(), by_edit.text());
    }

    #[test]
    fn apply_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut d = Document::new();
        d.append_text("keep");
        let _ = d.apply(&bytes);
        let _ = d.diff(&bytes);
        let _ = d.is_behind(&bytes);
        // Random bytes are (practically) never a valid update touching our client's items.
        prop_assert!(d.text().contains("keep"));
    }
}

#[test]
fn network_input_is_applied_only_when_what_it_builds_on_is_here() {
    let mut author = Document::with_client_id(7);
    let edits: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            let at = if i % 2 == 0 { 0 } else { author.text().len() };
            author.insert(at, &format!("<{i}>")).unwrap()
        })
        .collect();
    // yrs parks updates with missing predecessors; a second parked one makes it integrate
    // both across the hole, leaving a skip in the state (the reason for `apply_complete`).
    let mut parked = Document::with_client_id(8);
    for i in [0, 2, 4] {
        parked.apply(&edits[i]).unwrap();
    }
    assert_eq!(
        parked.text(),
        "<4><2><0>",
        "yrs 0.28 integrated across the hole"
    );
    // Checked, nothing past a hole is applied; the caller pulls instead.
    let mut checked = Document::with_client_id(9);
    assert!(checked.apply_complete(&edits[0]).unwrap().delta.is_some());
    for i in [2, 4] {
        let applied = checked.apply_complete(&edits[i]).unwrap();
        assert!(applied.incomplete && applied.delta.is_none(), "edit {i}");
    }
    assert_eq!(checked.text(), "<0>");
    // A diff from a complete replica fills the hole.
    checked
        .apply_complete(&author.diff(&checked.state_vector()).unwrap())
        .unwrap();
    assert_eq!(checked.text(), author.text());
    // An update that refers to another client's operation this replica lacks waits too.
    let mut other = Document::with_client_id(10);
    other.apply(&author.encode_state()).unwrap();
    let reply = other.append_text("!").unwrap();
    let mut behind = Document::with_client_id(11);
    behind.apply_complete(&edits[0]).unwrap();
    assert!(behind.apply_complete(&reply).unwrap().incomplete);
    assert_eq!(behind.text(), "<0>");
}

/// Elements nested `depth` deep in TipTap's fragment, written by Yjs client `client`.
fn nested_elements(client: u64, depth: usize) -> Vec<u8> {
    use yrs::{XmlElementPrelim, XmlFragment};
    let doc = Doc::with_client_id(client);
    let frag = doc.get_or_insert_xml_fragment("default");
    {
        let mut txn = doc.transact_mut();
        let mut el = frag.insert(&mut txn, 0, XmlElementPrelim::empty("blockquote"));
        for _ in 1..depth {
            el = el.insert(&mut txn, 0, XmlElementPrelim::empty("blockquote"));
        }
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    update
}

#[test]
fn types_nested_too_deep_are_refused_before_yrs_sees_them() {
    // Taken, these would abort the process at the deletion below (yrs deletes nested types
    // recursively: a stack overflow, which no `catch_unwind` stops).
    let mut doc = Document::new();
    let err = doc.apply(&nested_elements(9, 20_000)).unwrap_err();
    assert!(
        matches!(&err, DocError::BadUpdate(m) if m.contains("nest")),
        "{err}"
    );
    // The writer's next update deletes the outermost element (client 9, clock 0): a delete
    // set alone, which finds nothing here.
    let delete = [0, 1, 9, 1, 0, 1];
    let top_level = |doc: &Document| {
        use yrs::XmlFragment;
        doc.rich.len(&doc.doc.transact())
    };
    doc.apply(&delete).unwrap();
    assert_eq!(top_level(&doc), 0);
    // Nesting within the bound is taken, and deleted like anything else.
    doc.apply(&nested_elements(10, 60)).unwrap();
    assert_eq!(top_level(&doc), 1);
    doc.apply(&[0, 1, 10, 1, 0, 1]).unwrap();
    assert_eq!(top_level(&doc), 0);
}
