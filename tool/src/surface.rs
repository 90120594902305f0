//! IOSurface (macOS): the handle and shape of a Block, a mach-port round trip within this
//! process, and a 2-D fp16 surface shaped for the Neural Engine.

use serde_json::json;
use unimem::{Block, MemError, Pin, SurfaceShape};

use crate::report::{Report, Section, Status, fmt_bytes};

pub(crate) fn exercise(report: &mut Report) {
    let mut s = Section::new("IOSurface");
    match round_trip(&mut s).and_then(|()| fp16_2d(&mut s)) {
        Ok(()) => {
            report.add(s);
            report.verdict(
                "iosurface",
                Status::Works,
                "mach-port round trip and 2-D fp16 surface verified",
            );
        }
        Err(Failure::Refused(err)) => {
            s.text("refused", err.to_string());
            report.add(s);
            report.verdict("iosurface", Status::Refused, err.to_string());
        }
        Err(Failure::Wrong(what)) => {
            s.text("failed", what.clone());
            report.add(s);
            report.verdict("iosurface", Status::Failed, what);
        }
    }
}

enum Failure {
    /// The machine said no: a typed error.
    Refused(MemError),
    /// It ran and gave a wrong answer: a defect.
    Wrong(String),
}

impl From<MemError> for Failure {
    fn from(err: MemError) -> Failure {
        Failure::Refused(err)
    }
}

fn round_trip(s: &mut Section) -> Result<(), Failure> {
    let mut block = Block::builder(1 << 20).pin(Pin::BestEffort).open()?;
    let shape = block.shape();
    s.row(
        "flat block",
        format!(
            "IOSurface {}, {}, {} bytes per row, {}",
            block.id(),
            fmt_bytes(block.size() as u64),
            shape.bytes_per_row,
            if block.is_pinned() {
                "wired"
            } else {
                "not wired"
            }
        ),
        json!({"id": block.id(), "size": block.size(), "bytes_per_row": shape.bytes_per_row,
               "pinned": block.is_pinned(), "handle": block.handle() as usize}),
    );
    for (i, word) in block.as_slice_mut::<u32>().iter_mut().enumerate() {
        *word = (i as u32) ^ 0xA5A5_5A5A;
    }
    let id = block.id();
    let port = block.mach_port()?;
    match Block::from_mach_port(&port, Pin::BestEffort) {
        Err(MemError::SurfaceInUse { .. }) => {}
        Ok(_) => return Err(Failure::Wrong("a second Block aliased a live one".into())),
        Err(err) => return Err(err.into()),
    }
    drop(block);
    let imported = Block::from_mach_port(&port, Pin::BestEffort)?;
    drop(port);
    let intact = imported
        .as_slice::<u32>()
        .iter()
        .enumerate()
        .all(|(i, &w)| w == (i as u32) ^ 0xA5A5_5A5A);
    s.text(
        "mach port",
        format!(
            "round trip after the owner dropped: id {}, data {}",
            imported.id(),
            if intact { "intact" } else { "CHANGED" }
        ),
    );
    if imported.id() != id || !intact {
        return Err(Failure::Wrong(
            "the surface came back different through its mach port".into(),
        ));
    }
    Ok(())
}

fn fp16_2d(s: &mut Section) -> Result<(), Failure> {
    let block = Block::open_fp16_2d(1000, 64, Pin::BestEffort)?;
    let shape = block.shape();
    s.text(
        "fp16 2-D",
        format!(
            "{} x {} 'L00h', {} bytes per row, {}",
            shape.width,
            shape.height,
            shape.bytes_per_row,
            fmt_bytes(block.size() as u64)
        ),
    );
    if shape.pixel_format != SurfaceShape::FP16 || shape.bytes_per_row % 64 != 0 {
        return Err(Failure::Wrong(format!("unexpected 2-D shape {shape:?}")));
    }
    Ok(())
}
