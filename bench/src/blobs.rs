//! Row 15 (issue 24): attachments. One peer's throughput for a large file on loopback against a
//! plain TCP copy of the same file; a download from three sources against one source, each
//! throttled to the same rate; and the memory a 1 GB transfer takes above idle. In-process
//! nodes on loopback.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerdoc::core::blob::BlobRef;
use peerdoc::{Config, DhtMode, DocId, Node, TransferState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::nodes::rss_mb;
use crate::report::{median, Row};

fn config(dir: &Path, serve_rate: u64) -> anyhow::Result<Config> {
    let mut config = Config::new(dir);
    config.dht = DhtMode::Server;
    config.upnp = false;
    config.mdns = false;
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    config.sync_interval = Duration::from_millis(500);
    config.attachments.serve_rate = serve_rate;
    Ok(config)
}

/// A file of `size` pseudo-random bytes (written in 1 MiB blocks).
fn make_file(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(())
}

struct Cluster {
    _root: tempfile::TempDir,
    files: PathBuf,
    nodes: Vec<Node>,
    doc: DocId,
}

/// `n` nodes sharing one document (node 0 its owner), each seeing node 0 as a peer; the first
/// `throttled` of them send at most `rate` bytes a second to one peer.
async fn cluster(n: usize, throttled: usize, rate: u64) -> anyhow::Result<Cluster> {
    let root = tempfile::tempdir()?;
    let files = root.path().join("files");
    std::fs::create_dir_all(&files)?;
    let mut nodes = Vec::new();
    for i in 0..n {
        let rate = if i < throttled { rate } else { 0 };
        nodes.push(Node::spawn(config(&root.path().join(format!("n{i}")), rate)?).await?);
    }
    let doc = nodes[0].create_doc("files").await?.id;
    for node in &nodes[1..] {
        node.join(&nodes[0].ticket(&doc).await?, None).await?;
    }
    Ok(Cluster {
        _root: root,
        files,
        nodes,
        doc,
    })
}

impl Cluster {
    async fn attach(&self, node: usize, size: u64, seed: u64) -> anyhow::Result<BlobRef> {
        let path = self.files.join(format!("f{seed}"));
        make_file(&path, size, seed)?;
        let blob = self.nodes[node]
            .attach(&self.doc, &path, None, false)
            .await?
            .blob;
        std::fs::remove_file(&path)?;
        Ok(blob)
    }

    /// Waits until `node` sees `count` peers on the document.
    async fn peers(&self, node: usize, count: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.nodes[node].status().await?;
            let seen = status
                .docs
                .iter()
                .find(|d| d.id == self.doc)
                .map_or(0, |d| d.peers.len());
            if seen >= count {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {node} sees {seen} peers of {count}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fetches `blob` on `node`; the seconds it took and the sources that sent bytes.
    async fn fetch(&self, node: usize, blob: BlobRef) -> anyhow::Result<(f64, usize)> {
        let start = Instant::now();
        let done = self.nodes[node]
            .fetch_blob_and_wait(&self.doc, blob)
            .await?;
        anyhow::ensure!(done.state == TransferState::Done, "{done:?}");
        let used = done.sources.iter().filter(|s| s.bytes > 0).count();
        Ok((start.elapsed().as_secs_f64(), used))
    }

    async fn shutdown(self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
    }
}

/// Seconds to copy `size` bytes over a plain loopback TCP connection: read from a file on one
/// side, written to a file (and synced) on the other, as a download is.
async fn tcp_copy(dir: &Path, size: u64) -> anyhow::Result<f64> {
    let source = dir.join("tcp-source");
    let target = dir.join("tcp-target");
    make_file(&source, size, 99)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut file = tokio::fs::File::create(&target).await?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).await?;
        }
        file.sync_all().await?;
        anyhow::Ok(())
    });
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let mut file = tokio::fs::File::open(&source).await?;
    tokio::io::copy(&mut file, &mut socket).await?;
    socket.shutdown().await?;
    receiver.await??;
    let took = start.elapsed().as_secs_f64();
    std::fs::remove_file(&source)?;
    Ok(took)
}

/// Row 15: `size` bytes for throughput, `rate` bytes a second per throttled source, `big` bytes
/// for the memory figure.
pub async fn blobs(size: u64, rate: u64, big: u64, runs: usize) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mb = size as f64 / 1e6;

    eprintln!("row 15: one peer, {mb:.0} MB, against a TCP copy");
    let c = cluster(2, 0, 0).await?;
    c.peers(1, 1).await?;
    let (mut ours, mut tcp) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let blob = c.attach(0, size, run as u64 + 1).await?;
        ours.push(c.fetch(1, blob).await?.0);
        tcp.push(tcp_copy(&c.files, size).await?);
    }
    let (ours, tcp) = (median(&ours), median(&tcp));
    rows.push(Row::new(
        "15 one peer",
        &format!("time to fetch {mb:.0} MB from one peer on loopback (sealed, verified, synced); throughput {:.0} MB/s against {:.0} MB/s", mb / ours, mb / tcp),
        "s",
        ours,
        tcp,
        "a plain TCP copy of as many bytes, file to file",
        2.0,
        None,
    ));
    c.shutdown().await;

    let rated = rate as f64 / 1e6;
    eprintln!("row 15: three sources against one, each at {rated:.0} MB/s");
    let c = cluster(4, 3, rate).await?;
    let spread = c.attach(0, size, 100).await?;
    for node in [1, 2] {
        c.fetch(node, spread).await?;
    }
    c.peers(3, 3).await?;
    let (mut three, mut one) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let alone = c.attach(0, size, 200 + run as u64).await?;
        let (t1, used1) = c.fetch(3, alone).await?;
        anyhow::ensure!(used1 == 1, "one source expected, {used1} sent");
        one.push(t1);
        // The spread blob again each run: D forgets it first.
        let (t3, used3) = c.fetch(3, spread).await?;
        anyhow::ensure!(used3 == 3, "three sources expected, {used3} sent");
        three.push(t3);
        if run + 1 < runs {
            c.nodes[3].gc_blobs(Some(-1)).await?;
            anyhow::ensure!(
                c.nodes[3]
                    .blobs(&c.doc)
                    .await?
                    .iter()
                    .all(|b| b.hash != spread.hash || b.here == 0),
                "D forgot the blob"
            );
        }
    }
    let (three, one) = (median(&three), median(&one));
    rows.push(Row::new(
        "15 three sources",
        &format!("time to fetch {mb:.0} MB from three peers, each sending at most {rated:.0} MB/s"),
        "s",
        three,
        one,
        "the same from one such peer",
        // At least 1.8× faster.
        0.55,
        None,
    ));
    c.shutdown().await;

    let gb = big as f64 / 1e9;
    eprintln!("row 15: memory while {gb:.1} GB is transferred");
    let c = cluster(2, 0, 0).await?;
    c.peers(1, 1).await?;
    let blob = c.attach(0, big, 300).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mb();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_mb());
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    c.fetch(1, blob).await?;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().map_err(|_| anyhow::anyhow!("sampler"))?;
    rows.push(Row::bound(
        "15 memory",
        &format!("peak RSS above idle while {gb:.1} GB is fetched between two nodes in one process (idle {idle:.0} MB)"),
        "MB",
        peak - idle,
        100.0,
    ));
    c.shutdown().await;
    Ok(rows)
}
