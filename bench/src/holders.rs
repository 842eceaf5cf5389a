//! Row 14 (issue 23): a holder (blind replica) of the trace's document. What it keeps before and
//! after a member's snapshot replaced its log, against the document's yrs encoding; a fresh
//! node's catch-up from the holder alone against the same catch-up from a member (time and bytes
//! sent); and the holder's CPU per written edit against a member's, with real processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peerdoc::core::doc::Document;
use peerdoc::{Config, DhtMode, Node, ReplicaLimits};

use crate::docs::raw_encoded;
use crate::report::{median, metric_sum, Row};
use crate::trace::Trace;

const DOC: &str = "trace";
/// The trace is written in this many changes (an editor's bursts, each kept as an entry).
const CHUNKS: usize = 200;

fn config(dir: &Path, holder: bool) -> anyhow::Result<Config> {
    let mut config = Config::new(dir);
    config.dht = DhtMode::Server;
    config.upnp = false;
    config.mdns = false;
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    // No periodic rounds: uploads follow the writes; the snapshot comes when asked for.
    config.sync_interval = Duration::from_secs(3600);
    // A joiner looks for members for a third of this before it turns to the holders.
    config.request_timeout = Duration::from_secs(3);
    if holder {
        config.replica = Some(ReplicaLimits::default());
    }
    Ok(config)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn bytes_out(node: &Node) -> f64 {
    metric_sum(
        &node.metrics_text(),
        "libp2p_bandwidth_bytes_total",
        "direction=\"Outbound\"",
    )
}

async fn dial_addr(node: &Node) -> anyhow::Result<String> {
    let status = node.status().await?;
    let addr = status
        .listen_addrs
        .iter()
        .find(|a| a.to_string().starts_with("/ip4/127.0.0.1/tcp/"))
        .ok_or_else(|| anyhow::anyhow!("no loopback TCP address"))?;
    Ok(format!("{addr}/p2p/{}", node.peer_id()))
}

/// The trace's edits as `CHUNKS` updates, in order.
fn chunks(trace: &Trace) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut doc = Document::new();
    let per = trace.edits.len().div_ceil(CHUNKS).max(1);
    let mut out = Vec::new();
    for edits in trace.edits.chunks(per) {
        let updates: Vec<Vec<u8>> = edits
            .iter()
            .filter_map(|e| doc.splice(e.at, e.delete, &e.insert))
            .collect();
        out.push(yrs::merge_updates_v1(updates.iter().map(Vec::as_slice))?);
    }
    Ok(out)
}

