//! CUDA: the driver, its devices and their attributes, and a live round trip through a
//! registered Block (GPU writes, CPU reads; CPU writes, GPU reads), with timings.

use std::time::Instant;

use serde_json::{Map, Value, json};
use unimem::cuda::{Attribute, CudaBlock, Driver};
use unimem::{Block, MemError, Pin};

use crate::report::{Report, Section, Status, fmt_bytes};

pub(crate) fn exercise(report: &mut Report, size: usize) {
    let mut s = Section::new("CUDA");
    let driver = match Driver::load() {
        Ok(driver) => driver,
        Err(err) => {
            s.text("driver", format!("no CUDA driver: {err}"));
            report.add(s);
            report.verdict("cuda", Status::Refused, format!("no CUDA driver: {err}"));
            return;
        }
    };
    match driver.version() {
        Ok((major, minor)) => s.text("driver", format!("libcuda.so.1, CUDA {major}.{minor}")),
        Err(err) => s.text("driver", format!("version unknown: {err}")),
    }
    let devices = match driver.devices() {
        Ok(devices) if !devices.is_empty() => devices,
        Ok(_) => return refused(report, s, "the driver sees no CUDA device".into()),
        Err(err) => return refused(report, s, err.to_string()),
    };
    for device in &devices {
        let key = format!("device {}", device.ordinal());
        let name = device.name().unwrap_or_else(|err| format!("(name: {err})"));
        let memory = device
            .total_memory()
            .map_or_else(|err| format!("(memory: {err})"), fmt_bytes);
        let compute = device.compute_capability().map_or_else(
            |err| format!("(compute: {err})"),
            |(a, b)| format!("{a}.{b}"),
        );
        s.text(
            key.clone(),
            format!("{name}, {memory}, compute capability {compute}"),
        );
        let mut text = Vec::new();
        let mut values = Map::new();
        for attribute in Attribute::ALL {
            let value = device.attribute(attribute).ok();
            text.push(format!(
                "{attribute} {}",
                value.map_or("?".into(), |v| v.to_string())
            ));
            values.insert(attribute.name().to_lowercase(), json!(value));
        }
        s.row(
            format!("{key} attributes"),
            text.join(", "),
            Value::Object(values),
        );
    }

    match round_trip(&driver, size, &mut s) {
        Ok(detail) => {
            report.add(s);
            report.verdict("cuda", Status::Works, detail);
        }
        Err(Trip::Refused(err)) => refused(report, s, err.to_string()),
        Err(Trip::Wrong(detail)) => {
            report.add(s);
            report.verdict("cuda", Status::Failed, detail);
        }
    }
}

/// Why the round trip stopped.
enum Trip {
    /// The driver or the OS refused something.
    Refused(MemError),
    /// Bytes came back wrong: a defect.
    Wrong(String),
}

impl From<MemError> for Trip {
    fn from(err: MemError) -> Trip {
        Trip::Refused(err)
    }
}

/// Registers a Block with device 0; the GPU fills it and the CPU checks; the CPU writes it
/// and the GPU copies it out, and the copy is checked.
fn round_trip(driver: &Driver, size: usize, s: &mut Section) -> Result<String, Trip> {
    let device = driver.device(0)?;
    let name = device.name()?;
    let mut block = Block::builder(size)
        .pin(Pin::BestEffort)
        .name("unimem-cuda")
        .open()?;
    let bytes = block.size() as u64;
    let label = fmt_bytes(bytes);

    // Hold the primary context for the whole trip, so that the timings below are the
    // registration's own: the first retain in a process creates the context (about 0.1 s),
    // and the last release destroys it.
    let start = Instant::now();
    let context = device.context()?;
    s.time("primary context (retain)", start.elapsed());

    let start = Instant::now();
    let registered = block.register_cuda(driver, 0)?;
    s.time(format!("register {label}"), start.elapsed());
    s.row(
        "device pointer",
        format!(
            "{:#x} (host address {:p})",
            registered.device_ptr(),
            block.address()
        ),
        json!(registered.device_ptr()),
    );

    // GPU writes, CPU reads.
    let word = 0xC0DE_CAFE_u32;
    let start = Instant::now();
    // SAFETY: the whole registered Block through its device pointer; no view of its bytes
    // is alive until the fill has completed (the call waits for it).
    unsafe {
        registered
            .context()
            .memset_d32(registered.device_ptr(), word, block.size() / 4)?;
    }
    s.rate("GPU write (memset into the Block)", bytes, start.elapsed());
    let wrong = block
        .as_slice::<u32>()
        .iter()
        .filter(|&&w| w != word)
        .count();
    if wrong != 0 {
        return Err(Trip::Wrong(format!(
            "{wrong} words written by the GPU read back wrong on the CPU"
        )));
    }
    let start = Instant::now();
    drop(registered);
    s.time("unregister", start.elapsed());

    // CPU writes, GPU reads.
    for (i, w) in block.as_slice_mut::<u64>().iter_mut().enumerate() {
        *w = pattern(i);
    }
    let registered = block.register_cuda(driver, 0)?;
    let (rate_time, back) = gpu_copy_out(&registered)?;
    s.rate("GPU read (copy from the Block)", bytes, rate_time);
    let wrong = back
        .chunks_exact(8)
        .enumerate()
        .filter(|&(i, w)| u64::from_ne_bytes(w.try_into().unwrap_or_default()) != pattern(i))
        .count();
    drop(registered);
    if wrong != 0 {
        return Err(Trip::Wrong(format!(
            "{wrong} words written by the CPU read back wrong through the GPU"
        )));
    }
    drop(context);
    Ok(format!(
        "{label} registered with device 0 ({name}): GPU wrote, CPU read; CPU wrote, GPU read"
    ))
}

/// Copies the whole registered Block into device memory (timed) and back to a separate
/// host buffer.
fn gpu_copy_out(registered: &CudaBlock<'_>) -> Result<(std::time::Duration, Vec<u8>), MemError> {
    let context = registered.context();
    let len = registered.size();
    let scratch = context.alloc(len)?;
    let mut back = vec![0u8; len];
    let start = Instant::now();
    // SAFETY: both ranges are `len` bytes of memory this process owns; the Block is only
    // read (the registration borrows it shared), the scratch memory is ours.
    unsafe { context.copy(scratch.device_ptr(), registered.device_ptr(), len)? };
    let elapsed = start.elapsed();
    // SAFETY: `back` is `len` bytes, borrowed mutably for the call.
    unsafe { context.copy_to_host(back.as_mut_ptr(), scratch.device_ptr(), len)? };
    Ok((elapsed, back))
}

fn refused(report: &mut Report, mut s: Section, why: String) {
    s.text("round trip", format!("refused: {why}"));
    report.add(s);
    report.verdict("cuda", Status::Refused, why);
}

/// A word that differs at every index, so a misplaced page is caught.
fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5
}
