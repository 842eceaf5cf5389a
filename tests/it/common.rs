//! Helpers: start in-process nodes on loopback with fast timers, wait with timeouts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use peerdoc::{Config, Node};

/// Every wait in the tests ends by this, with a message, never a hang.
pub const WAIT: Duration = Duration::from_secs(30);

/// Config for a test node: loopback only, no mDNS, fast anti-entropy.
pub fn test_config(dir: &Path, port: u16) -> Config {
    let mut config = Config::new(dir);
    config.http = Some("127.0.0.1:0".parse().unwrap());
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

/// The TCP port a node listens on, to restart it at the same address.
pub async fn tcp_port(node: &Node) -> u16 {
    let status = node.status().await.unwrap();
    for addr in &status.listen_addrs {
        let addr: Multiaddr = addr.parse().unwrap();
        for p in addr.iter() {
            if let Protocol::Tcp(port) = p {
                return port;
            }
        }
    }
    panic!("node has no TCP listen address: {:?}", status.listen_addrs)
}

/// Waits until every node has the same text for `doc` and it satisfies `ok`; returns it.
pub async fn wait_converged(nodes: &[&Node], doc: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        last.clear();
        for node in nodes {
            last.push(
                node.text(doc)
                    .await
                    .unwrap_or_else(|e| format!("<error: {e}>")),
            );
        }
        if last.windows(2).all(|w| w[0] == w[1]) && ok(&last[0]) {
            return last.remove(0);
        }
        if tokio::time::Instant::now() > deadline {
            panic!("nodes did not converge within {WAIT:?}; texts: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
