//! [`Secret`]: the key two processes share to authenticate the descriptions they exchange,
//! and the tag made with it, SipHash-2-4.
//!
//! UCX parses a peer's worker address and remote key without a length and without
//! defending itself (`specs/remote.md`, "Trust"), so no byte from a peer may reach it
//! unless the peer proved it holds the secret. SipHash-2-4 (J.-P. Aumasson and D. J.
//! Bernstein, "SipHash: a fast short-input PRF", INDOCRYPT 2012) is a keyed pseudorandom
//! function with a 128-bit key and a 64-bit output, made for exactly this: authenticating
//! short messages. The implementation follows the paper's description and is checked
//! against its Appendix A example and the first eight vectors of the reference
//! implementation's table (key `00 01 .. 0f`, messages `00 01 .. (n-1)`).

use std::fmt;

use crate::error::MemError;

/// A 128-bit key shared by two processes out of band (an orchestrator hands it to both),
/// that authenticates the descriptions they exchange.
///
/// Whoever holds it can make an importer connect to a UCX worker of its choosing, which
/// UCX then trusts (`specs/remote.md`, "Trust"): treat it like a password, one per pair of
/// processes that trust each other. `Debug` prints none of its bytes.
///
/// ```
/// use unimem::remote::Secret;
///
/// let secret = Secret::random()?;
/// let same = Secret::from_bytes(secret.to_bytes()); // e.g. after sending it to the peer
/// assert_eq!(format!("{same:?}"), "Secret(..)");
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 16]);

impl Secret {
    /// 16 bytes from the operating system's random source (`/dev/urandom`).
    ///
    /// # Errors
    ///
    /// [`Os`](MemError::Os) `{ call: "read(/dev/urandom)", .. }` if the source cannot be
    /// read.
    pub fn random() -> Result<Secret, MemError> {
        let mut bytes = [0u8; 16];
        random_bytes(&mut bytes)?;
        Ok(Secret(bytes))
    }

    /// The secret made of these bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Secret {
        Secret(bytes)
    }

    /// Its bytes, to hand to the peer over a channel both trust.
    pub fn to_bytes(&self) -> [u8; 16] {
        self.0
    }

    /// SipHash-2-4 of `message` under this key.
    pub(crate) fn tag(&self, message: &[u8]) -> u64 {
        siphash24(&self.0, message)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Fills `bytes` from `/dev/urandom`.
pub(crate) fn random_bytes(bytes: &mut [u8]) -> Result<(), MemError> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(bytes))
        .map_err(|err| MemError::Os {
            call: "read(/dev/urandom)",
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        })
}

/// A random `u64` (a registration's nonce).
pub(crate) fn random_u64() -> Result<u64, MemError> {
    let mut bytes = [0u8; 8];
    random_bytes(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// Whether two tags are equal, in time that does not depend on where they differ.
pub(crate) fn same_tag(a: u64, b: u64) -> bool {
    // One XOR and one comparison with zero of the whole word: no early exit.
    std::hint::black_box(a ^ b) == 0
}

/// One SipRound on the state `v`.
#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4: two rounds per 8-byte word of the message (the last word padded and
/// carrying the length modulo 256 in its top byte), four rounds of finalization.
fn siphash24(key: &[u8; 16], message: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap_or([0; 8]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut words = message.chunks_exact(8);
    for word in &mut words {
        let m = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let rest = words.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = message.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; 16] {
        std::array::from_fn(|i| i as u8)
    }

    /// The paper's Appendix A: key 00..0f, message 00..0e (15 bytes).
    #[test]
    fn paper_example() {
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(&key(), &message), 0xa129_ca61_49be_45e5);
    }

    /// The first eight vectors of the reference implementation's table (`vectors.h`,
    /// SipHash-2-4, 64-bit output), messages of 0..8 bytes.
    #[test]
    fn reference_vectors() {
        let expected: [[u8; 8]; 8] = [
            [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72],
            [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74],
            [0x5a, 0x4f, 0xa9, 0xd9, 0x09, 0x80, 0x6c, 0x0d],
            [0x2d, 0x7e, 0xfb, 0xd7, 0x96, 0x66, 0x67, 0x85],
            [0xb7, 0x87, 0x71, 0x27, 0xe0, 0x94, 0x27, 0xcf],
            [0x8d, 0xa6, 0x99, 0xcd, 0x64, 0x55, 0x76, 0x18],
            [0xce, 0xe3, 0xfe, 0x58, 0x6e, 0x46, 0xc9, 0xcb],
            [0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab],
        ];
        let message: Vec<u8> = (0..8).collect();
        for (n, want) in expected.iter().enumerate() {
            assert_eq!(
                siphash24(&key(), &message[..n]),
                u64::from_le_bytes(*want),
                "message of {n} bytes"
            );
        }
    }

    #[test]
    fn tags_depend_on_key_and_every_byte() {
        let a = Secret::from_bytes(key());
        let mut other = key();
        other[15] ^= 1;
        let b = Secret::from_bytes(other);
        let message = [7u8; 100];
        assert_ne!(a.tag(&message), b.tag(&message));
        for i in 0..message.len() {
            let mut changed = message;
            changed[i] ^= 0x80;
            assert_ne!(a.tag(&message), a.tag(&changed), "byte {i}");
        }
        assert!(same_tag(5, 5) && !same_tag(5, 4));
    }

    #[test]
    fn random_secrets_differ_and_hide_their_bytes() {
        let (a, b) = (Secret::random().unwrap(), Secret::random().unwrap());
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "Secret(..)");
        assert_eq!(Secret::from_bytes(a.to_bytes()), a);
    }
}
