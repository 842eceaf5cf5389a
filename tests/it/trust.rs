//! Access control as an attacker tries it (issue 20): a removed member, a stale ticket, a
//! stranger holding an old key, a flood of certificates. Each refusal is witnessed where it
//! happens (`peerdoc_access_refused_total`, by what and why), never by an absence after a
//! sleep.

use std::time::Duration;

use super::common::*;
use peerdoc::core::access::{key_of, CertKind};
use peerdoc::core::doc::Document;
use peerdoc::core::envelope::Purpose;
use peerdoc::core::sync::members::{self, Roster};
use peerdoc::core::sync::{Pull, PullError, YMessage};
use peerdoc::core::ticket::Ticket;
use peerdoc::{Error, Node};
use tokio_util::sync::CancellationToken;

/// A member's node, modified: publishes `text` appended to `forged` as a gossip edit, sealed
/// A member's node, modified: it publishes edits (fresh ones each time, which gossipsub does
/// not filter as duplicates), sealed with its ticket's key and signed by its identity.
struct Forger<'a> {
    net: &'a peerdoc::testing::Net,
    key: &'a libp2p::identity::ed25519::Keypair,
    ticket: &'a Ticket,
    doc: Document,
    sent: usize,
}

impl<'a> Forger<'a> {
    fn new(
        net: &'a peerdoc::testing::Net,
        key: &'a libp2p::identity::ed25519::Keypair,
        ticket: &'a Ticket,
    ) -> Forger<'a> {
        Forger {
            net,
            key,
            ticket,
            doc: Document::new(),
            sent: 0,
        }
    }

    /// Publishes the next edit, then gives it a moment to arrive.
    async fn publish(&mut self) {
        let update = self
            .doc
            .append_text(&format!("rogue {}\n", self.sent))
            .unwrap();
        self.sent += 1;
        let topic = self.ticket.doc.topic();
        let sealed =
            self.ticket
                .keyring()
                .seal(&topic, Purpose::Gossip, &YMessage::Update(update).encode());
        let signed = peerdoc::core::sync::gossip::sign(self.key, &topic, &sealed);
        let _ = self.net.publish(self.ticket.doc.topic_name(), signed).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many times `node` refused `what` for `reason`.
fn refused(node: &Node, what: &str, reason: &str) -> f64 {
    metric_value(
        &node.metrics_text(),
        &format!("peerdoc_access_refused_total{{what=\"{what}\",reason=\"{reason}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_members_ticket_and_key_get_nothing_new() {
    let d = dirs(3);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = a.create_doc("plans").await.unwrap();
    a.write(&doc.id, "before\n".into(), false).await.unwrap();
    let b_ticket = a.ticket(&doc.id).await.unwrap();
    b.join(&b_ticket, None).await.unwrap();
    wait_converged(&[&a, &b], &doc.id, |t| t == "before\n").await;
    wait_doc_peer(&a, &doc.id, &b).await;

    let removed = a
        .revoke(&doc.id, &b.peer_id().to_string(), &[])
        .await
        .unwrap();
    assert_eq!(removed.epoch, 1);
    assert!(removed.with_it.is_empty());
    assert_eq!(removed.tickets_closed, 1, "B's ticket is closed");
    // The owner no longer lists B as sharing the document, though it is still connected.
    let b_id = b.peer_id().to_string();
    let status = a.status().await.unwrap();
    assert!(a
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer.to_string() == b_id));
    assert!(!status.docs[0]
        .peers
        .iter()
        .any(|p| p.peer.to_string() == b_id));
    a.write(&doc.id, "after: secret\n".into(), true)
        .await
        .unwrap();

    // A fresh node with B's old ticket: the join fails, saying why, and A counted it.
    let before = refused(&a, "members", "not_member");
    let c = start(&d.paths[2]).await;
    let err = c.join(&b_ticket, None).await.unwrap_err();
    assert!(matches!(err, Error::TicketRevoked), "{err}");
    assert!(err.to_string().contains("no longer admits anyone"), "{err}");
    assert!(refused(&a, "members", "not_member") > before);
    assert!(c.list_docs().await.unwrap().is_empty(), "nothing is kept");

    // A bare peer holding only the ticket's old key: it admits itself with the old invitation
    // and asks for the document. It gets the records of its refusal, never content.
    let ticket = Ticket::decode(&b_ticket).unwrap();
    let cancel = CancellationToken::new();
    let evil = bare_net_drained(&cancel).await;
    evil.dial(ticket.peer, ticket.addrs.clone()).await.unwrap();
    let topic = ticket.doc.topic();
    let key = key_of(&evil.peer_id()).unwrap();
    let mine = Roster {
        certs: vec![
            ticket.invitation_cert().unwrap(),
            ticket.admit(key).unwrap(),
        ],
        ..Roster::default()
    };
    let before = refused(&a, "members", "not_member");
    let answer = evil
        .request(
            ticket.peer,
            members::request(&ticket.keyring(), &topic, mine),
        )
        .await
        .unwrap();
    match members::open_response(&ticket.keyring(), &topic, &answer) {
        Err(PullError::RecordsOnly(records)) => {
            assert!(records.members.is_empty(), "no member list for a stranger");
            assert!(
                records.certs.iter().any(|c| c.kind == CertKind::Revocation
                    && c.subject == ticket.invitation_cert().unwrap().subject),
                "it learns that its invitation was revoked"
            );
        }
        other => panic!("expected records only, got {other:?}"),
    }
    assert!(refused(&a, "members", "not_member") > before);
    let before = refused(&a, "sync", "not_member");
    let (mut pull, request) = Pull::start(ticket.keyring(), topic, Document::new().summary());
    let answer = evil.request(ticket.peer, request).await.unwrap();
    assert!(
        matches!(pull.on_response(&answer), Err(PullError::RecordsOnly(_))),
        "a pull with the old key gets no content"
    );
    assert!(refused(&a, "sync", "not_member") > before);

    // B itself learns that it was removed, says so, and refuses to write.
    wait_until("B knows it was removed", async || {
        b.doc_info(&doc.id).await.unwrap().role.as_str() == "removed"
    })
    .await;
    let members = b.members(&doc.id).await.unwrap();
    assert!(members
        .iter()
        .any(|m| m.you && m.role.as_str() == "removed"));
    // Its status says so, and lists no peer to sync with (none would answer it).
    let status = b.status().await.unwrap();
    let mine = status.docs.iter().find(|d| d.id == doc.id).unwrap();
    assert_eq!(mine.role.as_str(), "removed");
    assert!(mine.peers.is_empty(), "{:?}", mine.peers);
    let err = b
        .write(&doc.id, "from the removed member\n".into(), true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("removed"), "{err}");
    assert!(!b.text(&doc.id).await.unwrap().contains("secret"));

    // B's node, modified to ignore its removal, asks with its own identity and old key: it
    // gets the records of its removal, never content.
    let b_key = key_of(&b.peer_id()).unwrap();
    b.shutdown().await;
    let (as_b, mut events) = bare_net_as(&cancel, identity_of(&d.paths[1])).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    as_b.dial(ticket.peer, ticket.addrs.clone()).await.unwrap();
    let before = refused(&a, "sync", "removed");
    let (mut pull, request) = Pull::start(ticket.keyring(), topic, Document::new().summary());
    let answer = as_b.request(ticket.peer, request).await.unwrap();
    match pull.on_response(&answer) {
        Err(PullError::RecordsOnly(records)) => assert!(records
            .certs
            .iter()
            .any(|c| c.kind == CertKind::Revocation && c.subject == b_key)),
        other => panic!("expected records only, got {other:?}"),
    }
    assert!(refused(&a, "sync", "removed") > before);
    cancel.cancel();
    for node in [a, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_reaches_every_member_at_once_and_the_removed_writer_is_cut_off() {
    let d = dirs(3);
    // Anti-entropy and the periodic member exchange never run during the test: only the push
    // that follows a removal can carry it.
    let slow = |i: usize| {
        let mut config = test_config(&d.paths[i], 0);
        config.sync_interval = Duration::from_secs(600);
        config
    };
    let (a, b, c) = (
        start_with(slow(0)).await,
        start_with(slow(1)).await,
        start_with(slow(2)).await,
    );
    let doc = a.create_doc("minutes").await.unwrap();
    a.write(&doc.id, "agenda\n".into(), false).await.unwrap();
    let b_ticket = a.ticket(&doc.id).await.unwrap();
    b.join(&b_ticket, None).await.unwrap();
    c.join(&a.share(&doc.id, true).await.unwrap(), None)
        .await
        .unwrap();
    wait_converged(&[&a, &b, &c], &doc.id, |t| t == "agenda\n").await;

    let started = std::time::Instant::now();
    a.revoke(&doc.id, &b.peer_id().to_string(), &[])
        .await
        .unwrap();
    let b_id = b.peer_id().to_string();
    wait_until(
        "the reader knows the writer was removed, with the new key",
        async || {
            let info = c.doc_info(&doc.id).await.unwrap();
            let members = c.members(&doc.id).await.unwrap();
            info.epoch == 1 && !members.iter().any(|m| m.peer.to_string() == b_id)
        },
    )
    .await;
    eprintln!(
        "the reader knew of the removal after {:?}",
        started.elapsed()
    );

    // The removed writer's node, modified not to care, publishes an edit with the old key:
    // the reader refuses it (counted), as does the owner.
    let b_dir = d.paths[1].clone();
    b.shutdown().await;
    let cancel = CancellationToken::new();
    let b_key = identity_of(&b_dir);
    let (rogue, mut events) = bare_net_as(&cancel, b_key.clone()).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let ticket = Ticket::decode(&b_ticket).unwrap();
    for node in [&a, &c] {
        rogue
            .dial(node.peer_id(), vec![dial_addr(node).await])
            .await
            .unwrap();
    }
    rogue.subscribe(ticket.doc.topic_name()).await;
    // Removed peers are not listed as sharing the document any more, so the only sign that
    // the rogue's edits reach A and C is their refusal: it publishes (fresh edits, which
    // gossipsub does not filter as duplicates) until both have counted one.
    let before_c = refused(&c, "gossip", "removed");
    let before_a = refused(&a, "gossip", "removed");
    let mut forger = Forger::new(&rogue, &b_key, &ticket);
    wait_until("A and C refuse the removed writer's edits", async || {
        forger.publish().await;
        refused(&c, "gossip", "removed") > before_c && refused(&a, "gossip", "removed") > before_a
    })
    .await;
    a.write(&doc.id, "decisions\n".into(), true).await.unwrap();
    let text = wait_converged(&[&a, &c], &doc.id, |t| t.contains("decisions")).await;
    assert_eq!(text, "agenda\ndecisions\n");
    cancel.cancel();
    for node in [a, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_removed_member_set_up_goes_with_it_and_every_old_ticket_is_closed() {
    let d = dirs(5);
    let (a, b, m, r, x) = (
        start(&d.paths[0]).await,
        start(&d.paths[1]).await,
        start(&d.paths[2]).await,
        start(&d.paths[3]).await,
        start(&d.paths[4]).await,
    );
    let doc = a.create_doc("wiki").await.unwrap();
    a.write(&doc.id, "home\n".into(), false).await.unwrap();
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    // B admits M; the owner shares a read-only ticket that B may have seen, and X joins by it.
    m.join(&b.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    let seen = a.share(&doc.id, true).await.unwrap();
    x.join(&seen, None).await.unwrap();
    wait_until("the owner knows M", async || {
        a.members(&doc.id)
            .await
            .unwrap()
            .iter()
            .any(|mm| mm.peer.to_string() == m.peer_id().to_string())
    })
    .await;

    let removed = a
        .revoke(&doc.id, &b.peer_id().to_string(), &[])
        .await
        .unwrap();
    let with_it: Vec<_> = removed.with_it.iter().map(|w| w.peer).collect();
    assert_eq!(with_it, vec![m.peer_id()]);
    assert_eq!(removed.recertified, 1, "X stays, certified by the owner");
    let members = a.members(&doc.id).await.unwrap();
    let role_of = |peer: &Node| {
        members
            .iter()
            .find(|mm| mm.peer == peer.peer_id())
            .map(|mm| mm.role.as_str())
    };
    assert_eq!(role_of(&m), None);
    assert_eq!(role_of(&x), Some("reader"));
    // The read-only ticket no longer lets anyone in: not B under a fresh key, not anyone.
    let before = refused(&a, "members", "not_member");
    let err = r.join(&seen, None).await.unwrap_err();
    assert!(matches!(err, Error::TicketRevoked), "{err}");
    assert!(refused(&a, "members", "not_member") > before);
    // M learns it was removed too; X keeps reading.
    wait_until("M knows it was removed", async || {
        m.doc_info(&doc.id).await.unwrap().role.as_str() == "removed"
    })
    .await;
    a.write(&doc.id, "news\n".into(), true).await.unwrap();
    wait_converged(&[&a, &x], &doc.id, |t| t.contains("news")).await;
    for node in [a, b, m, r, x] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_certificates_is_refused_and_a_long_roster_travels_whole() {
    let d = dirs(3);
    let (a, b, c) = (
        start(&d.paths[0]).await,
        start(&d.paths[1]).await,
        start(&d.paths[2]).await,
    );
    let doc = a.create_doc("registry").await.unwrap();
    let ticket = Ticket::decode(&a.ticket(&doc.id).await.unwrap()).unwrap();
    b.join(&ticket.encode(), None).await.unwrap();
    c.join(&a.share(&doc.id, true).await.unwrap(), None)
        .await
        .unwrap();

    // A member's key holder pushes 3,000 certificates signed by random keys (the old 4,096
    // limit filled in two requests): each is refused, none stored.
    let cancel = CancellationToken::new();
    let evil = bare_net_drained(&cancel).await;
    evil.dial(ticket.peer, ticket.addrs.clone()).await.unwrap();
    admit_as_member(&evil, &ticket).await;
    let topic = ticket.doc.topic();
    let before = refused(&a, "certificate", "unchained");
    for _ in 0..3 {
        let junk = (0..1000)
            .map(|_| {
                let stranger = libp2p::identity::ed25519::Keypair::generate();
                let subject = libp2p::identity::ed25519::Keypair::generate();
                peerdoc::core::access::Cert::issue(
                    ticket.doc,
                    CertKind::Member,
                    peerdoc::core::access::Role::Writer,
                    subject.public().to_bytes(),
                    &stranger,
                )
            })
            .collect();
        let mine = Roster {
            certs: junk,
            ..Roster::default()
        };
        let answer = evil
            .request(
                ticket.peer,
                members::request(&ticket.keyring(), &topic, mine),
            )
            .await
            .unwrap();
        members::open_response(&ticket.keyring(), &topic, &answer).unwrap();
    }
    assert!(refused(&a, "certificate", "unchained") - before >= 3000.0);

    // 1,500 more shares (a long-lived document's roster outgrows one page), then B's removal:
    // C, which knows only part of it, still learns the removal.
    for _ in 0..1500 {
        a.share(&doc.id, true).await.unwrap();
    }
    let removed = a
        .revoke(&doc.id, &b.peer_id().to_string(), &[])
        .await
        .unwrap();
    assert!(removed.tickets_closed > 1500);
    let b_id = b.peer_id().to_string();
    wait_until("C learns of the removal across roster pages", async || {
        !c.members(&doc.id)
            .await
            .unwrap()
            .iter()
            .any(|m| m.peer.to_string() == b_id)
            && c.doc_info(&doc.id).await.unwrap().epoch == 1
    })
    .await;
    cancel.cancel();
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

/// The deterministic cut: what a removed writer wrote beyond what the owner held when it
/// removed it is deleted everywhere, by the members that took it before they knew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_removed_writer_wrote_beyond_the_cut_is_deleted_everywhere() {
    let d = dirs(3);
    let (a, b, c, doc) = owner_and_two_writers(&d, "notes", "agenda\n").await;
    // B writes; its claim of the client travels first, so every node that holds the text
    // holds the claim (an edit through an unclaimed client is not taken).
    b.write(&doc.id, "from B\n".into(), true).await.unwrap();
    wait_converged(&[&a, &b, &c], &doc.id, |t| t == "agenda\nfrom B\n").await;

    // The owner removes B while B and C are away, then goes away itself. (Each comes back on
    // its port, where the others remember it.)
    let ports = [tcp_port(&a).await, tcp_port(&b).await, tcp_port(&c).await];
    let b_id = b.peer_id().to_string();
    b.shutdown().await;
    c.shutdown().await;
    a.revoke(&doc.id, &b_id, &[]).await.unwrap();
    a.shutdown().await;

    // B and C meet again, neither knowing: C takes what B writes now.
    let (b, c) = (
        start_on(&d.paths[1], ports[1]).await,
        start_on(&d.paths[2], ports[2]).await,
    );
    wait_doc_peer(&c, &doc.id, &b).await;
    b.write(&doc.id, "B after its removal\n".into(), true)
        .await
        .unwrap();
    wait_converged(&[&c], &doc.id, |t| t.contains("B after its removal")).await;
    assert_eq!(refused(&c, "edit", "cut"), 0.0);

    // The owner is back: C learns the removal and its cut, and deletes what B wrote beyond it
    // (counted); the owner gets it from C already deleted. B learns it was removed.
    let a = start_on(&d.paths[0], ports[0]).await;
    let text = wait_converged(&[&a, &c], &doc.id, |t| t == "agenda\nfrom B\n").await;
    assert_eq!(text, "agenda\nfrom B\n");
    assert!(refused(&c, "edit", "cut") > 0.0, "C deleted B's writing");
    wait_until("B knows it was removed", async || {
        b.doc_info(&doc.id)
            .await
            .is_ok_and(|info| info.role.as_str() == "removed")
    })
    .await;
    // And the two go on together.
    a.write(&doc.id, "decisions\n".into(), true).await.unwrap();
    wait_converged(&[&a, &c], &doc.id, |t| t == "agenda\nfrom B\ndecisions\n").await;
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

/// A member back from offline takes no edit from gossip before it heard some member's roster:
/// a removal it missed would otherwise reach it only after the removed member's edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_from_offline_takes_no_edit_before_it_heard_a_roster() {
    let d = dirs(3);
    let (a, b, c, doc) = owner_and_two_writers(&d, "notes", "agenda\n").await;
    let c_ticket = Ticket::decode(&a.ticket(&doc.id).await.unwrap()).unwrap();
    let ports = [tcp_port(&a).await, tcp_port(&b).await];

    // B goes away; the owner removes C, then goes away too. C's node, modified not to care,
    // waits for B (and answers no member exchange).
    b.shutdown().await;
    let c_id = c.peer_id().to_string();
    c.shutdown().await;
    a.revoke(&doc.id, &c_id, &[]).await.unwrap();
    a.shutdown().await;
    let cancel = CancellationToken::new();
    let c_key = identity_of(&d.paths[2]);
    let (rogue, mut events) = bare_net_as(&cancel, c_key.clone()).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });

    // B is back, still counting C a writer, and meets only the rogue: it refuses its edits
    // (counted) until it has heard a roster.
    let b = start_on(&d.paths[1], ports[1]).await;
    rogue
        .dial(b.peer_id(), vec![dial_addr(&b).await])
        .await
        .unwrap();
    rogue.subscribe(c_ticket.doc.topic_name()).await;
    assert!(b
        .members(&doc.id)
        .await
        .unwrap()
        .iter()
        .any(|m| m.peer.to_string() == c_id && m.role.as_str() == "writer"));
    let mut forger = Forger::new(&rogue, &c_key, &c_ticket);
    wait_until("B refuses the edits: no roster heard", async || {
        forger.publish().await;
        refused(&b, "gossip", "roster_unheard") > 0.0
    })
    .await;
    assert_eq!(b.text(&doc.id).await.unwrap(), "agenda\n");

    // The owner is back: B hears the removal, and the rogue's edits are refused as a removed
    // member's from then on.
    let a = start_on(&d.paths[0], ports[0]).await;
    wait_until("B knows C was removed", async || {
        !b.members(&doc.id)
            .await
            .unwrap()
            .iter()
            .any(|m| m.peer.to_string() == c_id)
    })
    .await;
    let before = refused(&b, "gossip", "removed");
    wait_until("B refuses the removed member's edits", async || {
        forger.publish().await;
        refused(&b, "gossip", "removed") > before
    })
    .await;
    a.write(&doc.id, "decisions\n".into(), true).await.unwrap();
    let text = wait_converged(&[&a, &b], &doc.id, |t| t.contains("decisions")).await;
    assert_eq!(text, "agenda\ndecisions\n");
    cancel.cancel();
    for node in [a, b] {
        node.shutdown().await;
    }
}

/// Elements nested `depth` deep in TipTap's fragment, written by Yjs client `client`.
fn nested_elements(client: u64, depth: usize) -> Vec<u8> {
    use yrs::{ReadTxn, StateVector, Transact, XmlElementPrelim, XmlFragment};
    let doc = yrs::Doc::with_client_id(client);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writers_types_nested_too_deep_are_refused_where_they_arrive() {
    // yrs deletes nested types recursively: elements nested some 20,000 deep, then deleted,
    // overflow the stack and abort the node. A writer's node, modified, publishes elements
    // nested past the bound; the owner refuses them (counted) and goes on.
    let d = dirs(1);
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("deep").await.unwrap();
    let ticket = Ticket::decode(&a.ticket(&doc.id).await.unwrap()).unwrap();
    let cancel = CancellationToken::new();
    let (evil, key) = bare_net_keyed_drained(&cancel).await;
    evil.dial(ticket.peer, ticket.addrs.clone()).await.unwrap();
    evil.subscribe(ticket.doc.topic_name()).await;
    // A writer: admitted with the ticket, its Yjs client claimed, its roster heard.
    const CLIENT: u64 = 4242;
    let mine = Roster {
        certs: vec![
            ticket.invitation_cert().unwrap(),
            ticket.admit(key_of(&evil.peer_id()).unwrap()).unwrap(),
            peerdoc::core::access::Cert::claim(ticket.doc, CLIENT, &key),
        ],
        ..Roster::default()
    };
    let topic = ticket.doc.topic();
    evil.request(
        ticket.peer,
        members::request(&ticket.keyring(), &topic, mine),
    )
    .await
    .unwrap();
    let deep = nested_elements(CLIENT, peerdoc::core::update_check::MAX_TYPE_DEPTH + 50);
    let before = refused(&a, "gossip", "malformed");
    wait_until("A refuses the deep elements", async || {
        let sealed = ticket.keyring().seal(
            &topic,
            Purpose::Gossip,
            &YMessage::Update(deep.clone()).encode(),
        );
        let signed = peerdoc::core::sync::gossip::sign(&key, &topic, &sealed);
        let _ = evil.publish(ticket.doc.topic_name(), signed).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        refused(&a, "gossip", "malformed") > before
    })
    .await;
    // Elements nested within the bound are an edit like any other.
    let shallow = nested_elements(CLIENT + 1, 3);
    let mut check = Document::new();
    check.apply(&shallow).unwrap();
    a.write(&doc.id, "still here\n".into(), false)
        .await
        .unwrap();
    assert_eq!(a.text(&doc.id).await.unwrap(), "still here\n");
    cancel.cancel();
    a.shutdown().await;
}
