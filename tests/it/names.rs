//! Display names (issue 22): a node's name, signed by it, reaches the other members through
//! member exchanges, survives restarts, is shown with the short peer id where two members share
//! it, and a stranger's name record is refused where it arrives.

use super::common::*;
use peerdoc::core::access::NameRecord;
use peerdoc::core::sync::members::{self, Roster};
use peerdoc::core::ticket::Ticket;
use peerdoc::{DocId, Error, Node};
use tokio_util::sync::CancellationToken;

/// `node`'s label for each member of `doc`, by peer id.
async fn labels(node: &Node, doc: &DocId) -> Vec<(String, String)> {
    node.members(doc)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.peer.to_string(), m.label))
        .collect()
}

async fn wait_label(node: &Node, doc: &DocId, of: &Node, label: &str) {
    let peer = of.peer_id().to_string();
    wait_until(format!("{label:?} shown for {peer}"), async || {
        labels(node, doc)
            .await
            .iter()
            .any(|(p, l)| *p == peer && l == label)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_reach_every_member_signed_and_survive_a_restart() {
    let d = dirs(3);
    let (a, b, c, doc) = owner_and_two_writers(&d, "notes", "hello").await;
    // No name yet: members are shown by their short peer id.
    let short = peerdoc::core::access::short_peer(&a.peer_id().to_string());
    wait_label(&c, &doc.id, &a, &short).await;

    assert_eq!(a.set_name("  Ana  ").await.unwrap(), "Ana");
    assert_eq!(a.name().as_deref(), Some("Ana"));
    b.set_name("Bo").await.unwrap();
    wait_label(&c, &doc.id, &a, "Ana").await;
    wait_label(&c, &doc.id, &b, "Bo").await;
    wait_label(&a, &doc.id, &b, "Bo").await;

    // Two members with one name: each is shown with its short peer id beside it.
    b.set_name("ana").await.unwrap();
    let b_short = peerdoc::core::access::short_peer(&b.peer_id().to_string());
    wait_label(&c, &doc.id, &b, &format!("ana ({b_short})")).await;
    wait_label(&c, &doc.id, &a, &format!("Ana ({short})")).await;

    // Bad names are refused and change nothing.
    assert!(matches!(
        b.set_name("a\u{202e}b").await,
        Err(Error::DisplayName(_))
    ));
    assert!(matches!(
        b.set_name("   ").await,
        Err(Error::DisplayName(_))
    ));
    assert_eq!(b.name().as_deref(), Some("ana"));

    // C keeps the names it learned: with A and B gone, they come from its own store.
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
    let c = start(&d.paths[2]).await;
    let shown = labels(&c, &doc.id).await;
    assert!(
        shown.iter().any(|(_, l)| l.starts_with("Ana ("))
            && shown.iter().any(|(_, l)| l.starts_with("ana (")),
        "{shown:?}"
    );
    c.shutdown().await;

    // A restarted node keeps its own name.
    let a = start(&d.paths[0]).await;
    assert_eq!(a.name().as_deref(), Some("Ana"));
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_in_the_config_file_applies_and_the_api_cannot_change_it() {
    let d = dirs(1);
    let mut config = test_config(&d.paths[0], 0);
    config.name = Some("Cy".into());
    let node = start_with(config).await;
    assert_eq!(node.name().as_deref(), Some("Cy"));
    assert!(matches!(
        node.set_name("Other").await,
        Err(Error::NameInConfig(_))
    ));
    assert_eq!(node.name().as_deref(), Some("Cy"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_name_record_arrives_and_is_refused() {
    let d = dirs(1);
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("notes").await.unwrap();
    a.set_name("Ana").await.unwrap();
    let ticket = Ticket::decode(&a.ticket(&doc.id).await.unwrap()).unwrap();

    // A stranger holding the ticket, never admitted, tells A it is called "Ana" too.
    let cancel = CancellationToken::new();
    let (stranger, identity) = bare_net_keyed_drained(&cancel).await;
    stranger
        .dial(ticket.peer, ticket.addrs.clone())
        .await
        .unwrap();
    let series = "peerdoc_access_refused_total{what=\"name\",reason=\"not_member\"}";
    let before = metric_value(&a.metrics_text(), series);
    let mine = Roster {
        names: vec![NameRecord::sign("Ana", 1, &identity).unwrap()],
        ..Roster::default()
    };
    let topic = ticket.doc.topic();
    stranger
        .request(
            ticket.peer,
            members::request(&ticket.keyring(), &topic, mine),
        )
        .await
        .unwrap();
    wait_until("the stranger's name refused", async || {
        metric_value(&a.metrics_text(), series) > before
    })
    .await;
    let shown = labels(&a, &doc.id).await;
    assert_eq!(shown.len(), 1, "only the owner is a member: {shown:?}");
    assert_eq!(shown[0].1, "Ana");
    cancel.cancel();
    a.shutdown().await;
}
