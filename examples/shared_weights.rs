//! Shared weights: one server, two worker processes, one pinned copy of the weights.
//!
//! ```sh
//! cargo run --release --example shared_weights
//! ```
//!
//! 1. The server builds a [`Layout`] for a small model (an embedding table, also the output
//!    head, and four feed-forward layers with RMS norms, 28 MiB of `f32`), fills its weights, and
//!    [freezes](Layout::freeze_weights) them: from then on no process can change them, so
//!    every worker's `&[f32]` views of them are sound without any protocol.
//! 2. It starts two workers: this example's own binary again, with `UNIMEM_EXAMPLE_ROLE=worker`
//!    and one end of a Unix socket as standard input. Each gets a read-only
//!    [`Share`] of the weights' Block and the tensors' offsets (base addresses differ per
//!    process; offsets do not).
//! 3. Each worker imports the Block read-only, builds a Layout of its own around it
//!    ([`LayoutBuilder::weights_shared`](unimem::LayoutBuilder::weights_shared): the
//!    weights tape is read-only, its own scratch and history are new), decodes a few tokens
//!    reading every tensor by offset ([`Tape::read`](unimem::Tape::read)), and reports.
//! 4. While each worker waits, the server reads its `/proc/PID/status` (`VmRSS`,
//!    `RssShmem`) and `/proc/PID/smaps` (the resident size of its mapping of the weights),
//!    and prints what the worker actually added to the machine (its resident memory less the
//!    server's pages it maps) against what it would have used without sharing (its own copy
//!    of the weights on top). The server decodes the same tokens itself and checks the
//!    workers got them too. Both workers are always reaped.
//!
//! Linux only: sharing is a sealed memfd passed over the socket.

#[cfg(all(target_os = "linux", not(miri)))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var(linux::ROLE).is_ok_and(|role| role == "worker") {
        linux::worker()
    } else {
        linux::server()
    }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn main() {
    println!("shared_weights: sharing a Block between processes is Linux only in this version");
}

#[cfg(all(target_os = "linux", not(miri)))]
mod linux {
    use std::error::Error;
    use std::io::{Read, Write};
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::process::{Child, Command, Stdio};

    use unimem::{Block, Layout, Pin, Share};

    /// Set to `worker` in the workers' environment.
    pub(crate) const ROLE: &str = "UNIMEM_EXAMPLE_ROLE";

    const VOCAB: usize = 2048;
    const HIDDEN: usize = 512;
    const FFN: usize = 1536;
    const LAYERS: usize = 4;
    /// Tokens each worker decodes.
    const STEPS: usize = 6;
    /// The workers' first tokens: each decodes its own sequence.
    const PROMPTS: [usize; 2] = [17, 1234];
    const NAME: &str = "shared-weights";
    const MIB: f64 = (1 << 20) as f64;

    type Result<T> = std::result::Result<T, Box<dyn Error>>;

    /// Where each tensor lies in the weights Block: `(offset, floats)`, embedding first,
    /// then each layer's `w_in` (`HIDDEN x FFN`) and `w_out` (`FFN x HIDDEN`).
    fn shapes() -> Vec<usize> {
        let mut sizes = vec![VOCAB * HIDDEN];
        for _ in 0..LAYERS {
            sizes.push(HIDDEN * FFN);
            sizes.push(FFN * HIDDEN);
        }
        sizes
    }

    /// A deterministic weight in -0.05..0.05.
    fn weight(tensor: usize, i: usize) -> f32 {
        let mut x = (tensor as u64) << 40 ^ i as u64;
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        ((x % 10_000) as f32 / 10_000.0 - 0.5) / 10.0
    }

