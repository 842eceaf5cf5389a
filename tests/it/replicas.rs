//! Holders (issue 23): an always-on node keeps a document sealed for its members, so members
//! that are never online together still meet, and the holder never reads a byte of it. What it
//! refuses (a stranger's write, a removed member's read) is counted where it arrives.

use super::common::*;
use peerdoc::core::access::key_of;
use peerdoc::core::doc::DocId;
use peerdoc::core::envelope::Purpose;
use peerdoc::core::hold::parts::split;
use peerdoc::core::hold::wire::HoldBody;
use peerdoc::core::hold::{Entry, EntryKind, HoldRequest, HoldResponse, Refusal};
use peerdoc::{Config, Error, Node, ReplicaLimits};
use tokio_util::sync::CancellationToken;

/// Words no peerdoc byte contains by chance: found in a holder's files, they would be a leak.
const MARKER: &str = "plaintext-marker-q7xz";

fn holder_config(dir: &std::path::Path, port: u16) -> Config {
    let mut config = test_config(dir, port);
    config.replica = Some(ReplicaLimits::default());
    config
}

/// A bare network node with identity `who`, connected to `holder`.
async fn connected_as(
    cancel: &CancellationToken,
    who: libp2p::identity::ed25519::Keypair,
    holder: &Node,
) -> peerdoc::testing::Net {
    let (net, mut events) = bare_net_as(cancel, who).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    net.dial(holder.peer_id(), vec![dial_addr(holder).await])
        .await
        .unwrap();
    net
}

/// A Fetch from offset `from` sent straight to `holder`; its answer.
async fn raw_fetch(
    net: &peerdoc::testing::Net,
    holder: &Node,
    doc: &DocId,
    owner: [u8; 32],
    from: u64,
) -> HoldResponse {
    let request = HoldRequest {
        topic: doc.topic(),
        owner,
        body: HoldBody::Fetch { from },
    };
    let bytes = net
        .request(holder.peer_id(), request.encode())
        .await
        .unwrap();
    HoldResponse::decode(&bytes).unwrap()
}

