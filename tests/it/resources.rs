//! Bounded resources of a long-running daemon, measured as an operator would (the process's
//! RSS): idle documents are unloaded and their memory returns, editor sessions give back what
//! they used, and a restart does not load what nobody uses.
//!
//! The reference "empty node" is the same daemon before the workload, warmed up by one round of
//! it (one document written and unloaded, or one editor session): what is paid once per process
//! (thread stacks grown, code paths initialised) is not memory the workload kept.

use super::daemon::{signal, Daemon};
use std::time::Duration;

/// Documents and their size in the unloading test.
const DOCS: usize = 300;
const DOC_BYTES: usize = 100_000;
/// How far above an empty node's RSS an idle one may stay.
const RSS_SLACK: f64 = 1.2;
/// How long memory may take to come back (unload checks, allocator purges); a deadline, not a
/// speed requirement.
const SETTLE: Duration = Duration::from_secs(90);

/// Resident set size of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The RSS of an idle daemon once it has settled (the lowest of a few samples).
fn settled_rss(pid: u32) -> u64 {
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(400));
            rss(pid)
        })
        .min()
        .unwrap()
}

/// Waits until the daemon's RSS is within [`RSS_SLACK`] of `empty`; fails with the figures.
fn wait_rss_near(pid: u32, empty: u64, what: &str) {
    let limit = (empty as f64 * RSS_SLACK) as u64;
    let start = std::time::Instant::now();
    let mut last = rss(pid);
    while last > limit {
        assert!(
            start.elapsed() < SETTLE,
            "RSS did not return near an empty node's after {what}: {:.1} MB, empty node {:.1} MB \
             (limit {:.1} MB)",
            mb(last),
            mb(empty),
            mb(limit)
        );
        std::thread::sleep(Duration::from_millis(500));
        last = rss(pid);
    }
    eprintln!(
        "{what}: RSS {:.1} MB, empty node {:.1} MB (limit {:.1} MB)",
        mb(last),
        mb(empty),
        mb(limit)
    );
}

/// Text of about `len` bytes, different per `seed`.
fn text(seed: usize, len: usize) -> String {
    let mut out = String::with_capacity(len + 64);
    let mut i = 0;
    while out.len() < len {
        out.push_str(&format!("doc {seed} line {i}: the quick brown fox jumps\n"));
        i += 1;
    }
    out
}

#[test]
#[ignore = "tier 2: measures memory, minutes long (scripts/test.sh runs it)"]
fn idle_documents_are_unloaded_memory_returns_and_a_restart_loads_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    // Long enough that most documents are still loaded when the last is written (so the peak
    // shows what they cost), short enough for the test.
    let daemon = Daemon::start_with(&data, &["--unload-after", "20"]);
    let pid = daemon.child.id();
    let api = format!("http://{}", daemon.addr());
    let authorization = daemon.bearer();
    let write_doc = |i: usize| {
        let created: serde_json::Value = ureq::post(&format!("{api}/api/docs"))
            .set("Authorization", &authorization)
            .send_json(serde_json::json!({ "name": format!("doc-{i}"), "kind": "plain" }))
            .unwrap()
            .into_json()
            .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        ureq::put(&format!("{api}/api/docs/{id}/text"))
            .set("Authorization", &authorization)
            .send_string(&text(i, DOC_BYTES))
            .unwrap();
    };
    // Warm-up: one document written, then unloaded.
    write_doc(DOCS);
    std::thread::sleep(Duration::from_secs(25));
    let empty = settled_rss(pid);
    let mut peak = 0;
    for i in 0..DOCS {
        write_doc(i);
        peak = peak.max(rss(pid));
    }
    eprintln!(
        "{DOCS} documents of {DOC_BYTES} bytes written: peak RSS {:.1} MB (empty node {:.1} MB)",
        mb(peak),
        mb(empty)
    );
    // The measurement means something only if the documents cost memory while loaded: at
    // least a third of their text at once.
    assert!(
        peak > empty + (DOCS * DOC_BYTES / 3) as u64,
        "loading {DOCS} documents should show in RSS: peak {:.1} MB vs empty {:.1} MB",
        mb(peak),
        mb(empty)
    );
    wait_rss_near(pid, empty, "the documents went idle");

    // Opening one again works.
    assert_eq!(daemon.ok(&["cat", "doc-7"], None), text(7, DOC_BYTES));

    // A restart opens documents lazily: nothing is loaded until used.
    daemon.stop();
    let daemon = Daemon::start_with(&data, &["--unload-after", "20"]);
    let after_restart = settled_rss(daemon.child.id());
    eprintln!("after a restart: RSS {:.1} MB", mb(after_restart));
    assert!(
        (after_restart as f64) <= empty as f64 * RSS_SLACK,
        "a restart loads no document: {:.1} MB vs an empty node's {:.1} MB",
        mb(after_restart),
        mb(empty)
    );
    assert_eq!(daemon.ok(&["cat", "doc-299"], None), text(299, DOC_BYTES));
    daemon.stop();
}

