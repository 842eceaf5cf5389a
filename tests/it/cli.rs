//! The `peerdoc` binary as a user runs it: real daemons, the README walkthrough, `kill -9`
//! durability, and one-line errors with non-zero exit codes.

use super::common::{wait_until_blocking, SmallDisk};
use super::daemon::{bearer, peerdoc, peerdoc_id, serve_command, unsafe_sigterm, Daemon, BIN};
use std::path::Path;
use std::process::{Command, Stdio};

/// The data dir holds every document's key and text: only its owner may read it.
fn assert_private(data: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data), 0o700, "{}", data.display());
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        // Folders (attachments') are the owner's alone too.
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    assert!(
        data.join("peerdoc.db-wal").exists(),
        "the WAL was checked too"
    );
}

#[test]
fn readme_walkthrough_between_two_daemons() {
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(&root.path().join("a"));
    let b = Daemon::start(&root.path().join("b"));

    let id = a.ok(&["new", "notes"], None).trim().to_string();
    assert_eq!(id.len(), 32, "new prints the doc id: {id:?}");
    a.ok(&["write", "notes"], Some("hello\n"));
    // Empty input (an empty pipe, or Ctrl-D at once) would erase the document everywhere: it is
    // refused, says how to do it on purpose, and changes nothing.
    let empty = a.run(&["write", "notes"], Some(""));
    assert!(!empty.status.success());
    let said = String::from_utf8_lossy(&empty.stderr);
    assert!(
        said.contains("--allow-empty") && said.lines().count() == 1,
        "{said}"
    );
    assert_eq!(a.ok(&["cat", "notes"], None), "hello\n");
    let ticket = a.ok(&["share", "notes"], None).trim().to_string();
    assert!(ticket.starts_with("peerdoc1"));
    let joined = b.ok(&["join", &ticket], None);
    assert!(joined.contains("notes"), "{joined}");
    assert_eq!(b.ok(&["cat", "notes"], None), "hello\n");

    // Both edit; each edit reaches the other.
    b.ok(&["write", "notes", "--append"], Some("from b\n"));
    a.ok(&["write", &id[..8], "--append"], Some("from a\n"));
    wait_until_blocking("both edits everywhere", || {
        let ta = a.ok(&["cat", &id], None);
        let tb = b.ok(&["cat", "notes"], None);
        ta == tb && ta.contains("from a") && ta.contains("from b")
    });
    let ls = b.ok(&["ls"], None);
    let line = ls.lines().find(|l| l.starts_with(&id)).unwrap_or_default();
    assert!(
        line.contains("notes") && line.contains("writer   rich") && line.contains(" B "),
        "ls shows name, role, kind and size: {ls}"
    );
    let status = a.ok(&["status"], None);
    assert!(status.contains("connected peers: 1"), "{status}");
    // The sync state in words: once each has pulled from the other, both say so.
    for node in [&a, &b] {
        wait_until_blocking("status says the document is up to date", || {
            let status = node.ok(&["status"], None);
            status.contains("notes  up to date with 1 peer")
                && status.contains("up to date (checked")
        });
        let status = node.ok(&["status"], None);
        assert!(!status.contains("1 peers"), "{status}");
    }
    let peers = a.ok(&["peers"], None);
    let b_id = b.ok(&["status", "--json"], None);
    let b_id = serde_json::from_str::<serde_json::Value>(&b_id).unwrap()["peer_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(peers.starts_with(&format!("{b_id}  direct\n")), "{peers}");
    let addrs: Vec<&str> = peers.lines().skip(1).map(str::trim).collect();
    assert!(!addrs.is_empty(), "{peers}");
    let mut once = addrs.clone();
    once.dedup();
    assert_eq!(addrs, once, "each address once, one per line: {peers}");
    assert_private(&a.data);

    // B goes away; A edits; B comes back and catches up.
    b.stop();
    a.ok(&["write", "notes", "--append"], Some("while b was away\n"));
    let b = Daemon::start(&root.path().join("b"));
    wait_until_blocking("b catches up after restart", || {
        b.ok(&["cat", "notes"], None).contains("while b was away")
    });
    a.stop();
    b.stop();
}

#[test]
fn acknowledged_write_survives_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("a");
    let a = Daemon::start(&data);
    a.ok(&["new", "log", "--plain"], None);
    let mut expected = String::new();
    for i in 0..20 {
        let line = format!("entry {i}\n");
        a.ok(&["write", "log", "--append"], Some(&line));
        expected.push_str(&line);
    }
    a.kill9(); // right after the last acknowledged write
    let a = Daemon::start(&data);
    assert_eq!(a.ok(&["cat", "log"], None), expected);
    a.stop();
}

