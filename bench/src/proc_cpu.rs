//! CPU time read from Linux's `/proc`: a process with its descendants (the
//! broker: `rabbitmq-server`'s shell and the `beam.smp` it starts), and this
//! process's threads by scheduling class (the AMQP publisher and its
//! client's threads run in `SCHED_IDLE`, the applier's do not).

use std::path::Path;

/// Clock ticks per second of `/proc`'s times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The fields of a `stat` file after the command name (which may hold
/// spaces and parentheses): field 3 (`state`) is the first.
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let after = text.rfind(')')?;
    Some(text.get(after + 1..)?.split_whitespace().collect())
}

/// User plus system time of one `stat` file, in ticks, and its scheduling
/// policy (field 41).
fn stat_times(path: &Path) -> Option<(u64, Option<i32>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let f = stat_fields(&text)?;
    // utime and stime are fields 14 and 15: indices 11 and 12 from field 3.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let policy = f.get(38).and_then(|p| p.parse().ok());
    Some((utime + stime, policy))
}

/// The CPU seconds used so far by `pid` and its living descendants (each
/// process's own `stat` counts all its threads, living and exited).
pub(crate) fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut ticks = 0u64;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let dir = Path::new("/proc").join(p.to_string());
        if let Some((t, _)) = stat_times(&dir.join("stat")) {
            ticks += t;
        }
        let Ok(tasks) = std::fs::read_dir(dir.join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    ticks as f64 / ticks_per_second()
}

/// The CPU seconds used so far by this process's living threads in Linux's
/// idle scheduling class (`SCHED_IDLE`).
pub(crate) fn own_idle_class_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let ticks: u64 = tasks
        .flatten()
        .filter_map(|t| stat_times(&t.path().join("stat")))
        .filter(|(_, policy)| *policy == Some(libc::SCHED_IDLE))
        .map(|(t, _)| t)
        .sum();
    ticks as f64 / ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_start_after_a_command_name_with_spaces_and_parentheses() {
        let f = stat_fields("42 (a (b) c) S 1 2").expect("fields");
        assert_eq!(f, ["S", "1", "2"]);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_policy() {
        let (_, policy) = stat_times(Path::new("/proc/self/stat")).expect("own stat");
        assert_eq!(policy, Some(libc::SCHED_OTHER));
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while tree_cpu_seconds(std::process::id()) <= 0.0 {
            assert!(t.elapsed().as_secs() < 10, "no CPU time counted");
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert_eq!(
            own_idle_class_cpu_seconds(),
            0.0,
            "no idle-class thread here"
        );
    }
}
