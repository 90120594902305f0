//! A byte reader that never fails, and the writer that makes inputs for it.
//!
//! Each target decodes its input as a sequence of small fields read front to back. Past
//! the end every field reads as zero, so any byte string decodes, and a short input is a
//! short program. Numbers are little-endian. The [`Writer`] writes the same fields, so the
//! seeds in `seeds/` are made from readable code (`src/seeds.rs`).

/// Reads fields from the front of a fuzz input.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `n` bytes, or as many as are left.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// The next byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let got = self.bytes(2);
        b[..got.len()].copy_from_slice(got);
        u16::from_le_bytes(b)
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let got = self.bytes(4);
        b[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(b)
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let got = self.bytes(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(b)
    }

    /// A choice among `n` (> 0) cases: the next byte modulo `n`.
    pub fn choose(&mut self, n: u8) -> u8 {
        self.u8() % n
    }
}

/// Writes fields in the [`Reader`]'s format.
#[derive(Debug, Default)]
pub struct Writer {
    /// The input so far.
    pub data: Vec<u8>,
}

impl Writer {
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Writer {
        self.data.push(v);
        self
    }

    /// Appends two bytes, little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Writer {
        self.data.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends four bytes, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Writer {
        self.data.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends eight bytes, little-endian.
    pub fn u64(&mut self, v: u64) -> &mut Writer {
        self.data.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Writer {
        self.data.extend_from_slice(v);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_as_zeros() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), 0x0201);
        assert_eq!(r.u32(), 3);
        assert!(r.is_empty());
        assert_eq!((r.u8(), r.u64(), r.bytes(4)), (0, 0, &[][..]));
    }

    #[test]
    fn writer_and_reader_agree() {
        let mut w = Writer::default();
        w.u8(7).u16(300).u32(70_000).u64(u64::MAX).bytes(b"ab");
        let mut r = Reader::new(&w.data);
        assert_eq!(
            (r.u8(), r.u16(), r.u32(), r.u64()),
            (7, 300, 70_000, u64::MAX)
        );
        assert_eq!(r.bytes(2), b"ab");
        assert!(r.is_empty());
    }
}
