//! `unimem`: probe this machine and exercise every capability unimem has here, printing a
//! report that ends with one verdict per capability.

mod block;
mod grid;
mod layout;
mod machine;
mod report;
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut report = report::Report::default();
    machine::probe(&mut report);
    block::exercise(&mut report, args.block_mib.saturating_mul(1 << 20));
    tape::exercise(&mut report, args.block_mib.saturating_mul(1 << 20));
    grid::exercise(&mut report);
    layout::exercise(&mut report, args.block_mib.saturating_mul(1 << 20));
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
