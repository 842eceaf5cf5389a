//! The node's data directory and every file in it but the database's contents: the lock that
//! makes it one daemon per directory, the persistent libp2p identity, the sticky listen ports
//! (so peers that remember us can redial after a restart), the files through which a running
//! daemon tells the CLI where its HTTP API is (`api.addr`, `api.token`), and writing private
//! files. The directory holds every document's key and text: it is kept 0700 and the files in it
//! 0600 (made so on start, with a warning, if they were looser).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;

const DB_FILE: &str = "peerdoc.db";
const IDENTITY_FILE: &str = "identity.key";
const LOCK_FILE: &str = "peerdoc.lock";
const PORTS_FILE: &str = "listen-ports";
const API_ADDR_FILE: &str = "api.addr";
const API_TOKEN_FILE: &str = "api.token";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("another peerdoc daemon is already using {0}; stop it or pick another --data dir")]
    Locked(PathBuf),
    #[error("cannot use data dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity file {0} is damaged; move it aside to create a new identity (peers will see a new peer id)")]
    Identity(PathBuf),
}

/// An open, locked data directory. Dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    _lock: File,
}

/// Listen ports of the previous run, one per transport (0: none remembered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StickyPorts {
    pub(crate) tcp: u16,
    pub(crate) quic: u16,
}

impl DataDir {
    /// Creates the directory if needed, makes it and its files private, and locks it.
    pub(crate) fn open(path: &Path) -> Result<DataDir, DataDirError> {
        let io = |source| DataDirError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Created private (a directory made here is not warned about); one that existed is
        // tightened, with a warning, by `make_private`.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(path)
            .map_err(io)?;
        make_private(path).map_err(io)?;
        // Created private, so SQLite's WAL and shared-memory files follow its mode.
        create_private(&path.join(DB_FILE)).map_err(io)?;
        let lock = create_private(&path.join(LOCK_FILE)).map_err(io)?;
        if lock.try_lock().is_err() {
            return Err(DataDirError::Locked(path.to_path_buf()));
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }

    /// The node's libp2p identity, created on first use.
    pub(crate) fn identity(&self) -> Result<Keypair, DataDirError> {
        let path = self.path.join(IDENTITY_FILE);
        let damaged = || DataDirError::Identity(path.clone());
        match std::fs::read(&path) {
            Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|_| damaged()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keypair = Keypair::generate_ed25519();
                let bytes = keypair.to_protobuf_encoding().map_err(|_| damaged())?;
                write_private(&path, &bytes).map_err(|source| DataDirError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok(keypair)
            }
            Err(source) => Err(DataDirError::Io { path, source }),
        }
    }

    /// The ports of the previous run; anything unreadable counts as "none".
    pub(crate) fn sticky_ports(&self) -> StickyPorts {
        let text = std::fs::read_to_string(self.path.join(PORTS_FILE)).unwrap_or_default();
        let mut ports = StickyPorts::default();
        for line in text.lines() {
            let Some((transport, port)) = line.split_once(' ') else {
                continue;
            };
            let Ok(port) = port.trim().parse() else {
                continue;
            };
            match transport {
                "tcp" => ports.tcp = port,
                "quic" => ports.quic = port,
                _ => {}
            }
        }
        ports
    }

    /// Remembers this run's ports for the next one.
    pub(crate) fn save_sticky_ports(&self, ports: StickyPorts) -> std::io::Result<()> {
        let text = format!("tcp {}\nquic {}\n", ports.tcp, ports.quic);
        let mut file = create_private(&self.path.join(PORTS_FILE))?;
        file.set_len(0)?;
        file.write_all(text.as_bytes())
    }
}

/// Fails with [`DataDirError::Locked`] if a daemon is using the data dir at `path` now, so that
/// `serve` says so before it reports anything else (a port in use is then that daemon's). Creates
/// nothing; [`crate::Node::spawn`] takes the lock itself.
pub fn check_not_in_use(path: &Path) -> Result<(), DataDirError> {
    let Ok(lock) = File::open(path.join(LOCK_FILE)) else {
        return Ok(()); // no lock file: no daemon ever used it, or not readable (spawn says)
    };
    match lock.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::Locked(path.to_path_buf())),
        _ => Ok(()),
    }
}

/// The file in which a running daemon publishes its HTTP API address for the CLI.
pub fn api_addr_path(data_dir: &Path) -> PathBuf {
    data_dir.join(API_ADDR_FILE)
}

/// The file (mode 0600) holding the HTTP API token, when one is set, for the CLI.
pub fn api_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(API_TOKEN_FILE)
}

/// Opens `path` for writing, creating it readable by its owner only if it does not exist.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes `dir` 0700 and every file in it 0600, warning about each that was looser.
#[cfg(unix)]
fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tighten = |path: &Path, mode: u32| -> std::io::Result<()> {
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "was readable by other users (mode {current:o}); made it {mode:o}"
            );
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    };
    tighten(dir, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            tighten(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Creates `path` (which must not exist) readable by its owner only, and writes it durably.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_daemon_per_dir_and_a_stable_private_identity() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        assert!(matches!(
            DataDir::open(root.path()),
            Err(DataDirError::Locked(_))
        ));
        let id = dir.identity().unwrap().public().to_peer_id();
        assert_eq!(dir.identity().unwrap().public().to_peer_id(), id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(root.path().join(IDENTITY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "identity is private");
        }
        drop(dir);
        let dir = DataDir::open(root.path()).expect("the lock goes with the DataDir");
        std::fs::write(root.path().join(IDENTITY_FILE), b"junk").unwrap();
        assert!(matches!(dir.identity(), Err(DataDirError::Identity(_))));
    }

    #[cfg(unix)]
    #[test]
    fn the_dir_and_its_files_are_private_and_loose_ones_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("fresh");
        drop(DataDir::open(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&fresh.join(DB_FILE)), 0o600);
        assert_eq!(mode(&fresh.join(LOCK_FILE)), 0o600);

        // A data dir from an older peerdoc, readable by everyone.
        let old = root.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        for file in [DB_FILE, "peerdoc.db-wal", PORTS_FILE] {
            std::fs::write(old.join(file), b"x").unwrap();
            std::fs::set_permissions(old.join(file), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        drop(DataDir::open(&old).unwrap());
        assert_eq!(mode(&old), 0o700);
        for file in [DB_FILE, "peerdoc.db-wal", PORTS_FILE] {
            assert_eq!(mode(&old.join(file)), 0o600, "{file}");
        }
        assert_eq!(
            std::fs::read(old.join(DB_FILE)).unwrap(),
            b"x",
            "contents untouched"
        );
    }

    #[test]
    fn sticky_ports_round_trip_and_tolerate_damage() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        assert_eq!(dir.sticky_ports(), StickyPorts::default());
        let ports = StickyPorts {
            tcp: 4001,
            quic: 4002,
        };
        dir.save_sticky_ports(ports).unwrap();
        assert_eq!(dir.sticky_ports(), ports);
        std::fs::write(root.path().join(PORTS_FILE), "tcp x\nquic 9\nnonsense").unwrap();
        assert_eq!(dir.sticky_ports(), StickyPorts { tcp: 0, quic: 9 });
    }
}