#[test]
fn large_documents_round_trip_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(&root.path().join("a"));
    a.ok(&["new", "big", "--plain"], None);
    // Over 10 MB: more than an HTTP client's default string limit.
    let big: String = (0..400_000)
        .map(|i| format!("line {i:07} of a big file\n"))
        .collect();
    assert!(big.len() > 10 << 20);
    a.ok(&["write", "big"], Some(&big));
    assert!(
        a.ok(&["cat", "big"], None) == big,
        "cat returns the whole text"
    );
    // Past the API's 16 MiB per request: an append goes in parts, a replacement is refused
    // with the way out.
    let bigger = big.repeat(2);
    a.ok(&["write", "big", "--append"], Some(&bigger));
    assert!(a.ok(&["cat", "big"], None) == big.clone() + &bigger);
    let out = a.run(&["write", "big"], Some(&bigger));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("16 MiB") && err.contains("--append"), "{err}");
    assert!(
        a.ok(&["cat", "big"], None) == big.clone() + &bigger,
        "unchanged"
    );
    a.stop();
}

#[test]
fn errors_are_one_line_with_a_hint_and_nonzero_exit() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("none");

    let out = peerdoc(&data, &["ls"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no peerdoc daemon is running") && err.contains("serve"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let a = Daemon::start(&root.path().join("a"));
    // An empty node says so, and how to begin, without a line on standard output.
    let out = a.run(&["ls"], None);
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("peerdoc new NAME"));
    for (args, needle) in [
        (vec!["cat", "missing"], "list documents with `peerdoc ls`"),
        (vec!["join", "peerdoc1garbage"], "bad ticket"),
        (vec!["join", "not-a-ticket"], "not a peerdoc ticket"),
        (vec!["new", ""], "invalid document name"),
        (vec!["new", "5897"], "looks like a document id"),
        (vec!["cat", "e56"], "at least 4 characters"),
        (vec!["cat", "no"], "first 4+ characters of its id"),
    ] {
        let out = a.run(&args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let out = a.run(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    // No arguments, -h and --help describe the program the same way.
    let first_line = |args: &[&str]| {
        let out = std::process::Command::new(super::daemon::BIN)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines().next().unwrap_or_default().to_string()
    };
    let described = first_line(&["--help"]);
    assert!(described.starts_with("peerdoc: "), "{described}");
    assert_eq!(first_line(&[]), described);
    assert_eq!(first_line(&["-h"]), described);
    // A second daemon on a data dir in use, on the same port too: the data dir is named first
    // (the port is the running daemon's).
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&a.data)
        .args(["serve", "--http", &a.addr(), "--no-mdns", "--no-upnp"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("already using"), "{err}");
    assert!(!err.contains("Address already in use"), "{err}");
    a.stop();

    // A port in use: the OS error is said once, and the log has no colour codes in a pipe.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = std::process::Command::new(super::daemon::BIN)
        .arg("--data")
        .arg(root.path().join("busy"))
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--no-mdns",
            "--no-upnp",
        ])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(err.contains("--http"), "{err}");
    assert!(!err.contains('\x1b'), "ANSI codes in a pipe: {err:?}");
    drop(taken);

    // A damaged database: serve refuses to start and says what to do.
    let bad = root.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("peerdoc.db"), vec![0x42; 4096]).unwrap();
    let out = serve_command(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("corrupt") && err.contains("move it aside"),
        "{err}"
    );

    // A bad config file: serve refuses in one line that names the key, and starts nothing.
    let conf = root.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config.toml"),
        "mdns = false\nsync_interval = \"soon\"\n",
    )
    .unwrap();
    let out = serve_command(&conf).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("key `sync_interval`") && err.contains("line 2"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!conf.join("peerdoc.db").exists(), "nothing started");
}

