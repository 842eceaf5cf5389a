//! The chaos harness: five real daemons (separate processes, each on its own host in the
//! network lab) share a document while a seeded schedule edits on random nodes, `kill -9`s and
//! restarts them, partitions the network, drops packets at random (which TCP and QUIC turn
//! into delays and retransmissions), and fills nodes' disks (each data dir is a small tmpfs).
//! Each node also drops, duplicates and delays (so reorders) the messages it receives, at rates
//! the seed picks (`serve --inject-faults`). Every edit appends a unique token; the harness
//! records which were acknowledged (the CLI exited 0). After the schedule everything heals and the
//! invariants must hold:
//!
//! 1. every acknowledged token is on every node;
//! 2. all replicas are identical: the same text, state vector and digest (operations and
//!    deletions);
//! 3. no daemon died but those the schedule killed, and each stops cleanly on SIGTERM;
//! 4. every store passes `PRAGMA integrity_check`.
//!
//! A failing schedule names its seed; replay it with `PEERDOC_CHAOS_SEED=N`. The long run:
//! `PEERDOC_CHAOS_SEEDS=10000` (and `PEERDOC_CHAOS_FIRST` to start elsewhere); see README.

// The harness runs daemons with `--inject-faults`: only built with the test-faults feature.
#![cfg_attr(not(feature = "test-faults"), allow(dead_code))]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::common::metric_value;
use super::lab::Lab;

const NODES: usize = 5;
/// Steps per schedule.
const STEPS: usize = 28;
/// Schedules in the suite's short run, and how many run at once (each is its own lab).
const DEFAULT_SEEDS: u64 = 20;
const PARALLEL: usize = 4;
/// How long replicas may take to converge once everything healed.
const CONVERGE: Duration = Duration::from_secs(90);
const DOC: &str = "chaos";
/// Each node's disk (a tmpfs the schedule may fill).
const DISK: &str = "48m";

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Append a unique token on this node.
    Edit(usize),
    /// `kill -9` this node.
    Kill(usize),
    /// Start a killed node again.
    Restart(usize),
    /// Split the nodes into these groups; nodes in different groups cannot talk.
    Partition(Vec<Vec<usize>>),
    /// Drop this percentage of packets at random (0: none).
    Loss(u32),
    /// Remove the partition.
    Heal,
    /// Fill this running node's disk: its writes fail until the space comes back.
    FillDisk(usize),
    /// Give the node's disk its space back.
    FreeDisk(usize),
    /// Let the nodes work for this many milliseconds.
    Pause(u64),
}

/// The schedule of a seed: the same seed gives the same steps. At least one node stays up, only
/// running nodes edit or are killed, and every schedule partitions the network and crashes a
/// node early on (then whatever the dice say).
pub fn schedule(seed: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut up = [true; NODES];
    let mut full = [false; NODES];
    let mut steps = Vec::with_capacity(STEPS);
    while steps.len() < STEPS {
        let running: Vec<usize> = (0..NODES).filter(|&n| up[n]).collect();
        let down: Vec<usize> = (0..NODES).filter(|&n| !up[n]).collect();
        let partitioned = steps.iter().any(|s| matches!(s, Step::Partition(_)));
        let crashed = steps.iter().any(|s| matches!(s, Step::Kill(_)));
        let roll = match steps.len() {
            n if n >= 2 && !partitioned => 70,
            n if n >= 6 && !crashed && running.len() > 1 => 50,
            _ => rng.gen_range(0..100),
        };
        let step = match roll {
            0..=44 => Step::Edit(running[rng.gen_range(0..running.len())]),
            45..=54 if running.len() > 1 => {
                let node = running[rng.gen_range(0..running.len())];
                up[node] = false;
                Step::Kill(node)
            }
            55..=64 if !down.is_empty() => {
                let node = down[rng.gen_range(0..down.len())];
                up[node] = true;
                // (The harness gives a full disk its space back before a restart.)
                full[node] = false;
                Step::Restart(node)
            }
            89..=92 => {
                let node = running[rng.gen_range(0..running.len())];
                if full[node] {
                    full[node] = false;
                    Step::FreeDisk(node)
                } else {
                    full[node] = true;
                    Step::FillDisk(node)
                }
            }
            65..=74 => {
                let mut groups = vec![Vec::new(), Vec::new()];
                for node in 0..NODES {
                    groups[rng.gen_range(0..2)].push(node);
                }
                Step::Partition(groups)
            }
            75..=81 => Step::Heal,
            82..=88 => Step::Loss(*[0, 5, 20].get(rng.gen_range(0..3)).unwrap_or(&0)),
            _ => Step::Pause(rng.gen_range(100..1500)),
        };
        steps.push(step);
    }
    steps
}

