//! What `/proc` says about a process: CPU time used, resident memory, and
//! which processes are `nuage shim`s.

use std::path::Path;

/// CPU time (user + system) a process has used, in ms, from
/// `/proc/PID/stat` (`self` for this one); clock ticks of 10 ms (USER_HZ).
pub fn cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`) in KiB.
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// The proportional set size (`Pss:` of `smaps_rollup`) in KiB: resident
/// memory with pages shared by N processes counted 1/N (the shims share
/// the `nuage` binary's text).
pub fn pss_kib(pid: &str) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Pss:",
    )
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Pids of the `nuage shim STATE_DIR` processes whose state dir is under
/// `under` (one per container of the agent using that data dir).
pub fn shims_under(under: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let under = under.to_string_lossy();
    dir.filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            argv.get(1) == Some(&&b"shim"[..])
                && argv
                    .get(2)
                    .is_some_and(|d| String::from_utf8_lossy(d).starts_with(&*under))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(cpu_ms("self").is_some());
        assert!(status_kib("self", "VmRSS:").unwrap() > 0);
        assert_eq!(kib_field("Rss: 10 kB\nPss:   7 kB\n", "Pss:"), Some(7));
    }
}