#[test]
fn join_wait_keeps_the_document_and_finishes_when_the_sharer_is_back() {
    let root = tempfile::tempdir().unwrap();
    // Quick retries, so the test does not wait the default 30 s between attempts.
    let conf = root.path().join("fast.toml");
    std::fs::write(&conf, "redial_interval = 1\n").unwrap();
    let conf = conf.to_str().unwrap();
    let a = Daemon::start_with(&root.path().join("a"), &["--config", conf]);
    a.ok(&["new", "notes"], None);
    a.ok(&["write", "notes"], Some("hello\n"));
    let ticket = a.ok(&["share", "notes"], None).trim().to_string();
    // The ticket names A's TCP address: A comes back on it.
    let status = a.ok(&["status"], None);
    let tcp = status
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("/ip4/127.0.0.1/tcp/"))
        .and_then(|l| l.split("/p2p/").next())
        .unwrap()
        .to_string();
    a.stop();

    let b = Daemon::start_with(&root.path().join("b"), &["--config", conf]);
    let out = b.run(&["join", &ticket], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--wait"), "the error offers to wait: {err}");
    assert!(
        err.lines().count() == 1 && err.len() < 400,
        "one short line, not libp2p's dial dump: {err}"
    );
    assert!(
        b.run(&["ls"], None).stdout.is_empty(),
        "a plain join keeps nothing"
    );

    let mut waiting = std::process::Command::new(super::daemon::BIN)
        .arg("--data")
        .arg(&b.data)
        .args(["join", &ticket, "--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_blocking("b lists the document as joining", || {
        String::from_utf8_lossy(&b.run(&["ls"], None).stdout)
            .contains("(waiting for a member to answer)")
    });
    // No text yet: cat says so instead of printing an empty document.
    let out = b.run(&["cat", "notes"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("still joining"));
    // The sharer comes back: the waiting command finishes.
    let a = Daemon::start_with(
        &root.path().join("a"),
        &["--config", conf, "--listen", &tcp],
    );
    wait_until_blocking("join --wait finishes", || {
        waiting.try_wait().unwrap().is_some()
    });
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("joined notes"));
    assert!(out.stderr.is_empty(), "no progress drawn in a pipe");
    assert_eq!(b.ok(&["cat", "notes"], None), "hello\n");
    assert!(!b.ok(&["ls"], None).contains("joining"));
    a.stop();
    b.stop();
}

#[test]
fn the_api_token_can_come_from_a_file() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("token");
    std::fs::write(&file, "sesame-from-a-file\n").unwrap();
    let file = file.to_str().unwrap();
    let a = Daemon::start_with(&root.path().join("a"), &["--http-token-file", file]);
    // The API wants the token; the CLI finds it in the data dir.
    let refused = ureq::get(&format!("http://{}/api/docs", a.addr())).call();
    assert!(
        matches!(refused, Err(ureq::Error::Status(403, _))),
        "{refused:?}"
    );
    let ok = ureq::get(&format!("http://{}/api/docs", a.addr()))
        .set("Authorization", "Bearer sesame-from-a-file")
        .call();
    assert!(ok.is_ok(), "{ok:?}");
    assert!(a.run(&["ls"], None).status.success());
    a.stop();

    // An empty or missing file stops serve with one line.
    let empty = root.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (path, needle) in [
        (empty.to_str().unwrap(), "is empty"),
        ("/nonexistent/t", "cannot read"),
    ] {
        let out = serve_command(&root.path().join("b"))
            .args(["--http-token-file", path])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn serve_prints_the_editor_url_with_a_fresh_token_that_the_cli_finds() {
    use std::io::BufRead;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    let mut child = serve_command(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let url = loop {
        let line = printed
            .recv_timeout(super::common::WAIT)
            .expect("serve prints the editor's URL");
        if let Some(url) = line.trim().strip_prefix("web editor: ") {
            break url.to_string();
        }
    };
    let token = std::fs::read_to_string(data.join("api.token")).unwrap();
    assert_eq!(token.len(), 64, "32 random bytes, hex: {token}");
    let addr = std::fs::read_to_string(data.join("api.addr")).unwrap();
    assert_eq!(url, format!("http://{}/?token={token}", addr.trim()));
    // `status` prints it again; the CLI found the token by itself.
    let status = peerdoc(&data, &["status"], None);
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains(&url));
    // Without it: refused, with a message that says where it is.
    let refused = ureq::get(&format!("http://{}/api/docs", addr.trim())).call();
    let Err(ureq::Error::Status(403, response)) = refused else {
        panic!("expected a 403: {refused:?}");
    };
    let body: serde_json::Value = response.into_json().unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("{}", data.join("api.token").display())),
        "{message}"
    );
    // A browser opening the page without it gets a page that says how to open it, not JSON.
    let refused = ureq::get(&format!("http://{}/", addr.trim()))
        .set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .call();
    let Err(ureq::Error::Status(403, response)) = refused else {
        panic!("expected a 403: {refused:?}");
    };
    assert_eq!(
        response.content_type(),
        "text/html",
        "{:?}",
        response.header("content-type")
    );
    let page = response.into_string().unwrap();
    assert!(
        page.contains("needs its access token")
            && page.contains("/?token=")
            && !page.contains(&token),
        "{page}"
    );
    unsafe_sigterm(child.id());
    assert!(child.wait().unwrap().success());
    assert!(!data.join("api.token").exists(), "removed at shutdown");

    // A new token at each start.
    let again = Daemon::start(&data);
    let next = std::fs::read_to_string(data.join("api.token")).unwrap();
    assert_ne!(next, token);
    assert!(again.run(&["ls"], None).status.success());
    again.stop();
}

