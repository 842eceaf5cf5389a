//! Row 11: gossip fan-out. N copies of peerdoc's network half (its own swarm: gossipsub with
//! peerdoc's settings, strict signing, Noise, Yamux) run in this process over libp2p's memory
//! transport, connected at random, all in one topic. One node publishes a message the size of
//! a sealed keystroke; every other node validates and forwards it as the sync driver does.
//!
//! Measured: the time until all N have it, the hops it took (each node's first copy names the
//! neighbour it came from), and the duplicate copies per node (gossipsub's own counters, before
//! and after its duplicate filter). Reference: `log_D(N)` hops (D = gossipsub's mesh degree)
//! times one hop, measured between two such nodes in the same run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use peerdoc::core::sync::gossip;
use peerdoc::testing::{
    ed25519, Keypair, MessageAcceptance, Multiaddr, Net, NetConfig, NetEvent, PeerId, MESH_DEGREE,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::report::{median, metric_sum, percentile, Row};

const TOPIC: &str = "bench-fanout";
/// The topic hash the authors' signatures cover.
const TOPIC_HASH: [u8; 32] = [7; 32];
/// About a sealed keystroke: the envelope of a one-character Yjs update. It is signed by its
/// author as the node signs gossip, and every node checks the signature once per message.
const SEALED: usize = 70;
/// Heartbeats (700 ms) for the meshes to form before measuring.
const SETTLE: Duration = Duration::from_secs(4);
/// How long a message may take to reach everyone before it counts as lost.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);
const WARM_UP: u32 = 5;

/// A node's first (and only: gossipsub filters duplicates) delivery of a message.
struct Receipt {
    node: usize,
    message: u32,
    via: PeerId,
    at: Instant,
}

/// N nodes, each with a task that accepts every message and reports it.
struct Cluster {
    nets: Vec<Net>,
    /// Each node's identity key (it signs what the node publishes).
    authors: Vec<ed25519::Keypair>,
    ids: Vec<PeerId>,
    receipts: mpsc::Receiver<Receipt>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

fn memory_addr(port: u64) -> anyhow::Result<Multiaddr> {
    Ok(format!("/memory/{port}").parse()?)
}

impl Cluster {
    /// Spawns `n` nodes listening on `/memory/{first_port + i}`.
    async fn spawn(n: usize, first_port: u64) -> anyhow::Result<Cluster> {
        let cancel = CancellationToken::new();
        let (tx, receipts) = mpsc::channel(64 * 1024);
        let mut nets = Vec::new();
        let mut authors = Vec::new();
        let mut ids = Vec::new();
        let mut tasks = Vec::new();
        for node in 0..n {
            let config = NetConfig {
                request_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(300),
                max_connections: 1024,
                ..NetConfig::new(vec![memory_addr(first_port + node as u64)?])
            };
            let author = ed25519::Keypair::generate();
            let (net, mut events, task) =
                Net::spawn(Keypair::from(author.clone()), config, cancel.clone()).await?;
            authors.push(author);
            tasks.push(task);
            let consumer = net.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    let NetEvent::Gossip { id, via, data, .. } = event else {
                        continue;
                    };
                    let at = Instant::now();
                    // The author's signature is checked once per message, and forwarding waits
                    // for this verdict, as in the node.
                    let Ok((_, sealed)) = gossip::verify(&TOPIC_HASH, &data) else {
                        let _ = consumer.try_validate(id, via, MessageAcceptance::Reject);
                        continue;
                    };
                    let _ = consumer.try_validate(id, via, MessageAcceptance::Accept);
                    let Some(index) = sealed.get(..4) else {
                        continue;
                    };
                    let message = u32::from_be_bytes([index[0], index[1], index[2], index[3]]);
                    let receipt = Receipt {
                        node,
                        message,
                        via,
                        at,
                    };
                    if tx.send(receipt).await.is_err() {
                        break;
                    }
                }
            }));
            ids.push(net.peer_id());
            nets.push(net);
        }
        Ok(Cluster {
            nets,
            authors,
            ids,
            receipts,
            cancel,
            tasks,
        })
    }

    /// Each node dials `degree` others at random (so about twice that many connections per
    /// node), then everyone subscribes and the meshes settle.
    async fn connect(&self, degree: usize, first_port: u64, seed: u64) -> anyhow::Result<()> {
        let n = self.nets.len();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut dials = Vec::new();
        for (node, net) in self.nets.iter().enumerate() {
            let mut others: Vec<usize> = (0..n).filter(|&o| o != node).collect();
            others.shuffle(&mut rng);
            for &other in others.iter().take(degree) {
                let net = net.clone();
                let peer = self.ids[other];
                let addr = memory_addr(first_port + other as u64)?;
                dials.push(tokio::spawn(
                    async move { net.dial(peer, vec![addr]).await },
                ));
            }
        }
        for dial in dials {
            dial.await??;
        }
        for net in &self.nets {
            net.subscribe(TOPIC.into()).await;
        }
        tokio::time::sleep(SETTLE).await;
        Ok(())
    }

    /// Publishes message `index` from `publisher`; returns each node's receipt (the
    /// publisher's own is not among them).
    async fn send(
        &mut self,
        publisher: usize,
        index: u32,
    ) -> anyhow::Result<(Instant, HashMap<usize, Receipt>)> {
        let mut sealed = vec![0u8; SEALED];
        sealed[..4].copy_from_slice(&index.to_be_bytes());
        let sent = Instant::now();
        let data = gossip::sign(&self.authors[publisher], &TOPIC_HASH, &sealed);
        self.nets[publisher].publish(TOPIC.into(), data).await?;
        let mut got = HashMap::new();
        let deadline = tokio::time::Instant::now() + DELIVERY_LIMIT;
        while got.len() < self.nets.len() - 1 {
            match tokio::time::timeout_at(deadline, self.receipts.recv()).await {
                Ok(Some(r)) if r.message == index => {
                    got.insert(r.node, r);
                }
                Ok(Some(_)) => {} // a late copy of an earlier message
                Ok(None) | Err(_) => break,
            }
        }
        Ok((sent, got))
    }

    /// Sum over nodes of gossipsub's received-message counters: (all copies, after the
    /// duplicate filter).
    fn received_copies(&self) -> (f64, f64) {
        let mut all = 0.0;
        let mut unique = 0.0;
        for net in &self.nets {
            let text = net.metrics_text();
            all += metric_sum(
                &text,
                "gossipsub_topic_msg_recv_counts_unfiltered_total",
                "",
            );
            unique += metric_sum(&text, "gossipsub_topic_msg_recv_counts_total", "");
        }
        (all, unique)
    }

    async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// CPU time (user and system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, after the parenthesised command name, in ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // After the name: state (not a number, skipped), then ppid … utime is the 12th number.
    match (fields.get(10), fields.get(11)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// One hop: two nodes, `messages` messages, the median time from publish to delivery (ms).
async fn one_hop(messages: u32, first_port: u64) -> anyhow::Result<f64> {
    let mut pair = Cluster::spawn(2, first_port).await?;
    pair.connect(1, first_port, 1).await?;
    let mut samples = Vec::new();
    for index in 0..WARM_UP + messages {
        let (sent, got) = pair.send(0, index).await?;
        let receipt = got
            .get(&1)
            .ok_or_else(|| anyhow::anyhow!("one hop: message {index} never arrived"))?;
        if index >= WARM_UP {
            samples.push((receipt.at - sent).as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.stop().await;
    Ok(median(&samples))
}

/// Hops from the publisher to each node, following each node's first copy back.
fn hops(publisher: PeerId, ids: &[PeerId], got: &HashMap<usize, Receipt>) -> Vec<usize> {
    let index: HashMap<PeerId, usize> = ids.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mut out = Vec::new();
    for &start in got.keys() {
        let mut node = start;
        let mut depth = 0;
        // Bounded by the node count: a cycle in `via` would be a gossipsub bug.
        while depth <= ids.len() {
            depth += 1;
            let via = got[&node].via;
            if via == publisher {
                out.push(depth);
                break;
            }
            match index.get(&via).filter(|i| got.contains_key(i)) {
                Some(&next) => node = next,
                None => break,
            }
        }
    }
    out
}

/// Row 11 with `n` nodes, each dialling `degree` others, and `messages` messages from
/// publishers taken in turn.
pub async fn fanout(n: usize, degree: usize, messages: u32) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(n >= 3, "fan-out needs at least 3 nodes");
    // Memory ports are per process; keep the two clusters apart.
    let hop = one_hop(messages, 40_000).await?;
    let mut cluster = Cluster::spawn(n, 50_000).await?;
    cluster.connect(degree, 50_000, 7).await?;
    // The CPU the idle cluster takes (heartbeats, pings), to tell it from the messages' own.
    let idle_start = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_per_sec = (cpu_seconds() - idle_start.0) / idle_start.1.elapsed().as_secs_f64();
    let (copies_before, unique_before) = cluster.received_copies();
    let cpu_before = (cpu_seconds(), Instant::now());

    let mut all = Vec::new();
    let mut depths = Vec::new();
    let mut lost = 0;
    for index in 0..WARM_UP + messages {
        let publisher = index as usize % n;
        let (sent, got) = cluster.send(publisher, index).await?;
        if index < WARM_UP {
            continue;
        }
        lost += n - 1 - got.len();
        if let Some(last) = got.values().map(|r| r.at).max() {
            if got.len() == n - 1 {
                all.push((last - sent).as_secs_f64() * 1e3);
            }
        }
        depths.extend(hops(cluster.ids[publisher], &cluster.ids, &got));
        // Let stragglers' copies arrive before the next message, so copies are counted per
        // message.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = cpu_seconds() - cpu_before.0 - idle_per_sec * cpu_before.1.elapsed().as_secs_f64();
    let (copies_after, unique_after) = cluster.received_copies();
    cluster.stop().await;
    anyhow::ensure!(lost == 0, "fan-out: {lost} deliveries missing after 10 s");

    let copies = copies_after - copies_before;
    let unique = unique_after - unique_before;
    let duplicates = (copies - unique) / unique.max(1.0);
    let mesh = MESH_DEGREE as f64;
    let ideal_hops = (n as f64).ln() / mesh.ln();
    let depths: Vec<f64> = depths.into_iter().map(|d| d as f64).collect();
    let max_depth = depths.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "row 11: {n} nodes, one hop {hop:.3} ms, hops to a node: mean {:.2}, max {max_depth}; \
         ideal log_{mesh}({n}) = {ideal_hops:.2}; copies per node and message {:.2}; \
         CPU per node and message {:.3} ms, idle cluster's CPU not counted (all {n} share \
         this machine's cores)",
        depths.iter().sum::<f64>() / depths.len().max(1) as f64,
        copies / unique.max(1.0),
        cpu * 1e3 / (f64::from(WARM_UP + messages) * n as f64),
    );
    let reference = ideal_hops * hop;
    let reference_name =
        format!("log_{MESH_DEGREE}({n}) = {ideal_hops:.2} hops × {hop:.3} ms per hop");
    Ok(vec![
        Row::new(
            "11 p50",
            &format!("fan-out: {n} in-process nodes, until all have an edit, p50"),
            "ms",
            median(&all),
            reference,
            &reference_name,
            2.0,
            None,
        ),
        Row::new(
            "11 p99",
            &format!("fan-out: {n} in-process nodes, until all have an edit, p99"),
            "ms",
            percentile(&all, 99.0),
            reference,
            &reference_name,
            2.0,
            None,
        ),
        Row::new(
            "11 hops",
            &format!("fan-out: hops from the author to a node, mean ({n} nodes)"),
            "hops",
            depths.iter().sum::<f64>() / depths.len().max(1) as f64,
            ideal_hops,
            &format!("log_{mesh}({n})"),
            2.0,
            None,
        ),
        Row::bound(
            "11 dup",
            &format!("fan-out: duplicate copies per message per node ({n} nodes)"),
            "copies",
            duplicates,
            3.0,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_follow_first_copies_back_to_the_publisher() {
        let ids: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let at = Instant::now();
        let receipt = |node, via| Receipt {
            node,
            message: 0,
            via,
            at,
        };
        // 0 publishes; 1 gets it from 0, 2 from 1, 3 from 2.
        let got = HashMap::from([
            (1, receipt(1, ids[0])),
            (2, receipt(2, ids[1])),
            (3, receipt(3, ids[2])),
        ]);
        let mut depths = hops(ids[0], &ids, &got);
        depths.sort();
        assert_eq!(depths, vec![1, 2, 3]);
    }
}