/// Each node's message faults for a seed (a stream of its own, so the schedule stays the same):
/// drop 0–20 %, duplicate 0–30 %, delay 0–30 % by up to 20–800 ms; some nodes get none.
pub fn message_faults(seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6661_756c_7473);
    (0..NODES)
        .map(|n| {
            let pick = |rng: &mut StdRng, choices: &[u32]| choices[rng.gen_range(0..choices.len())];
            let drop = pick(&mut rng, &[0, 5, 10, 20]);
            let dup = pick(&mut rng, &[0, 10, 30]);
            let delay = pick(&mut rng, &[0, 10, 30]);
            let max_delay = rng.gen_range(20..800);
            format!(
                "seed={},drop={drop},dup={dup},delay={delay},max-delay-ms={max_delay}",
                seed * 16 + n as u64
            )
        })
        .collect()
}

/// What a run found wrong, with what is needed to replay it.
type Failure = String;

/// Runs one seed's schedule on a fresh lab and checks the invariants.
pub fn run(seed: u64) -> Result<RunReport, Failure> {
    let steps = schedule(seed);
    let faults = message_faults(seed);
    let fail = |what: String| {
        format!(
            "chaos seed {seed} failed: {what}\n  schedule: {steps:?}\n  message faults: {faults:?}"
        )
    };
    let mut lab = Lab::new();
    let hosts: Vec<String> = (0..NODES)
        .map(|n| lab.public_host(&format!("n{n}"), &format!("198.51.100.{}", 20 + n)))
        .collect();
    for n in 0..NODES {
        lab.small_disk(&format!("n{n}"), DISK);
    }
    let nodes: Vec<usize> = (0..NODES)
        .map(|n| {
            let args = ["--inject-faults", faults[n].as_str()];
            lab.start(&hosts[n], &format!("n{n}"), "mdns = false\n", &args)
        })
        .collect();
    lab.ok(nodes[0], &["new", DOC, "--plain"], None);
    let ticket = lab.ok(nodes[0], &["share", DOC], None);
    for &node in &nodes[1..] {
        lab.ok(node, &["join", &ticket], None);
    }

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut up = [true; NODES];
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Edit(n) => {
                let token = format!("s{seed}-e{i}-n{n}");
                let out = lab.cli(
                    nodes[*n],
                    &["write", "--append", DOC],
                    Some(&format!("{token}\n")),
                );
                if out.status.success() {
                    acknowledged.push(token);
                } else {
                    refused += 1;
                }
            }
            Step::Kill(n) => {
                lab.kill(nodes[*n]);
                up[*n] = false;
            }
            Step::Restart(n) => {
                lab.free_disk(nodes[*n]);
                lab.restart(nodes[*n]);
                up[*n] = true;
            }
            Step::FillDisk(n) => lab.fill_disk(nodes[*n]),
            Step::FreeDisk(n) => lab.free_disk(nodes[*n]),
            Step::Partition(groups) => {
                let groups: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| g.iter().map(|&n| hosts[n].clone()).collect())
                    .collect();
                lab.set_faults(&groups, 0);
            }
            Step::Loss(percent) => lab.set_faults(&[], *percent),
            Step::Heal => lab.set_faults(&[], 0),
            Step::Pause(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
        // (3) Nothing dies unless the schedule kills it.
        for n in 0..NODES {
            if up[n] && !lab.is_running(nodes[n]) {
                return Err(fail(format!("node {n} died at step {i} ({step:?})")));
            }
        }
    }

    // Heal everything, bring every node back, and wait for the replicas to agree.
    lab.set_faults(&[], 0);
    for n in 0..NODES {
        lab.free_disk(nodes[n]);
        if !up[n] {
            lab.restart(nodes[n]);
        }
    }
    let started = Instant::now();
    let text = loop {
        let views: Vec<(String, String)> = nodes
            .iter()
            .map(|&d| (cat(&lab, d), replica_state(&lab, d)))
            .collect();
        let agree = views.windows(2).all(|w| w[0] == w[1]) && !views[0].1.is_empty();
        if agree {
            break views[0].0.clone();
        }
        if started.elapsed() > CONVERGE {
            let states: Vec<String> = views
                .iter()
                .map(|(text, state)| format!("{} lines, {state}", text.lines().count()))
                .collect();
            if std::env::var("PEERDOC_CHAOS_SEED").is_ok() {
                lab.print_logs(40);
                for &d in &nodes {
                    let out = lab.cli(d, &["status", "--json"], None);
                    let status: serde_json::Value =
                        serde_json::from_slice(&out.stdout).unwrap_or_default();
                    let cat = lab.cli(d, &["cat", DOC], None);
                    eprintln!(
                        "node {d}: docs {}; cat: {}",
                        status["docs"],
                        String::from_utf8_lossy(&cat.stderr)
                    );
                }
            }
            return Err(fail(format!(
                "replicas did not converge within {CONVERGE:?}: {states:#?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let converged_in = started.elapsed();
    // (1) Every acknowledged write is there (on every node, since all agree).
    let lines: std::collections::HashSet<&str> = text.lines().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !lines.contains(t.as_str()))
        .collect();
    if !lost.is_empty() {
        return Err(fail(format!("acknowledged writes lost: {lost:?}")));
    }
    // No write appears twice (a replayed or re-imported update would duplicate it).
    if text.lines().count() != lines.len() {
        return Err(fail(format!("a write appears twice:\n{text}")));
    }
    // What the message faults did (counted since each node's last start).
    let mut injected = [0u64; 3];
    for &node in &nodes {
        let metrics = lab.metrics(node);
        for (count, fault) in injected.iter_mut().zip(FAULT_KINDS) {
            *count += metric_value(
                &metrics,
                &format!("peerdoc_injected_faults_total{{fault=\"{fault}\"}}"),
            ) as u64;
        }
    }
    // (3) Every node stops cleanly; (4) every store is intact.
    for (n, &node) in nodes.iter().enumerate() {
        if !lab.is_running(node) {
            return Err(fail(format!("node {n} died after the schedule")));
        }
        match lab.stop(node) {
            Some(0) => {}
            other => return Err(fail(format!("node {n} did not stop cleanly: {other:?}"))),
        }
        let db = lab.data_dir(node).join("peerdoc.db");
        let check: String = rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
            .map_err(|e| fail(format!("node {n}'s store cannot be checked: {e}")))?;
        if check != "ok" {
            return Err(fail(format!("node {n}'s store is damaged: {check}")));
        }
    }
    Ok(RunReport {
        acknowledged: acknowledged.len(),
        refused,
        converged_in,
        injected,
    })
}

/// What a passing run did.
#[derive(Debug)]
pub struct RunReport {
    pub acknowledged: usize,
    pub refused: usize,
    pub converged_in: Duration,
    /// Messages dropped, duplicated and delayed by the nodes' faults ([`FAULT_KINDS`]).
    pub injected: [u64; 3],
}

/// The message faults, as `peerdoc_injected_faults_total` labels them.
const FAULT_KINDS: [&str; 3] = ["drop", "duplicate", "delay"];

fn cat(lab: &Lab, d: usize) -> String {
    let out = lab.cli(d, &["cat", DOC], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The document's state vector and digest on node `d`, as `status` reports them ("" if the
/// node cannot say yet).
fn replica_state(lab: &Lab, d: usize) -> String {
    let out = lab.cli(d, &["status", "--json"], None);
    let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return String::new();
    };
    status["docs"]
        .as_array()
        .and_then(|docs| docs.iter().find(|doc| doc["name"] == DOC))
        .filter(|doc| doc["digest"].as_str().is_some_and(|d| !d.is_empty()))
        .map(|doc| format!("{}/{}", doc["state_vector"], doc["digest"]))
        .unwrap_or_default()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn schedules_are_reproducible_from_their_seed() {
    assert_eq!(schedule(7), schedule(7));
    assert_ne!(schedule(7), schedule(8));
    for seed in 1..=DEFAULT_SEEDS {
        let steps = schedule(seed);
        assert_eq!(steps.len(), STEPS);
        // Every schedule of the suite crashes a node and partitions the network somewhere.
        assert!(
            steps.iter().any(|s| matches!(s, Step::Kill(_))),
            "seed {seed}: {steps:?}"
        );
        assert!(
            steps.iter().any(|s| matches!(s, Step::Partition(_))),
            "seed {seed}: {steps:?}"
        );
        assert!(
            steps.iter().any(|s| matches!(s, Step::Edit(_))),
            "seed {seed}"
        );
    }
}

#[cfg(feature = "test-faults")]
#[test]
#[ignore = "tier 2: needs root, the network lab and the test-faults feature (scripts/test.sh runs it)"]
fn seeded_chaos_schedules_keep_every_acknowledged_write_and_converge() {
    let seeds: Vec<u64> = match env_u64("PEERDOC_CHAOS_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("PEERDOC_CHAOS_FIRST").unwrap_or(1);
            let count = env_u64("PEERDOC_CHAOS_SEEDS").unwrap_or(DEFAULT_SEEDS);
            (first..first + count).collect()
        }
    };
    let many = seeds.len() >= 5;
    let queue = std::sync::Mutex::new(seeds.into_iter());
    let failures = std::sync::Mutex::new(Vec::new());
    let injected = std::sync::Mutex::new([0u64; 3]);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let Some(seed) = queue.lock().unwrap().next() else {
                    return;
                };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)))
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "chaos seed {seed} failed: the harness panicked (see above)"
                        ))
                    });
                match outcome {
                    Ok(report) => {
                        eprintln!(
                            "chaos seed {seed}: {} writes acknowledged, {} refused, converged \
                             in {:.1?}; messages dropped, duplicated, delayed: {:?}",
                            report.acknowledged,
                            report.refused,
                            report.converged_in,
                            report.injected
                        );
                        let mut total = injected.lock().unwrap();
                        for (t, n) in total.iter_mut().zip(report.injected) {
                            *t += n;
                        }
                    }
                    Err(failure) => {
                        eprintln!("{failure}");
                        failures.lock().unwrap().push(failure);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The message faults really happened (one seed alone may see none of a kind).
    let injected = injected.into_inner().unwrap();
    eprintln!("messages dropped, duplicated, delayed in all runs: {injected:?}");
    if many {
        assert!(injected.iter().all(|&n| n > 0), "{injected:?}");
    }
}

/// The harness's faults are real: a partitioned node hears nothing until the partition heals.
#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn a_lab_partition_cuts_nodes_apart_until_healed() {
    let mut lab = Lab::new();
    let a_host = lab.public_host("a", "198.51.100.20");
    let b_host = lab.public_host("b", "198.51.100.21");
    let a = lab.start(&a_host, "a", "mdns = false\n", &[]);
    let b = lab.start(&b_host, "b", "mdns = false\n", &[]);
    lab.ok(a, &["new", DOC, "--plain"], None);
    let ticket = lab.ok(a, &["share", DOC], None);
    lab.ok(b, &["join", &ticket], None);
    lab.set_faults(&[vec![a_host.clone()], vec![b_host.clone()]], 0);
    lab.ok(
        a,
        &["write", "--append", DOC],
        Some("during the partition\n"),
    );
    // The witness: packets between them (sync runs every second, gossip at once) are dropped,
    // and b still has nothing.
    let before = lab.partition_drops();
    super::common::wait_blocking_for("the partition drops their packets", CONVERGE, || {
        lab.partition_drops() >= before + 20
    });
    assert_eq!(cat(&lab, b), "", "b heard a through the partition");
    lab.set_faults(&[], 0);
    super::common::wait_blocking_for("the write arrives once healed", CONVERGE, || {
        cat(&lab, b) == "during the partition\n"
    });
}