#[test]
fn the_config_file_sets_defaults_that_flags_override() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("a");
    std::fs::create_dir_all(&data).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = root.path().join("elsewhere.toml");
    std::fs::write(
        &file,
        format!("http = \"127.0.0.1:{port}\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nmdns = false\nupnp = false\n"),
    )
    .unwrap();
    // The file chooses the HTTP address (no --http flag).
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--config"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_blocking("the daemon starts", || data.join("api.addr").exists());
    let published = std::fs::read_to_string(data.join("api.addr")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(published.trim(), format!("127.0.0.1:{port}"));

    // A flag wins over the file (serve_command passes --http 127.0.0.1:0).
    let _ = std::fs::remove_file(data.join("api.addr"));
    std::fs::copy(&file, data.join("config.toml")).unwrap();
    let daemon = Daemon::start(&data);
    let published = std::fs::read_to_string(data.join("api.addr")).unwrap();
    assert_ne!(published.trim(), format!("127.0.0.1:{port}"));
    daemon.stop();
}

#[test]
#[ignore = "tier 2: needs root to mount a small disk (scripts/test.sh runs it)"]
fn a_full_disk_loses_no_acknowledged_write_and_writes_resume_without_a_restart() {
    let disk = SmallDisk::mount("8m");
    let data = disk.dir.path().join("node");
    let a = Daemon::start(&data);
    a.ok(&["new", "diary", "--plain"], None);
    a.ok(&["write", "diary", "--append"], Some("monday\n"));

    let filler = disk.fill();
    // Refused: a clear error, and the text does not show it (not now, not after a restart).
    let big = "x".repeat(200_000) + "\n";
    let out = a.run(&["write", "diary", "--append"], Some(&big));
    assert!(!out.status.success(), "a write to a full disk must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("full"), "{stderr}");
    assert_eq!(a.ok(&["cat", "diary"], None), "monday\n");

    // An editor's change during the episode is kept (y-websocket has no acknowledgement); the
    // session is closed with 1013 so the editor resyncs.
    let addr = std::fs::read_to_string(data.join("api.addr")).unwrap();
    // (Large, so it cannot fit in space SQLite already holds.)
    let edit = format!("{}from the editor\n", "e".repeat(200_000));
    let code = editor_append(&data, addr.trim(), "diary", &edit);
    assert_eq!(code, 1013);
    assert_eq!(a.ok(&["cat", "diary"], None), format!("monday\n{edit}"));

    // Space returns: the next write stores everything first and is acknowledged, without a
    // restart; all of it survives kill -9.
    std::fs::remove_file(filler).unwrap();
    a.ok(&["write", "diary", "--append"], Some("tuesday\n"));
    let expected = format!("monday\n{edit}tuesday\n");
    assert_eq!(a.ok(&["cat", "diary"], None), expected);
    a.kill9();
    let a = Daemon::start(&data);
    assert_eq!(a.ok(&["cat", "diary"], None), expected);
    a.stop();
}

/// A y-websocket client that syncs `doc`, appends `text`, and returns the close code the node
/// answers with.
fn editor_append(data: &std::path::Path, addr: &str, doc: &str, text: &str) -> u16 {
    use futures::{SinkExt, StreamExt};
    use peerdoc::core::doc::Document;
    use peerdoc::core::sync::YMessage;
    use tokio_tungstenite::tungstenite::Message;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let id = peerdoc_id(data, doc);
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(data, addr, &id))
            .await
            .unwrap();
        let mut client = Document::new();
        let step1 = YMessage::SyncStep1(client.state_vector()).encode();
        socket.send(Message::Binary(step1.into())).await.unwrap();
        loop {
            match socket.next().await {
                Some(Ok(Message::Binary(b))) => {
                    if let Ok(YMessage::SyncStep2(state)) = YMessage::decode(&b) {
                        client.apply(&state).unwrap();
                        break;
                    }
                }
                other => panic!("no sync step 2: {other:?}"),
            }
        }
        let update = client.append_text(text).unwrap();
        socket
            .send(Message::Binary(YMessage::Update(update).encode().into()))
            .await
            .unwrap();
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame: {other:?}"),
            }
        }
    })
}

/// An editor session's request: `ws://ADDR/ws/ID` with the daemon's token.
fn ws_request(
    data: &std::path::Path,
    addr: &str,
    id: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws/{id}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", bearer(data).parse().unwrap());
    request
}

