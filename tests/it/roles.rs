//! Roles: the owner shares read-write or read-only; readers follow the document but can never
//! change it, not even with a modified node; writers share further, and members admitted by a
//! writer are recognised by everyone.

use super::common::*;
use peerdoc::core::doc::Document;
use peerdoc::core::envelope::Purpose;
use peerdoc::core::sync::YMessage;
use peerdoc::core::ticket::{Capability, Ticket};
use peerdoc::Error;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_follow_the_document_but_cannot_write_or_share() {
    let d = dirs(3);
    let (a, b, c) = (
        start(&d.paths[0]).await,
        start(&d.paths[1]).await,
        start(&d.paths[2]).await,
    );
    let doc = a.create_doc("handbook").await.unwrap();
    assert_eq!(doc.role.as_str(), "owner");
    a.write(&doc.id, "rule one: be kind\n".into(), false)
        .await
        .unwrap();
    let read_only = a.share(&doc.id, true).await.unwrap();
    assert_eq!(
        Ticket::decode(&read_only).unwrap().capability,
        Capability::ReadOnly
    );
    let joined = b.join(&read_only, None).await.unwrap();
    assert_eq!(joined.role.as_str(), "reader");
    assert_eq!(b.text(&doc.id).await.unwrap(), "rule one: be kind\n");
    c.join(&a.share(&doc.id, false).await.unwrap(), None)
        .await
        .unwrap();

    // The reader's node refuses to write or share, with an error that says why.
    let err = b
        .write(&doc.id, "rule two: obey me\n".into(), true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = b.share(&doc.id, true).await.unwrap_err();
    assert!(matches!(err, Error::ReaderCannotShare), "{err}");

    // The reader follows a writer's edits.
    c.write(&doc.id, "rule two: write things down\n".into(), true)
        .await
        .unwrap();
    let text = wait_converged(&[&a, &b, &c], &doc.id, |t| t.contains("rule two")).await;
    assert_eq!(text, "rule one: be kind\nrule two: write things down\n");

    // Everyone agrees on who is who.
    for node in [&a, &b, &c] {
        wait_until("every member knows every role", async || {
            let members = node.members(&doc.id).await.unwrap();
            let role_of = |peer: libp2p::PeerId| {
                members
                    .iter()
                    .find(|m| m.peer == peer)
                    .map(|m| m.role.as_str())
            };
            role_of(a.peer_id()) == Some("owner")
                && role_of(b.peer_id()) == Some("reader")
                && role_of(c.peer_id()) == Some("writer")
        })
        .await;
    }
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readers_modified_node_gets_no_update_applied() {
    let d = dirs(2);
    let (a, c) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = a.create_doc("guarded").await.unwrap();
    a.write(&doc.id, "original\n".into(), false).await.unwrap();
    c.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    let ticket = Ticket::decode(&a.share(&doc.id, true).await.unwrap()).unwrap();

    // A reader's node, modified to publish edits: correctly keyed, signed by its own identity,
    // and its reader certificate is known to A.
    let cancel = CancellationToken::new();
    let (reader, reader_key) = bare_net_keyed_drained(&cancel).await;
    reader
        .dial(ticket.peer, ticket.addrs.clone())
        .await
        .unwrap();
    admit_as_member(&reader, &ticket).await;
    let reader_id = reader.peer_id().to_string();
    wait_until("A knows the reader's role", async || {
        a.members(&doc.id)
            .await
            .unwrap()
            .iter()
            .any(|m| m.peer.to_string() == reader_id && m.role.as_str() == "reader")
    })
    .await;
    reader.subscribe(ticket.doc.topic_name()).await;
    wait_until("A sees the reader subscribe", async || {
        a.status().await.unwrap().docs[0]
            .peers
            .iter()
            .any(|p| p.peer.to_string() == reader_id)
    })
    .await;

    // Edits that would show if applied: inserts into the shared text from a fresh replica.
    let mut forged = Document::new();
    let topic = ticket.doc.topic();
    for i in 0..5 {
        let update = forged.append_text(&format!("FORGED {i}\n")).unwrap();
        let sealed =
            ticket
                .keyring()
                .seal(&topic, Purpose::Gossip, &YMessage::Update(update).encode());
        let signed = peerdoc::core::sync::gossip::sign(&reader_key, &topic, &sealed);
        let _ = reader.publish(ticket.doc.topic_name(), signed).await;
    }
    // Rejected edits cost the sender its connection.
    wait_until("A disconnects the reader", async || {
        !a.peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer.to_string() == reader_id)
    })
    .await;
    // Honest members still converge, without any forged text.
    c.write(&doc.id, "honest\n".into(), true).await.unwrap();
    let text = wait_converged(&[&a, &c], &doc.id, |t| t.contains("honest")).await;
    assert_eq!(text, "original\nhonest\n");
    cancel.cancel();
    a.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_a_writer_admitted_is_recognised_by_the_owner() {
    let d = dirs(3);
    let (a, c, e) = (
        start(&d.paths[0]).await,
        start(&d.paths[1]).await,
        start(&d.paths[2]).await,
    );
    let doc = a.create_doc("chain").await.unwrap();
    a.write(&doc.id, "from the owner\n".into(), false)
        .await
        .unwrap();
    c.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    // C, a writer, shares on; E joins from C.
    let from_c = c.ticket(&doc.id).await.unwrap();
    assert_eq!(Ticket::decode(&from_c).unwrap().peer, c.peer_id());
    let joined = e.join(&from_c, None).await.unwrap();
    assert_eq!(joined.role.as_str(), "writer");
    e.write(&doc.id, "from the invitee\n".into(), true)
        .await
        .unwrap();
    // A accepts E's edits once it learns E's certificates (through C or E).
    let text = wait_converged(&[&a, &c, &e], &doc.id, |t| t.contains("invitee")).await;
    assert_eq!(text, "from the owner\nfrom the invitee\n");
    wait_until("the owner knows the invitee is a writer", async || {
        a.members(&doc.id)
            .await
            .unwrap()
            .iter()
            .any(|m| m.peer.to_string() == e.peer_id().to_string() && m.role.as_str() == "writer")
    })
    .await;
    for node in [a, c, e] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_gets_no_new_key_and_its_writes_are_refused() {
    let d = dirs(3);
    let (a, b, c, doc) = owner_and_two_writers(&d, "team", "before\n").await;

    // Only the owner removes, and only members.
    let err = b
        .revoke(&doc.id, &c.peer_id().to_string(), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotOwner), "{err}");
    let err = a
        .revoke(&doc.id, &libp2p::PeerId::random().to_string(), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAMember(_)), "{err}");

    let removed = a
        .revoke(&doc.id, &c.peer_id().to_string(), &[])
        .await
        .unwrap();
    assert_eq!(removed.epoch, 1);
    // B gets the new key without doing anything; C never does.
    wait_until("B holds the new key", async || {
        b.doc_info(&doc.id).await.unwrap().epoch == 1
    })
    .await;
    let c_id = c.peer_id().to_string();
    for node in [&a, &b] {
        wait_until("the removal is known", async || {
            !node
                .members(&doc.id)
                .await
                .unwrap()
                .iter()
                .any(|m| m.peer.to_string() == c_id)
        })
        .await;
    }

    // New writes are sealed with the new key: A and B read them, C cannot.
    a.write(&doc.id, "after, from a\n".into(), true)
        .await
        .unwrap();
    b.write(&doc.id, "after, from b\n".into(), true)
        .await
        .unwrap();
    // C learns of its removal and refuses to write (its modified node's writes are refused
    // everywhere: tests/it/trust.rs).
    wait_until("C knows it was removed", async || {
        c.doc_info(&doc.id).await.unwrap().role.as_str() == "removed"
    })
    .await;
    let err = c
        .write(&doc.id, "from the removed member\n".into(), true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Room(peerdoc::RoomError::Removed(_))),
        "{err}"
    );
    let text = wait_converged(&[&a, &b], &doc.id, |t| {
        t.contains("after, from a") && t.contains("after, from b")
    })
    .await;
    assert!(!text.contains("removed member"), "{text}");
    let c_text = c.text(&doc.id).await.unwrap();
    assert!(
        !c_text.contains("after"),
        "the removed member read new text: {c_text}"
    );
    assert_eq!(c.doc_info(&doc.id).await.unwrap().epoch, 0);
    let text = a.text(&doc.id).await.unwrap();
    assert!(!text.contains("removed member"), "{text}");
    assert_eq!(text, b.text(&doc.id).await.unwrap());

    // The keys survive a restart.
    let b_port = tcp_port(&b).await;
    b.shutdown().await;
    let b = start_on(&d.paths[1], b_port).await;
    assert_eq!(b.doc_info(&doc.id).await.unwrap().epoch, 1);
    b.write(&doc.id, "after a restart\n".into(), true)
        .await
        .unwrap();
    wait_converged(&[&a, &b], &doc.id, |t| t.contains("after a restart")).await;
    for node in [a, b, c] {
        node.shutdown().await;
    }
}
