//! A hostile peer on the document's topic and on the sync protocol cannot crash a node or put
//! a byte into the document.

use std::time::Duration;

use super::common::*;
use peerdoc::core::doc::Document;
use peerdoc::core::envelope::{DocKey, Keyring, Purpose};
use peerdoc::core::sync::{RequestBody, SyncRequest, SyncResponse, YMessage};
use peerdoc::core::ticket::Ticket;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_wrongly_keyed_payloads_are_dropped() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = a.create_doc("target").await.unwrap();
    a.write(&doc.id, "honest\n".into(), false).await.unwrap();
    let ticket = Ticket::decode(&a.ticket(&doc.id).await.unwrap()).unwrap();
    b.join(&ticket.encode(), None).await.unwrap();

    // The attacker knows the doc id (so the topic) and A's address, but not the key.
    let cancel = CancellationToken::new();
    let (evil, evil_key) = bare_net_keyed_drained(&cancel).await;
    evil.dial(ticket.peer, ticket.addrs.clone()).await.unwrap();
    let topic = ticket.doc.topic();
    // Signed by the attacker's own key, so the signature check passes and what follows it
    // (the envelope, the update) is what refuses the attack.
    let sign = |sealed: Vec<u8>| peerdoc::core::sync::gossip::sign(&evil_key, &topic, &sealed);
    evil.subscribe(ticket.doc.topic_name()).await;
    // Wait until A knows the attacker shares the topic, so every attack below really reaches A.
    let attacker = evil.peer_id().to_string();
    wait_until("A sees the attacker subscribe", async || {
        a.status().await.unwrap().docs[0]
            .peers
            .iter()
            .any(|p| p.peer.to_string() == attacker)
    })
    .await;

    let wrong_key = Keyring::from(DocKey::random());
    // Sync protocol first (the invalid gossip below gets the attacker banned): garbage, wrong
    // key, unknown doc, bogus continuation.
    let requests: Vec<Vec<u8>> = vec![
        vec![],
        vec![1; 10],
        vec![7; 5000],
        SyncRequest {
            topic,
            sealed: vec![1; 64],
        }
        .encode(),
        SyncRequest {
            topic,
            sealed: wrong_key.seal(
                &topic,
                Purpose::SyncRequest,
                &RequestBody::Start {
                    sv: vec![0],
                    digest: [0; 32],
                }
                .encode(),
            ),
        }
        .encode(),
        SyncRequest {
            topic,
            sealed: ticket
                .keyring()
                .seal(&topic, Purpose::SyncRequest, &[5, 5, 5]),
        }
        .encode(),
        SyncRequest {
            topic,
            sealed: ticket.keyring().seal(
                &topic,
                Purpose::SyncRequest,
                &RequestBody::Continue {
                    transfer: 12345,
                    offset: 1 << 40,
                }
                .encode(),
            ),
        }
        .encode(),
    ];
    let mut answers = Vec::new();
    for req in requests {
        if let Ok(bytes) = evil.request(ticket.peer, req).await {
            answers.push(SyncResponse::decode(&bytes).unwrap());
        }
    }
    assert!(
        answers.contains(&SyncResponse::BadRequest),
        "garbage is answered with BadRequest: {answers:?}"
    );
    // A continuation from a key holder that is no member gets records only, never a chunk.
    assert!(
        answers
            .iter()
            .any(|r| matches!(r, SyncResponse::Records(_))),
        "{answers:?}"
    );
    assert!(
        answers.contains(&SyncResponse::UnknownDoc),
        "a wrong key looks like an unknown document: {answers:?}"
    );
    assert!(
        !answers.iter().any(|r| matches!(r, SyncResponse::Chunk(_))),
        "no document data for a wrong key: {answers:?}"
    );

    let mut injected = Document::new();
    let evil_update = injected.append_text("EVIL").unwrap();
    let mut attacks: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 100],
        b"\x01garbage that looks versioned".to_vec(),
        sign(wrong_key.seal(
            &topic,
            Purpose::Gossip,
            &YMessage::Update(evil_update.clone()).encode(),
        )),
        // Correctly keyed for another purpose (replayed context) is refused too.
        sign(ticket.keyring().seal(
            &topic,
            Purpose::SyncResponse,
            &YMessage::Update(evil_update.clone()).encode(),
        )),
    ];
    // Even a key holder gone bad cannot inject undecodable updates.
    attacks.push(sign(ticket.keyring().seal(
        &topic,
        Purpose::Gossip,
        &YMessage::Update(vec![9; 40]).encode(),
    )));
    attacks.push(sign(ticket.keyring().seal(
        &topic,
        Purpose::Gossip,
        &[0xde, 0xad, 0xbe, 0xef],
    )));
    for (i, payload) in attacks.into_iter().enumerate() {
        // Vary the bytes so gossipsub's duplicate filter does not hide any attack.
        let mut payload = payload;
        if payload.is_empty() {
            payload.push(i as u8);
        }
        if let Err(e) = evil.publish(ticket.doc.topic_name(), payload).await {
            // Three invalid messages graylist the attacker, and A soon disconnects it.
            assert!(i >= 3, "attack {i} was not sent: {e}");
            break;
        }
    }

    // The honest nodes keep syncing; no garbage reached the document.
    b.write(&doc.id, "from b after the attack\n".into(), true)
        .await
        .unwrap();
    let text = wait_converged(&[&a, &b], &doc.id, |t| t.contains("after the attack")).await;
    assert_eq!(text, "honest\nfrom b after the attack\n");
    assert!(a.status().await.is_ok(), "A is alive");
    cancel.cancel();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninvited_subscriber_receives_only_ciphertext() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = a.create_doc("secret").await.unwrap();
    let ticket = Ticket::decode(&a.ticket(&doc.id).await.unwrap()).unwrap();
    b.join(&ticket.encode(), None).await.unwrap();

    // The stranger knows the topic and both members' addresses, not the key.
    let cancel = CancellationToken::new();
    let (stranger, mut events) = bare_net(&cancel).await;
    let received = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let mut messages = 0;
        while let Some(event) = events.recv().await {
            if let peerdoc::testing::NetEvent::Gossip { data, .. } = event {
                messages += 1;
                bytes.push(data);
            }
        }
        (messages, bytes)
    });
    stranger
        .dial(ticket.peer, ticket.addrs.clone())
        .await
        .unwrap();
    stranger
        .dial(b.peer_id(), vec![dial_addr(&b).await])
        .await
        .unwrap();
    stranger.subscribe(ticket.doc.topic_name()).await;
    let stranger_id = stranger.peer_id().to_string();
    for node in [&a, &b] {
        wait_until("the members see the stranger subscribe", async || {
            node.status().await.unwrap().docs[0]
                .peers
                .iter()
                .any(|p| p.peer.to_string() == stranger_id)
        })
        .await;
    }
    // Let gossipsub put the stranger into the members' meshes.
    tokio::time::sleep(Duration::from_secs(2)).await;

    const SECRET: &str = "the launch code is 0000";
    for i in 0..20 {
        let writer = if i % 2 == 0 { &a } else { &b };
        writer
            .write(&doc.id, format!("{SECRET} #{i}\n"), true)
            .await
            .unwrap();
    }
    wait_converged(&[&a, &b], &doc.id, |t| t.contains(&format!("{SECRET} #19"))).await;
    // A sync request with the right topic but no key gets nothing either.
    let request = SyncRequest {
        topic: ticket.doc.topic(),
        sealed: Keyring::from(DocKey::random()).seal(
            &ticket.doc.topic(),
            Purpose::SyncRequest,
            &RequestBody::Start {
                sv: vec![0],
                digest: [0; 32],
            }
            .encode(),
        ),
    };
    let before = refused_sync(&a, "wrong_key");
    let answer = stranger
        .request(ticket.peer, request.encode())
        .await
        .unwrap();
    assert!(
        refused_sync(&a, "wrong_key") > before,
        "the refusal is counted"
    );
    // Answered exactly as a request for a topic A does not hold: nothing tells the stranger
    // which documents A keeps.
    let unknown = SyncRequest {
        topic: peerdoc::DocId::random().topic(),
        ..request
    };
    let unknown = stranger
        .request(ticket.peer, unknown.encode())
        .await
        .unwrap();
    assert_eq!(answer, unknown);
    assert_eq!(
        SyncResponse::decode(&answer).unwrap(),
        SyncResponse::UnknownDoc
    );

    cancel.cancel();
    let (messages, bytes) = received.await.unwrap();
    assert!(
        messages >= 10,
        "the stranger was in the gossip mesh: got {messages} messages"
    );
    let needle = &SECRET.as_bytes()[..12];
    for data in bytes.iter().chain([&answer]) {
        assert!(
            !data.windows(needle.len()).any(|w| w == needle),
            "plaintext leaked to the stranger"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// How many sync requests `node` refused for `reason`.
fn refused_sync(node: &peerdoc::Node, reason: &str) -> f64 {
    metric_value(
        &node.metrics_text(),
        &format!("peerdoc_access_refused_total{{what=\"sync\",reason=\"{reason}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_never_shared_is_announced_nowhere() {
    use peerdoc::testing::NetEvent;
    let d = dirs(1);
    let a = start(&d.paths[0]).await;
    let private = a.create_doc("diary").await.unwrap();
    let shared = a.create_doc("minutes").await.unwrap();
    a.share(&shared.id, true).await.unwrap();
    let topic_of = |id: &peerdoc::DocId| id.topic_name();

    // A stranger connects: A tells it the topics it is subscribed to.
    let cancel = CancellationToken::new();
    let (stranger, mut events) = bare_net(&cancel).await;
    stranger
        .dial(a.peer_id(), vec![dial_addr(&a).await])
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut wait_for = async |topic: String| {
        tokio::time::timeout(WAIT, async {
            while let Some(event) = events.recv().await {
                if let NetEvent::Subscribed { peer, topic: t } = event {
                    assert_eq!(peer, a.peer_id());
                    seen.push(t.clone());
                    if t == topic {
                        return seen.clone();
                    }
                }
            }
            panic!("the stranger's events ended")
        })
        .await
        .unwrap_or_else(|_| panic!("A never announced {topic}"))
    };
    wait_for(topic_of(&shared.id)).await;
    // A later subscription (a document shared now) arrives after everything A announced on
    // connecting: by then the stranger has heard every topic A was subscribed to.
    let later = a.create_doc("later").await.unwrap();
    a.share(&later.id, false).await.unwrap();
    let heard = wait_for(topic_of(&later.id)).await;
    assert!(
        !heard.contains(&topic_of(&private.id)),
        "a document never shared was announced: {heard:?}"
    );
    // Sharing it announces it, at once.
    a.share(&private.id, false).await.unwrap();
    wait_for(topic_of(&private.id)).await;
    cancel.cancel();
    a.shutdown().await;
}
