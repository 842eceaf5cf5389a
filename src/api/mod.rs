//! The local HTTP server (axum) in front of a [`Node`]: the JSON API, the y-websocket endpoint
//! and the embedded web editor. [`Server`] binds (after checking the access settings), serves,
//! publishes its address (and token) in the node's data dir for the CLI, and owns its shutdown.
//! The node does not know about it: the binary or an embedding app wires the two.
//!
//! | module | owns |
//! |---|---|
//! | [`routes`] | the routes and their thin handlers |
//! | [`access`] | Origin, Host and token checks |
//! | [`error`] | JSON errors with fitting status codes |
//! | [`ws`] | one y-websocket editor session |

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::data_dir::{api_addr_path, api_token_path, write_private};
use crate::node::Node;

mod access;
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

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the HTTP API on {addr}: {source}; pick another address with --http")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the HTTP API on {0} would be reachable from other machines; set an access token in \
         PEERDOC_HTTP_TOKEN or with --http-token-file (or bind 127.0.0.1)"
    )]
    TokenRequired(SocketAddr),
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
    token: Option<String>,
    stopping: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// The data dir whose `api.addr`/`api.token` this server wrote.
    published: Option<PathBuf>,
}

impl Server {
    /// Checks the access settings and binds `addr` (port 0 picks one). Binding anything but a
    /// loopback address requires a token, which every request must then carry.
    pub async fn bind(addr: SocketAddr, token: Option<String>) -> Result<Server, ServerError> {
        let token = token.filter(|t| !t.is_empty());
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(ServerError::TokenRequired(addr));
        }
        let bind_error = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Server {
            listener: Some(listener),
            addr,
            token,
            stopping: CancellationToken::new(),
            task: None,
            published: None,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `node` until [`Server::shutdown`], and writes `api.addr` (and `api.token`, mode
    /// 0600) in the node's data dir so the CLI finds the server. Serving twice does nothing.
    pub fn serve(&mut self, node: Node) -> Result<(), ServerError> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let data_dir = node.config().data_dir.clone();
        let app = routes::App {
            node,
            token: self.token.clone(),
            addr: self.addr,
            stopping: self.stopping.clone(),
            imports: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        };
        let stopping = self.stopping.clone();
        self.task = Some(tokio::spawn(async move {
            // Editors send keystrokes as small writes: without TCP_NODELAY, Nagle's algorithm
            // and delayed ACKs hold some of them for ~40 ms (BENCHMARKS.md, row 5).
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY on an HTTP connection: {e}");
                }
            });
            let result = axum::serve(listener, routes::router(app))
                .with_graceful_shutdown(async move { stopping.cancelled().await })
                .await;
            if let Err(e) = result {
                tracing::error!("HTTP API stopped: {e}");
            }
        }));
        self.publish(&data_dir)
    }

    fn publish(&mut self, data_dir: &std::path::Path) -> Result<(), ServerError> {
        let token_path = api_token_path(data_dir);
        let file_error = |path: PathBuf| move |source| ServerError::AddressFile { path, source };
        let _ = std::fs::remove_file(&token_path);
        if let Some(token) = &self.token {
            write_private(&token_path, token.as_bytes()).map_err(file_error(token_path.clone()))?;
        }
        let addr_path = api_addr_path(data_dir);
        let _ = std::fs::remove_file(&addr_path);
        write_private(&addr_path, self.addr.to_string().as_bytes())
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
