//! Versions: recorded in the document and listed the same on every replica, rebuilt exactly,
//! attributed to the clients that wrote, restored by a forward change; the version timer.

use std::time::{Duration, Instant};

use super::*;

fn synced(a: &mut Document, b: &mut Document) {
    let to_b = a.diff(&b.state_vector()).unwrap();
    let to_a = b.diff(&a.state_vector()).unwrap();
    b.apply(&to_b).unwrap();
    a.apply(&to_a).unwrap();
}

#[test]
fn a_version_made_on_one_replica_is_listed_and_rebuilt_on_another() {
    let mut a = Document::with_client_id(1);
    let mut b = Document::with_client_id(2);
    a.replace_text("hello world");
    a.record_version("v1", 1000, Some("first draft"), None);
    a.replace_text("hello there, world");
    synced(&mut a, &mut b);
    b.replace_text("goodbye");
    b.record_version("v2", 2000, None, None);
    synced(&mut a, &mut b);

    let listed = b.versions();
    assert_eq!(listed, a.versions());
    let ids: Vec<&str> = listed.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["v1", "v2"]);
    assert_eq!(listed[0].name.as_deref(), Some("first draft"));
    // Deleted text is kept, so the old version is rebuilt exactly on either replica.
    assert_eq!(b.at(&listed[0].snapshot).unwrap().text(), "hello world");
    assert_eq!(a.at(&listed[1].snapshot).unwrap().text(), "goodbye");
    // A name given later wins, everywhere.
    a.name_version("v2", "short");
    synced(&mut a, &mut b);
    assert_eq!(b.versions()[1].name.as_deref(), Some("short"));
}

#[test]
fn changes_count_characters_and_name_the_clients_that_inserted() {
    let mut a = Document::with_client_id(1);
    let mut b = Document::with_client_id(2);
    a.replace_text("abc");
    a.record_version("v1", 1, None, None);
    synced(&mut a, &mut b);
    b.replace_text("abXYZ");
    synced(&mut a, &mut b);
    a.record_version("v2", 2, None, None);
    let v = a.versions();
    let first = a.changes(None, &v[0].snapshot).unwrap();
    assert_eq!((first.inserted, first.deleted), (3, 0));
    assert_eq!(first.clients.iter().copied().collect::<Vec<_>>(), [1]);
    let second = a.changes(Some(&v[0].snapshot), &v[1].snapshot).unwrap();
    assert_eq!((second.inserted, second.deleted), (3, 1));
    // B inserted; A's recording of v1 in between is no text and makes no author.
    assert_eq!(second.clients.iter().copied().collect::<Vec<_>>(), [2]);
    let mut at = a.at(&v[1].snapshot).unwrap();
    let spans = at.spans(Some(&v[0].snapshot), &v[1].snapshot);
    assert!(spans.contains(&Span::Deleted("c".into(), 1)), "{spans:?}");
    assert!(
        spans.contains(&Span::Inserted("XYZ".into(), 2)),
        "{spans:?}"
    );
}

#[test]
fn a_rich_version_is_restored_by_a_forward_change_that_keeps_history() {
    let mut a = Document::with_client_id(1);
    let mut b = Document::with_client_id(2);
    a.make_rich();
    a.replace_markdown("# Plan\n\nFirst **bold** idea.\n\n- one\n- two\n");
    a.record_version("v1", 1, None, None);
    a.replace_markdown("# Plan\n\nSecond idea.\n");
    synced(&mut a, &mut b);
    let v1 = b.versions()[0].clone();
    let old = b.at(&v1.snapshot).unwrap();
    assert_eq!(
        old.markdown(),
        "# Plan\n\nFirst **bold** idea.\n\n- one\n- two\n"
    );
    let update = b.restore(&old).expect("the restore changes something");
    b.record_version("v2", 2, None, Some("v1"));
    a.apply(&update).unwrap();
    synced(&mut a, &mut b);
    assert_eq!(a.markdown(), old.markdown());
    // Nothing is rewritten: the version before the restore is still there to read.
    let listed = a.versions();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].restored_from.as_deref(), Some("v1"));
    let changes = a.changes(Some(&v1.snapshot), &listed[1].snapshot).unwrap();
    assert_eq!(changes.clients.iter().copied().collect::<Vec<_>>(), [2]);
    // The unchanged heading was not rewritten: only the blocks that differ.
    assert!(b.restore(&old).is_none(), "restoring twice changes nothing");
}

