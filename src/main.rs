//! The `kefu` binary: parse the command line and hand over to [`kefu::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    kefu::cli::run(kefu::cli::Cli::parse())
}
