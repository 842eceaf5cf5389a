//! The node's Prometheus metrics (`GET /metrics`): what a user or operator needs to see that a
//! node works and how fast. The metric handles are shared counters (cheap to clone, updated
//! where things happen); libp2p's bandwidth counters live in the network's own registry, and
//! [`encode`] writes both in the OpenMetrics text format.

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Where an edit came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EditLabels {
    /// `local` (an editor session or the API on this node) or `remote` (a peer).
    pub(crate) origin: &'static str,
}

/// What was refused, and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusedLabels {
    /// `sync` (a pull's request), `members` (a member exchange), `gossip`, `certificate`.
    pub(crate) what: &'static str,
    /// Why: `removed`, `not_member`, `stale_epoch`, `wrong_key`, `unknown_epoch`, `role`,
    /// `unchained`, `over_limit`, `invalid`, `malformed`.
    pub(crate) reason: &'static str,
}

/// Why the HTTP API refused a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ApiRefusalLabels {
    /// `token` (missing or wrong), `cross_site` (`Sec-Fetch-Site`), `origin`, or `host` (not
    /// a loopback name on a loopback server).
    pub(crate) reason: &'static str,
}

/// How the upload to one holder ended when the node stopped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StopUploadLabels {
    /// `uploaded` (the holder has everything this node had) or `failed` (it did not answer,
    /// or refused; the next start uploads it).
    pub(crate) result: &'static str,
}

/// Handles to the node's metrics.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    /// Edits applied to documents (changes, not duplicates).
    pub(crate) edits: Family<EditLabels, Counter>,
    /// Seconds per store transaction (one group commit, fsync included).
    pub(crate) store_commit: Histogram,
    /// Seconds per sync with a peer (one pull of one document: request, answer, apply).
    pub(crate) sync: Histogram,
    /// Peers connected now.
    pub(crate) peers: Gauge,
    /// Requests, messages and records refused by the access rules.
    pub(crate) refused: Family<RefusedLabels, Counter>,
    /// HTTP API requests refused by the access checks, by reason.
    pub(crate) api_refused: Family<ApiRefusalLabels, Counter>,
    /// HTTP API connections closed at once because the connection cap was reached.
    pub(crate) api_connections_refused: Counter,
    /// Tickets issued by this node (each adds an invitation certificate to its document).
    pub(crate) tickets_issued: Counter,
    /// Documents loaded from the store into memory (they unload when idle).
    pub(crate) documents_loaded: Counter,
    /// Attachment bytes sent in pieces to other nodes, and verified bytes received.
    pub(crate) blob_bytes_sent: Counter,
    pub(crate) blob_bytes_received: Counter,
    /// At a stop, the upload to each holder of each document, by how it ended.
    pub(crate) stop_uploads: Family<StopUploadLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them (names get the `peerdoc_` prefix).
    pub(crate) fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            edits: Family::default(),
            // 50 µs to ~1.6 s.
            store_commit: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            // 100 µs to ~3.3 s.
            sync: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            peers: Gauge::default(),
            refused: Family::default(),
            api_refused: Family::default(),
            api_connections_refused: Counter::default(),
            tickets_issued: Counter::default(),
            documents_loaded: Counter::default(),
            blob_bytes_sent: Counter::default(),
            blob_bytes_received: Counter::default(),
            stop_uploads: Family::default(),
        };
        let registry = registry.sub_registry_with_prefix("peerdoc");
        registry.register(
            "edits_applied",
            "Edits applied to documents, by origin",
            metrics.edits.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Duration of store transactions (group commits, fsync included)",
            metrics.store_commit.clone(),
        );
        registry.register(
            "sync_seconds",
            "Duration of syncs of one document with one peer",
            metrics.sync.clone(),
        );
        registry.register("peers_connected", "Peers connected", metrics.peers.clone());
        registry.register(
            "access_refused",
            "Sync requests, member exchanges, gossip and certificates refused by the access rules, and operations a removal's cut voided (what=edit), by what and why",
            metrics.refused.clone(),
        );
        registry.register(
            "api_refused",
            "HTTP API requests refused by the access checks, by reason",
            metrics.api_refused.clone(),
        );
        registry.register(
            "api_connections_refused",
            "HTTP API connections closed at once because too many were open",
            metrics.api_connections_refused.clone(),
        );
        registry.register(
            "tickets_issued",
            "Tickets issued by this node",
            metrics.tickets_issued.clone(),
        );
        registry.register(
            "documents_loaded",
            "Documents loaded from the store into memory (idle ones unload)",
            metrics.documents_loaded.clone(),
        );
        registry.register(
            "blob_bytes_sent",
            "Attachment bytes sent to other nodes (ciphertext pieces)",
            metrics.blob_bytes_sent.clone(),
        );
        registry.register(
            "blob_bytes_received",
            "Attachment bytes received and verified against their hash",
            metrics.blob_bytes_received.clone(),
        );
        registry.register(
            "holder_uploads_at_stop",
            "Uploads to a document's holders as the node stopped, by result (uploaded, failed)",
            metrics.stop_uploads.clone(),
        );
        metrics
    }

    /// Metrics not registered anywhere (tests).
    #[cfg(test)]
    pub(crate) fn unregistered() -> Metrics {
        Metrics::register(&mut Registry::default())
    }

    pub(crate) fn edit(&self, origin: &'static str) {
        self.edits.get_or_create(&EditLabels { origin }).inc();
    }

    /// Counts `n` refusals of `what` for `reason`.
    pub(crate) fn refused(&self, what: &'static str, reason: &'static str, n: u64) {
        if n > 0 {
            self.refused
                .get_or_create(&RefusedLabels { what, reason })
                .inc_by(n);
        }
    }

    pub(crate) fn api_refused(&self, reason: &'static str) {
        self.api_refused
            .get_or_create(&ApiRefusalLabels { reason })
            .inc();
    }
}

/// Both registries in the OpenMetrics text format.
pub(crate) fn encode(node: &Registry, net: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = text::encode_registry(&mut out, node);
    let _ = text::encode_registry(&mut out, net);
    let _ = text::encode_eof(&mut out);
    out
}