#[test]
fn a_replica_that_lacks_a_versions_edits_says_so() {
    let mut a = Document::with_client_id(1);
    let mut b = Document::with_client_id(2);
    a.replace_text("x");
    let update = a.record_version("v1", 1, None, None);
    // B syncs in full and rebuilds it; C got the entry alone (it builds on nothing) and not
    // the text it names: it lists the version but cannot rebuild it yet, and says why.
    b.apply(&a.diff(&b.state_vector()).unwrap()).unwrap();
    assert_eq!(b.at(&b.versions()[0].snapshot).unwrap().text(), "x");
    let mut c = Document::with_client_id(3);
    c.apply(&update).unwrap();
    let listed = c.versions();
    assert_eq!(listed.len(), 1);
    assert!(matches!(
        c.at(&listed[0].snapshot),
        Err(DocError::VersionAhead)
    ));
}

#[test]
fn entries_that_are_no_versions_are_left_out() {
    let mut a = Document::with_client_id(1);
    let array = a.versions_array();
    {
        let mut txn = a.doc.transact_mut();
        array.push_back(&mut txn, Any::from("junk"));
        let mut entry: HashMap<String, Any> = HashMap::new();
        entry.insert("id".into(), Any::from("bad"));
        entry.insert("at".into(), Any::from(1.0));
        entry.insert("snapshot".into(), Any::Buffer(Arc::from(vec![0xff; 9])));
        array.push_back(&mut txn, Any::Map(Arc::new(entry)));
    }
    a.record_version("good", 5, None, None);
    let ids: Vec<String> = a.versions().into_iter().map(|v| v.id).collect();
    assert_eq!(ids, ["good"]);
    assert!(decode_snapshot(&vec![0; MAX_SNAPSHOT_BYTES + 1]).is_err());
}

#[test]
fn a_version_is_due_after_a_quiet_spell_or_a_long_burst() {
    let t0 = Instant::now();
    let mut timer = VersionTimer::default();
    assert!(
        !timer.due(t0 + Duration::from_secs(3600)),
        "no edits, no version"
    );
    timer.edited(t0);
    assert!(!timer.due(t0 + QUIET - Duration::from_secs(1)));
    assert!(timer.due(t0 + QUIET));
    // Steady typing: never quiet, but a version every MAX_BURST all the same.
    let mut timer = VersionTimer::default();
    let mut now = t0;
    while now < t0 + MAX_BURST {
        timer.edited(now);
        now += Duration::from_secs(5);
        if now < t0 + MAX_BURST {
            assert!(!timer.due(now));
        }
    }
    assert!(timer.due(now));
    timer.recorded();
    assert!(!timer.pending() && !timer.due(now + MAX_BURST));
}

#[test]
fn versions_are_found_by_id_name_or_prefix_and_diffs_are_unified() {
    let mut a = Document::with_client_id(1);
    a.record_version("a1b2c3d4e5f6", 1, Some("draft"), None);
    a.record_version("a1b2ffffffff", 2, Some("draft"), None);
    a.record_version("0123456789ab", 3, None, None);
    let v = a.versions();
    assert_eq!(find_version(&v, "0123456789ab").unwrap().at_ms, 3);
    assert_eq!(
        find_version(&v, "draft").unwrap().at_ms,
        2,
        "the newest of that name"
    );
    assert_eq!(find_version(&v, "a1b2c").unwrap().at_ms, 1);
    assert!(matches!(
        find_version(&v, "a1b2"),
        Err(VersionError::Ambiguous(..))
    ));
    assert!(
        matches!(find_version(&v, "012"), Err(VersionError::Unknown(_))),
        "too short"
    );
    assert!(matches!(
        find_version(&v, "nope"),
        Err(VersionError::Unknown(_))
    ));

    let diff = unified_diff("a\nb\nc\n", "a\nB\nc\n", "v1", "now");
    assert_eq!(diff, "--- v1\n+++ now\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    assert_eq!(unified_diff("same\n", "same\n", "x", "y"), "");
}

#[test]
fn a_snapshot_claiming_more_than_its_bytes_is_refused_before_decoding() {
    // Found by the fuzz target: an empty delete set, then a state vector claiming 26 billion
    // clients in 26 bytes. yrs reserved for them (1 GB of memory touched) before failing.
    let bomb = [
        0x00, 0xff, 0xff, 0xff, 0xff, 0x62, 0xff, 0xff, 0xff, 0xff, 0x5c, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28,
        0x28, 0x28,
    ];
    let err = decode_snapshot(&bomb).unwrap_err();
    assert!(err.to_string().contains("claims"), "{err}");
    // So is one that claims many deleted ranges, and one with bytes after its end.
    assert!(decode_snapshot(&[1, 5, 0xff, 0xff, 0x7f, 0, 0]).is_err());
    let mut a = Document::with_client_id(1);
    a.replace_text("abc");
    a.replace_text("a");
    let good = a.doc.transact().snapshot().encode_v1();
    assert!(decode_snapshot(&good).is_ok());
    assert!(decode_snapshot(&[good, vec![0]].concat()).is_err());
}
