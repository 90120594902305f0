//! The plan of a batched copy: the caller's list checked, neighbours merged, and cut into
//! the driver calls that will carry it. Pure: no driver, no memory touched, so every rule
//! here is tested without a GPU (and under Miri).
//!
//! # Rules
//!
//! - **Entries.** Entry `i` moves `len` bytes between offset `host` of the registered
//!   Block and device address `device`. `len` 0 is refused ([`MemError::ZeroSize`]); so is a
//!   host range past the Block's end or a device range past 2^64
//!   ([`MemError::CopyOutOfRange`]).
//! - **Coalescing.** An entry that continues the previous copy on both sides (its host
//!   offset and its device address are where the previous one ends) is merged into it: one
//!   copy of the sum. Merged copies are what [`Piece`]s are.
//! - **Registration boundaries.** No piece crosses a multiple of [`BOUNDARY`] (64 GiB) of
//!   the Block: a registration may be made of 64 GiB parts, and a driver copy must lie in
//!   one registered allocation. An entry that crosses one is cut there; entries never merge
//!   across one.
//! - **Disjoint destinations.** The copies of a batch run in no particular order, so two
//!   entries whose destinations overlap would leave undefined bytes: refused
//!   ([`MemError::CopyOverlap`]). Checked in O(n) when the destinations come in increasing
//!   order (a contiguous device buffer, a sorted block table), else by sorting, O(n log n).
//! - **Calls.** The pieces are split into `engines` groups of consecutive pieces (one per
//!   stream), and each group into chunks of at most `max_batch` pieces (one driver call each).
//!
//! `Plan::entries_through[i]` is the number of list entries wholly copied once pieces
//! `0..=i` are: what a failure part way reports.

use crate::error::MemError;

/// No piece crosses a multiple of this many bytes from the Block's start (64 GiB).
pub(crate) const BOUNDARY: usize = 1 << 36;

/// One driver copy: `len` bytes between Block offset `host` and device address `device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) host: usize,
    pub(crate) device: u64,
    pub(crate) len: usize,
}

/// The checked, merged list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    pub(crate) pieces: Vec<Piece>,
    /// Entries wholly copied once `pieces[..=i]` are.
    pub(crate) entries_through: Vec<usize>,
    /// Entries in the list.
    pub(crate) entries: usize,
    /// Bytes in all.
    pub(crate) bytes: u64,
}

/// Checks and merges the entries `(host, len, device)` of a list for a Block of `size`
/// bytes: see the module docs. `boundary` is [`BOUNDARY`] (smaller in tests).
pub(crate) fn plan(
    entries: impl ExactSizeIterator<Item = (usize, usize, u64)>,
    size: usize,
    coalesce: bool,
    boundary: usize,
) -> Result<Plan, MemError> {
    let n = entries.len();
    let mut plan = Plan {
        pieces: Vec::with_capacity(n),
        entries_through: Vec::with_capacity(n),
        entries: n,
        bytes: 0,
    };
    for (entry, (host, len, device)) in entries.enumerate() {
        if len == 0 {
            return Err(MemError::ZeroSize);
        }
        if host.checked_add(len).is_none_or(|end| end > size) {
            return Err(MemError::CopyOutOfRange {
                entry,
                start: host as u64,
                len: len as u64,
                limit: size as u64,
                device: false,
            });
        }
        if device.checked_add(len as u64).is_none() {
            return Err(MemError::CopyOutOfRange {
                entry,
                start: device,
                len: len as u64,
                limit: u64::MAX,
                device: true,
            });
        }
        plan.bytes += len as u64;
        // Cut at the boundaries the entry crosses.
        let (mut host, mut device, mut left) = (host, device, len);
        while left > 0 {
            let room = boundary - host % boundary;
            let part = left.min(room);
            plan.push(host, device, part, entry, coalesce, boundary);
            host += part;
            device += part as u64;
            left -= part;
        }
        if let Some(last) = plan.entries_through.last_mut() {
            *last = entry + 1;
        }
    }
    Ok(plan)
}

