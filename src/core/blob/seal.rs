//! Sealing an attachment: ChaCha20 over the plaintext, with a key derived from the plaintext
//! and a secret of the attaching node. The same file attached twice by one node is one blob
//! (stored and sent once), while nobody without the secret can test a guess of the content
//! against a hash. Integrity comes from the reference: it names the ciphertext's BLAKE3 hash
//! and travels inside the authenticated, sealed document. The cipher is seekable, so any
//! range of a file can be opened alone (range requests, pieces).

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;

/// Context of the node secret that keys attachment sealing (derived from its identity key).
pub const SECRET_CONTEXT: &str = "peerdoc 2026-12 attachment sealing secret";

/// Hashes a plaintext into the key that seals it: feed it in order, then [`KeyHasher::key`].
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    pub fn new(secret: &[u8; 32]) -> KeyHasher {
        KeyHasher(blake3::Hasher::new_keyed(secret))
    }
    pub fn update(&mut self, plaintext: &[u8]) {
        self.0.update(plaintext);
    }
    pub fn key(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// The node secret from its identity key's secret bytes.
pub fn node_secret(identity_secret: &[u8]) -> [u8; 32] {
    blake3::derive_key(SECRET_CONTEXT, identity_secret)
}

/// XORs the key stream into `buf`, which sits at byte `offset` of the blob: seals plaintext
/// and opens ciphertext alike. Each key seals one content only, so the nonce is fixed.
pub fn apply(key: &[u8; 32], offset: u64, buf: &mut [u8]) {
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    cipher.seek(offset);
    cipher.apply_keystream(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_opens_alone() {
        let key = [3; 32];
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = plain.clone();
        apply(&key, 0, &mut sealed);
        assert_ne!(sealed, plain);
        let mut part = sealed[4321..7777].to_vec();
        apply(&key, 4321, &mut part);
        assert_eq!(part, plain[4321..7777]);
    }

    #[test]
    fn the_key_depends_on_the_content_and_the_secret() {
        let key = |secret: [u8; 32], data: &[u8]| {
            let mut h = KeyHasher::new(&secret);
            h.update(data);
            h.key()
        };
        assert_eq!(key([1; 32], b"abc"), key([1; 32], b"abc"));
        assert_ne!(key([1; 32], b"abc"), key([1; 32], b"abd"));
        assert_ne!(key([1; 32], b"abc"), key([2; 32], b"abc"));
    }
}
