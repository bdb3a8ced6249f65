//! The `sextant` command line.

/// mimalloc, not the system allocator: after a large solution's parsed
/// values are freed, glibc's fragmented free lists made SQLite's page-cache
/// allocations while storing its plan about 30% slower. Plugins keep their
/// own allocator; what crosses the boundary carries its own deallocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (libmimalloc-sys
/// names no constant for it); the test below checks its default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Freed memory goes back to the system after 10 ms, as in mimalloc 2,
    // not after mimalloc 3's 1 s: planning 100,000 actions frees tens of MB
    // that SQLite (on the system allocator) would otherwise allocate anew;
    // the peak of `bench planners` at 100,000 actions drops by about 40 MB.
    // SAFETY: sets an option; any value is valid for mimalloc.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    // No transparent huge pages in this process. mimalloc asks for them on
    // its arenas (MADV_HUGEPAGE, before `main`), and memory it purged came
    // back, on its next touch, as a 2 MiB page zeroed whole: the applier,
    // which frees and allocates a little for every action, spent up to a
    // third of its CPU zeroing pages, and its resident memory doubled
    // (docs/fleet.md, "Session 12"). The kernel checks the flag at each
    // fault, so it holds for the arenas mimalloc already advised. Processes
    // Sextant starts inherit it; the core plugin's `command` clears it in
    // its children, which are the operator's programs, not Sextant.
    // SAFETY: a system call on this process only, with no pointers.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    sextant::cli::main()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc 3's default purge delay is 1,000 ms, and no option near
        // it in the enumeration has that default.
        // SAFETY: reads an option.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 1000);
    }
}
