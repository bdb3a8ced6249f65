//! Runs the built `sextant` binary as a child process for the benchmarks that
//! measure the user's path: its wall time and its peak resident memory
//! (`wait4`'s `ru_maxrss`), which are the command's own.

use sextant::cli::Env;
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Makes the child `cmd` spawns die (SIGKILL) with the bench: a bench
/// killed by SIGKILL (or that panics past its `Drop`s) left its `sextant
/// serve` children running, holding their ports, databases and CPU.
/// Every child the bench spawns goes through here.
///
/// Linux's `PR_SET_PDEATHSIG` fires when the *thread* that forked the
/// child exits, not the process: every spawn site runs on the bench's
/// main thread (each subcommand runs on it from `main`, its worker
/// threads only send requests), which lives as long as the bench. A child
/// spawned from a worker thread would be killed when that thread ends.
pub(crate) fn dies_with_bench(cmd: &mut Command) -> &mut Command {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: runs in the child between fork and exec, and makes only
    // async-signal-safe calls (prctl, getppid), with no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The bench died before the signal was armed: the child was
            // already handed to another parent, and would outlive it.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    }
}

/// What one command took.
pub(crate) struct ChildRun {
    /// Wall time, in seconds.
    pub(crate) secs: f64,
    /// Peak resident memory, in MB.
    pub(crate) peak_mb: f64,
    /// CPU time (user and system, all its threads), in seconds: steadier
    /// than wall time on a loaded machine.
    pub(crate) cpu_s: f64,
    /// What it printed.
    pub(crate) stdout: String,
}

/// Runs `sextant --db DB ARGS…` (with the caller's plugin directories and
/// config) to completion; an exit status other than 0 is an error with its
/// standard error. `keep_stdout`: standard output is returned, else it
/// goes to /dev/null (for commands that print a lot).
pub(crate) fn run_child<I, S>(
    env: &Env,
    db: impl AsRef<OsStr>,
    args: I,
    keep_stdout: bool,
) -> anyhow::Result<ChildRun>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let exe = crate::sextant_exe()?;
    let work = tempfile::Builder::new().prefix("sextant-child").tempdir()?;
    let (out, err) = (work.path().join("stdout"), work.path().join("stderr"));
    let mut cmd = Command::new(&exe);
    dies_with_bench(&mut cmd);
    for d in &env.plugin_dirs {
        cmd.arg("--plugin-dir").arg(d);
    }
    if let Some(c) = &env.config.source {
        cmd.arg("--config").arg(c);
    }
    let args: Vec<PathBuf> = args
        .into_iter()
        .map(|a| PathBuf::from(a.as_ref()))
        .collect();
    cmd.arg("--db")
        .arg(db.as_ref())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(if keep_stdout {
            Stdio::from(std::fs::File::create(&out)?)
        } else {
            Stdio::null()
        })
        .stderr(std::fs::File::create(&err)?);
    let t = Instant::now();
    let child = cmd.spawn()?;
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which nothing else reaps (the
    // `Child` is dropped without waiting); the pointers are to locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = t.elapsed().as_secs_f64();
    drop(child);
    if reaped != pid {
        return Err(anyhow::anyhow!(
            "wait4: {}",
            std::io::Error::last_os_error()
        ));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(anyhow::anyhow!(
            "sextant {} failed (wait status {status}): {}",
            args.iter()
                .map(|a| a.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            std::fs::read_to_string(&err).unwrap_or_default()
        ));
    }
    Ok(ChildRun {
        secs,
        // ru_maxrss is in kilobytes on Linux.
        peak_mb: usage.ru_maxrss as f64 / 1024.0,
        cpu_s: cpu_seconds(&usage),
        stdout: if keep_stdout {
            std::fs::read_to_string(&out)?
        } else {
            String::new()
        },
    })
}

/// User and system time of a `rusage`, in seconds.
pub(crate) fn cpu_seconds(u: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// This process's CPU time so far (all its threads), in seconds.
pub(crate) fn own_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the local it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    cpu_seconds(&usage)
}

/// The median of `v` (0 for none).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Set in the helper process: the file it writes its child's pid to.
    const HELPER: &str = "SEXTANT_BENCH_DEATH_HELPER";

    /// Whether `pid` runs (a zombie, or no process, does not).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            // The state follows the command name's closing parenthesis.
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        })
    }

    /// A helper process spawns a child as the bench does, then is killed
    /// by SIGKILL: the child is gone within seconds (it outlived the
    /// helper, reparented, before `dies_with_bench`).
    #[test]
    fn a_child_dies_with_the_bench_when_it_is_killed() {
        if let Some(pid_file) = std::env::var_os(HELPER) {
            // The helper: its child sleeps ten minutes unless killed.
            let mut child = dies_with_bench(&mut Command::new("sleep"))
                .arg("600")
                .spawn()
                .expect("spawn sleep");
            std::fs::write(&pid_file, child.id().to_string()).expect("write the pid");
            // Killed before the child ends.
            let _ = child.wait();
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let mut helper = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "child::tests::a_child_dies_with_the_bench_when_it_is_killed",
                "--test-threads",
                "1",
            ])
            .env(HELPER, &pid_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the helper");
        let t = Instant::now();
        let pid: u32 = loop {
            if let Some(p) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the helper spawned no child"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(pid), "the child runs while the helper does");
        helper.kill().expect("SIGKILL the helper");
        helper.wait().expect("reap the helper");
        let t = Instant::now();
        while alive(pid) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let outlived = alive(pid);
        if outlived {
            // Not left behind by a failing test.
            // SAFETY: signals the pid the helper's child had, seconds ago.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        assert!(!outlived, "the child {pid} outlived the helper by 5 s");
    }
}
