//! What `/proc` says about a process: CPU time and memory.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` (USER_HZ; 100 on every Linux port that matters).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of process `pid` (or of `"self"`, `"thread-self"`).
pub fn cpu_time(pid: &str) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("unexpected /proc/{pid}/stat: {stat}")))
    };
    // utime and stime are fields 14 and 15; fields[0] is field 3.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / TICKS_PER_SECOND))
}

/// Memory of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set: heap and stacks, plus the pages of mapped index files in memory.
    pub rss: u64,
    /// The highest `rss` so far.
    pub peak: u64,
    /// The anonymous part of `rss`: what the process allocated itself.
    pub anon: u64,
}

/// What `/proc/{pid}/status` says of a process's memory.
pub fn memory(pid: &str) -> std::io::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    Ok(Memory {
        rss: kib("VmRSS:"),
        peak: kib("VmHWM:"),
        anon: kib("RssAnon:"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let started = cpu_time("self").expect("cpu time");
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_time("self").expect("cpu time") > started);
        let memory = memory("self").expect("memory");
        assert!(memory.rss > 0 && memory.peak >= memory.rss, "{memory:?}");
        assert!(memory.anon > 0 && memory.anon <= memory.rss, "{memory:?}");
    }
}
