//! The command line: `peerdoc serve` runs the daemon; every other command talks to the running
//! daemon of the same data dir through its HTTP API (see [`crate::client`]).

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use libp2p::Multiaddr;

use peerdoc::api::{Server, DEFAULT_HTTP};
use peerdoc::{api_token_path, Config, ConfigFile, DhtMode, DocPeer, MessageFaults, Node, Status};

use crate::client::Client;
use crate::progress;

/// peerdoc: peer-to-peer collaborative documents, end-to-end encrypted
///
/// Run `peerdoc serve` to start a node, then use the other commands (from another terminal) to
/// create, share, join, read and write documents. A DOC argument is a document id, a unique
/// prefix of it (4+ characters), or the document's local name.
#[derive(Parser, Debug)]
#[command(name = "peerdoc", version)]
pub(crate) struct Cli {
    /// Data directory of the node (database, identity). One data dir = one node.
    /// [default: the platform data dir, e.g. ~/.local/share/peerdoc]
    #[arg(long, global = true, env = "PEERDOC_DATA", value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the node: libp2p networking, sync, storage and the local HTTP API.
    Serve(ServeArgs),
    /// Create a new empty document and print its id.
    New {
        /// Local name of the document.
        name: String,
    },
    /// List documents.
    Ls,
    /// Print a ticket that lets another node join DOC: as a writer, or with --read-only as a
    /// reader (it can read and follow the document, never change it). Only the owner and
    /// writers can share. Treat a ticket like a password.
    Share {
        doc: String,
        #[arg(long)]
        read_only: bool,
    },
    /// List DOC's members and their roles (owner, writer, reader).
    Members { doc: String },
    /// Remove a member from DOC (owner only): the document gets a new key that the removed
    /// member never receives, and its writes are refused everywhere. Members it admitted go with
    /// it (listed; `--keep` keeps one), and every ticket shared so far stops admitting anyone:
    /// share new ones. Remaining members need to do nothing.
    Revoke {
        doc: String,
        /// The member's peer id (see `peerdoc members DOC`).
        peer: String,
        /// Keep this member although it was admitted through the removed one (repeatable).
        #[arg(long, value_name = "PEER")]
        keep: Vec<String>,
    },
    /// Join a document from a ticket: fetch it from the sharer, or from any member the DHT
    /// finds if the sharer does not answer.
    Join {
        ticket: String,
        /// Local name (default: the name in the ticket).
        #[arg(long)]
        name: Option<String>,
        /// If no member is online, keep the document and wait: the node completes the join
        /// when one answers (even after a restart, or if this command is interrupted).
        #[arg(long)]
        wait: bool,
    },
    /// Print the document's text.
    Cat { doc: String },
    /// Replace the document's text with stdin (as a minimal diff, so concurrent edits elsewhere
    /// survive), or append stdin with --append.
    Write {
        doc: String,
        #[arg(long)]
        append: bool,
        /// Empty the document (on every member's node) when standard input is empty; without
        /// it, empty input is refused and nothing changes.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Rename a document (locally).
    Rename { doc: String, name: String },
    /// Delete this node's copy of a document.
    Rm { doc: String },
    /// Node status: peer id, addresses, the web editor's URL (with the access token), connected
    /// peers, documents and their sync state.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connected peers.
    Peers,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// TOML config file [default: DIR/config.toml if it exists]. Flags override it.
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// Local HTTP API and web editor address (port 0 picks a free port). Every request needs
    /// the access token, whatever the address. [default: 127.0.0.1:7777]
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// Access token for the HTTP API, which every request must carry (header
    /// `Authorization: Bearer TOKEN`, or `?token=TOKEN`: open the editor at `/?token=TOKEN`).
    /// [default: a random token, new at each start] Either way it is written to DIR/api.token
    /// (readable by you only), where the other commands find it, and `serve` prints the
    /// editor's URL with it. A flag is visible to every local user in `ps`: prefer the
    /// environment variable or --http-token-file.
    #[arg(
        long,
        env = "PEERDOC_HTTP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with = "http_token_file"
    )]
    pub(crate) http_token: Option<String>,
    /// Read the access token from this file (its first line; keep the file private).
    #[arg(long, value_name = "PATH")]
    pub(crate) http_token_file: Option<PathBuf>,
    /// libp2p listen address (repeatable). Default: TCP and QUIC on all interfaces.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<Multiaddr>,
    /// Peer to stay connected to and to join the DHT through, as
    /// /ip4/…/tcp/…/p2p/<peer id> (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<Multiaddr>,
    /// Disable LAN discovery (mDNS).
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// Do not ask the router for a port mapping (UPnP).
    #[arg(long)]
    pub(crate) no_upnp: bool,
    /// Be a relay for peers behind NATs (and a DHT server): run this on a public host. Limits
    /// come from `[relay_limits]` in the config file.
    #[arg(long)]
    pub(crate) relay: bool,
    /// Whether to serve the DHT: auto (once publicly reachable), server, client. [default: auto]
    #[arg(long, value_name = "MODE")]
    pub(crate) dht: Option<DhtArg>,
    /// Anti-entropy period in seconds (each doc is re-synced with each peer this often).
    /// [default: 10]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) sync_interval: Option<u64>,
    /// Unload a document from memory after this many seconds without an editor or any use; it
    /// is loaded again when needed. [default: 300]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) unload_after: Option<u64>,
    /// Test only: drop, duplicate and delay received messages, e.g.
    /// seed=7,drop=5,dup=10,delay=20,max-delay-ms=400 (the chaos harness uses it).
    #[arg(long, value_name = "SPEC", hide = true)]
    pub(crate) inject_faults: Option<MessageFaults>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum DhtArg {
    Auto,
    Server,
    Client,
}

