//! The exported description of a registered Grid: what a peer needs to address its cells,
//! as bytes, authenticated with the shared [`Secret`].
//!
//! The format (`specs/remote.md`, "The exported description") is engine neutral except for
//! the two opaque blobs (the engine's worker address and packed remote key). Decoding checks
//! the tag over every byte **before** reading any other field, then the framing and the
//! geometry; the blobs are checked by the engine (`rkey.rs`).

use super::secret::{Secret, same_tag};
use crate::error::MemError;

const MAGIC: &[u8; 8] = b"UNIMEMRG";
const VERSION: u16 = 1;
/// Bytes before the worker address.
pub(crate) const HEADER: usize = 80;
/// The tag at the end.
const TAG: usize = 8;
/// The most bytes a worker address may have (UCX's are a few hundred).
pub(crate) const MAX_ADDRESS: usize = 1 << 16;
/// The fewest and most bytes a packed remote key may have: a memory-domain map, a memory
/// type, and at most 64 domains of at most 255 bytes (UCX's own limits); a key over 4 KiB
/// is refused long before that.
pub(crate) const MIN_RKEY: usize = 9;
pub(crate) const MAX_RKEY: usize = 4096;
/// Cells are aligned to at least 64 bytes (`Grid::CELL_ALIGN`).
const CELL_ALIGN: u64 = 64;

/// A decoded (or to be encoded) description. The blobs borrow the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Description<'b> {
    /// The exporter's UCX major and minor version.
    pub(crate) engine: (u16, u16),
    pub(crate) grid: u64,
    pub(crate) nonce: u64,
    /// The exporter's address of its Block's first byte.
    pub(crate) base: u64,
    pub(crate) size: u64,
    /// The offset of cell 0 in the Block.
    pub(crate) offset: u64,
    pub(crate) cell_size: u64,
    pub(crate) cells: u32,
    pub(crate) address: &'b [u8],
    pub(crate) rkey: &'b [u8],
}

impl Description<'_> {
    /// The bytes, tagged with `secret`.
    pub(crate) fn encode(&self, secret: &Secret) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.address.len() + self.rkey.len() + TAG);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.engine.0.to_le_bytes());
        out.extend_from_slice(&self.engine.1.to_le_bytes());
        for word in [
            self.grid,
            self.nonce,
            self.base,
            self.size,
            self.offset,
            self.cell_size,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.cells.to_le_bytes());
        out.extend_from_slice(&(self.address.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.rkey.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        debug_assert_eq!(out.len(), HEADER);
        out.extend_from_slice(self.address);
        out.extend_from_slice(self.rkey);
        let tag = secret.tag(&out);
        out.extend_from_slice(&tag.to_le_bytes());
        out
    }

    /// Checks the tag, then the framing and the geometry.
    ///
    /// # Errors
    ///
    /// [`RemoteRefused`](MemError::RemoteRefused) with the reason.
    pub(crate) fn decode<'b>(
        bytes: &'b [u8],
        secret: &Secret,
    ) -> Result<Description<'b>, MemError> {
        let refuse = |reason| MemError::RemoteRefused {
            len: bytes.len(),
            reason,
        };
        if bytes.len() < HEADER + TAG || bytes.len() > HEADER + MAX_ADDRESS + MAX_RKEY + TAG {
            return Err(refuse("its length is not that of any description"));
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG);
        let tag = u64::from_le_bytes(tag.try_into().map_err(|_| refuse("no tag"))?);
        if !same_tag(secret.tag(body), tag) {
            return Err(refuse(
                "the authentication tag does not match: another secret, or altered bytes",
            ));
        }
        let mut reader = Reader { bytes: body, at: 0 };
        if reader.take(8) != Some(MAGIC.as_slice()) {
            return Err(refuse("bad magic"));
        }
        if reader.u16() != Some(VERSION) {
            return Err(refuse("another format version"));
        }
        if reader.u16() != Some(0) {
            return Err(refuse("unknown flags"));
        }
        let engine = (reader.u16(), reader.u16());
        let words: [Option<u64>; 6] = std::array::from_fn(|_| reader.u64());
        let (cells, address_len, rkey_len, reserved) =
            (reader.u32(), reader.u32(), reader.u32(), reader.u32());
        let (
            (Some(major), Some(minor)),
            [
                Some(grid),
                Some(nonce),
                Some(base),
                Some(size),
                Some(offset),
                Some(cell_size),
            ],
            Some(cells),
            Some(address_len),
            Some(rkey_len),
            Some(reserved),
        ) = (engine, words, cells, address_len, rkey_len, reserved)
        else {
            return Err(refuse("header cut short"));
        };
        if reserved != 0 {
            return Err(refuse("reserved field is not zero"));
        }
        let (address_len, rkey_len) = (address_len as usize, rkey_len as usize);
        if address_len == 0 || address_len > MAX_ADDRESS {
            return Err(refuse("worker address length out of range"));
        }
        if !(MIN_RKEY..=MAX_RKEY).contains(&rkey_len) {
            return Err(refuse("remote key length out of range"));
        }
        if HEADER + address_len + rkey_len != body.len() {
            return Err(refuse("the lengths do not add up to the buffer"));
        }
        let (Some(address), Some(rkey)) = (reader.take(address_len), reader.take(rkey_len)) else {
            return Err(refuse("blobs cut short"));
        };
        if cells == 0 || cell_size == 0 || cell_size % CELL_ALIGN != 0 {
            return Err(refuse(
                "no cells, or a cell size that is not a nonzero multiple of 64",
            ));
        }
        let end = u64::from(cells)
            .checked_mul(cell_size)
            .and_then(|bytes| bytes.checked_add(offset));
        if end.is_none_or(|end| end > size) {
            return Err(refuse("the cells do not fit in the Block"));
        }
        if base == 0 || base.checked_add(size).is_none() || size > isize::MAX as u64 {
            return Err(refuse("the Block's address range is impossible"));
        }
        Ok(Description {
            engine: (major, minor),
            grid,
            nonce,
            base,
            size,
            offset,
            cell_size,
            cells,
            address,
            rkey,
        })
    }
}

