//! [`ConfigFile`]: the optional TOML file that changes a [`Config`]'s defaults, how it is read
//! (a bad file is a one-line error naming the line and the key) and applied.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use serde::Deserialize;

use super::{AttachmentLimits, Config, ReplicaLimits, CONFIG_FILE};
use crate::net::{DhtMode, RelayLimits};
/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}, line {line}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// The TOML config file. Every key is optional; an absent key keeps the default, an unknown one
/// is an error. Example:
///
/// ```toml
/// http = "127.0.0.1:7777"
/// listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
/// bootstrap = ["/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW..."]
/// mdns = true
/// upnp = true
/// dht = "auto"          # or "server", "client"
/// sync_interval = 10    # seconds
/// redial_interval = 30  # seconds
/// relay = false         # be a relay server for NATed peers (and a holder)
/// replica = false       # keep documents sealed for their members (default: as `relay`)
/// max_connections = 256 # inbound peer connections at most
/// unload_after = 300    # seconds: unload idle documents from memory
///
/// [relay_limits]        # only with relay = true; every key optional
/// max_circuit_bytes = 1073741824
///
/// [replica_limits]      # only for a holder; every key optional
/// allow = ["12D3KooW..."] # only these nodes may ask it to hold a document (default: any)
/// max_docs = 1000
/// max_doc_bytes = 536870912
/// max_bytes = 17179869184
///
/// [attachments]         # every key optional
/// max_attachment_bytes = 4294967296
/// max_doc_bytes = 68719476736 # all attachments of one document
/// serve_rate = 0        # bytes per second to one peer at most (0: no limit)
/// ```
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// This node's display name, shown to the members of its documents.
    pub name: Option<String>,
    /// Local HTTP API and web editor address.
    pub http: Option<SocketAddr>,
    pub listen: Option<Vec<Multiaddr>>,
    pub bootstrap: Option<Vec<Multiaddr>>,
    pub mdns: Option<bool>,
    pub upnp: Option<bool>,
    pub dht: Option<DhtMode>,
    #[serde(default, deserialize_with = "positive_secs")]
    pub sync_interval: Option<Duration>,
    /// Seconds between attempts to reconnect to known peers.
    #[serde(default, deserialize_with = "positive_secs")]
    pub redial_interval: Option<Duration>,
    /// Be a relay server.
    pub relay: Option<bool>,
    /// Inbound peer connections at most.
    pub max_connections: Option<u32>,
    /// Seconds an idle document stays in memory.
    #[serde(default, deserialize_with = "positive_secs")]
    pub unload_after: Option<Duration>,
    /// The relay server's limits (defaults: [`RelayLimits::default`]).
    pub relay_limits: Option<RelayLimits>,
    /// Keep documents sealed for their members (default: on for a relay, off otherwise).
    pub replica: Option<bool>,
    /// A holder's limits (defaults: [`ReplicaLimits::default`]).
    pub replica_limits: Option<ReplicaLimits>,
    /// Attachment limits.
    pub attachments: Option<AttachmentLimits>,
}

impl ConfigFile {
    /// Reads `path`, or `DIR/config.toml` when `path` is `None` (where a missing file means "no
    /// changes"; a missing explicit path is an error).
    pub fn load(data_dir: &Path, path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (data_dir.join(CONFIG_FILE), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ConfigFile::default())
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(&text).map_err(|(line, key, message)| ConfigError::Invalid {
            path,
            line,
            key,
            message,
        })
    }