pub async fn holders(trace: &Trace, doc: &Document, runs: usize) -> anyhow::Result<Vec<Row>> {
    let root = tempfile::tempdir()?;
    let encoded = raw_encoded(doc)?.len() as f64;
    let holder = Node::spawn(config(&root.path().join("r"), true)?).await?;
    let a_dir = root.path().join("a");
    let a = Node::spawn(config(&a_dir, false)?).await?;
    a.create_doc(DOC).await?;
    a.replicate(DOC, &dial_addr(&holder).await?).await?;
    // Written in bursts: each is uploaded soon after, the rest before the node stops.
    for update in chunks(trace)? {
        a.apply_update(DOC, update).await?;
    }
    a.shutdown().await;
    let held = holder.held().await?.remove(0);
    let held_trace = held.doc;
    let before = held.bytes as f64;
    let a = Node::spawn(config(&a_dir, false)?).await?;
    anyhow::ensure!(
        a.text(DOC).await? == doc.text(),
        "the writer's copy differs"
    );
    // A full exchange: a member that sees a log over 1.5x the document replaces it.
    a.replicate(DOC, &dial_addr(&holder).await?).await?;
    let held = holder.held().await?.remove(0);
    let after = held.bytes as f64;
    eprintln!(
        "row 14: the holder kept {} entries ({before:.0} bytes); a snapshot replaced those below {}",
        held.entries, held.compacted_below
    );

    // Catch-up: from the member (online), then from the holder alone (the member stopped).
    let ticket = a.share(DOC, false).await?;
    let (mut member_ms, mut member_bytes) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let joiner = Node::spawn(config(dir.path(), false)?).await?;
        let sent = bytes_out(&a);
        let start = Instant::now();
        joiner.join(&ticket, None).await?;
        member_ms.push(ms(start));
        member_bytes.push(bytes_out(&a) - sent);
        anyhow::ensure!(joiner.text(DOC).await? == doc.text(), "joined copy differs");
        joiner.shutdown().await;
    }
    a.shutdown().await;
    let (mut holder_ms, mut holder_bytes) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let joiner = Node::spawn(config(dir.path(), false)?).await?;
        let sent = bytes_out(&holder);
        let start = Instant::now();
        joiner.join(&ticket, None).await?;
        holder_ms.push(ms(start));
        holder_bytes.push(bytes_out(&holder) - sent);
        anyhow::ensure!(
            joiner.text(DOC).await? == doc.text(),
            "copy from the holder differs"
        );
        joiner.shutdown().await;
    }
    eprintln!(
        "row 14: a join from the holder includes the look for members first (1 s at most here)"
    );

    // Many small changes, each its own entry (an editor typing a line at a time): a log of
    // entries much larger than the document, until a snapshot replaces it.
    let a = Node::spawn(config(&root.path().join("lines"), false)?).await?;
    a.create_doc("lines").await?;
    a.write("lines", "start\n".into(), false).await?;
    a.replicate("lines", &dial_addr(&holder).await?).await?;
    let kept = |held: Vec<peerdoc::HeldInfo>| {
        held.into_iter()
            .find(|h| h.entries > 0 && h.doc != held_trace)
            .map_or(0, |h| h.bytes)
    };
    for i in 0..300 {
        let before = holder.held().await?.iter().map(|h| h.entries).sum::<u64>();
        a.write("lines", format!("line {i}\n"), true).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while holder.held().await?.iter().map(|h| h.entries).sum::<u64>() == before {
            anyhow::ensure!(Instant::now() < deadline, "the holder did not get a line");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let lines_before = kept(holder.held().await?) as f64;
    a.replicate("lines", &dial_addr(&holder).await?).await?;
    let lines_after = kept(holder.held().await?) as f64;
    a.shutdown().await;
    holder.shutdown().await;
    Ok(vec![
        Row::info(
            "14 log",
            "holder: bytes kept for the trace's document written in 200 bursts, before a snapshot",
            "KB",
            before / 1e3,
            encoded / 1e3,
            "the encoded state",
        ),
        Row::new(
            "14 kept",
            "holder: bytes kept for the trace's document once a member's snapshot replaced the log",
            "KB",
            after / 1e3,
            encoded / 1e3,
            "the encoded state",
            1.5,
            None,
        ),
        Row::info(
            "14 lines",
            "holder: bytes kept for a document written a line at a time (300 entries), before a snapshot",
            "KB",
            lines_before / 1e3,
            lines_after / 1e3,
            "the same once a member's snapshot replaced the log",
        ),
        Row::info(
            "14 catch-up",
            "a fresh node joins and has the whole document from the holder alone (no member online)",
            "ms",
            median(&holder_ms),
            median(&member_ms),
            "the same join from a member",
        ),
        Row::info(
            "14 catch-up wire",
            "bytes the holder sends for that join",
            "bytes",
            median(&holder_bytes),
            median(&member_bytes),
            "bytes a member sends for it",
        ),
    ])
}

/// A `peerdoc serve` process for the CPU row.
struct Daemon {
    child: Child,
    data: PathBuf,
    bin: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, data: &Path, extra: &[&str]) -> anyhow::Result<Daemon> {
        let child = Command::new(bin)
            .arg("--data")
            .arg(data)
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ])
            .args(["--no-mdns", "--no-upnp", "--sync-interval", "10"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !data.join("api.addr").exists() {
            anyhow::ensure!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Daemon {
            child,
            data: data.to_path_buf(),
            bin: bin.to_path_buf(),
        })
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut child = Command::new(&self.bin)
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            use std::io::Write;
            pipe.write_all(stdin.unwrap_or_default().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "peerdoc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    fn address(&self) -> anyhow::Result<String> {
        let status: serde_json::Value =
            serde_json::from_str(&self.cli(&["status", "--json"], None)?)?;
        let peer = status["peer_id"].as_str().unwrap_or_default().to_string();
        let addr = status["listen_addrs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .ok_or_else(|| anyhow::anyhow!("no loopback address"))?
            .to_string();
        Ok(format!("{addr}/p2p/{peer}"))
    }

    /// CPU seconds the process used so far (user and system, from /proc).
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are the 14th and 15th fields; 2 are before the ')'.
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / 100.0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The holder's CPU per written edit against a member's (real processes): writer A appends
/// `edits` lines one at a time; member B gets each live; holder R gets each upload.
pub fn holder_cpu(edits: usize) -> anyhow::Result<Row> {
    let bin = std::env::current_exe()?
        .parent()
        .map(|dir| dir.join("peerdoc"))
        .ok_or_else(|| anyhow::anyhow!("no peerdoc binary beside the harness"))?;
    let root = tempfile::tempdir()?;
    let r = Daemon::start(&bin, &root.path().join("r"), &["--replica"])?;
    let a = Daemon::start(&bin, &root.path().join("a"), &[])?;
    let b = Daemon::start(&bin, &root.path().join("b"), &[])?;
    a.cli(&["new", DOC, "--plain"], None)?;
    a.cli(&["write", DOC], Some("start\n"))?;
    let ticket = a.cli(&["share", DOC], None)?;
    b.cli(&["join", &ticket], None)?;
    a.cli(&["replicate", DOC, &r.address()?], None)?;
    // Each node's idle CPU over the time the writes will take, to subtract.
    let idle = Duration::from_secs(3);
    let (r0, b0) = (r.cpu_seconds()?, b.cpu_seconds()?);
    std::thread::sleep(idle);
    let (r_idle, b_idle) = (r.cpu_seconds()? - r0, b.cpu_seconds()? - b0);
    let (r0, b0) = (r.cpu_seconds()?, b.cpu_seconds()?);
    let start = Instant::now();
    for i in 0..edits {
        a.cli(&["write", DOC, "--append"], Some(&format!("line {i}\n")))?;
    }
    let last = format!("line {}", edits - 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.cli(&["cat", DOC], None)?.ends_with(&last) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the member did not get every edit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The holder has them when the writer's last exchange with it read back its head.
    std::thread::sleep(Duration::from_secs(1));
    let took = start.elapsed().as_secs_f64();
    let per_idle = |used: f64| used * took / idle.as_secs_f64();
    let r_cpu = (r.cpu_seconds()? - r0 - per_idle(r_idle)).max(0.0);
    let b_cpu = (b.cpu_seconds()? - b0 - per_idle(b_idle)).max(0.0);
    let replicas = a.cli(&["replicas", DOC, "--json"], None)?;
    let replicas: serde_json::Value = serde_json::from_str(&replicas)?;
    eprintln!(
        "row 14 cpu: {edits} edits in {took:.1} s; the holder kept {} entries",
        replicas[0]["entries"]
    );
    Ok(Row::info(
        "14 cpu",
        "CPU per written edit: the holder (sealed uploads) against a member (live gossip)",
        "ms",
        r_cpu * 1e3 / edits as f64,
        b_cpu * 1e3 / edits as f64,
        "a member's CPU per edit",
    ))
}