impl From<DhtArg> for DhtMode {
    fn from(arg: DhtArg) -> DhtMode {
        match arg {
            DhtArg::Auto => DhtMode::Auto,
            DhtArg::Server => DhtMode::Server,
            DhtArg::Client => DhtMode::Client,
        }
    }
}

impl ServeArgs {
    /// The access token: given directly (flag or environment), or read from a file.
    fn token(&self) -> Result<Option<String>> {
        let Some(path) = &self.http_token_file else {
            return Ok(self.http_token.clone());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim();
        anyhow::ensure!(
            !token.is_empty(),
            "the token file {} is empty; put the token on its first line",
            path.display()
        );
        Ok(Some(token.to_string()))
    }

    /// Defaults, then the config file, then the flags given.
    fn settings(&self, data: &std::path::Path) -> Result<(Config, SocketAddr)> {
        let file = ConfigFile::load(data, self.config.as_deref())?;
        let mut config = Config::new(data);
        file.apply(&mut config);
        if !self.listen.is_empty() {
            config.listen = self.listen.clone();
        }
        if !self.bootstrap.is_empty() {
            config.bootstrap = self.bootstrap.clone();
        }
        if self.no_mdns {
            config.mdns = false;
        }
        if self.no_upnp {
            config.upnp = false;
        }
        if self.relay && config.relay.is_none() {
            config.relay = Some(file.relay_limits.clone().unwrap_or_default());
        }
        if let Some(dht) = self.dht {
            config.dht = dht.into();
        }
        if let Some(secs) = self.sync_interval {
            config.sync_interval = Duration::from_secs(secs);
        }
        if let Some(secs) = self.unload_after {
            config.unload_after = Duration::from_secs(secs);
        }
        config.message_faults = self.inject_faults;
        let http = self
            .http
            .or(file.http)
            .unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid default address"));
        Ok((config, http))
    }
}

pub(crate) async fn run(cli: Cli) -> Result<()> {
    let data = cli.data.clone().unwrap_or_else(Config::default_data_dir);
    match cli.command {
        Command::Serve(args) => serve(data, args).await,
        other => tokio::task::spawn_blocking(move || client_command(data, other)).await?,
    }
}

/// Reads the settings, checks and binds the HTTP API (so a refused start touches no network),
/// then starts the node, serves it, and shuts both down in order on Ctrl-C or SIGTERM.
async fn serve(data: PathBuf, args: ServeArgs) -> Result<()> {
    let (config, http) = args.settings(&data)?;
    let mut server = Server::bind(http, args.token()?).await?;
    let node = Node::spawn(config).await?;
    if let Err(e) = server.serve(node.clone()) {
        server.shutdown().await;
        node.shutdown().await;
        return Err(e.into());
    }
    let status = node.status().await?;
    println!("peerdoc node {}", status.peer_id);
    println!("  data dir: {}", data.display());
    // As Jupyter does: the URL carries the token; the browser then keeps a cookie instead.
    println!("  web editor: {}", server.editor_url());
    println!(
        "  api: http://{}/ (token in {})",
        server.addr(),
        api_token_path(&data).display()
    );
    for addr in &status.listen_addrs {
        println!("  listening: {addr}");
    }
    wait_for_signal().await;
    eprintln!("shutting down…");
    server.shutdown().await;
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn client_command(data: PathBuf, command: Command) -> Result<()> {
    let client = Client::for_data_dir(&data)?;
    match command {
        Command::Serve(_) => unreachable!("handled by run"),
        Command::New { name } => {
            let doc = client.create(&name)?;
            println!("{}", doc.id);
        }
        Command::Ls => {
            for doc in client.list()? {
                let role = if doc.joining {
                    "  (joining: waiting for a member)"
                } else if doc.role == "reader" {
                    "  (read-only)"
                } else {
                    ""
                };
                println!("{}  {}{role}", doc.id, doc.name);
            }
        }
        Command::Share { doc, read_only } => println!("{}", client.ticket(&doc, read_only)?),
        Command::Revoke { doc, peer, keep } => {
            let removed = client.revoke(&doc, &peer, &keep)?;
            println!(
                "removed {peer}; the document's key is now at epoch {}",
                removed.epoch
            );
            for member in &removed.with_it {
                println!(
                    "also removed {} ({}): it was admitted through {peer} (keep it with --keep {})",
                    member.peer, member.role, member.peer
                );
            }
            if removed.tickets_closed > 0 {
                println!(
                    "{} earlier ticket(s) no longer admit anyone: share new ones",
                    removed.tickets_closed
                );
            }
        }
        Command::Members { doc } => {
            for member in client.members(&doc)? {
                let you = if member.you { "  (this node)" } else { "" };
                println!("{}  {}{you}", member.peer, member.role);
            }
        }
        Command::Join { ticket, name, wait } => {
            let spinner = progress::spinner("joining: reaching a member, fetching the document");
            let mut doc = client.join(&ticket, name.as_deref(), wait);
            if let Some(info) = doc.as_ref().ok().filter(|info| info.joining) {
                spinner.set_message(format!(
                    "no member of {} is online; waiting for one (Ctrl-C leaves the node waiting)",
                    info.name
                ));
                let id = info.id.clone();
                doc = loop {
                    std::thread::sleep(Duration::from_millis(500));
                    match client.info(&id) {
                        Ok(info) if info.joining => continue,
                        other => break other,
                    }
                };
            }
            spinner.finish_and_clear();
            let doc = doc?;
            println!("joined {} ({})", doc.name, doc.id);
        }
        Command::Cat { doc } => {
            use std::io::Write;
            let text = client.text(&doc)?;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Command::Write {
            doc,
            append,
            allow_empty,
        } => {
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "reading the new text of {doc} from standard input: type or paste it, then \
                     press Ctrl-D on a line of its own (Ctrl-C leaves the document as it is)"
                );
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("stdin is not valid UTF-8 text")?;
            if text.is_empty() && !append && !allow_empty {
                anyhow::bail!(
                    "standard input was empty, so nothing was written (an empty text would erase \
                     {doc} on every member's node); to empty it on purpose, use --allow-empty"
                );
            }
            let bar = progress::upload(text.len());
            let written = client.write(&doc, &text, append, allow_empty, &|n| {
                bar.set_position(n as u64);
                if n == text.len() {
                    bar.set_message("sent; saving");
                }
            });
            bar.finish_and_clear();
            written?;
        }
        Command::Rename { doc, name } => {
            let doc = client.rename(&doc, &name)?;
            println!("renamed to {}", doc.name);
        }
        Command::Rm { doc } => client.delete(&doc)?,
        Command::Status { json } => {
            let status = client.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status, client.editor_url().as_deref());
            }
        }
        Command::Peers => {
            for peer in client.peers()? {
                println!("{}  {}", peer.peer, peer.addrs.join(" "));
            }
        }
    }
    Ok(())
}

