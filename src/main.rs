//! The `peerdoc` binary: parse the command line, set up logging, run, map errors to exit codes.

use clap::Parser;

mod cli;
mod client;
mod progress;

/// jemalloc, for Rust and C (SQLite) alike, with background threads purging freed pages: with
/// glibc's allocator a node's RSS stayed near its peak after documents were unloaded or editor
/// sessions ended, because nothing gave freed memory back while the node was idle (see
/// BENCHMARKS.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let cli = cli::Cli::parse();
    // kad warns "Failed to trigger bootstrap: No known peers" whenever a node with no DHT peers
    // starts listening: the normal state of a node without `--bootstrap`, so not a warning for
    // its user (RUST_LOG shows it).
    let default_level = match cli.command {
        cli::Command::Serve(_) => "peerdoc=info,warn,libp2p_kad::behaviour=error",
        _ => "warn,libp2p_kad::behaviour=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never in log files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log that cannot be written (stderr on a full disk) must not take the node down:
        // tracing-subscriber reports such errors with `eprintln!`, which panics (found by the
        // chaos harness: a room task died while its disk was full).
        .log_internal_errors(false)
        .init();
    if let Err(e) = cli::run(cli).await {
        eprintln!("error: {}", report(&e));
        std::process::exit(1);
    }
}

/// An error and its causes in one line, each said once: many of our errors already name their
/// cause in their message ("cannot start the HTTP API on …: Address already in use …").
fn report(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
