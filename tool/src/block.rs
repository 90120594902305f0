//! Block: open a pinned buffer, write it, verify it, drop it, with timings.

use std::time::Instant;

use unimem::{Block, Limits, MemError, Pin};

use crate::report::{Report, Section, Status, fmt_bytes};

pub(crate) fn exercise(report: &mut Report, size: usize) {
    let mut s = Section::new("Block");
    let locked_before = Limits::read().locked;

    let start = Instant::now();
    let opened = Block::builder(size).name("unimem-report").open();
    let open_time = start.elapsed();
    let (mut block, refusal) = match opened {
        Ok(block) => (block, None),
        Err(err @ (MemError::LockRefused { .. } | MemError::WireRefused { .. })) => {
            s.text("pinned open", format!("refused: {err}"));
            let start = Instant::now();
            match Block::builder(size).pin(Pin::BestEffort).open() {
                Ok(block) => {
                    s.time("open unpinned", start.elapsed());
                    (block, Some(err))
                }
                Err(again) => return refused(report, s, again),
            }
        }
        Err(err) => return refused(report, s, err),
    };
    if refusal.is_none() {
        s.time(format!("open {} pinned", fmt_bytes(size as u64)), open_time);
    }
    s.text(
        "block",
        format!(
            "id {}, {}, {}",
            block.id(),
            block.backend(),
            if block.is_pinned() {
                "pinned"
            } else {
                "not pinned"
            }
        ),
    );
    s.row(
        "address",
        format!("{:p}", block.address()),
        serde_json::json!(block.address() as usize),
    );
    if let (Some(before), Some(now)) = (locked_before, Limits::read().locked) {
        s.bytes("VmLck grew by", Some(now.saturating_sub(before)));
    }

    let bytes = block.size() as u64;
    let start = Instant::now();
    for (i, word) in block.as_slice_mut::<u64>().iter_mut().enumerate() {
        *word = pattern(i);
    }
    s.rate("write", bytes, start.elapsed());
    let start = Instant::now();
    let wrong = block
        .as_slice::<u64>()
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w != pattern(i))
        .count();
    s.rate("verify", bytes, start.elapsed());
    let aligned = block.address() as usize % unimem::page_size() == 0;
    let pinned = block.is_pinned();
    let start = Instant::now();
    drop(block);
    s.time("drop", start.elapsed());
    report.add(s);

    let size = fmt_bytes(bytes);
    if wrong != 0 || !aligned {
        report.verdict(
            "block",
            Status::Failed,
            format!("{wrong} words read back wrong; page aligned: {aligned}"),
        );
    } else if let Some(err) = refusal {
        report.verdict(
            "block",
            Status::Refused,
            format!("pinning refused ({err}); unpinned {size} works"),
        );
    } else {
        let how = if pinned { "pinned" } else { "unpinned" };
        report.verdict(
            "block",
            Status::Works,
            format!("{size} {how}, written and verified"),
        );
    }
}

fn refused(report: &mut Report, mut s: Section, err: MemError) {
    s.text("open", format!("refused: {err}"));
    report.add(s);
    report.verdict("block", Status::Refused, err.to_string());
}

/// A word that differs at every index, so a misplaced page is caught.
fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5A5A
}
