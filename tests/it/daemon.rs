//! A `peerdoc serve` daemon as a real process, and the CLI run against it: shared by the tests
//! that treat the binary as a user does.

use super::common::{output_with_input, wait_until_blocking};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_peerdoc");

/// `peerdoc serve` for a test daemon: loopback only, no mDNS, fast anti-entropy.
pub fn serve_command(data: &Path) -> Command {
    let mut command = serve_command_bare(data);
    command.args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
    command
}

/// [`serve_command`] without a listen address (the caller gives its own).
fn serve_command_bare(data: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--data")
        .arg(data)
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(["--no-mdns", "--no-upnp", "--sync-interval", "1"]);
    command
}

pub struct Daemon {
    pub child: Child,
    pub data: PathBuf,
    /// The extra `serve` flags it was started with.
    extra: Vec<String>,
}

impl Daemon {
    pub fn start(data: &Path) -> Daemon {
        Daemon::start_with(data, &[])
    }

    /// Starts a daemon with extra `serve` flags (a `--listen` among them replaces the default
    /// loopback TCP address).
    pub fn start_with(data: &Path, extra: &[&str]) -> Daemon {
        let _ = std::fs::remove_file(data.join("api.addr"));
        let mut command = match extra.contains(&"--listen") {
            true => serve_command_bare(data),
            false => serve_command(data),
        };
        let child = command
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn peerdoc serve");
        wait_until_blocking(
            format_args!("the daemon in {} starts", data.display()),
            || data.join("api.addr").exists(),
        );
        Daemon {
            child,
            data: data.to_path_buf(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The HTTP API's address.
    pub fn addr(&self) -> String {
        std::fs::read_to_string(self.data.join("api.addr"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The `Authorization` header's value for its API (see [`bearer`]).
    pub fn bearer(&self) -> String {
        bearer(&self.data)
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        peerdoc(&self.data, args, stdin)
    }

    /// Runs a command that must succeed; returns its stdout. In a pipe, a command that
    /// succeeds writes nothing to stderr (no progress bars, no colour).
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "peerdoc {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "peerdoc {args:?} wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kill -9`, then the same daemon again (same data dir and flags).
    pub fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let args: Vec<String> = self.extra.clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let again = Daemon::start_with(&self.data, &args);
        // The old process is reaped already: dropping its handle signals nothing.
        drop(std::mem::replace(self, again));
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM: the daemon must exit 0 within a few seconds.
    pub fn stop(mut self) {
        unsafe_sigterm(self.child.id());
        let mut status = None;
        super::common::wait_blocking_for(
            "the daemon stops on SIGTERM",
            std::time::Duration::from_secs(10),
            || {
                status = self.child.try_wait().unwrap();
                status.is_some()
            },
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "exit status after SIGTERM"
        );
    }
}

pub fn unsafe_sigterm(pid: u32) {
    signal(pid, "-TERM");
}

/// Sends `signal` (as `kill` spells it: `-TERM`, `-STOP`, `-CONT`) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn peerdoc(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command.arg("--data").arg(data).args(args);
    output_with_input(command, stdin)
}

/// `Bearer TOKEN`, with the token the daemon of `data` published in its `api.token` (as the
/// CLI finds it).
pub fn bearer(data: &Path) -> String {
    let token = std::fs::read_to_string(data.join("api.token")).expect("the daemon's api.token");
    format!("Bearer {}", token.trim())
}

/// The id of the document named `name` on the daemon of `data`.
pub fn peerdoc_id(data: &Path, name: &str) -> String {
    let addr = std::fs::read_to_string(data.join("api.addr")).unwrap();
    let docs: serde_json::Value = ureq::get(&format!("http://{}/api/docs", addr.trim()))
        .set("Authorization", &bearer(data))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    docs.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .unwrap()
}