/// 200 `kill -9`s at seeded random moments while a client streams acknowledged appends: after
/// every restart each acknowledged write is there, in order, and the database passes SQLite's
/// integrity check.
#[test]
fn two_hundred_kill_9s_during_a_stream_of_writes_lose_nothing_acknowledged() {
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    let first = Daemon::start(&data);
    let id = first
        .ok(&["new", "stream", "--plain"], None)
        .trim()
        .to_string();
    first.kill9();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261123);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut token = 0u64;
    for round in 0..200 {
        let daemon = Daemon::start(&data);
        let addr = std::fs::read_to_string(data.join("api.addr")).unwrap();
        let url = format!("http://{}/api/docs/{id}/text?append=true", addr.trim());
        let authorization = daemon.bearer();
        // Everything acknowledged so far survived the last kill.
        let text = daemon.ok(&["cat", "stream"], None);
        let expected: String = acknowledged.iter().map(|t| format!("{t}\n")).collect();
        assert!(
            text.starts_with(&expected),
            "round {round}: an acknowledged write is missing"
        );
        let db = rusqlite::Connection::open(data.join("peerdoc.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        drop(db);
        // What the store holds beyond the acknowledged writes are writes whose reply the kill
        // cut off: they count from now on.
        acknowledged = text.lines().map(str::to_string).collect();

        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let start = token;
            std::thread::spawn(move || {
                let mut done = Vec::new();
                let mut next = start;
                while !stop.load(Ordering::Relaxed) {
                    let line = format!("token-{next}");
                    let sent = ureq::put(&url)
                        .set("Authorization", &authorization)
                        .set("Content-Type", "text/plain")
                        .send_string(&format!("{line}\n"));
                    next += 1;
                    match sent {
                        Ok(r) if r.status() == 200 => done.push(line),
                        // The kill: the reply never came; not acknowledged.
                        _ => break,
                    }
                }
                (done, next)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(5..80)));
        daemon.kill9();
        stop.store(true, Ordering::Relaxed);
        let (done, next) = writer.join().unwrap();
        token = next;
        acknowledged.extend(done);
    }
    let daemon = Daemon::start(&data);
    let text = daemon.ok(&["cat", "stream"], None);
    let expected: String = acknowledged.iter().map(|t| format!("{t}\n")).collect();
    assert!(text.starts_with(&expected));
    assert!(
        acknowledged.len() >= 200,
        "the stream kept writing: {} acknowledged writes",
        acknowledged.len()
    );
    daemon.stop();
}

#[test]
fn sigterm_tells_editor_sessions_and_exits_cleanly() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    let daemon = Daemon::start(&data);
    daemon.ok(&["new", "notes"], None);
    daemon.ok(&["write", "notes"], Some("kept\n"));
    let addr = std::fs::read_to_string(data.join("api.addr")).unwrap();
    let id = peerdoc_id(&data, "notes");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut socket, _) = runtime
        .block_on(tokio_tungstenite::connect_async(ws_request(
            &data,
            addr.trim(),
            &id,
        )))
        .unwrap();
    let pid = daemon.child.id();
    let data_dir = daemon.data.clone();
    unsafe_sigterm(pid);
    // The session hears why it ends: 1001, going away.
    let code = runtime.block_on(async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame: {other:?}"),
            }
        }
    });
    assert_eq!(code, 1001);
    daemon.stop();
    let again = Daemon::start(&data_dir);
    assert_eq!(again.ok(&["cat", "notes"], None), "kept\n");
    again.stop();
}

/// A member killed and restarted at once, on the same QUIC address (issue 20, item 7). The other
/// node still holds its connection to the dead process (QUIC has no close to see), so gossipsub
/// treats the new connection as a second one and never announces its topics on it. Which peers
/// share the document comes from the membership, so the restarted member still pulls and
/// pushes both ways.
#[test]
fn a_member_restarted_at_once_on_the_same_quic_address_syncs_both_ways() {
    let root = tempfile::tempdir().unwrap();
    let quic = |port: u16| format!("/ip4/127.0.0.1/udp/{port}/quic-v1");
    let free_udp_port = || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let (a_listen, b_listen) = (quic(free_udp_port()), quic(free_udp_port()));
    let a = Daemon::start_with(&root.path().join("a"), &["--listen", &a_listen]);
    let mut b = Daemon::start_with(&root.path().join("b"), &["--listen", &b_listen]);
    a.ok(&["new", "notes"], None);
    a.ok(&["write", "notes"], Some("before\n"));
    let ticket = a.ok(&["share", "notes"], None).trim().to_string();
    b.ok(&["join", &ticket], None);
    assert_eq!(b.ok(&["cat", "notes"], None), "before\n");

    b.crash_and_restart();
    a.ok(
        &["write", "notes", "--append"],
        Some("from a after b restarted\n"),
    );
    b.ok(
        &["write", "notes", "--append"],
        Some("from b after its restart\n"),
    );
    wait_until_blocking("both edits reach both nodes", || {
        let ta = a.ok(&["cat", "notes"], None);
        ta == b.ok(&["cat", "notes"], None)
            && ta.contains("from a after")
            && ta.contains("from b after")
    });
    // Both name the other as sharing the document, and have pulled from it.
    for node in [&a, &b] {
        wait_until_blocking("status: up to date with the other", || {
            node.ok(&["status"], None)
                .contains("notes  up to date with 1 peer")
        });
    }
    a.stop();
    b.stop();
}

