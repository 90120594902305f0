//! [`Stat`]: what a [`Layout`](crate::Layout)'s three tapes hold, read from counters the
//! tapes keep anyway.

use std::fmt;
use std::num::NonZeroUsize;

/// A snapshot of a [`Layout`](crate::Layout): bytes used, at peak and in total for each of
/// its three tapes. Made by [`Layout::stat`](crate::Layout::stat).
///
/// - `*_used`: bytes taken now, alignment padding included (for a paged history: cells in
///   use, held by Cells, detached ids or GridLane caches, times the cell size);
/// - `*_peak`: the most bytes ever in use at once, across clears (monotone);
/// - `*_total`: every byte the tape can hand out (for a paged history: all cells).
///
/// `used <= peak <= total` for each tape. Taking a Stat reads counters the tapes keep for
/// their own work (the Tapes' heads and peaks, the Grid's cell counts): nothing on any
/// take path pays for it.
///
/// `Display` prints a small aligned table in MiB:
///
/// ```text
/// tape         used MiB    peak MiB   total MiB
/// weights         12.00       12.00       16.00
/// scratch          0.50        1.50        4.00
/// history          2.00        2.00       64.00
/// all             14.50       15.50       84.00
/// ```
///
/// The `all` row adds up the three; its peak is the sum of the peaks, which need not
/// have happened at the same time.
///
/// # Examples
///
/// ```
/// use unimem::{Layout, Pin};
///
/// let mut layout = Layout::builder(1 << 20, 1 << 20, 1 << 20).pin(Pin::BestEffort).build()?;
/// layout.scratch().take(4096, 64).unwrap();
/// layout.clear_pass();
/// let stat = layout.stat();
/// assert_eq!((stat.scratch_used, stat.scratch_peak), (0, 4096));
/// assert_eq!(stat.weights_total, 1 << 20);
/// assert!(stat.to_string().contains("MiB"));
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stat {
    /// Bytes taken from the weights tape.
    pub weights_used: usize,
    /// The most bytes ever taken from the weights tape.
    pub weights_peak: usize,
    /// Size of the weights tape.
    pub weights_total: usize,
    /// Bytes taken from scratch since the last clear.
    pub scratch_used: usize,
    /// The most bytes scratch ever held at once: what one token needs.
    pub scratch_peak: usize,
    /// Size of the scratch tape.
    pub scratch_total: usize,
    /// Bytes of history in use.
    pub history_used: usize,
    /// The most bytes of history ever in use at once.
    pub history_peak: usize,
    /// Size of the history.
    pub history_total: usize,
    /// Bytes of one history cell when the history is a Grid; 0 when it is a Tape.
    pub history_cell: usize,
}

impl Stat {
    /// Bytes used in all three tapes.
    pub fn used(&self) -> usize {
        self.weights_used
            .saturating_add(self.scratch_used)
            .saturating_add(self.history_used)
    }

    /// Bytes of all three tapes.
    pub fn total(&self) -> usize {
        self.weights_total
            .saturating_add(self.scratch_total)
            .saturating_add(self.history_total)
    }

    /// The sum of the three peaks: an upper bound on the most bytes ever used at once.
    pub fn peak(&self) -> usize {
        self.weights_peak
            .saturating_add(self.scratch_peak)
            .saturating_add(self.history_peak)
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>12} {:>11} {:>11}",
            "tape", "used MiB", "peak MiB", "total MiB"
        )?;
        let rows = [
            (
                "weights",
                self.weights_used,
                self.weights_peak,
                self.weights_total,
            ),
            (
                "scratch",
                self.scratch_used,
                self.scratch_peak,
                self.scratch_total,
            ),
            (
                "history",
                self.history_used,
                self.history_peak,
                self.history_total,
            ),
            ("all", self.used(), self.peak(), self.total()),
        ];
        for (i, (name, used, peak, total)) in rows.into_iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "{name:<8} {:>12.2} {:>11.2} {:>11.2}",
                mib(used),
                mib(peak),
                mib(total)
            )?;
        }
        if let Some(cell) = NonZeroUsize::new(self.history_cell) {
            write!(
                f,
                "\nhistory cells: {} in use, {} at peak, {} in all, {:.2} MiB each",
                self.history_used / cell,
                self.history_peak / cell,
                self.history_total / cell,
                mib(self.history_cell)
            )?;
        }
        Ok(())
    }
}

/// Bytes in MiB (2^20 bytes).
fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_an_aligned_table_in_mib() {
        let stat = Stat {
            weights_used: 12 << 20,
            weights_peak: 12 << 20,
            weights_total: 16 << 20,
            scratch_used: 512 << 10,
            scratch_peak: 1536 << 10,
            scratch_total: 4 << 20,
            history_used: 2 << 20,
            history_peak: 2 << 20,
            history_total: 64 << 20,
            history_cell: 0,
        };
        let text = stat.to_string();
        let expected = "\
tape         used MiB    peak MiB   total MiB
weights         12.00       12.00       16.00
scratch          0.50        1.50        4.00
history          2.00        2.00       64.00
all             14.50       15.50       84.00";
        assert_eq!(text, expected);
        assert!(!text.contains("MB"));
        let widths: Vec<usize> = text.lines().map(str::len).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{widths:?}");
    }

    #[test]
    fn display_counts_cells() {
        let stat = Stat {
            history_used: 3 << 20,
            history_peak: 5 << 20,
            history_total: 64 << 20,
            history_cell: 1 << 20,
            ..Stat::default()
        };
        assert!(
            stat.to_string()
                .ends_with("history cells: 3 in use, 5 at peak, 64 in all, 1.00 MiB each"),
            "{stat}"
        );
    }

    #[test]
    fn sums_saturate() {
        let stat = Stat {
            weights_total: usize::MAX,
            scratch_total: 1,
            ..Stat::default()
        };
        assert_eq!(stat.total(), usize::MAX);
        assert_eq!(stat.used(), 0);
    }
}
