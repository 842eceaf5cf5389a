//! The local HTTP server (axum) in front of a [`Node`]: the JSON API, the y-websocket endpoint
//! and the embedded web editor. [`Server`] binds, serves, publishes its address and access token
//! in the node's data dir for the CLI, and owns its shutdown. Every request must carry the token
//! (generated at start when none is configured). The node does not know about the server: the
//! binary or an embedding app wires the two.
//!
//! | module | owns |
//! |---|---|
//! | `conn` | the accept loop: connection cap, header-read timeout, graceful shutdown |
//! | `routes` | the routes and their thin handlers |
//! | [`dto`] | the JSON shapes of the node's values (what the CLI's client reads back) |
//! | `access` | token, `Sec-Fetch-Site`, Origin and Host checks, and their refusal counts |
//! | `error` | JSON errors with fitting status codes |
//! | `ws` | one y-websocket editor session |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rand::RngCore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::data_dir::{api_addr_path, api_token_path, write_private};
use crate::node::Node;

mod access;
mod conn;
pub mod dto;
mod error;
mod routes;
mod ws;

/// Default local HTTP/WebSocket API address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:7777";

/// Largest request body: a whole document's text on `PUT …/text` (a larger text goes in parts
/// with `?append=true`). An import of this size peaked at 140 MB of RSS, 110 MB above the idle
/// node (BENCHMARKS.md, large imports), and imports run one at a time, so a node's import memory
/// stays bounded.
pub const MAX_BODY_BYTES: usize = 16 << 20;

pub use conn::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};

/// Random bytes in a generated access token (hex-encoded).
const TOKEN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the HTTP API on {addr}: {source}; pick another address with --http")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot publish the API address in {path}: {source}")]
    AddressFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The HTTP API server: bound by [`Server::bind`], serving after [`Server::serve`].
pub struct Server {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    token: String,
    header_read_timeout: Duration,
    stopping: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// The data dir whose `api.addr`/`api.token` this server wrote.
    published: Option<PathBuf>,
}

impl Server {
    /// Binds `addr` (port 0 picks one). Every request must carry the access `token`; without
    /// one (`None` or empty) a random one is generated (see [`Server::token`]).
    pub async fn bind(addr: SocketAddr, token: Option<String>) -> Result<Server, ServerError> {
        let token = token
            .filter(|t| !t.is_empty())
            .unwrap_or_else(generate_token);
        let bind_error = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Server {
            listener: Some(listener),
            addr,
            token,
            header_read_timeout: HEADER_READ_TIMEOUT,
            stopping: CancellationToken::new(),
            task: None,
            published: None,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The access token every request must carry (the configured one, or the generated one).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether it listens on every interface (`0.0.0.0` or `[::]`), so other machines reach it
    /// at this host's own address.
    pub fn on_every_interface(&self) -> bool {
        self.addr.ip().is_unspecified()
    }

    /// Where a client on this machine reaches it: the bound address, or loopback when it is
    /// bound to every interface (`0.0.0.0` is no address to open).
    pub fn local_addr(&self) -> SocketAddr {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        addr
    }

    /// The web editor's address with the token, to open in a browser on this machine (which
    /// then keeps a cookie instead): `http://127.0.0.1:7777/?token=…`.
    pub fn editor_url(&self) -> String {
        format!("http://{}/?token={}", self.local_addr(), self.token)
    }

    /// Sets how long a client may take to send a request's head, or leave a kept-alive
    /// connection idle, before it is closed [default: [`HEADER_READ_TIMEOUT`]]. Takes effect
    /// at [`Server::serve`].
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Server {
        self.header_read_timeout = timeout;
        self
    }

    /// Serves `node` until [`Server::shutdown`], and writes `api.addr` and `api.token` (mode
    /// 0600) in the node's data dir so the CLI finds the server. Raises the process's soft
    /// limit of open files to its hard limit (each connection is a descriptor). Serving twice
    /// does nothing.
    pub fn serve(&mut self, node: Node) -> Result<(), ServerError> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        raise_open_file_limit();
        let data_dir = node.config().data_dir.clone();
        let limits = conn::Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: self.header_read_timeout,
            refused: node.metrics().api_connections_refused.clone(),
        };
        let app = routes::App {
            node,
            token: self.token.clone(),
            addr: self.addr,
            stopping: self.stopping.clone(),
            imports: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        };
        let stopping = self.stopping.clone();
        self.task = Some(tokio::spawn(conn::serve(
            listener,
            routes::router(app),
            limits,
            stopping,
        )));
        self.publish(&data_dir)
    }

    fn publish(&mut self, data_dir: &std::path::Path) -> Result<(), ServerError> {
        let token_path = api_token_path(data_dir);
        let file_error = |path: PathBuf| move |source| ServerError::AddressFile { path, source };
        let _ = std::fs::remove_file(&token_path);
        write_private(&token_path, self.token.as_bytes())
            .map_err(file_error(token_path.clone()))?;
        let addr_path = api_addr_path(data_dir);
        let _ = std::fs::remove_file(&addr_path);
        write_private(&addr_path, self.local_addr().to_string().as_bytes())
            .map_err(file_error(addr_path))?;
        self.published = Some(data_dir.to_path_buf());
        Ok(())
    }

    /// Stops accepting, ends editor sessions, waits for open requests, and removes the
    /// address files.
    pub async fn shutdown(mut self) {
        if let Some(data_dir) = self.published.take() {
            let _ = std::fs::remove_file(api_addr_path(&data_dir));
            let _ = std::fs::remove_file(api_token_path(&data_dir));
        }
        self.stopping.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A fresh random access token: [`TOKEN_BYTES`] bytes from the OS, hex-encoded.
fn generate_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Raises the soft limit of open files to the hard limit where the OS allows: the default soft
/// limit (often 1024) is a few hundred connections and documents away from refusing them all.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}