/// What a new user's first `serve` prints on stderr, with the default log filter or with
/// `RUST_LOG` set, once it has run past its first second.
fn first_start_log(rust_log: Option<&str>) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    // Not there yet: peerdoc creates it, as for a new user.
    let data = root.path().join("new-node");
    let mut command = serve_command(&data);
    command.env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_blocking("the new node starts", || data.join("api.addr").exists());
    // kad tries its first bootstrap 0.5 s after the node listens.
    std::thread::sleep(std::time::Duration::from_secs(2));
    unsafe_sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        data,
        root,
    )
}

#[test]
fn a_new_node_starts_without_warnings_in_a_private_data_dir_it_made() {
    // The control: with every warning shown, this start does warn (a node without DHT peers),
    // so the quiet start below is the filter's doing, not a start too short to warn.
    let (all, _, _root) = first_start_log(Some("warn"));
    assert!(
        all.contains("Failed to trigger bootstrap"),
        "the control run shows kad's warning: {all}"
    );
    let (log, data, _root) = first_start_log(None);
    assert!(
        log.contains("listening on"),
        "the node logged its start: {log}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(warnings.is_empty(), "a first start warns: {warnings:#?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "created private, not tightened after the fact");
}

#[test]
fn serve_takes_a_host_name_for_http_and_says_what_it_wants_otherwise() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    let serve = |http: &str| {
        let mut command = Command::new(BIN);
        command
            .arg("--data")
            .arg(&data)
            .args(["serve", "--http", http, "--no-mdns", "--no-upnp"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
        command
    };
    let out = serve("nowhere").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("for example 127.0.0.1:7777 or localhost:7777"),
        "{err}"
    );
    let mut child = serve("localhost:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_blocking("the node serves on localhost", || {
        data.join("api.addr").exists()
    });
    let addr = std::fs::read_to_string(data.join("api.addr")).unwrap();
    assert!(addr.trim().starts_with("127.0.0.1:"), "{addr}");
    assert!(
        peerdoc(&data, &["ls"], None).status.success(),
        "the CLI reaches it"
    );
    unsafe_sigterm(child.id());
    child.wait().unwrap();
}

#[test]
fn a_bootstrap_address_without_its_peer_id_is_refused_not_cut_and_ignored() {
    let root = tempfile::tempdir().unwrap();
    let out = serve_command(&root.path().join("node"))
        .args(["--bootstrap", "/ip4/127.0.0.1/tcp/4001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/ip4/127.0.0.1/tcp/4001 does not end with /p2p/<peer id>"),
        "the whole address, and what it lacks: {err}"
    );
    assert!(
        !root.path().join("node").exists(),
        "refused before anything was created"
    );
}

/// Every argument and flag of every command says what it is in `--help`.
#[test]
fn every_argument_has_help_text() {
    let commands = [
        "serve", "new", "ls", "share", "members", "revoke", "join", "cat", "write", "rename", "rm",
        "status", "peers",
    ];
    for command in commands {
        let out = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        let lines: Vec<&str> = help.lines().collect();
        let mut entries = 0;
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if indent != 2 || !(trimmed.starts_with('<') || trimmed.starts_with('-')) {
                continue;
            }
            entries += 1;
            // Text on the same line after the name, or on the next line, indented deeper.
            let same_line = trimmed.split("  ").filter(|s| !s.trim().is_empty()).count() > 1;
            let next_line = lines.get(i + 1).is_some_and(|next| {
                let text = next.trim_start();
                !text.is_empty() && next.len() - text.len() > indent
            });
            assert!(
                same_line || next_line,
                "{command}: no help for {trimmed:?}\n{help}"
            );
        }
        assert!(entries > 0, "{command}: no arguments found in\n{help}");
    }
}

