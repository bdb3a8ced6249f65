//! The `sextant` command line.

fn main() -> std::process::ExitCode {
    sextant::cli::main()
}