impl Plan {
    /// Appends a part of entry `entry`, merging it into the last piece where it continues it.
    fn push(
        &mut self,
        host: usize,
        device: u64,
        len: usize,
        entry: usize,
        coalesce: bool,
        boundary: usize,
    ) {
        if let Some(last) = self.pieces.last_mut() {
            let continues = last.host + last.len == host
                && last.device + last.len as u64 == device
                && host % boundary != 0;
            if coalesce && continues {
                last.len += len;
                return;
            }
        }
        self.pieces.push(Piece { host, device, len });
        self.entries_through.push(entry);
    }

    /// Entries wholly copied once the first `pieces` pieces are.
    pub(crate) fn copied(&self, pieces: usize) -> usize {
        match pieces {
            0 => 0,
            n => self.entries_through[n.min(self.pieces.len()) - 1],
        }
    }

    /// The pieces in `groups` runs of consecutive pieces (as even as counts allow), each
    /// with the index of its first piece. Fewer groups if there are fewer pieces.
    pub(crate) fn groups(&self, groups: usize) -> Vec<(usize, &[Piece])> {
        let n = self.pieces.len();
        let groups = groups.clamp(1, n.max(1));
        (0..groups)
            .map(|g| {
                let (start, end) = (g * n / groups, (g + 1) * n / groups);
                (start, &self.pieces[start..end])
            })
            .filter(|(_, pieces)| !pieces.is_empty())
            .collect()
    }
}