    /// Parses TOML text; an error is (line, key, message).
    fn parse(text: &str) -> Result<ConfigFile, (usize, String, String)> {
        let line_of = |e: &toml::de::Error| {
            e.span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1))
                .unwrap_or(1)
        };
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| (line_of(&e), "?".into(), one_line(&e)))?;
        let file: ConfigFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            // The error's span may cover the whole table (unknown keys): the key's own line is
            // what a user wants.
            let line = line_of_key(text, &key).unwrap_or_else(|| line_of(&inner));
            (line, key, one_line(&inner))
        })?;
        file.check()
            .map_err(|(key, message)| (line_of_key(text, key).unwrap_or(1), key.into(), message))?;
        Ok(file)
    }

    /// What parses but cannot mean what it says: an error is (key, message).
    fn check(&self) -> Result<(), (&'static str, String)> {
        for addr in self.bootstrap.iter().flatten() {
            bootstrap_peer(addr).map_err(|message| ("bootstrap", message))?;
        }
        if let Some(name) = &self.name {
            crate::core::access::name::check_name(name).map_err(|e| ("name", e.to_string()))?;
        }
        if self.relay_limits.is_some() && self.relay != Some(true) {
            return Err((
                "relay_limits",
                "relay limits apply only to a relay: add `relay = true`, or remove the \
                 [relay_limits] table"
                    .into(),
            ));
        }
        for peer in self.replica_limits.iter().flat_map(|l| &l.allow) {
            if peer.parse::<libp2p::PeerId>().is_err() {
                return Err((
                    "replica_limits",
                    format!("{peer:?} in `allow` is not a peer id (`peerdoc status` prints one)"),
                ));
            }
        }
        if self.replica_limits.is_some() && self.replica == Some(false) {
            return Err((
                "replica_limits",
                "replica limits apply only to a holder: remove `replica = false`, or the \
                 [replica_limits] table"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether a node with these settings (and `--replica` or `--relay` given or not) holds
    /// documents for others, and within which limits. A relay does unless `replica = false`.
    pub fn replica(&self, flag: bool, relay: bool) -> Option<ReplicaLimits> {
        let holds = match self.replica {
            Some(setting) => flag || setting,
            None => flag || relay || self.replica_limits.is_some(),
        };
        holds.then(|| self.replica_limits.clone().unwrap_or_default())
    }

    /// Applies the file's settings to `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(name) = &self.name {
            config.name = Some(name.clone());
        }
        if let Some(listen) = &self.listen {
            config.listen = listen.clone();
        }
        if let Some(bootstrap) = &self.bootstrap {
            config.bootstrap = bootstrap.clone();
        }
        if let Some(mdns) = self.mdns {
            config.mdns = mdns;
        }
        if let Some(upnp) = self.upnp {
            config.upnp = upnp;
        }
        if self.relay == Some(true) {
            config.relay = Some(self.relay_limits.clone().unwrap_or_default());
        }
        config.replica = self.replica(false, config.relay.is_some());
        if let Some(dht) = self.dht {
            config.dht = dht;
        }
        if let Some(max) = self.max_connections {
            config.max_connections = max;
        }
        if let Some(interval) = self.sync_interval {
            config.sync_interval = interval;
        }
        if let Some(interval) = self.redial_interval {
            config.redial_interval = interval;
        }
        if let Some(after) = self.unload_after {
            config.unload_after = after;
        }
        if let Some(limits) = self.attachments {
            config.attachments = limits;
        }
    }
}

/// The line (1-based) where a top-level key is set, if it is.
/// A bootstrap peer's address must name the peer (`…/p2p/<peer id>`): it is dialled by its id.
pub fn bootstrap_peer(addr: &Multiaddr) -> Result<(), String> {
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(_)) => Ok(()),
        _ => Err(format!(
            "{addr} does not end with /p2p/<peer id>: a bootstrap peer is dialled by its id \
             (add the /p2p/12D3KooW… part that `peerdoc status` prints on that node)"
        )),
    }
}

fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let name = key.split(['.', '[']).next()?;
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            // `name = …`, or the table `[name]`.
            line.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
                || line
                    .strip_prefix('[')
                    .and_then(|rest| rest.strip_prefix(name))
                    .is_some_and(|rest| rest.trim_start().starts_with(']'))
        })
        .map(|i| i + 1)
}

fn one_line(e: &toml::de::Error) -> String {
    e.message().lines().next().unwrap_or("invalid").to_string()
}

