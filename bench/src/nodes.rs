//! Rows 3, 4, 9 and 10: real nodes in this process (SQLite store, libp2p on loopback) against
//! SQLite and raw yrs doing the least the same job needs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peerdoc::core::doc::Document;
use peerdoc::{Config, DhtMode, Node};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Transact, Update};

use crate::docs::{raw_doc, raw_encoded};
use crate::report::{median, metric_sum, Row};

const DOC: &str = "trace";

fn config(dir: &Path) -> anyhow::Result<Config> {
    let mut config = Config::new(dir);
    config.dht = DhtMode::Server;
    config.upnp = false;
    config.mdns = false;
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    Ok(config)
}

async fn spawn(config: Config) -> anyhow::Result<Node> {
    Ok(Node::spawn(config).await?)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A data dir holding the trace's document, stored and compacted (as after a clean stop).
pub struct Stored {
    _root: tempfile::TempDir,
    pub dir: PathBuf,
    /// A data dir holding an empty document of the same name (row 10's baseline).
    empty: PathBuf,
}

pub async fn store(doc: &Document) -> anyhow::Result<Stored> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("a");
    let empty = root.path().join("empty");
    let node = spawn(config(&dir)?).await?;
    node.create_doc(DOC).await?;
    node.apply_update(DOC, doc.encode_state()).await?;
    node.shutdown().await;
    let node = spawn(config(&empty)?).await?;
    node.create_doc(DOC).await?;
    node.shutdown().await;
    Ok(Stored {
        _root: root,
        dir,
        empty,
    })
}

/// Reads the document's stored updates with plain SQL (the reference's read).
fn read_stored(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let db = rusqlite::Connection::open(dir.join("peerdoc.db"))?;
    let mut blobs: Vec<Vec<u8>> = db
        .prepare("SELECT s.data FROM snapshots s JOIN docs d ON d.id = s.doc WHERE d.name = ?1")?
        .query_map([DOC], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let log: Vec<Vec<u8>> = db
        .prepare("SELECT u.data FROM updates u JOIN docs d ON d.id = u.doc WHERE d.name = ?1 ORDER BY u.seq")?
        .query_map([DOC], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    blobs.extend(log);
    Ok(blobs)
}

/// Row 3: from a stopped node's store to the document's text in memory, in a running node
/// (the node is started first, untimed: documents open on first use). Reference: one SQL read
/// and a raw yrs decode of the same bytes.
pub async fn cold_open(stored: &Stored, doc: &Document, runs: usize) -> anyhow::Result<Row> {
    let expected = doc.text();
    let mut ours = Vec::new();
    let mut reference = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let (raw, text) = raw_doc();
        for blob in read_stored(&stored.dir)? {
            raw.transact_mut().apply_update(Update::decode_v1(&blob)?)?;
        }
        let got = text.get_string(&raw.transact());
        reference.push(ms(start));
        anyhow::ensure!(
            got == expected,
            "the stored document differs from the trace"
        );

        let node = spawn(config(&stored.dir)?).await?;
        let start = Instant::now();
        let got = node.text(DOC).await?;
        ours.push(ms(start));
        node.shutdown().await;
        anyhow::ensure!(
            got == expected,
            "the node's document differs from the trace"
        );
    }
    Ok(Row::new(
        "3",
        "cold open of the trace's final document: store to text in memory",
        "ms",
        median(&ours),
        median(&reference),
        "SQLite read + raw yrs decode",
        2.0,
        Some(50.0),
    ))
}

/// Row 4: a fresh node joins with a ticket and has the whole document (dial, handshakes,
/// membership, pull, store). Reference: raw yrs encode on one side, decode on the other.
pub async fn catch_up(stored: &Stored, doc: &Document, runs: usize) -> anyhow::Result<Vec<Row>> {
    let expected = doc.text();
    let encoded = raw_encoded(doc)?;
    let mut reference = Vec::new();
    for _ in 0..runs {
        let (source, _) = raw_doc();
        source
            .transact_mut()
            .apply_update(Update::decode_v1(&encoded)?)?;
        let start = Instant::now();
        let update = source
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        let (target, text) = raw_doc();
        target
            .transact_mut()
            .apply_update(Update::decode_v1(&update)?)?;
        reference.push(ms(start));
        anyhow::ensure!(
            text.get_string(&target.transact()) == expected,
            "raw copy differs"
        );
    }

    let (ours, sent) = joins(&stored.dir, runs, Some(&expected)).await?;
    // The same join of an empty document: what does not depend on the document's size.
    let (empty, empty_sent) = joins(&stored.empty, runs, None).await?;
    eprintln!(
        "row 4: joining an empty document takes {:.1} ms and {:.0} bytes from the sharer",
        median(&empty),
        median(&empty_sent)
    );
    Ok(vec![
        Row::new(
            "4",
            "catch-up: a fresh node joins and has the whole document (one peer, loopback)",
            "ms",
            median(&ours),
            median(&reference),
            "raw yrs encode + decode",
            2.0,
            Some(100.0),
        ),
        Row::new(
            "4 wire",
            "catch-up: bytes the sharer sends for the join (TCP payload: handshakes, membership, the document)",
            "bytes",
            median(&sent),
            encoded.len() as f64,
            "the encoded state",
            1.1,
            None,
        ),
    ])
}

/// Fresh nodes join the document of the node in `dir`, one after another: the time each took
/// and the bytes the sharer sent meanwhile (libp2p's bandwidth counters).
async fn joins(
    dir: &Path,
    runs: usize,
    expected: Option<&str>,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let sharer = spawn(config(dir)?).await?;
    let ticket = sharer.share(DOC, false).await?;
    let (mut times, mut sent) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let joiner = spawn(config(dir.path())?).await?;
        let before = bytes_out(&sharer.metrics_text());
        let start = Instant::now();
        joiner.join(&ticket, None).await?;
        times.push(ms(start));
        sent.push(bytes_out(&sharer.metrics_text()) - before);
        let got = joiner.text(DOC).await?;
        joiner.shutdown().await;
        if let Some(expected) = expected {
            anyhow::ensure!(got == expected, "the joined copy differs from the trace");
        }
    }
    sharer.shutdown().await;
    Ok((times, sent))
}

