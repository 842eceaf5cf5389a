//! `peerdoc-bench`: the in-process half of peerdoc's benchmark harness (rows 1–4, 9–11, 14 of
//! BENCHMARKS.md). Every figure is a ratio against a reference measured in the same run. The
//! editor rows (stock Yjs clients against peerdoc daemons and the central y-websocket server)
//! are in `bench/editors/` (one file per row); `scripts/bench.sh` runs both and `peerdoc-bench report` joins
//! their JSON into one Markdown table.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod blobs;
mod docs;
mod fanout;
mod holders;
mod nodes;
mod report;
mod trace;

/// In row 11 each node dials this many others: about twice as many connections each, enough
/// for gossipsub's mesh.
const FANOUT_DEGREE: usize = 5;

// The allocator the peerdoc binary runs with, so memory figures are the binary's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    version,
    about = "peerdoc's benchmark harness (in-process rows; see BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Row 15's sizes.
#[derive(clap::Args, Clone, Copy)]
struct BlobSizes {
    /// MB fetched in row 15's throughput and three-source figures.
    #[arg(long, default_value_t = 100)]
    blob_mb: u64,
    /// MB per second each source sends at most in the three-source figure.
    #[arg(long, default_value_t = 16)]
    blob_rate_mb: u64,
    /// MB transferred in row 15's memory figure.
    #[arg(long, default_value_t = 1000)]
    blob_big_mb: u64,
}

impl BlobSizes {
    async fn rows(self, runs: usize) -> anyhow::Result<Vec<report::Row>> {
        let mb = 1_000_000;
        blobs::blobs(
            self.blob_mb * mb,
            self.blob_rate_mb * mb,
            self.blob_big_mb * mb,
            runs,
        )
        .await
    }
}

