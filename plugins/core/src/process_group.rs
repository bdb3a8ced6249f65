//! Runs one program in a process group of its own, with a deadline, an
//! abort signal and a bound on what it may write.
//!
//! The program is started as the leader of a new process group, so that
//! everything it starts (a shell's children, a background `&`) can be killed
//! at once with `killpg`: on timeout, on abort, when stdout passes its
//! bound, and when the program exits leaving others running. Waiting for the
//! output pipes is bounded too: a process that left the group (`setsid`)
//! while holding a pipe cannot hold the action past a short grace period.
//! A guard process in the group (`orphan_guard.rs`) kills it if the host
//! dies, or this thread ends, while the program still runs.
//!
//! stdout is kept up to a byte limit; beyond it the process group is killed
//! and the rest drained without being stored. stderr is drained to its end,
//! keeping only its last [`STDERR_KEPT`] bytes (all a failure message shows).

use crate::orphan_guard::OrphanGuard;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};
use sextant_plugin_api::prelude::AbortSignal;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much of the end of stderr is kept.
pub const STDERR_KEPT: usize = 64 << 10;

/// How long the output pipes may stay open once the program has exited, before
/// what it left running in its group is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// How long to wait for the pipes to close once the group was killed; only a
/// process that left the group can still hold them then.
pub const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How often the leader, the deadline and the abort signal are polled.
const POLL: Duration = Duration::from_millis(5);

/// Why the program stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself (its group's leftovers were then killed).
    Exited(ExitStatus),
    /// It ran past its deadline; its group was killed.
    TimedOut,
    /// The abort signal was raised; its group was killed.
    Aborted,
    /// It wrote more than the stdout limit; its group was killed.
    OutputTooLarge,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    pub ending: Ending,
    /// stdout, at most the limit given to [`run`] (empty when discarded).
    pub stdout: Vec<u8>,
    /// The end of stderr, at most [`STDERR_KEPT`] bytes.
    pub stderr_tail: Vec<u8>,
    /// Some process outside the group still held an output pipe after the
    /// grace period: what was read so far is all there is.
    pub pipes_left_open: bool,
}

/// Spawns `cmd` (stdin closed, stderr captured; stdout captured up to
/// `max_stdout` bytes, or discarded when `None`) as the leader of a new
/// process group and waits for it within `timeout` and `abort`.
pub fn run(
    cmd: &mut Command,
    timeout: Duration,
    max_stdout: Option<usize>,
    abort: &AbortSignal,
) -> io::Result<Finished> {
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(if max_stdout.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
    // The `sextant` host runs with transparent huge pages off (its
    // allocator's arenas: host/src/main.rs), which a child inherits through
    // fork and exec: the operator's program gets the system's default back.
    // SAFETY: prctl is async-signal-safe; nothing is allocated or shared.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
            Ok(())
        })
    };
    let mut child = cmd.spawn()?;
    // The leader's pid is the group's id. It stays reserved until the leader
    // is reaped, which happens only after the last kill below.
    let group = Pid::from_child(&child);
    // Kills the group if this process dies (or this thread ends) first; it
    // is a member, killed with the group below, and reaped when dropped.
    let guard = match OrphanGuard::start(group) {
        Ok(g) => g,
        Err(e) => {
            kill_group(group);
            let _ = child.wait();
            return Err(e);
        }
    };
    let overflow = Arc::new(AtomicBool::new(false));
    let out = child
        .stdout
        .take()
        .zip(max_stdout)
        .map(|(r, max)| read_bounded(r, max, Arc::clone(&overflow)));
    let err = child.stderr.take().map(read_tail);
    let started = Instant::now();
    let deadline = started.checked_add(timeout);

    let ending = loop {
        if leader_exited(group)? {
            // Give the pipes a moment to deliver what is still buffered: they
            // close at once unless something the program left behind holds
            // them.
            wait_finished(&[&out, &err], Instant::now() + EXIT_GRACE);
            break None;
        }
        if overflow.load(Ordering::Relaxed) {
            break Some(Ending::OutputTooLarge);
        }
        if abort.is_raised() {
            break Some(Ending::Aborted);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break Some(Ending::TimedOut);
        }
        let left = deadline.map_or(POLL, |d| d - now);
        abort.sleep(POLL.min(left));
    };
    // Whatever still runs in the group goes: the whole group on a timeout,
    // an abort or an overflow; the leftovers of a program that exited.
    kill_group(group);
    // Reaped before the leader: the group's id stays reserved until then.
    drop(guard);
    let status = child.wait()?;
    let pipes_closed = wait_finished(&[&out, &err], Instant::now() + PIPE_GRACE);
    let stdout = out.and_then(finished_value).unwrap_or_default();
    let stderr_tail = err.and_then(finished_value).unwrap_or_default();
    let ending = match ending {
        Some(e) => e,
        // It wrote too much just before exiting: the output is still cut.
        None if overflow.load(Ordering::Relaxed) => Ending::OutputTooLarge,
        None => Ending::Exited(status),
    };
    Ok(Finished {
        ending,
        stdout,
        stderr_tail,
        pipes_left_open: !pipes_closed,
    })
}