/// Bytes a node has sent to peers, all transports (OpenMetrics text of `GET /metrics`).
fn bytes_out(metrics: &str) -> f64 {
    metric_sum(
        metrics,
        "libp2p_bandwidth_bytes_total",
        "direction=\"Outbound\"",
    )
}

/// Bytes of the database in use (pages not on the free list): what its documents occupy.
fn used_bytes(dir: &Path) -> anyhow::Result<u64> {
    let db = rusqlite::Connection::open(dir.join("peerdoc.db"))?;
    let pragma = |name: &str| db.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    let used = pragma("page_size")? * (pragma("page_count")? - pragma("freelist_count")?);
    Ok(u64::try_from(used)?)
}

/// Row 10: what the document occupies in the database (pages in use, against a database
/// holding the same document empty), against its yrs v1 encoding.
pub fn stored_size(stored: &Stored, doc: &Document) -> anyhow::Result<Row> {
    let ours = used_bytes(&stored.dir)?.saturating_sub(used_bytes(&stored.empty)?);
    let reference = raw_encoded(doc)?.len();
    Ok(Row::new(
        "10",
        "stored size of the trace's document, history kept (database pages in use)",
        "KB",
        ours as f64 / 1e3,
        reference as f64 / 1e3,
        "yrs v1 encoding",
        1.25,
        None,
    ))
}

pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1e3)
}

/// Row 9: memory per open document of the trace's size, and whether closing gives it back.
/// Measured in this process, so only differences count.
pub async fn memory(doc: &Document, copies: usize) -> anyhow::Result<Vec<Row>> {
    let state = doc.encode_state();
    // jemalloc returns freed pages after its 2 s decay (see .cargo/config.toml).
    let settle = Duration::from_secs(3);

    tokio::time::sleep(settle).await;
    let before = rss_mb();
    let mut raws = Vec::new();
    for _ in 0..copies {
        let (raw, _) = raw_doc();
        raw.transact_mut()
            .apply_update(Update::decode_v1(&state)?)?;
        raws.push(raw);
    }
    let raw_per_doc = (rss_mb() - before) / copies as f64;
    drop(raws);

    let root = tempfile::tempdir()?;
    let node = spawn(config(root.path())?).await?;
    for i in 0..copies {
        let name = format!("m{i}");
        node.create_doc(&name).await?;
        node.apply_update(&name, state.clone()).await?;
    }
    node.shutdown().await;
    let mut config = config(root.path())?;
    let unload_after = Duration::from_secs(2);
    config.unload_after = unload_after;
    let node = spawn(config).await?;
    tokio::time::sleep(settle).await;
    let idle = rss_mb();
    for i in 0..copies {
        drop(node.text(&format!("m{i}")).await?);
    }
    let open = rss_mb();
    // Unloaded after `unload_after` idle, checked every quarter of it; then the decay.
    tokio::time::sleep(unload_after * 2 + settle).await;
    let closed = rss_mb();
    node.shutdown().await;
    let per_doc = (open - idle) / copies as f64;
    Ok(vec![
        Row::new(
            "9 per doc",
            &format!("RSS per open document of the trace's size ({copies} open)"),
            "MB",
            per_doc,
            raw_per_doc,
            "raw yrs doc decoded from the same state",
            2.0,
            None,
        ),
        Row::new(
            "9 closed",
            "RSS after the documents are unloaded, against the node before opening them",
            "MB",
            closed,
            idle,
            "same node, idle before opening",
            1.1,
            None,
        ),
    ])
}
