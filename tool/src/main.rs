//! `unimem`: probe this machine and exercise every capability unimem has here, printing a
//! report that ends with one verdict per capability.

mod block;
#[cfg(feature = "cuda")]
mod cuda;
mod grid;
mod layout;
mod machine;
mod pages;
mod progress_bar;
mod report;
mod share;
#[cfg(target_os = "macos")]
mod surface;
mod tape;

use std::process::ExitCode;

use clap::Parser;

/// Probe this machine and exercise every capability unimem has on it.
#[derive(Debug, Parser)]
#[command(name = "unimem", version, about)]
struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Size of the Block to open, write and verify (and of the Tape to fill), in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    block_mib: usize,
    /// Size of the Block shared with a second process, in MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    share_mib: usize,
    /// Place the Block of the Pages section on this NUMA node.
    #[arg(long, value_name = "NODE")]
    numa_node: Option<u32>,
    /// Draw progress bars on stderr for multi-GiB work even when it is not a terminal.
    #[arg(long)]
    progress: bool,
}

fn main() -> ExitCode {
    // The share section re-executes this tool as its peer process.
    if share::is_peer() {
        return share::peer();
    }
    let args = Args::parse();
    let mut report = report::Report::default();
    machine::probe(&mut report);
    block::exercise(&mut report, args.block_mib.saturating_mul(1 << 20));
    pages::exercise(
        &mut report,
        args.block_mib.saturating_mul(1 << 20),
        args.numa_node,
        args.progress,
    );
    tape::exercise(&mut report, args.block_mib.saturating_mul(1 << 20));
    grid::exercise(&mut report);
    layout::exercise(&mut report, args.block_mib.saturating_mul(1 << 20));
    share::exercise(&mut report, args.share_mib.saturating_mul(1 << 20));
    #[cfg(feature = "cuda")]
    cuda::exercise(&mut report, args.block_mib.saturating_mul(1 << 20));
    #[cfg(target_os = "macos")]
    surface::exercise(&mut report);
    if args.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
