//! What is generated from the command line's own definition: shell
//! completion scripts (`sextant completions SHELL`, by clap_complete) and
//! the man page (`sextant man`, roff by clap_mangen). `scripts/install`
//! writes both into the installed tree.

use super::{Cli, CliResult};
use clap::CommandFactory;
use std::io::Write;
use std::process::ExitCode;

/// Prints the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sextant", &mut out);
    print(&out)
}

/// Prints the man page, `sextant(1)` in roff, to stdout.
pub fn man() -> CliResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    print(&out)
}

/// Writes to stdout; a reader that closed the pipe early (`| head`) is no
/// failure.
fn print(bytes: &[u8]) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
