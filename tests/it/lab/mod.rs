//! The network lab: Linux network namespaces for "the internet" (a bridge on TEST-NET-2,
//! 198.51.100.0/24), public hosts, and homes whose router namespace does NAT with nftables
//! (`masquerade`, or `masquerade fully-random` for a symmetric NAT) and drops unsolicited
//! packets to itself, as home routers do. Daemons run inside the namespaces; the test talks to
//! them with the CLI through `ip netns exec`. Every lab has its own name prefix and is removed
//! when it is dropped, also when a test fails (then the daemons' logs are printed).
//!
//! Needs root, `ip` and `nft`; the README's test command installs them.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::common::{output_with_input, wait_blocking_for};

mod scenarios;

const BIN: &str = env!("CARGO_BIN_EXE_peerdoc");
/// Waits in the lab allow for AutoNAT probes, reservations and hole punches.
pub const LAB_WAIT: Duration = Duration::from_secs(90);
/// The relay's address on the internet bridge, and its fixed port.
pub const RELAY_IP: &str = "198.51.100.10";
const RELAY_PORT: u16 = 4001;

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// How a home router translates addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Endpoint-independent mapping (ports kept): hole punching works.
    Cone,
    /// A new random port per connection: hole punching fails.
    Symmetric,
}

/// A running daemon in the lab.
pub struct Daemon {
    pub name: String,
    ns: String,
    data: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    daemons: Vec<Daemon>,
    dir: tempfile::TempDir,
    internet: String,
    links: u32,
    /// The internet bridge's port of each public host, by namespace.
    ports: std::collections::HashMap<String, String>,
    /// Data dirs on their own small tmpfs (unmounted when the lab goes).
    mounts: Vec<PathBuf>,
}

impl Lab {
    /// A new, empty internet. Fails the test at once if the machine cannot host the lab.
    pub fn new() -> Lab {
        for tool in ["ip", "nft"] {
            let found = Command::new(tool).arg("-V").output().is_ok();
            assert!(
                found,
                "the network lab needs `{tool}` (apt-get install iproute2 nftables) and root"
            );
        }
        let prefix = format!(
            "pdl{}-{}-",
            std::process::id() % 100_000,
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            daemons: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            internet: String::new(),
            links: 0,
            ports: std::collections::HashMap::new(),
            mounts: Vec::new(),
        };
        lab.internet = lab.namespace("inet");
        lab.ip(&["-n", &lab.internet, "link", "add", "br0", "type", "bridge"]);
        lab.ip(&["-n", &lab.internet, "link", "set", "br0", "up"]);
        lab
    }