/// On every interface (`--http 0.0.0.0:PORT`), the banner gives an address a browser can open,
/// says how other machines reach it, and the CLI finds the daemon.
#[test]
fn serve_on_every_interface_prints_urls_that_open() {
    use std::io::BufRead;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--http", "0.0.0.0:0", "--no-mdns", "--no-upnp"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    while !banner.iter().any(|l: &String| l.contains("api: ")) {
        banner.push(lines.next().expect("serve prints its banner").unwrap());
    }
    let banner = banner.join("\n");
    let token = std::fs::read_to_string(data.join("api.token")).unwrap();
    assert!(
        banner.contains("web editor: http://127.0.0.1:")
            && banner.contains(&format!("/?token={token}")),
        "{banner}"
    );
    assert!(
        banner.contains("from another machine: http://THIS-HOST:"),
        "{banner}"
    );
    assert!(!banner.contains("0.0.0.0"), "{banner}");
    assert!(
        peerdoc(&data, &["ls"], None).status.success(),
        "the CLI finds it"
    );
    unsafe_sigterm(child.id());
    assert!(child.wait().unwrap().success());
}

/// A new document is rich text: `write` takes Markdown, `cat` prints it, `--format` exports
/// HTML or text; a member that joins gets a rich document too, and a replacement on one node
/// keeps what another changed in another block at the same time.
#[test]
fn rich_documents_speak_markdown_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(&root.path().join("a"));
    let b = Daemon::start(&root.path().join("b"));
    a.ok(&["new", "plan"], None);
    let text = "# Plan\n\nShip **it** on *Friday*.\n\n- [x] write\n- [ ] test\n\n| who | what |\n| --- | --- |\n| A | code |\n";
    a.ok(&["write", "plan"], Some(text));
    assert_eq!(a.ok(&["cat", "plan"], None), text);
    let html = a.ok(&["cat", "plan", "--format", "html"], None);
    assert!(
        html.contains("<h1>Plan</h1>") && html.contains("<strong>it</strong>"),
        "{html}"
    );
    let plain = a.ok(&["cat", "plan", "--format", "text"], None);
    assert!(plain.starts_with("Plan\n\nShip it on Friday.\n"), "{plain}");
    let out = a.run(&["cat", "plan", "--format", "pdf"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a format that does not exist is a usage error"
    );

    let ticket = a.ok(&["share", "plan"], None).trim().to_string();
    b.ok(&["join", &ticket], None);
    assert_eq!(b.ok(&["cat", "plan"], None), text);
    let docs: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
        &b.run(&["status", "--json"], None).stdout,
    ))
    .unwrap();
    assert!(docs["docs"].as_array().is_some_and(|d| d.len() == 1));
    let info = ureq::get(&format!("http://{}/api/docs/plan", b.addr()))
        .set("Authorization", &b.bearer())
        .call()
        .unwrap()
        .into_json::<serde_json::Value>()
        .unwrap();
    assert_eq!(info["kind"], "rich", "the joiner knows its kind: {info}");

    // Each rewrites a different block of what it holds; both changes stay. (Two replacements
    // at the same moment: the core's `a_replacement_changes_only_the_blocks_that_differ…`.)
    a.ok(&["write", "plan"], Some(&text.replace("Friday", "Monday")));
    let monday = text.replace("Friday", "Monday");
    wait_until_blocking("A's change on B", || b.ok(&["cat", "plan"], None) == monday);
    b.ok(
        &["write", "plan"],
        Some(&monday.replace("| A | code |", "| B | docs |")),
    );
    let merged = monday.replace("| A | code |", "| B | docs |");
    wait_until_blocking("both block edits everywhere", || {
        a.ok(&["cat", "plan"], None) == merged && b.ok(&["cat", "plan"], None) == merged
    });
    // Appending adds blocks.
    b.ok(&["write", "plan", "--append"], Some("> done\n"));
    wait_until_blocking("the appended quote on A", || {
        a.ok(&["cat", "plan"], None)
            .ends_with("| B | docs |\n\n> done\n")
    });
    // A plain document keeps its text as it is.
    a.ok(&["new", "raw", "--plain"], None);
    a.ok(&["write", "raw"], Some("# not a heading\n*as is*\n"));
    assert_eq!(a.ok(&["cat", "raw"], None), "# not a heading\n*as is*\n");
    a.stop();
    b.stop();
}