fn reachability(nat: &str) -> &'static str {
    match nat {
        "public" => "public (other nodes can connect to this one)",
        "private" => "private (behind a NAT or firewall; reachable through relays)",
        _ => "unknown (not tested yet)",
    }
}

/// `editor` is the web editor's URL with the access token, if the CLI knows it.
fn print_status(s: &Status, editor: Option<&str>) {
    println!("peer id:   {}", s.peer_id);
    println!("data dir:  {}", s.data_dir);
    if let Some(http) = &s.http {
        println!("http api:  http://{http}");
    }
    if let Some(editor) = editor {
        println!("web editor: {editor}");
    }
    println!("reachability: {}", reachability(&s.nat));
    println!("listening:");
    for a in &s.listen_addrs {
        println!("  {a}");
    }
    for (title, addrs) in [
        ("public addresses", &s.public_addrs),
        ("relayed addresses", &s.relayed_addrs),
        ("relays holding a reservation", &s.relays),
    ] {
        if !addrs.is_empty() {
            println!("{title}:");
            for a in addrs {
                println!("  {a}");
            }
        }
    }
    println!("connected peers: {}", s.connected_peers.len());
    for p in &s.connected_peers {
        println!("  {}  {}", p.peer, p.connection);
    }
    println!("documents: {}", s.docs.len());
    for d in &s.docs {
        println!("  {}  {}  {}", d.id, d.name, doc_sync(&d.peers));
        for p in &d.peers {
            println!("    {}  {}", p.peer, peer_sync(p));
        }
    }
}