#[test]
#[ignore = "tier 2: measures memory, minutes long (scripts/test.sh runs it)"]
fn memory_used_by_editor_sessions_comes_back_when_they_close() {
    let root = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(&root.path().join("node"), &["--unload-after", "2"]);
    let pid = daemon.child.id();
    daemon.ok(&["new", "notes", "--plain"], None);
    daemon.ok(&["write", "notes"], Some(&text(0, DOC_BYTES)));
    let addr = daemon.addr();
    let id = super::daemon::peerdoc_id(&daemon.data, "notes");
    // The session's URL, with the token as the editor page's would send it.
    let url = format!(
        "ws://{addr}/ws/{id}?token={}",
        &daemon.bearer()["Bearer ".len()..]
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Warm-up: one session, then the document unloads.
    runtime.block_on(sessions(&url, 1));
    std::thread::sleep(Duration::from_secs(4));
    let empty = settled_rss(pid);
    let mut peak = 0;
    // 500 sessions, 50 at a time: each syncs the whole document, then closes.
    for _ in 0..10 {
        runtime.block_on(sessions(&url, 50));
        peak = peak.max(rss(pid));
    }
    eprintln!(
        "500 editor sessions: peak RSS {:.1} MB (empty node {:.1} MB)",
        mb(peak),
        mb(empty)
    );
    wait_rss_near(pid, empty, "500 editor sessions closed");
    daemon.stop();
}

/// `count` editor sessions at once: each syncs the whole document, then closes.
async fn sessions(url: &str, count: usize) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let sessions = (0..count).map(|_| {
        let url = url.to_string();
        async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            // SyncStep1 with an empty state vector: send me everything.
            socket
                .send(Message::Binary(vec![0, 0, 1, 0].into()))
                .await
                .unwrap();
            loop {
                match socket.next().await {
                    // SyncStep2: the whole document.
                    Some(Ok(Message::Binary(b))) if b.starts_with(&[0, 1]) => break,
                    Some(Ok(_)) => continue,
                    other => panic!("expected the document: {other:?}"),
                }
            }
            socket.close(None).await.unwrap();
        }
    });
    futures::future::join_all(sessions).await;
}

/// A peer that stops reading (here: a stopped process, whose socket fills up) cannot make a
/// node buffer without bound: what gossip queues for it is capped (gossipsub's per-peer send
/// queue), and the peer catches up by anti-entropy once it reads again.
#[test]
#[ignore = "tier 2: measures memory, minutes long (scripts/test.sh runs it)"]
fn a_stalled_peer_does_not_make_a_node_buffer_without_bound() {
    const EDITS: usize = 800;
    const EDIT_BYTES: usize = 40_000;
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(&root.path().join("a"));
    let b = Daemon::start(&root.path().join("b"));
    a.ok(&["new", "s", "--plain"], None);
    let ticket = a.ok(&["share", "s"], None);
    b.ok(&["join", ticket.trim()], None);
    let api = format!("http://{}", a.addr());
    let id = super::daemon::peerdoc_id(&a.data, "s");
    let authorization = a.bearer();
    // Each write empties the document and fills it again (two trivial diffs): every write
    // gossips EDIT_BYTES. The document keeps what is deleted (history), so it grows by as much:
    // that growth is the document's, measured by its stored size and not counted as buffering.
    let fill = |i: usize| {
        char::from(b'a' + (i % 26) as u8)
            .to_string()
            .repeat(EDIT_BYTES)
    };
    let write = |i: usize| {
        for text in [String::new(), fill(i)] {
            // Emptying it is on purpose here.
            ureq::put(&format!("{api}/api/docs/{id}/text?allow_empty=true"))
                .set("Authorization", &authorization)
                .send_string(&text)
                .unwrap();
        }
    };
    for i in 0..20 {
        write(i);
    }
    super::common::wait_until_blocking("B has A's writes", || {
        b.ok(&["cat", "s"], None) == fill(19)
    });
    let pid = a.child.id();
    let before = settled_rss(pid);
    let stored = || -> u64 {
        let info: serde_json::Value = ureq::get(&format!("{api}/api/docs/{id}"))
            .set("Authorization", &authorization)
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        info["size"].as_u64().unwrap()
    };
    let stored_before = stored();

    signal(b.child.id(), "-STOP");
    let mut peak = 0;
    for i in 20..20 + EDITS {
        write(i);
        peak = peak.max(rss(pid));
    }
    let gossiped = (EDITS * EDIT_BYTES) as u64;
    let grown = stored().saturating_sub(stored_before);
    eprintln!(
        "{:.1} MB gossiped to a stalled peer: RSS {:.1} MB before, peak {:.1} MB; the document grew {:.1} MB",
        mb(gossiped),
        mb(before),
        mb(peak),
        mb(grown)
    );
    // Unbounded (gossipsub's default queue of 5,000), the node holds every message for the
    // stalled peer: measured +44 MB for 32 MB gossiped (the document itself then stayed small).
    // Bounded, at most 128 messages wait (5 MB here), plus gossip's history of the last few
    // seconds: measured +15 MB; with history kept, +33 MB of which the document is +32 MB.
    assert!(
        peak < before + grown + gossiped * 3 / 4,
        "A buffered for the stalled peer: RSS {:.1} MB before, peak {:.1} MB, {:.1} MB gossiped, the document grew {:.1} MB",
        mb(before),
        mb(peak),
        mb(gossiped),
        mb(grown)
    );

    signal(b.child.id(), "-CONT");
    let last = fill(20 + EDITS - 1);
    super::common::wait_until_blocking("B catches up after it reads again", || {
        b.ok(&["cat", "s"], None) == last
    });
    a.stop();
    b.stop();
}
