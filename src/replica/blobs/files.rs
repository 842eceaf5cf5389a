//! The files of attachments, beside the database: `blobs/<hash>` (the ciphertext) and
//! `blobs/<hash>.obao` (its bao outboard, pre-order, 64 bytes per 16 KiB) for a complete
//! blob; the same under `blobs/partial/` while one is downloaded (pieces are written where
//! they belong once verified); `blobs/tmp/` for files being sealed. Everything here blocks:
//! callers run it on the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bao_tree::io::outboard::PreOrderOutboard;
use bao_tree::io::sync::encode_ranges_validated;

use crate::core::blob::pieces::{piece_ranges, tree, Verified};
use crate::core::blob::seal::{self, KeyHasher};
use crate::core::blob::{BlobHash, BlobRef};

/// Bytes read at a time while sealing.
const READ_BUF: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct BlobFiles {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FilesError {
    #[error("the file is {size} bytes; attachments may be at most {max} bytes (`max_attachment_bytes` in the config file)")]
    TooLarge { size: u64, max: u64 },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the attachment store ({path}): {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl FilesError {
    /// The disk is full (the caller says so and keeps what it had).
    pub(crate) fn is_full(&self) -> bool {
        matches!(self, FilesError::Write { source, .. } if source.raw_os_error() == Some(28))
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> FilesError + '_ {
    move |source| FilesError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl BlobFiles {
    /// The attachment store under `data_dir`; files left half-sealed by a crash are removed.
    pub(crate) fn open(data_dir: &Path) -> io::Result<BlobFiles> {
        let dir = data_dir.join("blobs");
        let private = |p: &Path| {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
        };
        private(&dir.join("partial"))?;
        let tmp = dir.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        private(&tmp)?;
        Ok(BlobFiles { dir })
    }

    fn paths(&self, hash: &BlobHash, complete: bool) -> (PathBuf, PathBuf) {
        let dir = if complete {
            self.dir.clone()
        } else {
            self.dir.join("partial")
        };
        let name = hash.to_hex();
        (dir.join(&name), dir.join(format!("{name}.obao")))
    }

    /// A new file in the store's scratch folder (for an upload to be sealed).
    pub(crate) fn scratch(&self) -> PathBuf {
        self.dir
            .join("tmp")
            .join(format!("upload-{:016x}", rand::random::<u64>()))
    }

    /// Seals the file at `source` into a complete blob (ciphertext and outboard) keyed by
    /// `secret` and the content; its reference.
    pub(crate) fn seal(
        &self,
        secret: &[u8; 32],
        source: &Path,
        max_bytes: u64,
    ) -> Result<BlobRef, FilesError> {
        let read_err = |source_err| FilesError::Read {
            path: source.to_path_buf(),
            source: source_err,
        };
        let size = fs::metadata(source).map_err(read_err)?.len();
        if size > max_bytes {
            return Err(FilesError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        // Pass one: the key.
        let mut hasher = KeyHasher::new(secret);
        let mut file = File::open(source).map_err(read_err)?;
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let n = file.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let key = hasher.key();
        // Pass two: seal into a scratch file while the outboard is computed.
        let tmp = self.scratch();
        let tmp_ob = tmp.with_extension("obao");
        let result = (|| {
            let data = create_private(&tmp).map_err(write_err(&tmp))?;
            let ob = create_private(&tmp_ob).map_err(write_err(&tmp_ob))?;
            let reader = SealingReader {
                source: File::open(source).map_err(read_err)?,
                sink: data,
                key,
                offset: 0,
                failed: None,
            };
            let mut outboard = PreOrderOutboard {
                root: blake3::hash(&[]),
                tree: tree(size),
                data: ob,
            };
            let mut reader = reader;
            let root = bao_tree::io::sync::outboard(&mut reader, tree(size), &mut outboard);
            if let Some(e) = reader.failed.take() {
                return Err(e);
            }
            let root = root.map_err(read_err)?;
            if reader.offset != size {
                return Err(read_err(io::Error::other(
                    "the file changed while it was read",
                )));
            }
            reader.sink.sync_all().map_err(write_err(&tmp))?;
            outboard.data.sync_all().map_err(write_err(&tmp_ob))?;
            let hash = BlobHash(*root.as_bytes());
            let (data_path, ob_path) = self.paths(&hash, true);
            fs::rename(&tmp_ob, &ob_path).map_err(write_err(&ob_path))?;
            fs::rename(&tmp, &data_path).map_err(write_err(&data_path))?;
            sync_dir(&self.dir).map_err(write_err(&self.dir))?;
            Ok(BlobRef { hash, key, size })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&tmp_ob);
        }
        result
    }

    /// Whether the complete blob's files are here.
    pub(crate) fn has_complete(&self, hash: &BlobHash) -> bool {
        let (data, ob) = self.paths(hash, true);
        data.is_file() && ob.is_file()
    }

    /// Piece `piece` of a blob as a bao slice, checked against its hash as it is read (a
    /// damaged file is an error, never sent).
    pub(crate) fn encode_piece(
        &self,
        hash: &BlobHash,
        size: u64,
        complete: bool,
        piece: u32,
    ) -> io::Result<Vec<u8>> {
        let (data, ob) = self.paths(hash, complete);
        let data = File::open(data)?;
        let outboard = PreOrderOutboard {
            root: blake3::Hash::from_bytes(hash.0),
            tree: tree(size),
            data: File::open(ob)?,
        };
        let mut out = Vec::new();
        encode_ranges_validated(data, outboard, &piece_ranges(piece), &mut out)
            .map_err(io::Error::other)?;
        Ok(out)
    }

    /// Writes a verified piece into the partial blob (not yet durable: see [`Self::sync_partial`]).
    pub(crate) fn write_piece(&self, hash: &BlobHash, piece: &Verified) -> Result<(), FilesError> {
        use std::os::unix::fs::FileExt;
        let (data, ob) = self.paths(hash, false);
        let open = |p: &Path| open_private(p).map_err(write_err(p));
        open(&data)?
            .write_all_at(&piece.data, piece.offset)
            .map_err(write_err(&data))?;
        let obf = open(&ob)?;
        for (at, pair) in &piece.outboard {
            obf.write_all_at(pair, *at).map_err(write_err(&ob))?;
        }
        Ok(())
    }

    /// Makes the pieces written so far durable (the files, and their names in the folder).
    pub(crate) fn sync_partial(&self, hash: &BlobHash) -> Result<(), FilesError> {
        let (data, ob) = self.paths(hash, false);
        for p in [&data, &ob] {
            if p.exists() {
                File::open(p)
                    .and_then(|f| f.sync_all())
                    .map_err(write_err(p))?;
            }
        }
        let dir = self.dir.join("partial");
        sync_dir(&dir).map_err(write_err(&dir))
    }

    /// The length of a partial blob's data file (0: none).
    pub(crate) fn partial_len(&self, hash: &BlobHash) -> u64 {
        let (data, _) = self.paths(hash, false);
        fs::metadata(data).map_or(0, |m| m.len())
    }

    /// Removes a partial blob's files.
    pub(crate) fn remove_partial(&self, hash: &BlobHash) -> io::Result<()> {
        let (data, ob) = self.paths(hash, false);
        for p in [data, ob] {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the complete blob's data hashes to `hash` and has `size` bytes (false: its
    /// files are removed).
    pub(crate) fn verify_complete(&self, hash: &BlobHash, size: u64) -> bool {
        let (data, ob) = self.paths(hash, true);
        let good = hash_file(&data).is_ok_and(|(h, n)| h == *hash && n == size);
        if !good {
            let _ = fs::remove_file(&data);
            let _ = fs::remove_file(&ob);
        }
        good
    }

    /// A partial blob whose every piece is in becomes complete (durably).
    pub(crate) fn complete(&self, hash: &BlobHash, size: u64) -> Result<(), FilesError> {
        let (data, ob) = self.paths(hash, false);
        // An empty blob (or one whose outboard has no parents) has files of its own anyway.
        for p in [&data, &ob] {
            let f = open_private(p).map_err(write_err(p))?;
            if *p == data {
                f.set_len(size).map_err(write_err(p))?;
            }
            f.sync_all().map_err(write_err(p))?;
        }
        // Every piece was verified as it came; the whole is checked once more before it is
        // named complete (a partial file changed under the node is caught here).
        match hash_file(&data) {
            Ok((h, n)) if h == *hash && n == size => {}
            Ok(_) => {
                let _ = self.remove_partial(hash);
                return Err(FilesError::Read {
                    path: data,
                    source: io::Error::other(
                        "the assembled file does not match its hash; fetch it again",
                    ),
                });
            }
            Err(e) => {
                return Err(FilesError::Read {
                    path: data,
                    source: e,
                })
            }
        }
        let (done_data, done_ob) = self.paths(hash, true);
        fs::rename(&ob, &done_ob).map_err(write_err(&done_ob))?;
        fs::rename(&data, &done_data).map_err(write_err(&done_data))?;
        sync_dir(&self.dir).map_err(write_err(&self.dir))
    }

    /// Plaintext bytes `[offset, offset + len)` of a complete blob.
    pub(crate) fn read_plain(
        &self,
        blob: &BlobRef,
        offset: u64,
        len: usize,
    ) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let (data, _) = self.paths(&blob.hash, true);
        let mut buf = vec![0u8; len];
        File::open(data)?.read_exact_at(&mut buf, offset)?;
        seal::apply(&blob.key, offset, &mut buf);
        Ok(buf)
    }

    /// Removes a blob's files, complete and partial.
    pub(crate) fn remove(&self, hash: &BlobHash) -> io::Result<()> {
        for complete in [true, false] {
            let (data, ob) = self.paths(hash, complete);
            for p in [data, ob] {
                match fs::remove_file(&p) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// A new file only this user can read (the data dir's rule), replacing any.
fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// A file only this user can read, opened for writing at any offset (created if missing).
fn open_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// The BLAKE3 hash and length of a file.
fn hash_file(path: &Path) -> io::Result<(BlobHash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; READ_BUF];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((BlobHash(*hasher.finalize().as_bytes()), len))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads plaintext from `source`, seals it, writes the ciphertext to `sink` and hands it on
/// (to the outboard's hashing).
struct SealingReader {
    source: File,
    sink: File,
    key: [u8; 32],
    offset: u64,
    /// A write error (the outboard computation sees only read errors).
    failed: Option<FilesError>,
}

impl Read for SealingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(buf)?;
        seal::apply(&self.key, self.offset, &mut buf[..n]);
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let err = io::Error::new(e.kind(), e.to_string());
            self.failed = Some(FilesError::Write {
                path: PathBuf::from("blobs/tmp"),
                source: e,
            });
            return Err(err);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::blob::pieces::{decode_piece, piece_count};

    #[test]
    fn a_sealed_file_travels_piece_by_piece_into_another_store() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            BlobFiles::open(&dir.path().join("a")).unwrap(),
            BlobFiles::open(&dir.path().join("b")).unwrap(),
        );
        let plain: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
        let src = dir.path().join("file");
        fs::write(&src, &plain).unwrap();
        let r = a.seal(&[5; 32], &src, u64::MAX).unwrap();
        assert_eq!(r.size, plain.len() as u64);
        assert_eq!(
            a.seal(&[5; 32], &src, u64::MAX).unwrap(),
            r,
            "the same file, the same blob"
        );
        let sealed = fs::read(dir.path().join("a/blobs").join(r.hash.to_hex())).unwrap();
        assert_ne!(sealed, plain);
        assert_eq!(blake3::hash(&sealed).as_bytes(), &r.hash.0);
        for piece in (0..piece_count(r.size)).rev() {
            let slice = a.encode_piece(&r.hash, r.size, true, piece).unwrap();
            let v = decode_piece(&r.hash, r.size, piece, &slice).unwrap();
            b.write_piece(&r.hash, &v).unwrap();
        }
        b.complete(&r.hash, r.size).unwrap();
        assert!(b.has_complete(&r.hash));
        assert_eq!(b.read_plain(&r, 0, plain.len()).unwrap(), plain);
        assert_eq!(b.read_plain(&r, 12_345, 10).unwrap(), plain[12_345..12_355]);
        // B serves it in turn, from the outboard the proofs rebuilt.
        let slice = b.encode_piece(&r.hash, r.size, true, 1).unwrap();
        assert!(decode_piece(&r.hash, r.size, 1, &slice).is_ok());
        assert!(matches!(
            a.seal(&[5; 32], &src, 10),
            Err(FilesError::TooLarge {
                size: 700_000,
                max: 10
            })
        ));
    }

    #[test]
    fn a_complete_blob_is_checked_whole_and_a_damaged_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let a = BlobFiles::open(dir.path()).unwrap();
        let src = dir.path().join("file");
        fs::write(&src, vec![3u8; 100_000]).unwrap();
        let r = a.seal(&[1; 32], &src, u64::MAX).unwrap();
        assert!(a.verify_complete(&r.hash, r.size));
        assert!(!a.verify_complete(&r.hash, r.size + 1), "another size");
        assert!(!a.has_complete(&r.hash), "removed");
        assert_eq!(a.partial_len(&r.hash), 0);
    }

    #[test]
    fn a_damaged_file_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let a = BlobFiles::open(dir.path()).unwrap();
        let src = dir.path().join("file");
        fs::write(&src, vec![7u8; 300_000]).unwrap();
        let r = a.seal(&[1; 32], &src, u64::MAX).unwrap();
        let path = dir.path().join("blobs").join(r.hash.to_hex());
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(a.encode_piece(&r.hash, r.size, true, 0).is_err());
        assert!(a.encode_piece(&r.hash, r.size, true, 1).is_ok());
    }
}
