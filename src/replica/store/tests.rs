//! Store tests: documents, the log and compaction across reopen, full disks, group commit.

use super::*;

fn meta(name: &str) -> DocMeta {
    DocMeta::new_for_test(name)
}

#[tokio::test]
async fn docs_updates_and_compaction_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peerdoc.db");
    let store = Store::open(&path).unwrap();
    let m = meta("notes");
    store.create_doc(m.clone()).await.unwrap();
    assert!(matches!(
        store
            .create_doc(DocMeta {
                id: DocId::random(),
                ..m.clone()
            })
            .await,
        Err(StoreError::NameTaken(_))
    ));
    assert!(matches!(
        store.create_doc(m.clone()).await,
        Err(StoreError::DocExists(_))
    ));
    let s1 = store.append(m.id, b"one".to_vec()).await.unwrap();
    let s2 = store.append(m.id, b"two".to_vec()).await.unwrap();
    let summary = Summary {
        sv: vec![0],
        digest: [9; 32],
    };
    store
        .compact(m.id, b"snap".to_vec(), s1, summary.clone())
        .await
        .unwrap();
    // "two" was logged after the snapshot: its summary is stale.
    let access = store.load_access(m.id).await.unwrap();
    assert_eq!((access.pending_log, access.last_seq), (1, s2));
    assert_eq!(access.stored_bytes, 7);
    assert!(access.has_content && access.summary.is_none());
    store
        .save_peer("p".into(), vec!["/ip4/1.2.3.4/tcp/1".into()])
        .await
        .unwrap();
    store.close().await;
    assert!(matches!(store.list_docs().await, Err(StoreError::Closed)));

    let store = Store::open(&path).unwrap();
    assert_eq!(store.list_docs().await.unwrap(), vec![m.clone()]);
    let loaded = store.load(m.id).await.unwrap();
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"snap"[..]));
    assert_eq!(loaded.updates, vec![b"two".to_vec()]);
    assert_eq!(loaded.last_seq, s2);
    store
        .compact(m.id, b"snap2".to_vec(), s2, summary.clone())
        .await
        .unwrap();
    let access = store.load_access(m.id).await.unwrap();
    assert_eq!((access.pending_log, access.last_seq), (0, s2));
    assert_eq!(access.summary, Some(summary));
    assert_eq!(store.known_peers().await.unwrap().len(), 1);
    store.rename_doc(m.id, "renamed".into()).await.unwrap();
    store.delete_doc(m.id).await.unwrap();
    assert!(store.list_docs().await.unwrap().is_empty());
    assert!(
        store.load(m.id).await.unwrap().updates.is_empty(),
        "log cascades"
    );
}

#[tokio::test]
async fn a_full_disk_fails_the_whole_batch_and_stores_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let m = meta("d");
    store.create_doc(m.clone()).await.unwrap();
    store.limit_pages(Some(0)).await;
    // Many appends at once land in one batch: a large one fills the disk, small ones
    // around it must not slip through outside the rolled-back transaction.
    let tasks: Vec<_> = (0..20u32)
        .map(|i| {
            let store = store.clone();
            let data = if i == 3 {
                vec![7; 300_000]
            } else {
                vec![i as u8; 8]
            };
            tokio::spawn(async move { store.append(m.id, data).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let failed: Vec<&StoreError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|e| e.is_full()),
        "{failed:?}"
    );
    let stored = store.load(m.id).await.unwrap().updates.len();
    assert_eq!(
        stored,
        results.iter().filter(|r| r.is_ok()).count(),
        "acknowledged = stored"
    );
    store.limit_pages(None).await;
    store.append(m.id, vec![1; 300_000]).await.unwrap();
}

#[tokio::test]
async fn concurrent_appends_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let m = meta("d");
    store.create_doc(m.clone()).await.unwrap();
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append(m.id, i.to_le_bytes().to_vec()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.load(m.id).await.unwrap().updates.len(), 200);
}

#[test]
fn garbage_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peerdoc.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&path).err().expect("must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("move it aside"));
}

