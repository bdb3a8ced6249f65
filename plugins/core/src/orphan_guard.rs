//! A guard that kills a command's process group when nobody waits for it
//! any more: when the host process dies (`kill -9` of `sextant serve`, a
//! crash), or when the thread waiting for it unwinds.
//!
//! The command runs in a process group of its own (`process_group.rs`), so
//! its leader gets no signal when the host dies, and `PR_SET_PDEATHSIG` on
//! the leader would not reach what the leader started (the setting is
//! cleared on fork). So each command gets a guard: a process forked from the
//! thread that waits for the command, which joins the command's group,
//! closes every file descriptor it inherited, blocks every signal, and asks
//! the kernel for `SIGUSR1` when its parent dies (`PR_SET_PDEATHSIG`), then
//! kills the whole group (`kill(-group, SIGKILL)`), itself included.
//!
//! The kernel sends that signal when the *thread* that forked the guard
//! exits (at the latest with its process). That thread is the one in
//! `process_group::run` that waits for the command: it does not end before
//! the command, since `run` kills the group before it returns, and dropping
//! the guard (also when unwinding) kills the group and reaps the guard. So a
//! command still wanted is never killed by a worker thread ending.
//!
//! Between `fork` and its end the guard makes only async-signal-safe
//! system calls (the host is multi-threaded), and holds no descriptor of
//! the host's: a pipe another command's reader waits on, a database socket
//! or a listening socket are not kept open by it.

use rustix::process::{Pid, WaitOptions, waitpid};
use std::io;

/// The guard of one process group: dropping it kills the group (what is
/// left of it) and reaps the guard.
pub struct OrphanGuard {
    pid: libc::pid_t,
    group: libc::pid_t,
}

impl OrphanGuard {
    /// Forks the guard of `group` (a process group this process created,
    /// whose leader it waits for on this thread).
    pub fn start(group: Pid) -> io::Result<Self> {
        let group = group.as_raw_nonzero().get();
        // SAFETY: plain system calls on values owned here. The child runs
        // only async-signal-safe calls (`guard`) and never returns. Signals
        // are blocked around the fork so that none of the host's handlers
        // runs in the child; the parent's mask is restored right after.
        unsafe {
            let parent = libc::getpid();
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::fork();
            if pid == 0 {
                guard(parent, group);
            }
            let fork_error = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                return Err(fork_error);
            }
            Ok(Self { pid, group })
        }
    }
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        // Usually dead already (killed with its group): ESRCH is fine. It
        // is this process's child, so reaping it cannot block for long.
        // SAFETY: signals to our own child and to its group, by id: the
        // guard is a member of the group and is not reaped yet, so neither
        // id can have been reused.
        unsafe {
            libc::kill(-self.group, libc::SIGKILL);
            libc::kill(self.pid, libc::SIGKILL);
        }
        if let Some(pid) = Pid::from_raw(self.pid) {
            let _ = waitpid(Some(pid), WaitOptions::empty());
        }
    }
}

/// The guard's life, in the forked child: waits for its parent (thread) to
/// end, then kills `group`. Async-signal-safe calls only.
unsafe fn guard(parent: libc::pid_t, group: libc::pid_t) -> ! {
    // SAFETY: system calls on this process only (and the group it guards).
    unsafe {
        // Every signal stays blocked (inherited): a TERM sent to the group
        // does not end the guard before the command; SIGKILL does.
        if libc::close_range(0, libc::c_uint::MAX, 0) != 0 {
            for fd in 0..1024 {
                libc::close(fd);
            }
        }
        libc::setpgid(0, group);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1 as libc::c_ulong);
        // The parent may have died before the request: look once.
        if libc::getppid() == parent {
            let mut usr1: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut usr1);
            libc::sigaddset(&mut usr1, libc::SIGUSR1);
            while libc::sigwaitinfo(&usr1, std::ptr::null_mut()) != libc::SIGUSR1 {}
        }
        libc::kill(-group, libc::SIGKILL);
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    fn alive(pid: i32) -> bool {
        // A zombie counts as gone: read its state from /proc.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z'))
    }

    #[test]
    fn dropping_the_guard_kills_the_group_with_its_grandchildren() {
        let dir = std::env::temp_dir().join(format!("sextant-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let pidfile = dir.join("grandchild");
        let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .process_group(0)
            .spawn()
            .expect("spawns");
        let leader = child.id() as i32;
        let guard = OrphanGuard::start(Pid::from_child(&child)).expect("guard");
        let guard_pid = guard.pid;
        let t = Instant::now();
        let grandchild = loop {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                break p;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no grandchild pid");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(guard_pid) && alive(leader) && alive(grandchild));
        // What unwinding through `process_group::run` does.
        drop(guard);
        let t = Instant::now();
        while (alive(leader) || alive(grandchild)) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(leader), "the leader {leader} survived");
        assert!(!alive(grandchild), "the grandchild {grandchild} survived");
        assert!(!alive(guard_pid), "the guard {guard_pid} was not reaped");
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(dir);
    }
}
