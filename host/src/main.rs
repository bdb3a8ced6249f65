//! The `sextant` command line.

/// mimalloc, not the system allocator: after a large solution's parsed
/// values are freed, glibc's fragmented free lists made SQLite's page-cache
/// allocations while storing its plan about 30% slower. Plugins keep their
/// own allocator; what crosses the boundary carries its own deallocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sextant::cli::main()
}