/// Reads little-endian fields from the front of a buffer.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, len: usize) -> Option<&'b [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> Secret {
        Secret::from_bytes([9; 16])
    }

    fn sample<'b>(address: &'b [u8], rkey: &'b [u8]) -> Description<'b> {
        Description {
            engine: (1, 13),
            grid: 7,
            nonce: 0x1234_5678_9abc_def0,
            base: 0x7f00_0000_0000,
            size: 1 << 20,
            offset: 4096,
            cell_size: 16 << 10,
            cells: 63,
            address,
            rkey,
        }
    }

    #[test]
    fn round_trip() {
        let (address, rkey) = (vec![1u8; 215], vec![0u8; 12]);
        let description = sample(&address, &rkey);
        let bytes = description.encode(&secret());
        assert_eq!(bytes.len(), HEADER + 215 + 12 + TAG);
        assert_eq!(Description::decode(&bytes, &secret()), Ok(description));
    }

    fn reason(bytes: &[u8], secret: &Secret) -> &'static str {
        match Description::decode(bytes, secret) {
            Err(MemError::RemoteRefused { reason, .. }) => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn every_altered_byte_and_another_secret_are_refused() {
        let (address, rkey) = (vec![1u8; 40], vec![0u8; 12]);
        let bytes = sample(&address, &rkey).encode(&secret());
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            assert!(reason(&altered, &secret()).contains("tag"), "byte {i}");
        }
        assert!(reason(&bytes, &Secret::from_bytes([8; 16])).contains("tag"));
        assert!(reason(&bytes[..bytes.len() - 1], &secret()).contains("tag"));
        assert!(reason(&bytes[..10], &secret()).contains("length"));
    }

    /// A buggy peer that holds the secret: each bad field is named.
    #[test]
    fn bad_fields_under_a_good_tag() {
        let (address, rkey) = (vec![1u8; 40], vec![0u8; 12]);
        let s = secret();
        let check = |edit: &dyn Fn(&mut Description<'_>), want: &str| {
            let mut d = sample(&address, &rkey);
            edit(&mut d);
            assert!(reason(&d.encode(&s), &s).contains(want), "{want}");
        };
        check(&|d| d.cells = 0, "no cells");
        check(&|d| d.cell_size = 100, "multiple of 64");
        check(&|d| d.cells = 64, "do not fit");
        check(&|d| d.offset = u64::MAX, "do not fit");
        check(&|d| d.cell_size = 1 << 58, "do not fit");
        check(&|d| d.base = 0, "impossible");
        check(&|d| d.base = u64::MAX - 10, "impossible");
        check(&|d| d.rkey = &[], "remote key length");
        check(&|d| d.address = &[], "worker address length");
        // Framing fields altered and re-tagged.
        let good = sample(&address, &rkey).encode(&s);
        let retag = |mut body: Vec<u8>| {
            body.truncate(body.len() - TAG);
            let tag = s.tag(&body);
            body.extend_from_slice(&tag.to_le_bytes());
            body
        };
        let mut b = good.clone();
        b[0] = b'X';
        assert!(reason(&retag(b), &s).contains("magic"));
        let mut b = good.clone();
        b[8] = 2;
        assert!(reason(&retag(b), &s).contains("version"));
        let mut b = good.clone();
        b[10] = 1;
        assert!(reason(&retag(b), &s).contains("flags"));
        let mut b = good.clone();
        b[76] = 1;
        assert!(reason(&retag(b), &s).contains("reserved"));
        let mut b = good.clone();
        b[68] = 41;
        assert!(reason(&retag(b), &s).contains("add up"));
        let mut b = good;
        b.insert(HEADER, 0);
        assert!(reason(&retag(b), &s).contains("add up"));
    }

    proptest! {
        #[test]
        fn garbage_never_decodes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            prop_assert!(Description::decode(&bytes, &secret()).is_err());
        }

        #[test]
        fn any_geometry_round_trips_or_is_refused(
            offset in 0u64..1 << 20, cell in 1u64..1 << 16, cells in 1u32..1 << 12,
        ) {
            let (address, rkey) = ([3u8; 16], [0u8; 12]);
            let mut d = sample(&address, &rkey);
            d.offset = offset;
            d.cell_size = cell;
            d.cells = cells;
            let bytes = d.encode(&secret());
            let decoded = Description::decode(&bytes, &secret());
            let fits = cell % 64 == 0 && offset + cell * u64::from(cells) <= d.size;
            prop_assert_eq!(decoded.is_ok(), fits);
        }
    }
}