    /// Decodes `STEPS` tokens from `prompt`, reading the tensors at `offsets` of the
    /// (frozen) weights tape, with activations in scratch and one row per token in the
    /// history. The same code runs in the server and in the workers.
    fn decode(layout: &mut Layout, offsets: &[usize], prompt: usize) -> Result<Vec<usize>> {
        let mut tokens = vec![prompt];
        for _ in 0..STEPS {
            let token = *tokens.last().unwrap_or(&0);
            {
                let embedding = tensor(layout, offsets, 0, VOCAB * HIDDEN)?;
                let x = layout.scratch().try_take_slice::<f32>(HIDDEN)?;
                x.copy_from_slice(&embedding[token * HIDDEN..][..HIDDEN]);
                let h = layout.scratch().try_take_slice::<f32>(FFN)?;
                for layer in 0..LAYERS {
                    let w_in = tensor(layout, offsets, 1 + 2 * layer, HIDDEN * FFN)?;
                    let w_out = tensor(layout, offsets, 2 + 2 * layer, FFN * HIDDEN)?;
                    h.fill(0.0);
                    for (i, &xi) in x.iter().enumerate() {
                        for (hj, &w) in h.iter_mut().zip(&w_in[i * FFN..][..FFN]) {
                            *hj += xi * w;
                        }
                    }
                    x.fill(0.0);
                    for (j, &hj) in h.iter().enumerate() {
                        let hj = hj.max(0.0);
                        for (xi, &w) in x.iter_mut().zip(&w_out[j * HIDDEN..][..HIDDEN]) {
                            *xi += hj * w;
                        }
                    }
                    // RMS norm, so the values keep their scale layer after layer.
                    let rms = (x.iter().map(|v| v * v).sum::<f32>() / HIDDEN as f32).sqrt();
                    let scale = 1.0 / rms.max(1e-12);
                    x.iter_mut().for_each(|v| *v *= scale);
                }
                // Tied output: logits = embedding . x; the next token is the largest.
                let next = (0..VOCAB)
                    .map(|t| {
                        let row = &embedding[t * HIDDEN..][..HIDDEN];
                        (row.iter().zip(x.iter()).map(|(a, b)| a * b).sum::<f32>(), t)
                    })
                    .fold(
                        (f32::MIN, 0),
                        |best, cur| if cur.0 > best.0 { cur } else { best },
                    )
                    .1;
                layout
                    .history()
                    .try_take_slice::<f32>(HIDDEN)?
                    .copy_from_slice(x);
                tokens.push(next);
            }
            layout.clear_pass();
        }
        Ok(tokens)
    }