/// Checks that the ranges `(start, len)` of the entries are pairwise disjoint; the first
/// overlap found is reported as `(earlier entry, later entry)`. O(n) for ranges in
/// increasing order, else a sort of `n` (start, end, entry) triples.
pub(crate) fn disjoint(
    ranges: impl ExactSizeIterator<Item = (u64, u64)> + Clone,
) -> Result<(), (usize, usize)> {
    let mut end = 0u64;
    let mut sorted = true;
    for (i, (start, len)) in ranges.clone().enumerate() {
        if i > 0 && start < end {
            sorted = false;
            break;
        }
        end = start.saturating_add(len);
    }
    if sorted {
        return Ok(());
    }
    let mut all: Vec<(u64, u64, usize)> = ranges
        .enumerate()
        .map(|(i, (start, len))| (start, start.saturating_add(len), i))
        .collect();
    all.sort_unstable();
    for pair in all.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            return Err((a.min(b), a.max(b)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn pieces(plan: &Plan) -> Vec<(usize, u64, usize)> {
        plan.pieces
            .iter()
            .map(|p| (p.host, p.device, p.len))
            .collect()
    }

    #[test]
    fn neighbours_on_both_sides_merge_and_others_do_not() {
        // 0 and 1 continue each other on both sides; 2 continues on the host side only; 3
        // continues 2 on both; 4 goes back.
        let list = [
            (0, 64, 1000),
            (64, 64, 1064),
            (128, 64, 5000),
            (192, 64, 5064),
            (0, 64, 9000),
        ];
        let plan = plan(list.into_iter(), MIB, true, BOUNDARY).unwrap();
        assert_eq!(
            pieces(&plan),
            [(0, 1000, 128), (128, 5000, 128), (0, 9000, 64)]
        );
        assert_eq!(plan.entries_through, [2, 4, 5]);
        assert_eq!(plan.entries, 5);
        assert_eq!(plan.bytes, 320);
        assert_eq!(
            [0, 1, 2, 3].map(|n| plan.copied(n)),
            [0, 2, 4, 5],
            "entries wholly copied after n pieces"
        );
        // Without coalescing, one piece per entry.
        let plain = super::plan(list.into_iter(), MIB, false, BOUNDARY).unwrap();
        assert_eq!(plain.pieces.len(), 5);
        assert_eq!(plain.entries_through, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn bad_entries_are_refused_with_their_numbers() {
        let err = plan([(0, 64, 0), (0, 0, 64)].into_iter(), MIB, true, BOUNDARY);
        assert_eq!(err.unwrap_err(), MemError::ZeroSize);
        // The last byte of the Block is fine; one past it is not.
        assert!(plan([(MIB - 1, 1, 0)].into_iter(), MIB, true, BOUNDARY).is_ok());
        assert_eq!(
            plan(
                [(0, 8, 0), (MIB - 1, 2, 0)].into_iter(),
                MIB,
                true,
                BOUNDARY
            )
            .unwrap_err(),
            MemError::CopyOutOfRange {
                entry: 1,
                start: (MIB - 1) as u64,
                len: 2,
                limit: MIB as u64,
                device: false,
            }
        );
        assert!(matches!(
            plan([(usize::MAX, 2, 0)].into_iter(), MIB, true, BOUNDARY).unwrap_err(),
            MemError::CopyOutOfRange { device: false, .. }
        ));
        assert_eq!(
            plan([(0, 16, u64::MAX - 8)].into_iter(), MIB, true, BOUNDARY).unwrap_err(),
            MemError::CopyOutOfRange {
                entry: 0,
                start: u64::MAX - 8,
                len: 16,
                limit: u64::MAX,
                device: true,
            }
        );
        assert!(plan([(0, 16, u64::MAX - 15)].into_iter(), MIB, true, BOUNDARY).is_err());
        assert!(plan([(0, 16, u64::MAX - 16)].into_iter(), MIB, true, BOUNDARY).is_ok());
    }

    #[test]
    fn pieces_never_cross_a_boundary() {
        // Boundary 100: an entry across it is cut, and entries do not merge across it.
        let list = [(50, 100, 1000), (150, 50, 1100), (200, 10, 1150)];
        let plan = plan(list.into_iter(), 1000, true, 100).unwrap();
        assert_eq!(
            pieces(&plan),
            [(50, 1000, 50), (100, 1050, 100), (200, 1150, 10)]
        );
        // Entry 0 is whole only after its second piece; entry 1 merged into that piece.
        assert_eq!(plan.entries_through, [0, 2, 3]);
        assert_eq!(plan.copied(1), 0);
        assert_eq!(plan.bytes, 160);
    }

    #[test]
    fn groups_are_even_runs_of_pieces() {
        let list = (0..10).map(|i| (i * 128, 64, i as u64 * 128));
        let plan = plan(list, MIB, true, BOUNDARY).unwrap();
        assert_eq!(plan.pieces.len(), 10);
        let groups = plan.groups(3);
        let sizes: Vec<(usize, usize)> = groups.iter().map(|(at, g)| (*at, g.len())).collect();
        assert_eq!(sizes, [(0, 3), (3, 3), (6, 4)]);
        assert_eq!(plan.groups(1).len(), 1);
        assert_eq!(plan.groups(0).len(), 1, "at least one group");
        assert_eq!(plan.groups(64).len(), 10, "at most one per piece");
        assert!(Plan::default().groups(4).is_empty());
    }

    #[test]
    fn disjoint_fast_and_sorted() {
        assert_eq!(disjoint([(0, 10), (10, 10), (30, 5)].into_iter()), Ok(()));
        assert_eq!(disjoint([(30, 5), (0, 10), (10, 10)].into_iter()), Ok(()));
        assert_eq!(disjoint([(0, 10), (5, 10)].into_iter()), Err((0, 1)));
        assert_eq!(
            disjoint([(100, 10), (0, 10), (50, 60)].into_iter()),
            Err((0, 2))
        );
        // The same range twice, out of order.
        assert_eq!(
            disjoint([(40, 8), (0, 8), (40, 8)].into_iter()),
            Err((0, 2))
        );
        assert_eq!(disjoint(std::iter::empty()), Ok(()));
        // Ranges ending at the top of the address space do not wrap.
        assert_eq!(disjoint([(u64::MAX - 8, 8), (0, 8)].into_iter()), Ok(()));
    }
}
