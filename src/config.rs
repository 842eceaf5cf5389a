//! [`Config`]: node configuration with working defaults: nothing needs setting to run a node.
//! [`ConfigFile`]: the optional TOML file (`DIR/config.toml`, or `--config PATH`) that changes
//! those defaults; flags override the file. A bad file is a one-line error naming the key.
//! (The HTTP server has its own settings: see [`crate::api::Server::bind`].)

use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;

#[cfg(feature = "test-faults")]
use crate::net::MessageFaults;
use crate::net::{DhtMode, RelayLimits, DEFAULT_MAX_CONNECTIONS};

mod file;

pub use file::{bootstrap_peer, ConfigError, ConfigFile};

/// Name of the config file in the data dir.
pub const CONFIG_FILE: &str = "config.toml";

/// Everything a [`crate::Node`] needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database, identity and API address file live. One data dir = one node.
    pub data_dir: PathBuf,
    /// The display name this node signs for its person (`name = "…"` in the config file). Set
    /// here, it applies at every start and `Node::set_name` refuses; `None`: the name last set
    /// with `Node::set_name` (`peerdoc name`, the page), if any.
    pub name: Option<String>,
    /// libp2p listen addresses. Empty: TCP and QUIC on all interfaces, reusing the ports of the
    /// previous run when free (so peers that remember us can reconnect).
    pub listen: Vec<Multiaddr>,
    /// LAN discovery with mDNS.
    pub mdns: bool,
    /// Whether this node serves the DHT: `Auto` (when publicly reachable), `Server`, `Client`.
    /// A relay server always serves it.
    pub dht: DhtMode,
    /// Ask the router for a port mapping (UPnP).
    pub upnp: bool,
    /// Be a circuit relay server for NATed peers, with these limits (`serve --relay`).
    pub relay: Option<RelayLimits>,
    /// Keep documents sealed for their members (a holder, `serve --replica`; a relay is one
    /// by default), within these limits. `None`: hold nothing for others.
    pub replica: Option<ReplicaLimits>,
    /// Attachments: how large, and how fast they are sent to one peer.
    pub attachments: AttachmentLimits,
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
    /// Inbound peer connections at most; more are refused.
    pub max_connections: u32,
    /// A document with no editor session, unused this long, is unloaded from memory (and
    /// loaded again on demand).
    pub unload_after: Duration,
    /// Test only: drop, duplicate and delay received messages on a seeded schedule (the chaos
    /// harness sets it; `None` in normal use).
    #[cfg(feature = "test-faults")]
    pub message_faults: Option<MessageFaults>,
    /// Test only: every attachment piece this node sends has a byte flipped (a hostile
    /// holder, for the test that shows downloads catch it).
    #[cfg(feature = "test-faults")]
    pub corrupt_blob_pieces: bool,
}

impl Config {
    /// Defaults for a node in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            name: None,
            listen: Vec::new(),
            mdns: true,
            dht: DhtMode::Auto,
            upnp: true,
            relay: None,
            replica: None,
            attachments: AttachmentLimits::default(),
            bootstrap: Vec::new(),
            sync_interval: Duration::from_secs(10),
            redial_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
            compact_every: 500,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            unload_after: Duration::from_secs(300),
            #[cfg(feature = "test-faults")]
            message_faults: None,
            #[cfg(feature = "test-faults")]
            corrupt_blob_pieces: false,
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

/// What a holder (`serve --replica`, or a relay) keeps for others at most. Each member's
/// requests are rate-limited like every sync request (PROTOCOL.md, abuse limits).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaLimits {
    /// Documents held at once.
    pub max_docs: u64,
    /// Bytes kept for one document.
    pub max_doc_bytes: u64,
    /// Bytes kept for all documents together.
    pub max_bytes: u64,
    /// Only these nodes (peer ids) may ask this one to hold a new document; empty: any node.
    pub allow: Vec<String>,
}

impl Default for ReplicaLimits {
    fn default() -> Self {
        ReplicaLimits {
            max_docs: 1000,
            max_doc_bytes: 512 << 20,
            max_bytes: 16 << 30,
            allow: Vec::new(),
        }
    }
}

/// Attachment limits (`[attachments]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentLimits {
    /// Largest attachment this node adds or fetches, in bytes.
    pub max_attachment_bytes: u64,
    /// Attachments of one document together, in bytes, that this node adds or fetches.
    pub max_doc_bytes: u64,
    /// Bytes per second sent to one peer at most (0: no limit).
    pub serve_rate: u64,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        AttachmentLimits {
            max_attachment_bytes: 4 << 30,
            max_doc_bytes: 64 << 30,
            serve_rate: 0,
        }
    }
}
