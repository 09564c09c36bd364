//! What systemd sees of the node (`pew.service` is `Type=notify`): `READY=1` once the start-up
//! checks pass, `WATCHDOG=1` only while the node's rounds complete (a node whose loop hangs or
//! whose every round fails stops sending it, and systemd restarts it after `WatchdogSec`), and a
//! `STATUS=` line that `systemctl status pew` shows. Outside systemd (no `NOTIFY_SOCKET`) every
//! call does nothing. The protocol itself is the `sd-notify` crate's.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The node's link to the service manager.
#[derive(Debug)]
pub struct ServiceManager {
    active: bool,
    /// How often systemd wants a sign of life; pings go out at half of it.
    watchdog: Option<Duration>,
    state: Mutex<Sent>,
}

#[derive(Debug, Default)]
struct Sent {
    last_ping: Option<Instant>,
    status: String,
}

impl ServiceManager {
    /// From the environment systemd gives a service (`NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub fn from_env() -> Self {
        Self {
            active: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
            state: Mutex::default(),
        }
    }

    /// Whether a service manager listens.
    pub fn active(&self) -> bool {
        self.active
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.active {
            return;
        }
        if let Err(error) = sd_notify::notify(states) {
            tracing::debug!(%error, "systemd notification not sent");
        }
    }

    /// The start-up checks passed: the node is about to run its loop.
    pub fn ready(&self, status: &str) {
        let status = one_line(status);
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        self.lock().status = status;
    }

    /// A round of the node's loop ended; `completed` is whether it did its work. Only a
    /// completed round feeds the watchdog, at most twice per watchdog interval.
    pub fn round(&self, completed: bool) {
        if completed {
            self.alive();
        }
    }

    /// The node is alive and doing what it should (a completed round, or a wait for the RPC
    /// node, the engine or gas, which is work too): feeds the watchdog at most twice per
    /// interval.
    pub fn alive(&self) {
        let Some(interval) = self.watchdog.filter(|_| self.active) else {
            return;
        };
        let now = Instant::now();
        {
            let mut sent = self.lock();
            if sent
                .last_ping
                .is_some_and(|last| now.duration_since(last) < interval / 2)
            {
                return;
            }
            sent.last_ping = Some(now);
        }
        self.send(&[NotifyState::Watchdog]);
    }

    /// Shows `line` in `systemctl status` (sent only when it changed).
    pub fn status(&self, line: &str) {
        let line = one_line(line);
        {
            let mut sent = self.lock();
            if sent.status == line {
                return;
            }
            sent.status = line.clone();
        }
        self.send(&[NotifyState::Status(&line)]);
    }

    /// The node is stopping (closing its bid, letting tasks finish).
    pub fn stopping(&self, status: &str) {
        let status = one_line(status);
        self.send(&[NotifyState::Stopping, NotifyState::Status(&status)]);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sent> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A status line is one line: systemd shows it as it is.
fn one_line(text: &str) -> String {
    crate::text::one_line(text, 300)
}

/// The `STATUS=` line: whether the bid is open and why, the running tasks and, with the energy
/// gate, the battery's state of charge.
pub fn status_line(
    bid_open: bool,
    reason: Option<&str>,
    running_tasks: usize,
    soc_pct: Option<f64>,
) -> String {
    let mut line = if bid_open { "bid open" } else { "bid closed" }.to_string();
    if let Some(reason) = reason {
        line.push_str(": ");
        line.push_str(reason);
    }
    line.push_str(&format!(
        "; {running_tasks} task{} running",
        if running_tasks == 1 { "" } else { "s" }
    ));
    if let Some(soc) = soc_pct {
        line.push_str(&format!("; battery {soc:.0} %"));
    }
    line
}

/// Whether stderr is the systemd journal (`JOURNAL_STREAM` names stderr's device and inode):
/// the journal stamps every line itself, so pew's own timestamps would be doubled.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stream = stream.to_string_lossy();
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat(2) on stderr's descriptor into a buffer of the right type.
    if unsafe { libc::fstat(libc::STDERR_FILENO, stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so the buffer is initialised.
    let stat = unsafe { stat.assume_init() };
    dev.parse::<u64>() == Ok(stat.st_dev) && ino.parse::<u64>() == Ok(stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// Everything systemd received, one datagram per entry.
    fn received(socket: &UnixDatagram) -> Vec<String> {
        let mut all = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buffer) {
            all.push(String::from_utf8_lossy(&buffer[..n]).to_string());
        }
        all
    }

    #[test]
    fn ready_status_and_a_watchdog_fed_only_by_completed_rounds_reach_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        // SAFETY: no other test in this crate reads or writes NOTIFY_SOCKET, and this test
        // sets it once, before the manager reads it.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        let manager = ServiceManager {
            active: true,
            watchdog: Some(Duration::from_millis(200)),
            state: Mutex::default(),
        };
        assert!(ServiceManager::from_env().active());

        manager.ready("bid closed; 0 tasks running");
        assert_eq!(
            received(&socket),
            ["READY=1\nSTATUS=bid closed; 0 tasks running\n"]
        );

        // Failed rounds never feed the watchdog, however many.
        for _ in 0..5 {
            manager.round(false);
        }
        assert!(received(&socket).is_empty());
        // A completed round does, at most twice per interval.
        manager.round(true);
        manager.round(true);
        assert_eq!(received(&socket), ["WATCHDOG=1\n"]);
        std::thread::sleep(Duration::from_millis(120));
        manager.round(true);
        assert_eq!(received(&socket), ["WATCHDOG=1\n"]);

        manager.status("bid open: surplus; 1 task running");
        manager.status("bid open: surplus; 1 task running");
        assert_eq!(
            received(&socket),
            ["STATUS=bid open: surplus; 1 task running\n"],
            "sent once, when it changes"
        );
        manager.stopping("stopping");
        assert_eq!(received(&socket), ["STOPPING=1\nSTATUS=stopping\n"]);

        // Without a listener nothing is sent and nothing fails.
        let silent = ServiceManager {
            active: false,
            watchdog: Some(Duration::from_millis(1)),
            state: Mutex::default(),
        };
        silent.ready("x");
        silent.round(true);
        assert!(received(&socket).is_empty());
    }

    #[test]
    fn the_status_line_says_bid_tasks_and_battery() {
        assert_eq!(
            status_line(true, Some("surplus 12 W"), 1, Some(63.4)),
            "bid open: surplus 12 W; 1 task running; battery 63 %"
        );
        assert_eq!(
            status_line(false, None, 2, None),
            "bid closed; 2 tasks running"
        );
    }
}