fn positive_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let secs = u64::deserialize(d)?;
    if secs == 0 {
        return Err(serde::de::Error::custom("must be at least 1 (seconds)"));
    }
    Ok(Some(Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_holds_documents_unless_told_not_to_and_limits_need_a_holder() {
        let parse = |text: &str| ConfigFile::parse(text).unwrap();
        assert_eq!(parse("").replica(false, false), None);
        assert_eq!(
            parse("").replica(true, false),
            Some(ReplicaLimits::default()),
            "--replica"
        );
        assert_eq!(
            parse("").replica(false, true),
            Some(ReplicaLimits::default()),
            "a relay holds by default"
        );
        assert_eq!(parse("replica = false").replica(false, true), None);
        let limits = parse("[replica_limits]\nmax_docs = 3").replica(false, false);
        assert_eq!(limits.map(|l| l.max_docs), Some(3), "limits make a holder");
        let (_, key, _) =
            ConfigFile::parse("replica = false\n[replica_limits]\nmax_docs = 3").unwrap_err();
        assert_eq!(key, "replica_limits");
        let (_, key, _) = ConfigFile::parse("[replica_limits]\nmax_doks = 3").unwrap_err();
        assert!(key.starts_with("replica_limits"), "{key}");
        let (_, key, message) =
            ConfigFile::parse("[replica_limits]\nallow = [\"nobody\"]").unwrap_err();
        assert_eq!(key, "replica_limits");
        assert!(message.contains("not a peer id"), "{message}");
    }

    #[test]
    fn a_file_changes_defaults_and_unknown_or_bad_keys_are_named() {
        let file = ConfigFile::parse(
            "listen = [\"/ip4/0.0.0.0/tcp/4001\"]\nmdns = false\ndht = \"server\"\nsync_interval = 3\n\
             relay = true\n[relay_limits]\nmax_circuits = 7\n",
        )
        .unwrap();
        let mut config = Config::new("/tmp/x");
        file.apply(&mut config);
        assert_eq!(config.listen.len(), 1);
        assert!(!config.mdns);
        assert_eq!(config.dht, DhtMode::Server);
        assert_eq!(config.sync_interval, Duration::from_secs(3));
        let relay = config.relay.expect("relay on");
        assert_eq!(relay.max_circuits, 7);
        assert_eq!(
            relay.max_circuit_bytes,
            RelayLimits::default().max_circuit_bytes
        );
        let (_, key, _) = ConfigFile::parse("[relay_limits]\nmax_circuitz = 1").unwrap_err();
        assert!(key.contains("max_circuitz"), "{key}");
        assert!(
            config.bootstrap.is_empty(),
            "absent keys keep their default"
        );

        let (line, key, _) = ConfigFile::parse("mdns = true\nsync_intervall = 3\n").unwrap_err();
        assert_eq!((line, key.as_str()), (2, "sync_intervall"));
        let (line, key, _) = ConfigFile::parse("mdns = true\n\nsync_interval = \"x\"").unwrap_err();
        assert_eq!((line, key.as_str()), (3, "sync_interval"));
        let (_, key, message) = ConfigFile::parse("bootstrap = [\"not an address\"]").unwrap_err();
        assert!(key.starts_with("bootstrap"), "{key}: {message}");
        let (_, key, message) = ConfigFile::parse("sync_interval = 0").unwrap_err();
        assert_eq!(key, "sync_interval", "{message}");
        let (_, key, _) = ConfigFile::parse("dht = \"sometimes\"").unwrap_err();
        assert_eq!(key, "dht");
        let (line, key, message) = ConfigFile::parse("mdns = true\nname = \"  \"").unwrap_err();
        assert_eq!((line, key.as_str()), (2, "name"), "{message}");
        let mut named = Config::new("/tmp/x");
        ConfigFile::parse("name = \"Ana\"")
            .unwrap()
            .apply(&mut named);
        assert_eq!(named.name.as_deref(), Some("Ana"));
        assert!(ConfigFile::parse("= broken").is_err());
    }

    #[test]
    fn a_missing_default_file_is_fine_a_missing_explicit_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ConfigFile::load(dir.path(), None).is_ok());
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            ConfigFile::load(dir.path(), Some(&missing)),
            Err(ConfigError::Read { .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "mdns = \"yes\"").unwrap();
        let err = ConfigFile::load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("key `mdns`") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn what_parses_but_cannot_mean_what_it_says_is_refused_with_its_line() {
        let (line, key, message) =
            ConfigFile::parse("mdns = true\nbootstrap = [\"/ip4/1.2.3.4/tcp/1\"]").unwrap_err();
        assert_eq!((line, key.as_str()), (2, "bootstrap"));
        assert!(message.contains("/p2p/<peer id>"), "{message}");
        let (line, key, message) =
            ConfigFile::parse("upnp = false\n[relay_limits]\nmax_circuits = 3").unwrap_err();
        assert_eq!((line, key.as_str()), (2, "relay_limits"));
        assert!(message.contains("relay = true"), "{message}");
        let ok = "bootstrap = [\"/ip4/1.2.3.4/tcp/1/p2p/12D3KooWKghkLFy4svTu5uxBtqWGumRy9kyqaSrDGpgLJpQJn8vL\"]\n\
                  relay = true\n[relay_limits]\nmax_circuits = 3";
        assert!(ConfigFile::parse(ok).is_ok());
    }
}