/// `n peer` or `n peers`.
fn peers(n: usize) -> String {
    format!("{n} peer{}", if n == 1 { "" } else { "s" })
}

/// `n operation` or `n operations`.
fn operations(n: u64) -> String {
    format!("{n} operation{}", if n == 1 { "" } else { "s" })
}

/// One document's sync state, in words a user can act on.
fn doc_sync(doc_peers: &[DocPeer]) -> String {
    let to_fetch = doc_peers.iter().map(|p| p.to_fetch).max().unwrap_or(0);
    let checked = doc_peers
        .iter()
        .filter(|p| p.last_sync_secs.is_some())
        .count();
    if doc_peers.is_empty() {
        "no peer with this document is online".into()
    } else if to_fetch > 0 {
        format!("catching up: {} to fetch", operations(to_fetch))
    } else if checked == 0 {
        format!("checking with {}…", peers(doc_peers.len()))
    } else {
        format!("up to date with {}", peers(checked))
    }
}

/// The sync state with one peer.
fn peer_sync(p: &DocPeer) -> String {
    let Some(secs) = p.last_sync_secs else {
        return "not checked yet".into();
    };
    let state = match p.state.as_str() {
        "catching_up" => format!("catching up: {} to fetch", operations(p.to_fetch)),
        "peer_behind" => format!(
            "up to date; the peer has yet to fetch {} from this node",
            operations(p.peer_lacks)
        ),
        _ => "up to date".into(),
    };
    format!("{state} (checked {secs} s ago)")
}
