//! Joining with bad tickets fails clearly and leaves nothing behind; a join that waits for a
//! member keeps the document and completes when one answers.

use super::common::*;
use peerdoc::core::envelope::DocKey;
use peerdoc::core::ticket::Ticket;
use peerdoc::{DataDirError, DocId, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_ticket_is_refused_with_a_clear_error() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = a.create_doc("notes").await.unwrap();
    let ticket = a.ticket(&doc.id).await.unwrap();

    let mut chars: Vec<char> = ticket.chars().collect();
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
    let corrupted: String = chars.into_iter().collect();
    for bad in [corrupted.as_str(), &ticket[..ticket.len() / 2], "hello", ""] {
        let err = b.join(bad, None).await.expect_err("bad ticket must fail");
        assert!(matches!(err, Error::Ticket(_)), "{bad:?}: {err}");
        assert!(err.to_string().contains("ticket"), "{err}");
    }
    assert!(
        b.list_docs().await.unwrap().is_empty(),
        "nothing was created"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_for_a_doc_nobody_serves_fails_and_keeps_nothing() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let real = Ticket::decode(
        &a.ticket(&a.create_doc("x").await.unwrap().id)
            .await
            .unwrap(),
    )
    .unwrap();
    // A forged ticket (another document, same sharer) is refused: the sharer signed its
    // invitation for the real document only.
    let forged = Ticket {
        doc: DocId::random(),
        name: "ghost".into(),
        ..real.clone()
    };
    let err = b.join(&forged.encode(), None).await.expect_err("must fail");
    assert!(matches!(err, Error::Ticket(_)), "{err}");
    // A real ticket for a document the sharer has deleted since.
    let gone_id = a.create_doc("gone").await.unwrap().id;
    let gone = a.ticket(&gone_id).await.unwrap();
    a.delete(&gone_id).await.unwrap();
    let err = b.join(&gone, None).await.expect_err("must fail");
    assert!(matches!(err, Error::NotShared), "{err}");
    assert!(b.list_docs().await.unwrap().is_empty(), "rolled back");

    // The right doc with a wrong key: the sharer answers as for a document it does not hold,
    // nothing is kept.
    let wrong_key = Ticket {
        key: DocKey::random(),
        ..real.clone()
    };
    let err = b
        .join(&wrong_key.encode(), None)
        .await
        .expect_err("must fail");
    assert!(matches!(err, Error::NotShared), "{err}");
    assert!(b.list_docs().await.unwrap().is_empty(), "rolled back");

    // A sharer that is not running.
    let port = tcp_port(&a).await;
    a.shutdown().await;
    let err = b.join(&real.encode(), None).await.expect_err("must fail");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("is running"), "{err}");
    assert!(b.list_docs().await.unwrap().is_empty());

    // Once the sharer is back, the same ticket works.
    let a = start_on(&d.paths[0], port).await;
    b.join(&real.encode(), None).await.unwrap();
    assert_eq!(b.list_docs().await.unwrap().len(), 1);
    let err = b.join(&real.encode(), None).await.expect_err("twice");
    assert!(matches!(err, Error::AlreadyJoined(_)), "{err}");
    let err = a.join(&real.encode(), None).await.expect_err("own ticket");
    assert!(matches!(err, Error::OwnTicket), "{err}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_per_data_dir() {
    let d = dirs(1);
    let a = start(&d.paths[0]).await;
    let err = peerdoc::Node::spawn(test_config(&d.paths[0], 0))
        .await
        .err()
        .expect("locked");
    assert!(
        matches!(err, Error::DataDir(DataDirError::Locked(_))),
        "{err}"
    );
    a.shutdown().await;
}

/// Re-seeding: a replica that lost its copy and joins again gets the document's history, not a
/// second copy of its text, and edits made meanwhile merge once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_copy_rejoins_without_duplicating_content() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = a.create_doc("minutes").await.unwrap();
    a.write(&doc.id, "item one\nitem two\n".into(), false)
        .await
        .unwrap();
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    b.write(&doc.id, "item three\n".into(), true).await.unwrap();
    let text = wait_converged(&[&a, &b], &doc.id, |t| t.contains("three")).await;

    // B loses everything (its whole data dir), A edits meanwhile, B joins again.
    let port = tcp_port(&b).await;
    b.shutdown().await;
    drop(b);
    std::fs::remove_dir_all(&d.paths[1]).unwrap();
    a.write(&doc.id, "item four\n".into(), true).await.unwrap();
    let b = start_on(&d.paths[1], port).await;
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    let expected = format!("{text}item four\n");
    let rejoined = wait_converged(&[&a, &b], &doc.id, |t| t.contains("four")).await;
    assert_eq!(rejoined, expected, "no line twice");
    // Writing the same text again is a no-op, not a duplicate (writes are minimal diffs).
    b.write(&doc.id, expected.clone(), false).await.unwrap();
    a.write(&doc.id, expected.clone(), false).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(wait_converged(&[&a, &b], &doc.id, |_| true).await, expected);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_join_keeps_the_document_and_completes_when_a_member_answers() {
    let d = dirs(3);
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("minutes").await.unwrap().id;
    a.write(&doc, "agreed: ship it".into(), false)
        .await
        .unwrap();
    let ticket = a.ticket(&doc).await.unwrap();
    let port = tcp_port(&a).await;
    a.shutdown().await;

    // Nobody online: a plain join fails and keeps nothing; a waiting join keeps the document.
    let b = start(&d.paths[1]).await;
    let err = b.join(&ticket, None).await.expect_err("nobody online");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    // One short line: which member, why in a few words, what to do (libp2p's dump is logged).
    let said = err.to_string();
    assert!(said.len() < 300 && !said.contains('\n'), "{said}");
    assert!(
        said.contains("connection refused") && said.contains("--wait"),
        "{said}"
    );
    assert!(b.list_docs().await.unwrap().is_empty());
    let info = b.join_or_wait(&ticket, None).await.unwrap();
    assert!(info.joining, "{info:?}");
    assert_eq!(info.name, "minutes");
    // It has no text yet, and says so rather than pass an empty one for the document's.
    let err = b.text(&doc).await.expect_err("still joining");
    assert!(matches!(err, Error::Joining(_)), "{err}");
    let err = b.join(&ticket, None).await.expect_err("kept");
    assert!(matches!(err, Error::AlreadyJoined(_)), "{err}");

    // The waiting join survives a restart of the joiner.
    b.shutdown().await;
    let b = start(&d.paths[1]).await;
    assert!(
        b.doc_info(&doc).await.unwrap().joining,
        "resumed from the store"
    );

    // The sharer comes back: the join completes by itself and the document arrives.
    let a = start_on(&d.paths[0], port).await;
    wait_until("the waiting join completes", async || {
        !b.doc_info(&doc).await.unwrap().joining
    })
    .await;
    assert_eq!(b.text(&doc).await.unwrap(), "agreed: ship it");
    // And it is a real member: its edits reach the sharer.
    b.write(&doc, " (b agrees)".into(), true).await.unwrap();
    wait_converged(&[&a, &b], &doc, |t| t.ends_with("(b agrees)")).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A waiting join is listed (as joining) while its first attempt still runs, and it completes
/// as soon as the sharer is back, within that same attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_join_is_listed_at_once_and_completes_when_the_sharer_returns() {
    let d = dirs(2);
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("agenda").await.unwrap().id;
    a.write(&doc, "1. coffee".into(), false).await.unwrap();
    let ticket = a.ticket(&doc).await.unwrap();
    let port = tcp_port(&a).await;
    a.shutdown().await;

    // A first attempt that would go on far longer than this test.
    let mut config = test_config(&d.paths[1], 0);
    config.request_timeout = std::time::Duration::from_secs(600);
    let b = start_with(config).await;
    let joining = tokio::spawn({
        let (b, ticket) = (b.clone(), ticket.clone());
        async move { b.join_or_wait(&ticket, None).await }
    });
    wait_until("the document is listed as joining", async || {
        b.list_docs()
            .await
            .unwrap()
            .iter()
            .any(|info| info.id == doc && info.joining)
    })
    .await;
    assert!(!joining.is_finished(), "still in its first attempt");
    assert!(matches!(b.text(&doc).await, Err(Error::Joining(_))));

    let a = start_on(&d.paths[0], port).await;
    let info = joining.await.unwrap().unwrap();
    assert!(!info.joining, "{info:?}");
    assert_eq!(b.text(&doc).await.unwrap(), "1. coffee");
    a.shutdown().await;
    b.shutdown().await;
}
