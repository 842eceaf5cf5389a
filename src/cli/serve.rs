//! `peerdoc serve`: its arguments (flags over the config file over defaults), and running the
//! node with its HTTP API until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use libp2p::Multiaddr;

use peerdoc::api::{Server, DEFAULT_HTTP};
#[cfg(feature = "test-faults")]
use peerdoc::MessageFaults;
use peerdoc::{api_token_path, check_not_in_use, Config, ConfigFile, DhtMode, Node};

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// TOML config file [default: DIR/config.toml if it exists]. Flags override it.
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// Local HTTP API and web editor address, HOST:PORT (`127.0.0.1:7777`, `localhost:7777`;
    /// port 0 picks a free port). Every request needs the access token, whatever the address.
    /// [default: 127.0.0.1:7777]
    #[arg(long, value_name = "ADDR", value_parser = parse_http_addr)]
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
    #[arg(long, value_name = "MULTIADDR", value_parser = parse_bootstrap)]
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
    /// Keep documents sealed for their members (a holder: members' edits meet here even when
    /// they are never online together; this node cannot read them). A relay is one by default.
    /// Limits come from `[replica_limits]` in the config file.
    #[arg(long)]
    pub(crate) replica: bool,
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
    #[cfg(feature = "test-faults")]
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
        config.replica = file.replica(self.replica, config.relay.is_some());
        if let Some(dht) = self.dht {
            config.dht = dht.into();
        }
        if let Some(secs) = self.sync_interval {
            config.sync_interval = Duration::from_secs(secs);
        }
        if let Some(secs) = self.unload_after {
            config.unload_after = Duration::from_secs(secs);
        }
        #[cfg(feature = "test-faults")]
        {
            config.message_faults = self.inject_faults;
        }
        let http = self
            .http
            .or(file.http)
            .unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid default address"));
        Ok((config, http))
    }
}

/// Reads the settings, checks and binds the HTTP API (so a refused start touches no network),
/// then starts the node, serves it, and shuts both down in order on Ctrl-C or SIGTERM.
pub(super) async fn serve(data: PathBuf, args: ServeArgs) -> Result<()> {
    let (config, http) = args.settings(&data)?;
    // A second `serve` on a data dir in use would otherwise first fail on the HTTP port (the
    // running daemon's), which sends the user the wrong way.
    check_not_in_use(&data)?;
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
    if server.on_every_interface() {
        println!(
            "  from another machine: http://THIS-HOST:{}/?token={} (any address of this host; \
             the token is required)",
            server.addr().port(),
            server.token()
        );
    }
    println!(
        "  api: http://{}/ (every request needs the token in {})",
        server.local_addr(),
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

/// A `--bootstrap` address: a multiaddr that names its peer.
fn parse_bootstrap(value: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = value.parse().map_err(|e| {
        format!("not a multiaddr ({e}); for example /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…")
    })?;
    peerdoc::bootstrap_peer(&addr)?;
    Ok(addr)
}

/// `HOST:PORT` for `--http`: HOST an IP address or a name such as `localhost` (resolved once,
/// now; an IPv4 address first, which every browser reaches).
fn parse_http_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = value
        .to_socket_addrs()
        .map_err(|e| format!("not HOST:PORT ({e}); for example 127.0.0.1:7777 or localhost:7777"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{value} names no address"))
}
