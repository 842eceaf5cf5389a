//! Two peerdoc nodes embedded in one program, co-editing a document over libp2p on loopback.
//! The owner's node writes; the other follows the document live through a [`Session`], keeps
//! its own yrs replica of it, and answers with an edit of that replica. (Two programs on two
//! machines work the same way: a ticket is all they share.)
//!
//! Run: `cargo run --example embed`

use std::time::Duration;

use anyhow::{bail, Context};
use peerdoc::core::sync::YMessage;
use peerdoc::{Config, Event, Node};
use yrs::updates::decoder::Decode;
use yrs::{GetString, Text, Transact, Update};

/// A node on loopback with its data in `dir` (no LAN discovery, no UPnP).
async fn node(dir: &std::path::Path) -> anyhow::Result<Node> {
    let mut config = Config::new(dir);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    config.mdns = false;
    config.upnp = false;
    Ok(Node::spawn(config).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (a, b) = (node(dir_a.path()).await?, node(dir_b.path()).await?);

    // A creates a document and shares it; B joins with the ticket.
    let created = a.create_doc("notes").await?;
    let doc_a = a.doc(&created.id).await?;
    doc_a.replace_text("hello from A\n".into()).await?;
    b.join(&a.ticket(&created.id).await?, None).await?;
    let doc_b = b.doc(&created.id).await?;

    // B follows the document live, in a yrs replica of its own that starts from B's state.
    let mut session = doc_b.session().await?;
    let replica = yrs::Doc::new();
    let text = replica.get_or_insert_text("content");
    let state = doc_b.diff(vec![0]).await?;
    replica
        .transact_mut()
        .apply_update(Update::decode_v1(&state)?)?;

    // A edits; the change reaches B's session, and B's replica.
    doc_a.append_text("a live edit from A\n".into()).await?;
    while !text.get_string(&replica.transact()).contains("live edit") {
        match tokio::time::timeout(Duration::from_secs(30), session.next()).await {
            Ok(Event::Changed(message)) => {
                if let YMessage::Update(update) = &*message {
                    replica
                        .transact_mut()
                        .apply_update(Update::decode_v1(update)?)?;
                }
            }
            Ok(Event::Lagged) => bail!("fell behind; start over from doc_b.diff"),
            Ok(Event::Closed) => bail!("the document was closed"),
            Ok(_) => {}
            Err(_) => bail!("A's edit did not arrive within 30 s"),
        }
    }
    println!("B sees:\n{}", text.get_string(&replica.transact()));

    // B edits its replica and applies the change through its session: A gets it.
    let update = {
        let mut txn = replica.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, "and B answers\n");
        txn.encode_update_v1()
    };
    session.apply(update).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !doc_a.text().await?.contains("B answers") {
        if tokio::time::Instant::now() > deadline {
            bail!("B's edit did not reach A within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("A sees:\n{}", doc_a.text().await.context("A's text")?);

    session.close().await;
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
