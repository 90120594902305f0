//! The layout of UCX's packed remote keys, checked before UCX sees one.
//!
//! `ucp_rkey_pack` writes (UCX 1.13, `src/ucp/core/ucp_rkey.c`, `ucp_rkey_pack_memh`):
//! the memory-domain map (`u64`, little-endian on every target UCX supports), the memory
//! type (`u8`), then for each set bit of the map, in order, one byte of length and that
//! many bytes of the domain's own key; device distances may follow for memory on a device.
//! `ucp_ep_rkey_unpack` reads it **without a length** and acts on the domains' keys: a key
//! naming the `posix` or `sysv` domain makes it open or attach the shared-memory segment
//! the bytes name. Fed garbage, UCX 1.13.1 crashed (`specs/remote.md`, "Trust").
//!
//! So the importer accepts only keys shaped exactly like the ones its own UCX packs for
//! host memory: the [`KeyShape`] read once per Engine from a key packed for a page of its
//! own. Every domain of the peer's key must be one of those, with the same key length, and
//! the key must end where the last domain's key ends. Registered host memory never yields
//! a key for the shared-memory domains (they can allocate, not register), so those are out.

use crate::error::MemError;

/// Memory type `UCS_MEMORY_TYPE_HOST`.
const HOST: u8 = 0;

/// What this UCX packs for registered host memory: which domains, with which key sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyShape {
    map: u64,
    /// `sizes[i]`: the key length of domain `i` (for the bits of `map`).
    sizes: [u8; 64],
}

impl KeyShape {
    /// No domain: accepts no key (until the probe has run).
    pub(crate) fn empty() -> KeyShape {
        KeyShape {
            map: 0,
            sizes: [0; 64],
        }
    }

    /// Reads the shape of a key this process packed itself.
    pub(crate) fn of(own: &[u8]) -> Option<KeyShape> {
        let (map, entries) = parse(own)?;
        let mut sizes = [0u8; 64];
        for (domain, len) in entries {
            sizes[domain] = len;
        }
        Some(KeyShape { map, sizes })
    }

    /// Checks a peer's key against this shape.
    ///
    /// # Errors
    ///
    /// [`RemoteRefused`](MemError::RemoteRefused) when it is not a host-memory key this UCX
    /// would pack.
    pub(crate) fn check(&self, key: &[u8], description_len: usize) -> Result<(), MemError> {
        let refuse = |reason| MemError::RemoteRefused {
            len: description_len,
            reason,
        };
        let Some((map, entries)) = parse(key) else {
            return Err(refuse(
                "the remote key is not a host-memory key in this UCX's format",
            ));
        };
        if map & !self.map != 0 {
            return Err(refuse(
                "the remote key names memory domains this UCX does not register host memory \
                 with (run both sides with the same UCX and UCX_TLS)",
            ));
        }
        if entries
            .into_iter()
            .any(|(domain, len)| self.sizes[domain] != len)
        {
            return Err(refuse(
                "the remote key's domain keys differ in size from this UCX's (run both sides \
                 with the same UCX build)",
            ));
        }
        Ok(())
    }
}

/// Splits a packed key into its map and `(domain, key length)` entries; `None` unless it is
/// a host-memory key that ends exactly after its last domain key.
fn parse(key: &[u8]) -> Option<(u64, Vec<(usize, u8)>)> {
    let map = u64::from_le_bytes(key.get(..8)?.try_into().ok()?);
    if *key.get(8)? != HOST {
        return None;
    }
    let mut at = 9usize;
    let mut entries = Vec::with_capacity(map.count_ones() as usize);
    for domain in 0..64 {
        if map & (1 << domain) == 0 {
            continue;
        }
        let len = *key.get(at)?;
        at = at.checked_add(1 + usize::from(len))?;
        if at > key.len() {
            return None;
        }
        entries.push((domain, len));
    }
    (at == key.len()).then_some((map, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key UCX 1.13.1 packed for a page of host memory on the build machine: domains
    /// 0 (self), 1 (tcp) and 4 (cma), each with an empty key.
    const OWN: [u8; 12] = [0x13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    fn refused(key: &[u8]) -> bool {
        KeyShape::of(&OWN).unwrap().check(key, 100).is_err()
    }

    #[test]
    fn own_shape_and_subsets_pass() {
        let shape = KeyShape::of(&OWN).unwrap();
        assert!(shape.check(&OWN, 100).is_ok());
        // Domains 0 and 4 only.
        assert!(
            shape
                .check(&[0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 100)
                .is_ok()
        );
    }

    #[test]
    fn garbage_keys_are_refused() {
        assert!(refused(&[0xff; 64]));
        assert!(refused(&[]));
        assert!(refused(&OWN[..11]));
        let mut longer = OWN.to_vec();
        longer.push(0);
        assert!(refused(&longer));
        // The posix (3) and sysv (2) domains, with a 40-byte key each.
        for domain in [2u8, 3] {
            let mut key = vec![1 << domain, 0, 0, 0, 0, 0, 0, 0, 0, 40];
            key.extend_from_slice(&[0xa5; 40]);
            assert!(refused(&key), "domain {domain}");
        }
        // A domain of this UCX with a key of another size.
        assert!(refused(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]));
        // Memory on a device.
        let mut cuda = OWN;
        cuda[8] = 1;
        assert!(refused(&cuda));
        // Every high bit alone.
        for bit in 5..64 {
            let mut key = (1u64 << bit).to_le_bytes().to_vec();
            key.extend_from_slice(&[0, 0]);
            assert!(refused(&key), "bit {bit}");
        }
    }
}