    fn namespace(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.prefix);
        self.ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        self.ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        run("ip", args);
    }

    /// A veth pair from `a` (interface `a_if`) to `b` (`b_if`), both up.
    fn wire(&mut self, a: &str, a_if: &str, b: &str, b_if: &str) {
        self.links += 1;
        self.ip(&[
            "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        self.ip(&["-n", a, "link", "set", a_if, "up"]);
        self.ip(&["-n", b, "link", "set", b_if, "up"]);
    }

    /// Plugs a namespace into the internet bridge at `ip` (in 198.51.100.0/24).
    fn attach_to_internet(&mut self, ns: &str, ifname: &str, ip: &str) {
        let port = format!("i{}", self.links + 1);
        let internet = self.internet.clone();
        self.wire(&internet, &port, ns, ifname);
        self.ip(&["-n", &internet, "link", "set", &port, "master", "br0"]);
        self.ip(&["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", ifname]);
    }

    /// A host on the internet at `ip`.
    pub fn public_host(&mut self, name: &str, ip: &str) -> String {
        let ns = self.namespace(name);
        let port = format!("i{}", self.links + 1);
        self.attach_to_internet(&ns, "eth0", ip);
        self.ports.insert(ns.clone(), port);
        ns
    }

    /// Replaces the internet's faults: no traffic between public hosts in different groups of
    /// `partition` (each a list of host namespaces; hosts in no group reach everyone), and
    /// `loss_percent` of all other frames dropped at random (TCP turns that into delays and
    /// retransmissions, QUIC into its own). Empty groups and 0 % heal everything.
    pub fn set_faults(&self, partition: &[Vec<String>], loss_percent: u32) {
        let mut rules = String::new();
        for (i, a) in partition.iter().enumerate() {
            for (j, b) in partition.iter().enumerate() {
                if i == j {
                    continue;
                }
                for x in a {
                    for y in b {
                        rules += &format!(
                            "    iifname \"{}\" oifname \"{}\" counter drop\n",
                            self.ports[x], self.ports[y]
                        );
                    }
                }
            }
        }
        if loss_percent > 0 {
            rules += &format!("    numgen random mod 100 < {loss_percent} drop\n");
        }
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.internet,
                "nft",
                "delete",
                "table",
                "bridge",
                "faults",
            ])
            .output();
        let table = format!(
            "table bridge faults {{\n  chain forward {{\n    type filter hook forward priority 0;\n{rules}  }}\n}}\n"
        );
        nft(&self.internet, &table);
    }

    /// Packets the partition of [`Lab::set_faults`] has dropped so far (the witness that
    /// nodes tried to talk across it).
    pub fn partition_drops(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.internet,
                "nft",
                "list",
                "table",
                "bridge",
                "faults",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .filter(|w| w[0] == "counter" && w[1] == "packets")
            .filter_map(|w| w[2].parse::<u64>().ok())
            .sum()
    }

    /// A home: a router at `wan_ip` doing `nat`, and one host per name on its LAN
    /// `{lan}.0/24` (hosts get `.2`, `.3`, …). Returns the hosts' namespaces.
    pub fn home(
        &mut self,
        name: &str,
        nat: Nat,
        wan_ip: &str,
        lan: &str,
        hosts: &[&str],
    ) -> Vec<String> {
        let router = self.namespace(&format!("{name}-gw"));
        self.attach_to_internet(&router, "wan0", wan_ip);
        self.ip(&["-n", &router, "link", "add", "lan", "type", "bridge"]);
        self.ip(&["-n", &router, "link", "set", "lan", "up"]);
        self.ip(&[
            "-n",
            &router,
            "addr",
            "add",
            &format!("{lan}.1/24"),
            "dev",
            "lan",
        ]);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &router,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
            ],
        );
        let masquerade = match nat {
            Nat::Cone => "masquerade",
            Nat::Symmetric => "masquerade fully-random",
        };
        let rules = format!(
            "table ip nat {{\n  chain postrouting {{\n    type nat hook postrouting priority 100;\n    \
             oifname \"wan0\" {masquerade}\n  }}\n}}\n\
             table inet filter {{\n  chain input {{\n    type filter hook input priority 0;\n    \
             iifname \"wan0\" ct state new drop\n  }}\n}}\n"
        );
        nft(&router, &rules);
        hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let ns = self.namespace(host);
                let port = format!("h{}", i + 1);
                self.wire(&router, &port, &ns, "eth0");
                self.ip(&["-n", &router, "link", "set", &port, "master", "lan"]);
                let addr = format!("{lan}.{}/24", i + 2);
                self.ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
                self.ip(&[
                    "-n",
                    &ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("{lan}.1"),
                ]);
                ns
            })
            .collect()
    }

    /// Starts a daemon in `ns`. `config` is extra config file text; `args` extra flags.
    pub fn start(&mut self, ns: &str, name: &str, config: &str, args: &[&str]) -> usize {
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("config.toml"),
            format!("sync_interval = 1\nredial_interval = 2\nupnp = false\n{config}"),
        )
        .unwrap();
        let mut all = vec!["serve".to_string(), "--http".into(), "127.0.0.1:0".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut daemon = Daemon {
            name: name.to_string(),
            ns: ns.to_string(),
            data,
            args: all,
            child: None,
        };
        daemon.spawn();
        self.daemons.push(daemon);
        self.daemons.len() - 1
    }

    /// The public relay (also the DHT's bootstrap node). Returns (daemon, bootstrap address).
    pub fn relay(&mut self) -> (usize, String) {
        let ns = self.public_host("relay", RELAY_IP);
        let tcp = format!("/ip4/0.0.0.0/tcp/{RELAY_PORT}");
        let quic = format!("/ip4/0.0.0.0/udp/{RELAY_PORT}/quic-v1");
        let relay = self.start(
            &ns,
            "relay",
            "mdns = false\n",
            &["--relay", "--listen", &tcp, "--listen", &quic],
        );
        let id = self.status(relay)["peer_id"].as_str().unwrap().to_string();
        (relay, format!("/ip4/{RELAY_IP}/tcp/{RELAY_PORT}/p2p/{id}"))
    }

    /// A home user's node: bootstraps from `bootstrap`, no mDNS.
    pub fn user(&mut self, ns: &str, name: &str, bootstrap: &str) -> usize {
        self.start(
            ns,
            name,
            &format!("mdns = false\nbootstrap = [\"{bootstrap}\"]\n"),
            &[],
        )
    }

    /// Runs a CLI command against daemon `d`.
    pub fn cli(&self, d: usize, args: &[&str], stdin: Option<&str>) -> Output {
        let daemon = &self.daemons[d];
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &daemon.ns, BIN, "--data"])
            .arg(&daemon.data)
            .args(args);
        output_with_input(command, stdin)
    }

    /// Runs a CLI command that must succeed; returns its trimmed stdout.
    pub fn ok(&self, d: usize, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(d, args, stdin);
        assert!(
            out.status.success(),
            "{}: peerdoc {args:?} failed: {}",
            self.daemons[d].name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Daemon `d`'s `GET /metrics` (fetched inside its namespace, with bash's `/dev/tcp`).
    pub fn metrics(&self, d: usize) -> String {
        let daemon = &self.daemons[d];
        let addr = std::fs::read_to_string(daemon.data.join("api.addr")).unwrap_or_default();
        let token = std::fs::read_to_string(daemon.data.join("api.token")).unwrap_or_default();
        let token = token.trim();
        let Some((host, port)) = addr.trim().rsplit_once(':') else {
            return String::new();
        };
        let script = format!(
            "exec 3<>/dev/tcp/{host}/{port} && printf 'GET /metrics HTTP/1.0\\r\\nHost: {host}:{port}\\r\\n\
             Authorization: Bearer {token}\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &daemon.ns, "bash", "-c", &script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status(&self, d: usize) -> serde_json::Value {
        serde_json::from_str(&self.ok(d, &["status", "--json"], None)).unwrap()
    }

    pub fn peer_id(&self, d: usize) -> String {
        self.status(d)["peer_id"].as_str().unwrap().to_string()
    }

    /// Polls `d`'s status until `check` holds (within [`LAB_WAIT`]).
    pub fn wait_status(&self, d: usize, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let what = format!("{}: {what}", self.daemons[d].name);
        wait_blocking_for(what, LAB_WAIT, || check(&self.status(d)));
    }

    /// Waits until `d` holds a relay reservation (it then has a relayed address for tickets).
    pub fn wait_reserved(&self, d: usize) {
        self.wait_status(d, "holds a relay reservation", |s| {
            !s["relays"].as_array().unwrap().is_empty()
                && !s["relayed_addrs"].as_array().unwrap().is_empty()
        });
    }

    /// Waits until `d` is connected to `peer` with a connection of `kind` ("direct", "relayed").
    pub fn wait_connection(&self, d: usize, peer: &str, kind: &str) {
        self.wait_status(d, &format!("{kind} connection to {peer}"), |s| {
            s["connected_peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["peer"] == peer && p["connection"] == kind)
        });
    }

    /// How `d` is connected to `peer` ("direct", "relayed"), if it is.
    pub fn connection(&self, d: usize, peer: &str) -> Option<String> {
        self.status(d)["connected_peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["peer"] == peer)
            .map(|p| p["connection"].as_str().unwrap().to_string())
    }

    /// Waits until every listed daemon has the same text for `doc` and `check` holds for it.
    pub fn wait_converged(
        &self,
        daemons: &[usize],
        doc: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let mut last = Vec::new();
        let names: Vec<&str> = daemons
            .iter()
            .map(|d| self.daemons[*d].name.as_str())
            .collect();
        wait_blocking_for(format!("{names:?} converge on {doc}"), LAB_WAIT, || {
            last = daemons
                .iter()
                .map(|d| {
                    String::from_utf8_lossy(&self.cli(*d, &["cat", doc], None).stdout).into_owned()
                })
                .collect();
            last.windows(2).all(|w| w[0] == w[1]) && check(&last[0])
        });
        last.remove(0)
    }

    /// Kills daemon `d` at once (as a crash or power loss would).
    pub fn kill(&mut self, d: usize) {
        if let Some(mut child) = self.daemons[d].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Puts the data dir of the daemon `name` (start it afterwards) on its own tmpfs of `size`
    /// (as `mount` takes it: "32m"), so the test can fill its disk.
    pub fn small_disk(&mut self, name: &str, size: &str) {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.to_str().unwrap(),
            ],
        );
        self.mounts.push(dir);
    }

    /// Fills the disk of daemon `d` (on a [`Lab::small_disk`]) to the last byte.
    pub fn fill_disk(&self, d: usize) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!(
                "of={}",
                self.daemons[d].data.join("filler").display()
            ))
            .stderr(Stdio::null())
            .status();
    }

    /// Gives daemon `d`'s disk its space back.
    pub fn free_disk(&self, d: usize) {
        let _ = std::fs::remove_file(self.daemons[d].data.join("filler"));
    }

    /// Prints the last `lines` log lines of every daemon (for a failing test).
    pub fn print_logs(&self, lines: usize) {
        for daemon in &self.daemons {
            let log = std::fs::read_to_string(daemon.data.join("daemon.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            eprintln!("--- {} (last {lines} log lines) ---", daemon.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    /// Whether daemon `d` is running (it was started and has not exited).
    pub fn is_running(&mut self, d: usize) -> bool {
        match self.daemons[d].child.as_mut() {
            Some(child) => child.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// Stops daemon `d` with SIGTERM; returns its exit code (`None` if it did not exit within
    /// 10 s, or died of a signal).
    pub fn stop(&mut self, d: usize) -> Option<i32> {
        let mut child = self.daemons[d].child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The data dir of daemon `d`.
    pub fn data_dir(&self, d: usize) -> PathBuf {
        self.daemons[d].data.clone()
    }

    /// Starts daemon `d` again with its data dir and flags.
    pub fn restart(&mut self, d: usize) {
        self.kill(d);
        self.daemons[d].spawn();
    }
}

impl Daemon {
    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.data.join("api.addr"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("daemon.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, BIN, "--data"])
            .arg(&self.data)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("PEERDOC_LAB_LOG").unwrap_or_else(|_| "peerdoc=debug,warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let data = self.data.clone();
        wait_blocking_for(format!("{} starts", self.name), LAB_WAIT, || {
            data.join("api.addr").exists()
        });
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs(60);
        }
        for d in 0..self.daemons.len() {
            self.kill(d);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for dir in &self.mounts {
            let _ = Command::new("umount").arg(dir).status();
        }
    }
}

/// Loads nftables `rules` in namespace `ns`.
fn nft(ns: &str, rules: &str) {
    let mut nft = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(nft.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
    drop(nft.stdin.take());
    assert!(nft.wait().unwrap().success(), "nft rules in {ns}:\n{rules}");
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
