//! A progress bar on stderr that follows a [`unimem::Progress`] from its own thread: for
//! the tool and the benchmark, while multi-GiB Blocks open and register.
//!
//! Drawn only where it helps: when stderr is a terminal, or when asked (`--progress`),
//! and only for work of at least [`MIN_BYTES`]. It redraws one line five times a second
//! (`\r`), and ends it with a newline when the work is done.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use unimem::Progress;

/// Work smaller than this gets no bar.
pub(crate) const MIN_BYTES: u64 = 1 << 30;

/// A bar being drawn; [`Bar::finish`] (or drop) stops it.
pub(crate) struct Bar {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Bar {
    /// Starts drawing `progress` under `label`, if `asked` or stderr is a terminal, and the
    /// work is `bytes >= MIN_BYTES`; otherwise draws nothing.
    pub(crate) fn start(progress: &Arc<Progress>, label: &str, bytes: u64, asked: bool) -> Bar {
        let stop = Arc::new(AtomicBool::new(false));
        let wanted = (asked || std::io::stderr().is_terminal()) && bytes >= MIN_BYTES;
        let handle = wanted.then(|| {
            let (progress, stop, label) =
                (Arc::clone(progress), Arc::clone(&stop), label.to_owned());
            std::thread::spawn(move || draw(&progress, &stop, &label))
        });
        Bar { stop, handle }
    }

    /// Stops drawing, after one last line.
    pub(crate) fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.end();
    }
}

fn draw(progress: &Progress, stop: &AtomicBool, label: &str) {
    let start = Instant::now();
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    loop {
        let finished = stop.load(Ordering::Acquire);
        let (done, total) = (progress.done(), progress.total());
        let fraction = progress.fraction();
        let width = 30;
        let filled = ((fraction * width as f64) as usize).min(width);
        let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9) / 1e9;
        let line = format!(
            "\r{label} [{}{}] {:3.0}% {:.1}/{:.1} GiB {:.1} GB/s ",
            "#".repeat(filled),
            ".".repeat(width - filled),
            100.0 * fraction,
            gib(done),
            gib(total),
            rate
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        if finished {
            let _ = err.write_all(b"\n");
            return;
        }
        drop(err);
        std::thread::sleep(Duration::from_millis(200));
    }
}
