//! Helpers: start in-process nodes on loopback with fast timers (optionally served over HTTP,
//! as the binary runs them), and wait for conditions with a deadline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use peerdoc::api::Server;
use peerdoc::{Config, DhtMode, DocId, Node};

/// Every wait in the tests ends by this, with a message, never a hang.
pub const WAIT: Duration = Duration::from_secs(30);

/// Config for a test node: loopback only, no mDNS, fast anti-entropy, and a DHT server (on
/// loopback every node is reachable, which is what makes a node a server in the wild).
pub fn test_config(dir: &Path, port: u16) -> Config {
    let mut config = Config::new(dir);
    config.dht = DhtMode::Server;
    // UPnP discovery multicasts on the LAN: tests stay on loopback.
    config.upnp = false;
    config.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
    config.mdns = false;
    config.sync_interval = Duration::from_millis(500);
    config.redial_interval = Duration::from_millis(500);
    config.request_timeout = Duration::from_secs(5);
    config
}

pub async fn start(dir: &Path) -> Node {
    start_on(dir, 0).await
}

pub async fn start_on(dir: &Path, port: u16) -> Node {
    start_with(test_config(dir, port)).await
}

pub async fn start_with(config: Config) -> Node {
    let dir = config.data_dir.clone();
    Node::spawn(config)
        .await
        .unwrap_or_else(|e| panic!("node in {} failed to start: {e}", dir.display()))
}

/// A node with its HTTP API on a free loopback port. Derefs to the node.
pub struct Served {
    pub node: Node,
    server: Server,
}

impl std::ops::Deref for Served {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl Served {
    pub fn http_addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The API's access token (every request must carry it).
    pub fn token(&self) -> &str {
        self.server.token()
    }

    /// The `Authorization` header's value that carries the token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }

    /// `ws://ADDR{path}?token=TOKEN`: an editor session's URL (the token in the query, as a
    /// browser that opened the editor's URL sends its cookie).
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}?token={}", self.http_addr(), self.token())
    }

    /// Stops the HTTP server, then the node (the binary's order).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        self.node.shutdown().await;
    }
}

/// Starts a node and serves it over HTTP, with this access token if given (else a generated
/// one, see [`Served::token`]).
pub async fn serve_with(config: Config, token: Option<&str>) -> Served {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), token.map(String::from))
        .await
        .expect("HTTP API binds");
    serve_on(config, server).await
}

/// Starts a node and serves it with `server` (bound, perhaps with settings of its own).
pub async fn serve_on(config: Config, mut server: Server) -> Served {
    let node = start_with(config).await;
    server.serve(node.clone()).expect("HTTP API serves");
    Served { node, server }
}

pub async fn start_served(dir: &Path) -> Served {
    serve_with(test_config(dir, 0), None).await
}

/// A node's address for others to dial: `/ip4/127.0.0.1/tcp/PORT/p2p/PEER`.
pub async fn dial_addr(node: &Node) -> Multiaddr {
    let port = tcp_port(node).await;
    format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", node.peer_id())
        .parse()
        .unwrap()
}

/// Waits until `node` knows `peer` shares its document `doc` (they are in one gossip topic).
pub async fn wait_doc_peer(node: &Node, doc: &DocId, peer: &Node) {
    let peer = peer.peer_id();
    wait_until(format_args!("{peer} shares the document"), async || {
        let status = node.status().await.unwrap();
        status
            .docs
            .iter()
            .any(|d| d.id == *doc && d.peers.iter().any(|p| p.peer == peer))
    })
    .await;
}

/// The TCP port a node listens on, to restart it at the same address.
pub async fn tcp_port(node: &Node) -> u16 {
    let status = node.status().await.unwrap();
    for addr in &status.listen_addrs {
        for p in addr.iter() {
            if let Protocol::Tcp(port) = p {
                return port;
            }
        }
    }
    panic!("node has no TCP listen address: {:?}", status.listen_addrs)
}

/// How often a waiting test looks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds. After [`WAIT`] the test fails, saying what did not happen
/// (`what` is formatted only then, so it can show the last state the condition saw).
pub async fn wait_until(what: impl std::fmt::Display, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for tests that run outside an async runtime (real processes).
pub fn wait_until_blocking(what: impl std::fmt::Display, condition: impl FnMut() -> bool) {
    wait_blocking_for(what, WAIT, condition)
}

/// [`wait_until_blocking`] with another limit than [`WAIT`] (the network lab's).
pub fn wait_blocking_for(
    what: impl std::fmt::Display,
    within: Duration,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + within;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        std::thread::sleep(POLL * 10);
    }
}

/// Waits until every node has the same text for `doc` and it satisfies `ok`; returns it.
pub async fn wait_converged(nodes: &[&Node], doc: &DocId, ok: impl Fn(&str) -> bool) -> String {
    let last = std::sync::Mutex::new(Vec::new());
    let what = LastTexts(&last);
    wait_until(&what, async || {
        let mut texts = Vec::new();
        for node in nodes {
            texts.push(
                node.text(doc)
                    .await
                    .unwrap_or_else(|e| format!("<error: {e}>")),
            );
        }
        let done = texts.windows(2).all(|w| w[0] == w[1]) && ok(&texts[0]);
        *last.lock().unwrap() = texts;
        done
    })
    .await;
    last.into_inner().unwrap().remove(0)
}

/// "the nodes converge", with the texts they had last.
struct LastTexts<'a>(&'a std::sync::Mutex<Vec<String>>);

impl std::fmt::Display for LastTexts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts = self.0.lock().map(|t| t.clone()).unwrap_or_default();
        write!(f, "the nodes converge; their texts: {texts:#?}")
    }
}

