//! The soak run: daemons (real processes on loopback) share several documents while a client
//! keeps editing on random nodes and half of the nodes churn (`kill -9`, restart). Afterwards,
//! with the editing stopped, every replica must converge, and the nodes that never restarted
//! must not have grown: RSS at the end within 10 % of RSS after the warm-up.
//!
//! The suite runs a short version. The long one (figures in BENCHMARKS.md):
//! `PEERDOC_SOAK_NODES=20 PEERDOC_SOAK_DOCS=10 PEERDOC_SOAK_SECS=1800 cargo test --release
//! --test tests soak -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::daemon::Daemon;

/// How far RSS may grow between the warm-up and the end, on nodes that never restarted.
const MAX_GROWTH: f64 = 1.10;
/// How long replicas may take to agree once editing stops.
const QUIESCENCE: Duration = Duration::from_secs(30);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "tier 2: measures memory, minutes long (scripts/test.sh runs it)"]
fn soak_with_churn_converges_and_memory_stays_flat() {
    let nodes = env_or("PEERDOC_SOAK_NODES", 6) as usize;
    let docs = env_or("PEERDOC_SOAK_DOCS", 3) as usize;
    let secs = env_or("PEERDOC_SOAK_SECS", 40);
    let mut rng = StdRng::seed_from_u64(env_or("PEERDOC_SOAK_SEED", 1));
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..nodes)
        .map(|n| root.path().join(format!("n{n}")))
        .collect();
    let mut daemons: Vec<Daemon> = dirs.iter().map(|d| Daemon::start(d)).collect();
    let names: Vec<String> = (0..docs).map(|d| format!("doc{d}")).collect();
    for name in &names {
        daemons[0].ok(&["new", name, "--plain"], None);
        let ticket = daemons[0].ok(&["share", name], None);
        for daemon in &daemons[1..] {
            daemon.ok(&["join", ticket.trim()], None);
        }
    }
    // Odd nodes churn; even nodes run throughout (their memory is what is measured).
    let stable: Vec<usize> = (0..nodes).step_by(2).collect();
    let churning: Vec<usize> = (1..nodes).step_by(2).collect();

    let start = Instant::now();
    let warm_up = Duration::from_secs(secs / 3);
    let mut warm_rss: Option<Vec<u64>> = None;
    let mut edits = 0;
    let mut restarts = 0;
    let mut next_churn = Instant::now() + Duration::from_secs(3);
    while start.elapsed() < Duration::from_secs(secs) {
        // One edit on a random running node.
        let n = rng.gen_range(0..nodes);
        let doc = &names[rng.gen_range(0..docs)];
        let token = format!("e{edits}-n{n}\n");
        if daemons[n]
            .run(&["write", "--append", doc], Some(&token))
            .status
            .success()
        {
            edits += 1;
        }
        if !churning.is_empty() && Instant::now() >= next_churn {
            let victim = churning[rng.gen_range(0..churning.len())];
            daemons[victim].crash_and_restart();
            restarts += 1;
            next_churn = Instant::now() + Duration::from_millis(rng.gen_range(2000..6000));
        }
        if warm_rss.is_none() && start.elapsed() >= warm_up {
            warm_rss = Some(
                stable
                    .iter()
                    .map(|&n| rss_kb(daemons[n].child.id()))
                    .collect(),
            );
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..120)));
    }
    let end_rss: Vec<u64> = stable
        .iter()
        .map(|&n| rss_kb(daemons[n].child.id()))
        .collect();

    // Quiescence: every replica of every document agrees.
    let quiet = Instant::now();
    for name in &names {
        loop {
            let texts: Vec<String> = daemons.iter().map(|d| d.ok(&["cat", name], None)).collect();
            if texts.windows(2).all(|w| w[0] == w[1]) {
                break;
            }
            assert!(
                quiet.elapsed() < QUIESCENCE,
                "{name}: replicas still differ {QUIESCENCE:?} after editing stopped: {:?}",
                texts.iter().map(|t| t.lines().count()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let converged = quiet.elapsed();
    let warm_rss = warm_rss.expect("the run lasted past its warm-up");
    eprintln!(
        "soak: {nodes} nodes, {docs} documents, {secs} s, {edits} edits, {restarts} restarts; \
         converged {converged:.1?} after editing stopped; stable nodes' RSS after warm-up {:?} \
         KB, at the end {:?} KB",
        warm_rss, end_rss
    );
    for (i, (&warm, &end)) in warm_rss.iter().zip(&end_rss).enumerate() {
        assert!(
            end as f64 <= warm as f64 * MAX_GROWTH,
            "node {}'s RSS grew from {warm} KB to {end} KB",
            stable[i]
        );
    }
}