    /// Tensor `i` of the frozen weights: `len` floats at its offset.
    fn tensor<'a>(
        layout: &'a Layout,
        offsets: &[usize],
        i: usize,
        len: usize,
    ) -> Result<&'a [f32]> {
        let at = *offsets.get(i).ok_or("no such tensor")?;
        Ok(layout.weights().read::<f32>(at, len)?)
    }

    // -----------------------------------------------------------------------------------
    // Server

    pub(crate) fn server() -> Result<()> {
        let sizes = shapes();
        let bytes: usize = sizes.iter().sum::<usize>() * 4;
        let mut layout = Layout::builder(bytes, 64 << 10, 64 << 10)
            .name(NAME)
            .pin(Pin::BestEffort)
            .build()?;
        let mut offsets = Vec::new();
        for (t, &n) in sizes.iter().enumerate() {
            let tensor = layout.weights().try_take_slice::<f32>(n)?;
            for (i, w) in tensor.iter_mut().enumerate() {
                *w = weight(t, i);
            }
            offsets.push(layout.weights().offset_of(tensor.as_ptr()).unwrap_or(0));
        }
        layout.freeze_weights()?;
        let weights = layout.weights().block();
        println!(
            "server (pid {}): {:.1} MiB of weights in {} tensors, {}, frozen: {}",
            std::process::id(),
            weights.size() as f64 / MIB,
            sizes.len(),
            if weights.is_pinned() {
                "pinned"
            } else {
                "not pinned (raise `ulimit -l` to pin)"
            },
            weights.is_frozen(),
        );
        let share = weights.share()?;
        let own_copy = weights.size() as f64 / MIB;

        // Start both workers, then talk to each; `Workers` kills and reaps them on every
        // path out of here.
        let mut workers = Workers(Vec::new());
        for (index, &prompt) in PROMPTS.iter().enumerate() {
            let (here, there) = UnixStream::pair()?;
            let child = Command::new(std::env::current_exe()?)
                .env(ROLE, "worker")
                .stdin(Stdio::from(OwnedFd::from(there)))
                .spawn()?;
            workers.0.push((child, here));
            let (_, socket) = &workers.0[index];
            share.send(socket)?;
            let mut numbers = vec![index, prompt, offsets.len()];
            numbers.extend(&offsets);
            send_numbers(socket, &numbers)?;
        }
        let mut added_total = 0.0;
        for (index, (child, socket)) in workers.0.iter().enumerate() {
            let report = recv_line(socket)?;
            let pid = child.id();
            let status = Status::of(pid)?;
            let mapped = weights_resident(pid)?;
            let added = status.rss - mapped;
            added_total += added;
            let expected = decode(&mut layout, &offsets, PROMPTS[index])?;
            let same = report.contains(&format!("tokens {expected:?}"));
            println!("worker {} (pid {pid}): {report}", index + 1);
            println!(
                "  resident: VmRSS {:.1} MiB (RssShmem {:.1} MiB), of which the server's \
                 weights it maps {mapped:.1} MiB\n  added to the machine: {added:.1} MiB; \
                 without sharing it would use {:.1} MiB (its own {own_copy:.1} MiB copy of \
                 the weights on top)\n  tokens as the server decodes them: {}",
                status.rss,
                status.shmem,
                added + own_copy,
                if same { "same" } else { "DIFFERENT" }
            );
            if !same {
                return Err(format!("worker {} decoded other tokens", index + 1).into());
            }
        }
        for (_, socket) in &workers.0 {
            (&*socket).write_all(b"k")?;
        }
        workers.reap()?;
        println!(
            "two workers added {added_total:.1} MiB to the machine; each with its own copy of \
             the weights, they would have added {:.1} MiB",
            added_total + 2.0 * own_copy
        );
        Ok(())
    }

    /// The workers: killed (if still running) and reaped when dropped.
    struct Workers(Vec<(Child, UnixStream)>);

    impl Workers {
        /// Waits for each worker to exit; an error if one failed.
        fn reap(&mut self) -> Result<()> {
            for (mut child, socket) in self.0.drain(..) {
                drop(socket);
                let status = child.wait()?;
                if !status.success() {
                    return Err(format!("worker {} exited with {status}", child.id()).into());
                }
            }
            Ok(())
        }
    }

    impl Drop for Workers {
        fn drop(&mut self) {
            for (child, _) in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// `VmRSS` and `RssShmem` of process `pid`, in MiB.
    struct Status {
        rss: f64,
        shmem: f64,
    }

    impl Status {
        fn of(pid: u32) -> Result<Status> {
            let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            let field = |key: &str| kib(&text, key).map(|kb| kb / 1024.0);
            Ok(Status {
                rss: field("VmRSS:").ok_or("no VmRSS")?,
                shmem: field("RssShmem:").ok_or("no RssShmem")?,
            })
        }
    }

    /// The value of `key` (a `... kB` line) in a `/proc` file.
    fn kib(text: &str, key: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
    }

    /// MiB of the weights' memfd resident in process `pid`'s mappings of it (`Rss` of each
    /// `/memfd:shared-weights.weights` mapping in `/proc/PID/smaps`): the server's pages.
    fn weights_resident(pid: u32) -> Result<f64> {
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
        let name = format!("/memfd:{NAME}.weights");
        let mut total = 0.0;
        let mut inside = false;
        for line in smaps.lines() {
            // A mapping's header line starts with its address range; the others are fields.
            let header = line
                .split_whitespace()
                .next()
                .is_some_and(|range| range.contains('-') && !range.ends_with(':'));
            if header {
                inside = line.contains(&name);
            } else if inside {
                total += kib(line, "Rss:").unwrap_or(0.0);
            }
        }
        Ok(total / 1024.0)
    }

    // -----------------------------------------------------------------------------------
    // Worker

    pub(crate) fn worker() -> Result<()> {
        let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
        let share = Share::recv(&socket)?;
        let weights = Block::import_read_only(share, Pin::BestEffort)?;
        let [index, prompt, count] = recv_numbers(&socket, 3)?[..] else {
            return Err("short directory".into());
        };
        let offsets = recv_numbers(&socket, count)?;
        let frozen = weights.is_frozen();
        let mut layout = Layout::builder(0, 64 << 10, 64 << 10)
            .weights_shared(weights)
            .name(format!("{NAME}.worker{}", index + 1))
            .pin(Pin::BestEffort)
            .build()?;
        // The weights tape hands out nothing: it is the server's, frozen.
        let refused = layout.weights().try_take(64, 64).is_err();
        let tokens = decode(&mut layout, &offsets, prompt)?;
        layout.clear_talk();
        let stat = layout.stat();
        let line = format!(
            "frozen weights {frozen}, weight takes refused {refused}, weights used/total \
             {:.1}/{:.1} MiB, scratch peak {} KiB, tokens {tokens:?}",
            stat.weights_used as f64 / MIB,
            stat.weights_total as f64 / MIB,
            stat.scratch_peak >> 10,
        );
        send_line(&socket, &line)?;
        // Stay alive, the weights mapped, until the server has measured this process.
        let mut byte = [0u8; 1];
        (&socket).read_exact(&mut byte)?;
        drop(layout);
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // The socket: numbers as little-endian u64s, lines with a length first

    fn send_numbers(socket: &UnixStream, numbers: &[usize]) -> Result<()> {
        let bytes: Vec<u8> = numbers
            .iter()
            .flat_map(|&n| (n as u64).to_le_bytes())
            .collect();
        (&*socket).write_all(&bytes)?;
        Ok(())
    }

    fn recv_numbers(socket: &UnixStream, n: usize) -> Result<Vec<usize>> {
        let mut bytes = vec![0u8; 8 * n];
        (&*socket).read_exact(&mut bytes)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|b| {
                let mut word = [0u8; 8];
                word.copy_from_slice(b);
                u64::from_le_bytes(word) as usize
            })
            .collect())
    }

    fn send_line(socket: &UnixStream, line: &str) -> Result<()> {
        send_numbers(socket, &[line.len()])?;
        (&*socket).write_all(line.as_bytes())?;
        Ok(())
    }

    fn recv_line(socket: &UnixStream) -> Result<String> {
        let len = recv_numbers(socket, 1)?[0];
        let mut bytes = vec![0u8; len];
        (&*socket).read_exact(&mut bytes)?;
        Ok(String::from_utf8(bytes)?)
    }
}