/// Waits until `node` lists a peer on every one of its documents (gossip subscriptions are
/// known, so live edits reach that peer).
pub async fn wait_for_doc_peers(node: &Node) {
    wait_until("subscriptions are exchanged", async || {
        let status = node.status().await.unwrap();
        status.docs.iter().all(|d| !d.peers.is_empty())
    })
    .await;
}

/// Runs `command` to the end with `stdin` as its input; returns what it printed.
pub fn output_with_input(
    mut command: std::process::Command,
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

pub struct Dirs {
    _root: tempfile::TempDir,
    pub paths: Vec<PathBuf>,
}

pub fn dirs(n: usize) -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let paths = (0..n)
        .map(|i| root.path().join(format!("node{i}")))
        .collect();
    Dirs { _root: root, paths }
}

/// Makes a bare network node (`net`) a member of the ticket's document in the eyes of the
/// ticket's sharer: it admits itself with the ticket's invitation and sends the sharer its
/// certificates, as a joining node does. Returns the sharer's answer roster.
pub async fn admit_as_member(
    net: &peerdoc::testing::Net,
    ticket: &peerdoc::core::ticket::Ticket,
) -> peerdoc::core::sync::members::Roster {
    use peerdoc::core::sync::members::{self, Roster};
    let key = peerdoc::core::access::key_of(&net.peer_id()).unwrap();
    let mine = Roster {
        members: Vec::new(),
        certs: vec![
            ticket.invitation_cert().unwrap(),
            ticket.admit(key).unwrap(),
        ],
        ..Roster::default()
    };
    let topic = ticket.doc.topic();
    let request = members::request(&ticket.keyring(), &topic, mine);
    let answer = net.request(ticket.peer, request).await.unwrap();
    members::open_response(&ticket.keyring(), &topic, &answer).unwrap()
}

/// A bare libp2p node that speaks peerdoc's protocols but is no peerdoc node (a stranger, or a
/// member's node modified to misbehave): loopback only. Returns its events too.
pub async fn bare_net(
    cancel: &tokio_util::sync::CancellationToken,
) -> (
    peerdoc::testing::Net,
    tokio::sync::mpsc::Receiver<peerdoc::testing::NetEvent>,
) {
    let (net, events, _) = bare_net_keyed(cancel).await;
    (net, events)
}

/// [`bare_net`] and its identity key (to sign gossip as a member's node would).
pub async fn bare_net_keyed(
    cancel: &tokio_util::sync::CancellationToken,
) -> (
    peerdoc::testing::Net,
    tokio::sync::mpsc::Receiver<peerdoc::testing::NetEvent>,
    libp2p::identity::ed25519::Keypair,
) {
    let identity = libp2p::identity::ed25519::Keypair::generate();
    let (net, events) = bare_net_as(cancel, identity.clone()).await;
    (net, events, identity)
}

/// [`bare_net`] with a given identity (a stopped node's, to play its modified node).
pub async fn bare_net_as(
    cancel: &tokio_util::sync::CancellationToken,
    identity: libp2p::identity::ed25519::Keypair,
) -> (
    peerdoc::testing::Net,
    tokio::sync::mpsc::Receiver<peerdoc::testing::NetEvent>,
) {
    let config = peerdoc::testing::NetConfig {
        request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_connections: 64,
        ..peerdoc::testing::NetConfig::new(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
    };
    let keypair = libp2p::identity::Keypair::from(identity);
    let (net, events, _task) = peerdoc::testing::Net::spawn(keypair, config, cancel.clone())
        .await
        .unwrap();
    (net, events)
}

/// The identity key of the node whose data dir is `dir` (stopped, or about to be).
pub fn identity_of(dir: &Path) -> libp2p::identity::ed25519::Keypair {
    let bytes = std::fs::read(dir.join("identity.key")).unwrap();
    libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
        .unwrap()
        .try_into_ed25519()
        .unwrap()
}

/// [`bare_net_keyed`], its events ignored.
pub async fn bare_net_keyed_drained(
    cancel: &tokio_util::sync::CancellationToken,
) -> (peerdoc::testing::Net, libp2p::identity::ed25519::Keypair) {
    let (net, mut events, identity) = bare_net_keyed(cancel).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (net, identity)
}

/// [`bare_net`], its events ignored.
pub async fn bare_net_drained(
    cancel: &tokio_util::sync::CancellationToken,
) -> peerdoc::testing::Net {
    bare_net_keyed_drained(cancel).await.0
}

/// The value of the OpenMetrics sample named exactly `series` (name and labels), or 0.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Three nodes in `d`: A creates a document named `name` holding `text`, B and C join it as
/// writers, and all three hold it.
pub async fn owner_and_two_writers(
    d: &Dirs,
    name: &str,
    text: &str,
) -> (Node, Node, Node, peerdoc::DocInfo) {
    let (a, b, c) = (
        start(&d.paths[0]).await,
        start(&d.paths[1]).await,
        start(&d.paths[2]).await,
    );
    let doc = a.create_doc(name).await.unwrap();
    a.write(&doc.id, text.into(), false).await.unwrap();
    for writer in [&b, &c] {
        writer
            .join(&a.ticket(&doc.id).await.unwrap(), None)
            .await
            .unwrap();
    }
    wait_converged(&[&a, &b, &c], &doc.id, |t| t == text).await;
    (a, b, c, doc)
}

/// A small tmpfs mounted for the test and unmounted when dropped (needs root, as the network
/// lab does).
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount (the test suite runs as root)");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk { dir }
    }

    /// Fills the disk up; returns the filler file.
    pub fn fill(&self) -> PathBuf {
        let filler = self.dir.path().join("filler");
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .stderr(std::process::Stdio::null())
            .status();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Every file under `dir`, searched for `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}