/// A daemon's peer id and a loopback TCP address to dial it at, from `status --json`.
fn dial_address(daemon: &Daemon) -> String {
    let status: serde_json::Value =
        serde_json::from_str(&daemon.ok(&["status", "--json"], None)).unwrap();
    let peer = status["peer_id"].as_str().unwrap();
    let addr = status["listen_addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
        .unwrap();
    format!("{addr}/p2p/{peer}")
}

#[test]
fn holders_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let r = Daemon::start_with(&root.path().join("r"), &["--replica"]);
    let plain = Daemon::start(&root.path().join("plain"));
    let a = Daemon::start(&root.path().join("a"));
    a.ok(&["new", "plans"], None);
    a.ok(&["write", "plans"], Some("# Plans\n\nsecret plans\n"));

    // A node that holds nothing for others says so; a bad address is a usage error.
    let out = a.run(&["replicate", "plans", &dial_address(&plain)], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--replica"), "{stderr}");
    let out = a.run(&["replicate", "plans", "nowhere"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/p2p/"));

    let held = a.ok(&["replicate", "plans", &dial_address(&r)], None);
    assert!(held.contains("holds the document now"), "{held}");
    let replicas = a.ok(&["replicas", "plans"], None);
    assert!(
        replicas.lines().nth(1).unwrap().contains("holds"),
        "{replicas}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&a.ok(&["replicas", "plans", "--json"], None)).unwrap();
    assert_eq!(json[0]["holds"], true);
    assert!(json[0]["bytes"].as_u64().unwrap() > 0);

    // On the holder: listed as sealed, and unreadable.
    let ls = r.ok(&["ls"], None);
    assert!(ls.contains("sealed"), "{ls}");
    let id = peerdoc_id(&a.data, "plans");
    assert!(ls.contains(&id), "{ls}");
    let out = r.run(&["cat", &id], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read it"), "{stderr}");

    // Let it go: it drops what it kept.
    let r_id = dial_address(&r).rsplit('/').next().unwrap().to_string();
    let out = a.ok(&["unreplicate", "plans", &r_id], None);
    assert!(out.contains("dropped what it kept"), "{out}");
    let ls = r.run(&["ls"], None);
    assert!(ls.status.success());
    assert!(!String::from_utf8_lossy(&ls.stdout).contains(&id));
    let replicas = a.ok(&["replicas", "plans"], None);
    assert!(replicas.contains("released"), "{replicas}");
    a.stop();
    r.stop();
    plain.stop();
}

#[test]
fn attachments_from_the_command_line_and_the_http_api() {
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(&root.path().join("a"));
    let b = Daemon::start(&root.path().join("b"));
    a.ok(&["new", "album"], None);
    let ticket = a.ok(&["share", "album"], None).trim().to_string();
    b.ok(&["join", &ticket], None);
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let file = root.path().join("photo.png");
    std::fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap();

    let reference = a.ok(&["attach", "album", file, "--insert"], None);
    let reference = reference.trim();
    assert!(reference.starts_with("b1."), "{reference}");
    // The link travels with the document; B fetches the file from A.
    wait_until_blocking("B has the link", || {
        b.ok(&["cat", "album"], None).contains(reference)
    });
    let got = root.path().join("got.png");
    b.ok(
        &["get", "album", reference, "-o", got.to_str().unwrap()],
        None,
    );
    assert_eq!(std::fs::read(&got).unwrap(), bytes);
    let listed = b.ok(&["blobs", "album"], None);
    assert!(
        listed.contains("photo.png") && listed.contains("all"),
        "{listed}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&b.ok(&["blobs", "album", "--json"], None)).unwrap();
    assert_eq!(json[0]["here"], 3_000_000);
    assert_eq!(json[0]["reference"], reference);

    // The API serves it with its type, a range of it, and never as something to run.
    let id = peerdoc_id(&a.data, "album");
    let url = format!(
        "http://{}/api/docs/{id}/blobs/{reference}/photo.png",
        b.addr()
    );
    let r = ureq::get(&url)
        .set("Authorization", &b.bearer())
        .set("Range", "bytes=10-19")
        .call()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.header("Content-Type"), Some("image/png"));
    assert_eq!(r.header("Content-Range"), Some("bytes 10-19/3000000"));
    assert!(r
        .header("Content-Security-Policy")
        .unwrap()
        .contains("sandbox"));
    let mut part = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut part).unwrap();
    assert_eq!(part, bytes[10..20]);
    let r = ureq::get(&url)
        .set("Authorization", &b.bearer())
        .set("Range", "bytes=3000000-")
        .call();
    assert!(matches!(r, Err(ureq::Error::Status(416, _))), "{r:?}");

    // Bad input: a clear error, a non-zero exit.
    for (args, says) in [
        (vec!["get", "album", "b1.nothing"], "reference"),
        (vec!["attach", "album", "/no/such/file"], "cannot read"),
    ] {
        let out = b.run(&args, None);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    // Garbage collection takes what no document refers to (here: added without --insert).
    let other = root.path().join("other.bin");
    std::fs::write(&other, b"not in the document").unwrap();
    a.ok(&["attach", "album", other.to_str().unwrap()], None);
    let gc = a.ok(&["gc", "--grace", "0"], None);
    assert!(gc.contains("removed 1 attachment"), "{gc}");
    a.stop();
    b.stop();
}