fn refused(node: &Node, reason: &str) -> f64 {
    metric_value(
        &node.metrics_text(),
        &format!("peerdoc_access_refused_total{{what=\"held\",reason=\"{reason}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_never_online_together_meet_through_a_holder_that_cannot_read() {
    let d = dirs(3);
    let (a_dir, b_dir, r_dir) = (&d.paths[0], &d.paths[1], &d.paths[2]);
    let r = start_with(holder_config(r_dir, 0)).await;
    let r_port = tcp_port(&r).await;
    let a = start(a_dir).await;
    let doc = a.create_doc("notes").await.unwrap();
    a.write(&doc.id, format!("{MARKER} start"), false)
        .await
        .unwrap();
    let b = start(b_dir).await;
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();

    // A asks R to hold the document; B hears of it while both are online.
    let holder = a
        .replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    assert!(holder.holds && holder.bytes > 0, "{holder:?}");
    wait_until("B has exchanged with the holder", async || {
        b.replicas(&doc.id)
            .await
            .unwrap()
            .iter()
            .any(|h| h.peer == r.peer_id() && h.reached.is_some())
    })
    .await;
    b.shutdown().await;

    // From here on, A and B are never online at the same time.
    let mut r = r;
    let mut online = a;
    let mut expected = format!("{MARKER} start");
    let held_entries = async |r: &Node| r.held().await.unwrap()[0].entries;
    let mut entries = held_entries(&r).await;
    for round in 0..10 {
        let (writer_dir, name) = if round % 2 == 0 {
            (a_dir, "a")
        } else {
            (b_dir, "b")
        };
        if round > 0 {
            online = start(writer_dir).await;
        }
        // The node coming online gets what the other wrote while it was away.
        wait_until(
            format!("round {round}: {name} has {expected:?}"),
            async || online.text(&doc.id).await.unwrap() == expected,
        )
        .await;
        let line = format!(" {name}{round}");
        online.write(&doc.id, line.clone(), true).await.unwrap();
        expected.push_str(&line);
        online.shutdown().await;
        // The stop itself carried the line to the holder: nothing else is online to.
        let uploaded = metric_value(
            &online.metrics_text(),
            "peerdoc_holder_uploads_at_stop_total{result=\"uploaded\"}",
        );
        assert_eq!(
            uploaded, 1.0,
            "round {round}: {name}'s stop uploaded nothing"
        );
        let now = held_entries(&r).await;
        assert!(now > entries, "round {round}: {entries} → {now} entries");
        entries = now;
        if round == 5 {
            // The holder restarts (same address): it loses nothing.
            r.shutdown().await;
            r = start_with(holder_config(r_dir, r_port)).await;
        }
    }
    let a = start(a_dir).await;
    let b = start(b_dir).await;
    wait_converged(&[&a, &b], &doc.id, |t| t == expected).await;

    // The holder keeps it sealed: it lists it, refuses to read it, and none of its files
    // hold a byte of the text.
    let held = r.held().await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].doc, doc.id);
    assert!(held[0].entries >= 10, "{held:?}");
    assert!(matches!(r.text(&doc.id).await, Err(Error::HeldSealed(_))));
    let short = &doc.id.to_string()[..8];
    assert!(matches!(r.text(short).await, Err(Error::HeldSealed(_))));
    a.shutdown().await;
    b.shutdown().await;

    // What it answers a member holds none either.
    let cancel = CancellationToken::new();
    let owner = key_of(&a.peer_id()).unwrap();
    let as_b = connected_as(&cancel, identity_of(b_dir), &r).await;
    let mut answers = Vec::new();
    let answer = raw_fetch(&as_b, &r, &doc.id, owner, 0).await;
    let HoldResponse::Entries { state, .. } = &answer else {
        panic!("a member's fetch is answered with entries, not {answer:?}")
    };
    let base = state.base;
    answers.push(answer);
    if base > 0 {
        // Compacted: the snapshot, then the entries after it.
        let request = HoldRequest {
            topic: doc.id.topic(),
            owner,
            body: HoldBody::FetchSnapshot { part: 0 },
        };
        let bytes = as_b.request(r.peer_id(), request.encode()).await.unwrap();
        answers.push(HoldResponse::decode(&bytes).unwrap());
        answers.push(raw_fetch(&as_b, &r, &doc.id, owner, base).await);
    }
    let held: usize = answers
        .iter()
        .map(|a| match a {
            HoldResponse::Entries { entries, .. } => entries.len(),
            HoldResponse::SnapshotPart { .. } => 1,
            other => panic!("unexpected answer {other:?}"),
        })
        .sum();
    assert!(held > 0, "the holder answered nothing");
    for answer in &answers {
        assert!(
            !answer
                .encode()
                .windows(MARKER.len())
                .any(|w| w == MARKER.as_bytes()),
            "the holder's answer holds plaintext"
        );
    }
    r.shutdown().await;
    let leaks = files_containing(r_dir, MARKER.as_bytes());
    assert!(
        leaks.is_empty(),
        "plaintext in the holder's files: {leaks:?}"
    );
    // The check can fail: the members' own files hold the text.
    assert!(!files_containing(a_dir, MARKER.as_bytes()).is_empty());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_refuses_strangers_writes_and_removed_members_reads_and_counts_them() {
    let d = dirs(4);
    let r = start_with(holder_config(&d.paths[2], 0)).await;
    let a = start(&d.paths[0]).await;
    let b = start(&d.paths[1]).await;
    let doc = a.create_doc("plans").await.unwrap();
    a.write(&doc.id, "before".into(), false).await.unwrap();
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    let owner = key_of(&a.peer_id()).unwrap();
    let cancel = CancellationToken::new();

    // A stranger's write arrives and is refused: it is no member.
    let (stranger, mut events, identity) = bare_net_keyed(&cancel).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    stranger
        .dial(r.peer_id(), vec![dial_addr(&r).await])
        .await
        .unwrap();
    let topic = doc.id.topic();
    let sealed = peerdoc::core::envelope::Keyring::from(peerdoc::core::envelope::DocKey([9; 32]))
        .seal(&topic, Purpose::Held, &split(b"junk", 1)[0]);
    let entry = Entry::sign(&topic, EntryKind::Update, sealed, &identity).encode();
    let before = refused(&r, "not_member");
    let request = HoldRequest {
        topic,
        owner,
        body: HoldBody::Append { entry },
    };
    let answer = stranger
        .request(r.peer_id(), request.encode())
        .await
        .unwrap();
    assert_eq!(
        HoldResponse::decode(&answer).unwrap(),
        HoldResponse::Refused(Refusal::NotMember)
    );
    assert_eq!(refused(&r, "not_member"), before + 1.0);

    // B, a member, reads; once the owner removed it, the holder refuses it.
    let b_identity = identity_of(&d.paths[1]);
    b.shutdown().await;
    let as_b = connected_as(&cancel, b_identity.clone(), &r).await;
    assert!(matches!(
        raw_fetch(&as_b, &r, &doc.id, owner, 0).await,
        HoldResponse::Entries { .. }
    ));
    a.revoke(&doc.id, &b.peer_id().to_string(), &[])
        .await
        .unwrap();
    a.write(&doc.id, " after".into(), true).await.unwrap();
    let removed_before = refused(&r, "removed");
    wait_until("the holder refuses the removed member", async || {
        raw_fetch(&as_b, &r, &doc.id, owner, 0).await == HoldResponse::Refused(Refusal::Removed)
    })
    .await;
    assert!(refused(&r, "removed") > removed_before);

    // A node that holds nothing for others says so, and counts it.
    let to_a = connected_as(&cancel, b_identity, &a).await;
    assert_eq!(
        raw_fetch(&to_a, &a, &doc.id, owner, 0).await,
        HoldResponse::Refused(Refusal::NotAHolder)
    );
    assert_eq!(refused(&a, "not_a_holder"), 1.0);

    // The removal began a new key epoch: the owner gave the holder a snapshot sealed in it, so
    // a member joining with a new ticket reads everything, also what was written before.
    wait_until("the holder has a snapshot in the new epoch", async || {
        r.held().await.unwrap()[0].compacted_below > 0
    })
    .await;
    let ticket = a.ticket(&doc.id).await.unwrap();
    assert_eq!(
        peerdoc::core::ticket::Ticket::decode(&ticket)
            .unwrap()
            .epoch,
        1
    );
    a.shutdown().await;
    let c = start(&d.paths[3]).await;
    c.join(&ticket, None).await.unwrap();
    assert_eq!(c.text(&doc.id).await.unwrap(), "before after");
    cancel.cancel();
    c.shutdown().await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_gets_the_whole_document_from_the_holder_while_every_member_is_offline() {
    let d = dirs(3);
    let r = start_with(holder_config(&d.paths[2], 0)).await;
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("handbook").await.unwrap();
    let text: String = (0..200)
        .map(|i| format!("line {i} of the handbook\n"))
        .collect();
    a.write(&doc.id, text.clone(), false).await.unwrap();
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    // The ticket names the holder and where it listens.
    let ticket = a.ticket(&doc.id).await.unwrap();
    let decoded = peerdoc::core::ticket::Ticket::decode(&ticket).unwrap();
    assert_eq!(decoded.holders.len(), 1);
    assert_eq!(decoded.holders[0].0, r.peer_id());
    a.shutdown().await;

    // No member is online: C joins from the holder.
    let c = start(&d.paths[1]).await;
    let joined = c.join(&ticket, None).await.unwrap();
    assert_eq!(c.text(&joined.id).await.unwrap(), text);
    // C is a writer there: its edit reaches the holder, and A gets it when it comes back.
    c.write(&doc.id, "from C\n".into(), true).await.unwrap();
    c.shutdown().await;
    let a = start(&d.paths[0]).await;
    wait_until("A has C's edit, through the holder", async || {
        a.text(&doc.id).await.unwrap().ends_with("from C\n")
    })
    .await;
    a.shutdown().await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_replaces_the_log_under_concurrent_writes_and_history_survives() {
    let d = dirs(4);
    let r = start_with(holder_config(&d.paths[3], 0)).await;
    let a = start(&d.paths[0]).await;
    let b = start(&d.paths[1]).await;
    let doc = a.create_doc("log").await.unwrap();
    a.write(&doc.id, "first draft\n".into(), false)
        .await
        .unwrap();
    let v1 = a.record_version(&doc.id, Some("draft")).await.unwrap();
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    // B writes all along; A writes a line at a time, each kept by the holder as an entry of
    // its own, well past the point where a member compacts.
    let b_writes = tokio::spawn(async move {
        for i in 0..40 {
            b.write(&doc.id, format!("b {i}\n"), true).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        b
    });
    for i in 0..40 {
        let before = r.held().await.unwrap()[0].entries;
        a.write(&doc.id, format!("a {i}\n"), true).await.unwrap();
        if i < 12 {
            wait_until("the holder keeps A's line", async || {
                r.held().await.unwrap()[0].entries > before
            })
            .await;
        }
    }
    let b = b_writes.await.unwrap();
    let text = wait_converged(&[&a, &b], &doc.id, |t| t.lines().count() == 81).await;
    let last = std::sync::Mutex::new(None);
    wait_until(
        format_args!("a member's snapshot replaced the holder's log: {last:?}"),
        async || {
            let held = r.held().await.unwrap().remove(0);
            let done = held.compacted_below > 0;
            *last.lock().unwrap() = Some(held);
            done
        },
    )
    .await;
    // Later writes land after the snapshot, and the holder keeps them.
    a.write(&doc.id, "after the snapshot\n".into(), true)
        .await
        .unwrap();
    let text = format!("{text}after the snapshot\n");
    let ticket = a.ticket(&doc.id).await.unwrap();
    a.shutdown().await;
    b.shutdown().await;

    // A joiner gets everything from the holder alone: the snapshot, then what came after it.
    let c = start(&d.paths[2]).await;
    c.join(&ticket, None).await.unwrap();
    assert_eq!(c.text(&doc.id).await.unwrap(), text);
    let versions = c.versions(&doc.id).await.unwrap();
    assert!(versions.iter().any(|v| v.id == v1), "{versions:?}");
    assert_eq!(
        c.export_at(&doc.id, "draft", peerdoc::Format::Markdown)
            .await
            .unwrap(),
        "first draft\n"
    );
    let held = &r.held().await.unwrap()[0];
    assert!(
        held.compacted_below > 0 && held.entries > held.compacted_below,
        "{held:?}"
    );
    c.shutdown().await;
    r.shutdown().await;
}

/// What `node` says of its holder `holder` of `doc`.
async fn holder_seen(node: &Node, doc: &DocId, holder: &Node) -> peerdoc::HolderInfo {
    node.replicas(doc)
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.peer == holder.peer_id())
        .expect("a holder of the document")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_at_its_limit_refuses_new_data_and_keeps_what_it_acknowledged() {
    let d = dirs(2);
    let mut config = holder_config(&d.paths[1], 0);
    config.replica = Some(ReplicaLimits {
        max_doc_bytes: 64 * 1024,
        ..ReplicaLimits::default()
    });
    let r = start_with(config).await;
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("big").await.unwrap();
    a.write(&doc.id, "small start\n".into(), false)
        .await
        .unwrap();
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    let kept = r.held().await.unwrap()[0].entries;
    let before = refused(&r, "full");
    // Over the holder's limit for one document: refused where it arrives, and said so.
    let big: String = (0..5000)
        .map(|i| format!("line {i} is long enough\n"))
        .collect();
    a.write(&doc.id, big, true).await.unwrap();
    wait_until("the holder refuses the change as full", async || {
        refused(&r, "full") > before
    })
    .await;
    wait_until("the member shows why", async || {
        holder_seen(&a, &doc.id, &r)
            .await
            .error
            .is_some_and(|e| e.contains("full"))
    })
    .await;
    // What it acknowledged before is still there, nothing half-kept after it.
    let held = &r.held().await.unwrap()[0];
    assert_eq!(held.entries, kept, "{held:?}");
    assert!(held.bytes <= 64 * 1024, "{held:?}");
    a.shutdown().await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_holders_are_both_kept_current_and_either_alone_serves_a_joiner() {
    let d = dirs(5);
    let r1 = start_with(holder_config(&d.paths[3], 0)).await;
    let r2 = start_with(holder_config(&d.paths[4], 0)).await;
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("twice").await.unwrap();
    a.write(&doc.id, "one\n".into(), false).await.unwrap();
    for r in [&r1, &r2] {
        a.replicate(&doc.id, &dial_addr(r).await.to_string())
            .await
            .unwrap();
    }
    let ticket = a.ticket(&doc.id).await.unwrap();
    let holders = peerdoc::core::ticket::Ticket::decode(&ticket)
        .unwrap()
        .holders;
    assert_eq!(holders.len(), 2);
    assert!(
        holders.iter().all(|(_, addrs)| !addrs.is_empty()),
        "{holders:?}"
    );
    a.write(&doc.id, "two\n".into(), true).await.unwrap();
    a.shutdown().await;

    // R1 is down: a joiner gets everything from R2 alone.
    let r1_port = tcp_port(&r1).await;
    r1.shutdown().await;
    let b = start(&d.paths[1]).await;
    b.join(&ticket, None).await.unwrap();
    assert_eq!(b.text(&doc.id).await.unwrap(), "one\ntwo\n");
    b.write(&doc.id, "three\n".into(), true).await.unwrap();
    // R1 comes back: B brings it up to date too.
    let r1 = start_with(holder_config(&d.paths[3], r1_port)).await;
    let last = std::sync::Mutex::new(None);
    wait_until(
        format_args!("B reached both holders since its write: {last:?}"),
        async || {
            let one = holder_seen(&b, &doc.id, &r1).await;
            let two = holder_seen(&b, &doc.id, &r2).await;
            let done = one.error.is_none() && one.reached.is_some() && two.reached.is_some();
            *last.lock().unwrap() = Some((one, two));
            done
        },
    )
    .await;
    b.shutdown().await;
    // R2 is down now: another joiner gets everything from R1 alone.
    r2.shutdown().await;
    let c = start(&d.paths[2]).await;
    c.join(&ticket, None).await.unwrap();
    wait_until("C has everything from R1", async || {
        c.text(&doc.id).await.unwrap() == "one\ntwo\nthree\n"
    })
    .await;
    c.shutdown().await;
    r1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tier 2: needs root to mount a small disk (scripts/test.sh runs it)"]
async fn a_holder_with_a_full_disk_refuses_new_data_loses_nothing_and_resumes() {
    let disk = SmallDisk::mount("8m");
    let r_dir = disk.dir.path().join("holder");
    let d = dirs(2);
    let r = start_with(holder_config(&r_dir, 0)).await;
    let r_port = tcp_port(&r).await;
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("diary").await.unwrap();
    a.write(&doc.id, "monday\n".into(), false).await.unwrap();
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    let kept = r.held().await.unwrap()[0].entries;

    let filler = disk.fill();
    let before = refused(&r, "full");
    // Large, so it cannot fit in space SQLite already holds.
    let big = "x".repeat(300_000) + "\n";
    a.write(&doc.id, big.clone(), true).await.unwrap();
    wait_until(
        "the holder refuses the change: its disk is full",
        async || refused(&r, "full") > before,
    )
    .await;
    assert_eq!(r.held().await.unwrap()[0].entries, kept);

    // Space returns: the member's next round is kept, without a restart of either.
    std::fs::remove_file(filler).unwrap();
    a.write(&doc.id, "tuesday\n".into(), true).await.unwrap();
    wait_until(
        "the holder keeps the changes once it has space",
        async || r.held().await.unwrap()[0].entries > kept,
    )
    .await;
    wait_until("the member's last exchange succeeded", async || {
        let seen = holder_seen(&a, &doc.id, &r).await;
        seen.error.is_none() && seen.entries > kept
    })
    .await;
    let ticket = a.ticket(&doc.id).await.unwrap();
    a.shutdown().await;
    // Nothing acknowledged is lost across a restart of the holder.
    r.shutdown().await;
    let r = start_with(holder_config(&r_dir, r_port)).await;
    let b = start(&d.paths[1]).await;
    b.join(&ticket, None).await.unwrap();
    assert_eq!(
        b.text(&doc.id).await.unwrap(),
        format!("monday\n{big}tuesday\n")
    );
    b.shutdown().await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_allows_only_some_nodes_refuses_the_others_and_counts_them() {
    let d = dirs(3);
    let a = start(&d.paths[0]).await;
    let b = start(&d.paths[1]).await;
    let mut config = holder_config(&d.paths[2], 0);
    config.replica = Some(ReplicaLimits {
        allow: vec![a.peer_id().to_string()],
        ..ReplicaLimits::default()
    });
    let r = start_with(config).await;
    let target = dial_addr(&r).await.to_string();
    let theirs = b.create_doc("theirs").await.unwrap();
    let before = refused(&r, "not_allowed");
    let err = b.replicate(&theirs.id, &target).await.unwrap_err();
    assert!(
        matches!(err, Error::HolderRefused(_, Refusal::NotAllowed)),
        "{err}"
    );
    assert_eq!(refused(&r, "not_allowed"), before + 1.0);
    assert!(r.held().await.unwrap().is_empty());
    let ours = a.create_doc("ours").await.unwrap();
    a.replicate(&ours.id, &target).await.unwrap();
    assert_eq!(r.held().await.unwrap().len(), 1);
    for node in [a, b, r] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_let_go_and_asked_again_gets_the_whole_document_again() {
    let d = dirs(3);
    let r = start_with(holder_config(&d.paths[2], 0)).await;
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("again").await.unwrap();
    a.write(&doc.id, "first\n".into(), false).await.unwrap();
    let target = dial_addr(&r).await.to_string();
    a.replicate(&doc.id, &target).await.unwrap();
    assert!(a
        .unreplicate(&doc.id, &r.peer_id().to_string())
        .await
        .unwrap());
    assert!(r.held().await.unwrap().is_empty(), "dropped");
    // Asked again: it starts over (another incarnation), and A uploads everything again, not
    // only what it wrote since.
    a.replicate(&doc.id, &target).await.unwrap();
    a.write(&doc.id, "second\n".into(), true).await.unwrap();
    let ticket = a.ticket(&doc.id).await.unwrap();
    a.shutdown().await;
    let b = start(&d.paths[1]).await;
    b.join(&ticket, None).await.unwrap();
    assert_eq!(b.text(&doc.id).await.unwrap(), "first\nsecond\n");
    b.shutdown().await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_document_stays_unloaded_however_often_its_holder_is_visited() {
    let d = dirs(2);
    let r = start_with(holder_config(&d.paths[1], 0)).await;
    let mut config = test_config(&d.paths[0], 0);
    config.unload_after = std::time::Duration::from_millis(300);
    let a = start_with(config).await;
    let doc = a.create_doc("idle").await.unwrap();
    a.write(&doc.id, "quiet now\n".into(), false).await.unwrap();
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    let loads = || metric_value(&a.metrics_text(), "peerdoc_documents_loaded_total");
    let reached = async || {
        a.replicas(&doc.id).await.unwrap()[0]
            .reached
            .unwrap_or_default()
    };
    // Idle: it unloads, then rounds with the holder go on (the witness: each one's time)
    // without loading it again.
    wait_until("the document unloaded after its last use", async || {
        let before = loads();
        let since = reached().await;
        wait_until("a round with the holder", async || reached().await > since).await;
        loads() == before
    })
    .await;
    let before = loads();
    for _ in 0..2 {
        let since = reached().await;
        wait_until("another round with the holder", async || {
            reached().await > since
        })
        .await;
    }
    assert_eq!(
        loads(),
        before,
        "a round with nothing new loaded the document"
    );
    a.shutdown().await;
    r.shutdown().await;
}