/// Whether the group's leader has exited, without reaping it (so that its
/// pid, the group's id, cannot be reused before the group is killed).
fn leader_exited(group: Pid) -> io::Result<bool> {
    let exited = waitid(
        WaitId::Pid(group),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
    )?;
    Ok(exited.is_some())
}

fn kill_group(group: Pid) {
    // ESRCH (nothing left in the group) is the usual answer once the
    // program exited; nothing else can fail for a group we created.
    let _ = kill_process_group(group, Signal::KILL);
}

/// Waits until every reader has finished or `until` passes; true when all
/// finished.
fn wait_finished<T>(readers: &[&Option<JoinHandle<T>>], until: Instant) -> bool {
    loop {
        if readers
            .iter()
            .all(|r| r.as_ref().is_none_or(|h| h.is_finished()))
        {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep(POLL.min(until - now));
    }
}

/// The reader's result if it finished; an unfinished reader is left to end
/// by itself when the pipe closes.
fn finished_value(h: JoinHandle<Vec<u8>>) -> Option<Vec<u8>> {
    if h.is_finished() { h.join().ok() } else { None }
}

/// Keeps the first `max` bytes; past them raises `overflow` and drains the
/// rest without keeping it, so that the writer never blocks on a full pipe.
fn read_bounded(
    mut r: impl Read + Send + 'static,
    max: usize,
    overflow: Arc<AtomicBool>,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let room = max - kept.len();
            if n > room {
                kept.extend_from_slice(&chunk[..room]);
                overflow.store(true, Ordering::Relaxed);
            } else {
                kept.extend_from_slice(&chunk[..n]);
            }
        }
        kept
    })
}

/// Drains to the end, keeping the last [`STDERR_KEPT`] bytes.
fn read_tail(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            kept.extend_from_slice(&chunk[..n]);
            if kept.len() > 2 * STDERR_KEPT {
                kept.drain(..kept.len() - STDERR_KEPT);
            }
        }
        if kept.len() > STDERR_KEPT {
            kept.drain(..kept.len() - STDERR_KEPT);
        }
        kept
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    fn alive(pid: i32) -> bool {
        // A zombie counts as gone: read its state from /proc.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z'))
    }

    #[test]
    fn a_child_gets_transparent_huge_pages_back_when_its_host_has_them_off() {
        // As `sextant` runs (host/src/main.rs). The flag is this test
        // process's; no other test depends on it.
        // SAFETY: a system call on this process only, with no pointers.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        let f = run(
            &mut sh("grep THP_enabled /proc/self/status"),
            Duration::from_secs(10),
            Some(1000),
            &AbortSignal::default(),
        )
        .expect("runs");
        let status = String::from_utf8_lossy(&f.stdout).to_string();
        assert_eq!(
            status.split_whitespace().collect::<Vec<_>>(),
            ["THP_enabled:", "1"]
        );
    }

    #[test]
    fn a_timeout_kills_the_grandchildren_too() {
        let dir = scratch_dir("timeout");
        let pidfile = dir.join("pid");
        let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
        let t = Instant::now();
        let f = run(
            &mut sh(&script),
            Duration::from_millis(300),
            Some(1000),
            &AbortSignal::default(),
        )
        .expect("runs");
        assert_eq!(f.ending, Ending::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("a pid");
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(pid), "sleep 1000 survived");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stdout_past_its_bound_kills_the_group_and_keeps_exactly_the_bound() {
        let f = run(
            &mut Command::new("yes"),
            Duration::from_secs(20),
            Some(4096),
            &AbortSignal::default(),
        )
        .expect("runs");
        assert_eq!(f.ending, Ending::OutputTooLarge);
        assert_eq!(f.stdout.len(), 4096);
    }

    #[test]
    fn stderr_keeps_only_its_tail() {
        let f = run(
            &mut sh("head -c 300000 /dev/zero | tr '\\0' a >&2; echo END >&2"),
            Duration::from_secs(20),
            None,
            &AbortSignal::default(),
        )
        .expect("runs");
        assert!(matches!(f.ending, Ending::Exited(s) if s.success()));
        assert_eq!(f.stderr_tail.len(), STDERR_KEPT);
        assert!(f.stderr_tail.ends_with(b"aEND\n"));
    }

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sextant-core-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }
}
