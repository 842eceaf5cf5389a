//! History (issue 22): versions recorded on one node are listed on every member's, with who
//! wrote what (from signed claims); any version can be read, compared and restored by a forward
//! change; edits made through a node go into a version before it stops; a reader records none.

use super::common::*;
use super::daemon::Daemon;
use peerdoc::{DocKind, Error, Format, Node};

async fn version_ids(node: &Node, doc: &peerdoc::DocId) -> Vec<String> {
    node.versions(doc)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_shared_attributed_compared_and_restored() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    a.set_name("Ana").await.unwrap();
    b.set_name("Bo").await.unwrap();
    let doc = a.create_doc_of("plan", DocKind::Rich).await.unwrap();
    a.write(&doc.id, "# Plan\n\nFirst idea.\n".into(), false)
        .await
        .unwrap();
    let draft = a.record_version(&doc.id, Some("draft")).await.unwrap();
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();

    // The version made on A is listed on B: it is part of the document.
    wait_until("B lists A's version", async || {
        version_ids(&b, &doc.id).await == [draft.clone()]
    })
    .await;
    b.write(
        &doc.id,
        "# Plan\n\nSecond idea, **better**.\n".into(),
        false,
    )
    .await
    .unwrap();
    let second = b.record_version(&doc.id, None).await.unwrap();
    wait_until("A lists both versions", async || {
        version_ids(&a, &doc.id).await == [draft.clone(), second.clone()]
    })
    .await;

    // Who wrote what comes from the members' signed claims, named as members are.
    let listed = a.versions(&doc.id).await.unwrap();
    assert_eq!(listed[0].name.as_deref(), Some("draft"));
    let labels = |i: usize| -> Vec<String> {
        let changes = listed[i].changes.as_ref().expect("A holds both versions");
        changes.authors.iter().map(|a| a.label.clone()).collect()
    };
    assert_eq!(labels(0), ["Ana"]);
    assert_eq!(labels(1), ["Bo"]);
    let changes = listed[1].changes.as_ref().unwrap();
    assert!(changes.inserted > 0 && changes.deleted > 0, "{changes:?}");

    // Any version reads back on any member, and diffs as Markdown.
    assert_eq!(
        b.export_at(&doc.id, "draft", Format::Markdown)
            .await
            .unwrap(),
        "# Plan\n\nFirst idea.\n"
    );
    let diff = a.diff_versions(&doc.id, "draft", None).await.unwrap();
    assert!(
        diff.starts_with("written by: Bo\n")
            && diff.contains("-First idea.")
            && diff.contains("+Second idea, **better**."),
        "{diff}"
    );
    assert_eq!(a.diff_versions(&doc.id, &second, None).await.unwrap(), "");
    assert!(matches!(
        a.export_at(&doc.id, "nope", Format::Markdown).await,
        Err(Error::Room(peerdoc::RoomError::Version(_)))
    ));

    // A restore is a forward change: it syncs like an edit, the versions since stay, and it is
    // a version itself.
    let restored = b.restore(&doc.id, &draft[..6]).await.unwrap().unwrap();
    wait_converged(&[&a, &b], &doc.id, |t| t == "# Plan\n\nFirst idea.\n").await;
    wait_until("A lists the restore", async || {
        version_ids(&a, &doc.id).await.len() == 3
    })
    .await;
    let listed = a.versions(&doc.id).await.unwrap();
    assert_eq!(listed[2].id, restored);
    assert_eq!(listed[2].restored_from.as_deref(), Some(draft.as_str()));
    assert_eq!(
        a.export_at(&doc.id, &second, Format::Markdown)
            .await
            .unwrap(),
        "# Plan\n\nSecond idea, **better**.\n"
    );
    assert_eq!(
        b.restore(&doc.id, "draft").await.unwrap(),
        None,
        "nothing to change"
    );

    // Naming a version later is seen by the other member too.
    a.name_version(&doc.id, &second, "bo's take").await.unwrap();
    wait_until("B sees the name", async || {
        b.versions(&doc.id).await.unwrap()[1].name.as_deref() == Some("bo's take")
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_go_into_a_version_before_the_node_stops_and_a_reader_records_none() {
    let d = dirs(2);
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("notes").await.unwrap();
    a.write(&doc.id, "typed, then the node stopped\n".into(), false)
        .await
        .unwrap();
    assert!(a.versions(&doc.id).await.unwrap().is_empty(), "not due yet");
    a.shutdown().await;
    let a = start(&d.paths[0]).await;
    let listed = a.versions(&doc.id).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        a.export_at(&doc.id, &listed[0].id, Format::Markdown)
            .await
            .unwrap(),
        "typed, then the node stopped\n"
    );

    let reader = start(&d.paths[1]).await;
    reader
        .join(&a.share(&doc.id, true).await.unwrap(), None)
        .await
        .unwrap();
    assert!(matches!(
        reader.record_version(&doc.id, Some("mine")).await,
        Err(Error::Room(peerdoc::RoomError::ReadOnly(_)))
    ));
    assert!(matches!(
        reader.restore(&doc.id, &listed[0].id).await,
        Err(Error::Room(peerdoc::RoomError::ReadOnly(_)))
    ));
    // It reads history all the same.
    assert_eq!(version_ids(&reader, &doc.id).await, [listed[0].id.clone()]);
    a.shutdown().await;
    reader.shutdown().await;
}

#[test]
fn history_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(&root.path().join("a"));
    a.ok(&["name", "Ana"], None);
    assert_eq!(a.ok(&["name"], None), "Ana\n");
    a.ok(&["new", "notes"], None);
    a.ok(&["write", "notes"], Some("# Notes\n\nOne.\n"));
    let v1 = a
        .ok(&["version", "notes", "first"], None)
        .trim()
        .to_string();
    a.ok(&["write", "notes"], Some("# Notes\n\nTwo.\n"));
    let v2 = a.ok(&["version", "notes"], None).trim().to_string();

    let history = a.ok(&["history", "notes"], None);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[0].starts_with(&v1) && lines[0].contains("\"first\"") && lines[0].contains("Ana"),
        "{history}"
    );
    assert!(
        lines[1].starts_with(&v2) && lines[1].contains("+3 -3"),
        "{history}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&a.ok(&["history", "notes", "--json"], None)).unwrap();
    assert_eq!(json[1]["id"], v2.as_str());

    assert_eq!(
        a.ok(&["cat", "notes", "--at", "first"], None),
        "# Notes\n\nOne.\n"
    );
    let diff = a.ok(&["diff", "notes", "first"], None);
    assert!(diff.contains("-One.\n+Two.\n"), "{diff}");
    let restored = a.ok(&["restore", "notes", "first"], None);
    assert!(restored.starts_with("restored first"), "{restored}");
    assert_eq!(a.ok(&["cat", "notes"], None), "# Notes\n\nOne.\n");
    a.ok(&["version", "notes", "final", "--of", &v2], None);
    assert!(a.ok(&["history", "notes"], None).contains("\"final\""));

    // A version that does not exist: one line, non-zero exit.
    let missing = a.run(&["cat", "notes", "--at", "nope"], None);
    assert!(!missing.status.success());
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains("no version \"nope\"") && said.lines().count() == 1,
        "{said}"
    );
    a.stop();
}