#[derive(Subcommand)]
enum Command {
    /// Measure: replay, keystroke cost, cold open, catch-up, memory, stored size, fan-out.
    Run {
        /// A sequential editing trace (.json or .json.gz), e.g.
        /// ../shared/data/editing-traces/automerge-paper.json.gz
        #[arg(long)]
        trace: PathBuf,
        /// Use only the trace's first N edits (a smoke run).
        #[arg(long)]
        edits: Option<usize>,
        /// Repeat each timed measurement this often (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Keystrokes timed in row 2.
        #[arg(long, default_value_t = 5000)]
        keystrokes: usize,
        /// Copies of the document open at once in row 9.
        #[arg(long, default_value_t = 10)]
        copies: usize,
        /// Nodes in row 11's fan-out.
        #[arg(long, default_value_t = 100)]
        fanout_nodes: usize,
        /// Messages timed in row 11.
        #[arg(long, default_value_t = 50)]
        fanout_messages: u32,
        /// Edits written for row 14's CPU figure.
        #[arg(long, default_value_t = 300)]
        holder_edits: usize,
        #[command(flatten)]
        blobs: BlobSizes,
        /// Write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Only row 15, attachments (throughput, three sources, memory).
    Blobs {
        #[command(flatten)]
        sizes: BlobSizes,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Only row 11, the fan-out (for profiling it and trying gossip settings).
    Fanout {
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        #[arg(long, default_value_t = 50)]
        messages: u32,
        /// Write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Only row 14, a holder (the trace's document kept, compacted, caught up from; CPU).
    Holders {
        /// A sequential editing trace.
        #[arg(long)]
        trace: PathBuf,
        #[arg(long)]
        edits: Option<usize>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 300)]
        holder_edits: usize,
        /// Write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write a synthetic sequential trace (typing, backspaces, cursor jumps; the same for the
    /// same seed): what the smoke run replays, so that it needs no trace beside the clone.
    Synth {
        /// Edits in the trace.
        #[arg(long, default_value_t = 4000)]
        edits: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write it (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Join result files (from `run` and from bench/editors/main.mjs) into one Markdown table.
    Report {
        /// JSON files written by `run --json` or `bench/editors/main.mjs --json`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            trace,
            edits,
            runs,
            keystrokes,
            copies,
            fanout_nodes,
            fanout_messages,
            holder_edits,
            blobs,
            json,
        } => {
            anyhow::ensure!(runs > 0, "--runs must be at least 1");
            let trace = trace::load(&trace, edits)?;
            eprintln!("{}: {} edits", trace.name, trace.edits.len());
            let fanout = (fanout_nodes, fanout_messages);
            let mut rows = run(&trace, runs, keystrokes, copies, fanout, holder_edits)?;
            rows.extend(tokio::runtime::Runtime::new()?.block_on(blobs.rows(runs))?);
            emit(&rows, json)?;
        }
        Command::Holders {
            trace,
            edits,
            runs,
            holder_edits,
            json,
        } => {
            anyhow::ensure!(runs > 0, "--runs must be at least 1");
            let trace = trace::load(&trace, edits)?;
            let (_, doc) = docs::replay(&trace, 1)?;
            let mut rows =
                tokio::runtime::Runtime::new()?.block_on(holders::holders(&trace, &doc, runs))?;
            rows.push(holders::holder_cpu(holder_edits)?);
            emit(&rows, json)?;
        }
        Command::Blobs { sizes, runs, json } => {
            anyhow::ensure!(runs > 0, "--runs must be at least 1");
            let rows = tokio::runtime::Runtime::new()?.block_on(sizes.rows(runs))?;
            emit(&rows, json)?;
        }
        Command::Fanout {
            nodes,
            messages,
            json,
        } => {
            let rows = tokio::runtime::Runtime::new()?.block_on(fanout::fanout(
                nodes,
                FANOUT_DEGREE,
                messages,
            ))?;
            emit(&rows, json)?;
        }
        Command::Synth { edits, seed, out } => {
            std::fs::write(&out, trace::synthetic(edits, seed).to_string())
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        }
        Command::Report { files } => {
            let mut rows: Vec<report::Row> = Vec::new();
            for file in files {
                let bytes = std::fs::read(&file)?;
                let more: Vec<report::Row> = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: not a result file: {e}", file.display()))?;
                rows.extend(more);
            }
            print!("{}", report::markdown(&rows));
        }
    }
    Ok(())
}

/// Prints the rows as a table, and writes them as JSON if asked.
fn emit(rows: &[report::Row], json: Option<PathBuf>) -> anyhow::Result<()> {
    print!("{}", report::markdown(rows));
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(rows)?)?;
    }
    Ok(())
}

fn run(
    trace: &trace::Trace,
    runs: usize,
    keystrokes: usize,
    copies: usize,
    (fanout_nodes, fanout_messages): (usize, u32),
    holder_edits: usize,
) -> anyhow::Result<Vec<report::Row>> {
    let mut rows = Vec::new();
    eprintln!("row 1: replay");
    let (row, doc) = docs::replay(trace, runs)?;
    rows.push(row);
    eprintln!("row 2: keystrokes");
    rows.extend(docs::keystroke(&doc, keystrokes)?);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        eprintln!("rows 3, 4, 10: store, open, join");
        let stored = nodes::store(&doc).await?;
        rows.push(nodes::stored_size(&stored, &doc)?);
        rows.push(nodes::cold_open(&stored, &doc, runs).await?);
        rows.extend(nodes::catch_up(&stored, &doc, runs).await?);
        eprintln!("row 9: memory");
        rows.extend(nodes::memory(&doc, copies).await?);
        eprintln!("row 11: fan-out among {fanout_nodes} nodes");
        rows.extend(fanout::fanout(fanout_nodes, FANOUT_DEGREE, fanout_messages).await?);
        eprintln!("row 14: a holder");
        rows.extend(holders::holders(trace, &doc, runs).await?);
        anyhow::Ok(())
    })?;
    eprintln!("row 14: a holder's CPU (real processes)");
    rows.push(holders::holder_cpu(holder_edits)?);
    Ok(rows)
}
