//! Starting and stopping the devnet's helper processes (anvil, js-ipfs).
//!
//! Each helper gets its own process group, so stopping it also stops anything it forked, and
//! its output goes to a log file in the state folder, never to pew's stdout (which carries the
//! one JSON object scripts read). A foreground devnet also asks the kernel to stop its helpers
//! if pew itself dies, so a killed `pew devnet up` leaves nothing behind.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A helper process started by the devnet, as recorded in `processes.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Helper {
    /// What it is: "anvil" or "ipfs".
    pub name: String,
    /// Its process id, also its process group id.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
}

/// Starts `command` in its own process group with stdout and stderr appended to `log`.
/// With `tie_to_parent`, the kernel sends it SIGTERM when the calling thread's process exits.
pub fn spawn(
    name: &str,
    mut command: Command,
    log: &Path,
    tie_to_parent: bool,
) -> std::io::Result<(Helper, Child)> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: only async-signal-safe libc calls run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if tie_to_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok((
        Helper {
            name: name.to_string(),
            pid: child.id(),
            log: log.to_path_buf(),
        },
        child,
    ))
}

/// Whether a process with this pid exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` still runs the program we started (pids are reused after a reboot).
pub fn runs(pid: u32, program_hint: &str) -> bool {
    is_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(program_hint))
            .unwrap_or(false)
}

/// Stops a helper's whole process group: SIGTERM, then SIGKILL after `grace`.
/// Returns once no process of the group is left (or after the SIGKILL wait).
pub fn stop_group(pid: u32, grace: Duration) {
    let group = -(pid as i32);
    // SAFETY: plain kill(2) on a process group we created.
    unsafe {
        libc::kill(group, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !group_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(group, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while group_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any live process belongs to process group `pgid`.
fn group_alive(pgid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let exists = unsafe { libc::kill(-(pgid as i32), 0) } == 0;
    exists && (is_alive(pgid) || any_member_alive(pgid))
}

fn any_member_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_string();
                    let mut fields = rest.split_whitespace();
                    let state = fields.next()?.to_string();
                    let _ppid = fields.next()?;
                    let group: u32 = fields.next()?.parse().ok()?;
                    Some(group == pgid && state != "Z" && state != "X")
                })
                .unwrap_or(false)
        })
}

/// The last `max` bytes of a log file, for error messages.
pub fn log_tail(log: &Path, max: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[start..]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_group_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        // The shell forks a grandchild; stopping the group must take both.
        command.args(["-c", "sleep 300 & sleep 300; wait"]);
        let (helper, mut child) = spawn("sleeper", command, &dir.path().join("log"), true).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(is_alive(helper.pid));
        stop_group(helper.pid, Duration::from_secs(2));
        let _ = child.wait();
        assert!(!group_alive(helper.pid), "a member of the group survived");
    }

    #[test]
    fn runs_checks_the_program_of_a_pid() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(!runs(me, "definitely-not-this-program-name"));
    }
}
