//! [`Config`]: node configuration with working defaults: nothing needs setting to run a node.
//! (The HTTP server has its own settings: see [`crate::api::Server::bind`].)

use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;

use crate::net::DhtMode;

/// Everything a [`crate::Node`] needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database, identity and API address file live. One data dir = one node.
    pub data_dir: PathBuf,
    /// libp2p listen addresses. Empty: TCP and QUIC on all interfaces, reusing the ports of the
    /// previous run when free (so peers that remember us can reconnect).
    pub listen: Vec<Multiaddr>,
    /// LAN discovery with mDNS.
    pub mdns: bool,
    /// Whether this node serves the DHT: `Auto` (when publicly reachable), `Server`, `Client`.
    pub dht: DhtMode,
    /// Peers to stay connected to, as `/ip4/…/tcp/…/p2p/<peer id>` addresses.
    pub bootstrap: Vec<Multiaddr>,
    /// Anti-entropy period: each document is pulled from each peer sharing it this often.
    pub sync_interval: Duration,
    /// Reconnect to known peers this often.
    pub redial_interval: Duration,
    /// Timeout for one sync request and for reaching the sharer when joining.
    pub request_timeout: Duration,
    /// Compact a document's update log into a snapshot after this many updates.
    pub compact_every: usize,
}

impl Config {
    /// Defaults for a node in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            listen: Vec::new(),
            mdns: true,
            dht: DhtMode::Auto,
            bootstrap: Vec::new(),
            sync_interval: Duration::from_secs(10),
            redial_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
            compact_every: 500,
        }
    }

    /// The platform data dir (`~/.local/share/peerdoc` on Linux), or `./peerdoc-data`.
    pub fn default_data_dir() -> PathBuf {
        dirs::data_dir()
            .map(|d| d.join("peerdoc"))
            .unwrap_or_else(|| PathBuf::from("peerdoc-data"))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new(Config::default_data_dir())
    }
}
