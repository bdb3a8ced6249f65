//! Runs the built `sextant` binary as a child process for the benchmarks that
//! measure the user's path: its wall time and its peak resident memory
//! (`wait4`'s `ru_maxrss`), which are the command's own.

use sextant::cli::Env;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

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
    let mut cmd = std::process::Command::new(&exe);
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