#[tokio::test]
async fn a_query_finds_its_candidates_by_lookup_and_picks_as_from_the_whole_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("peerdoc.db")).unwrap();
    // Ids that share prefixes of every length up to 3 bytes, and names.
    let mut docs = Vec::new();
    for (i, prefix) in [
        [0xab, 0xcd, 0x01],
        [0xab, 0xcd, 0x02],
        [0xab, 0xce, 0x00],
        [0x12, 0, 0],
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = meta(&format!("doc {i}"));
        m.id.0[..3].copy_from_slice(&prefix);
        store.create_doc(m.clone()).await.unwrap();
        docs.push(m);
    }
    let all = store.list_docs().await.unwrap();
    let whole = docs[0].id.to_string();
    let queries = [
        whole.clone(),
        whole.to_uppercase(),
        " doc 3 ".to_string(),
        "abcd0".to_string(),  // odd length: two matches
        "abcd01".to_string(), // one match
        "abcd".to_string(),   // two matches
        "abc".to_string(),    // too short
        "abce".to_string(),
        "1200".to_string(),
        "ffff".to_string(),
        "nope".to_string(),
        "doc".to_string(),
    ];
    for q in queries {
        // (Several matches are listed in another order: compare that they are several.)
        let outcome = |r: Result<DocMeta, crate::node::Error>| match r {
            Ok(m) => m.id.to_string(),
            Err(crate::node::Error::AmbiguousDoc(..)) => "several".to_string(),
            Err(e) => format!("{e:?}"),
        };
        let found = store.find_docs(&q).await.unwrap();
        let picked = outcome(crate::node::names::find(found, &q));
        let expected = outcome(crate::node::names::find(all.clone(), &q));
        assert_eq!(picked, expected, "query {q:?}");
    }
    assert_eq!(store.find_docs("abcd").await.unwrap().len(), 2);
    assert_eq!(store.find_docs("abcd0").await.unwrap().len(), 2);
    assert_eq!(store.find_docs("abcd01").await.unwrap().len(), 1);
    assert_eq!(store.find_docs("abce").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_peer_address_not_seen_for_90_days_is_forgotten_at_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let now = super::unix_now();
    let old = now - super::FORGET_PEERS_AFTER - 1;
    let addr = |port: u16| vec![format!("/ip4/127.0.0.1/tcp/{port}")];
    store
        .save_peer_at("gone".into(), addr(1), old)
        .await
        .unwrap();
    store
        .save_peer_at("kept".into(), addr(2), old + 3600)
        .await
        .unwrap();
    assert_eq!(
        store.known_peers().await.unwrap().len(),
        2,
        "nothing pruned yet"
    );
    store
        .save_peer_at("new".into(), addr(3), now)
        .await
        .unwrap();
    let peers: Vec<String> = store
        .known_peers()
        .await
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(peers, vec!["kept".to_string(), "new".to_string()]);
}

#[tokio::test]
async fn doc_stats_count_stored_bytes_and_the_last_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut m = meta("notes");
    m.created = 1_000; // long ago: the first append moves `changed` to now
    let other = meta("other");
    store.create_doc(m.clone()).await.unwrap();
    store.create_doc(other.clone()).await.unwrap();
    let stats = store.doc_stats(None).await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        stats[&m.id],
        DocStats {
            bytes: 0,
            changed: 1_000,
            rich: false
        }
    );
    store.set_rich(other.id).await.unwrap();
    assert!(store.doc_stats(Some(other.id)).await.unwrap()[&other.id].rich);
    let seq = store.append(m.id, b"one".to_vec()).await.unwrap();
    store.append(m.id, b"two!".to_vec()).await.unwrap();
    let stats = store.doc_stats(Some(m.id)).await.unwrap();
    assert_eq!(stats.len(), 1, "only the one asked for");
    assert_eq!(stats[&m.id].bytes, 7);
    assert!(
        stats[&m.id].changed >= unix_now() - 60,
        "{:?}",
        stats[&m.id]
    );
    let summary = Summary {
        sv: vec![0],
        digest: [1; 32],
    };
    store
        .compact(m.id, b"snapshot".to_vec(), seq, summary)
        .await
        .unwrap();
    assert_eq!(
        store.doc_stats(Some(m.id)).await.unwrap()[&m.id].bytes,
        8 + 4
    );
}
