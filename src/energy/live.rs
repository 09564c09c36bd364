//! The running node's energy status, published in a small file beside the energy state so that
//! `pew energy status` shows what the node itself sees and decided, without opening the source
//! a second time (two readers on one VE.Direct serial port steal each other's bytes).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// How often the node rewrites the file when nothing changed. Rare enough for an SD card.
pub const REWRITE_EVERY_S: f64 = 30.0;

/// A status older than this is from a node that no longer runs (or hangs): not shown as live.
pub const FRESH_FOR_S: f64 = 3.0 * REWRITE_EVERY_S;

/// What the node writes: who wrote it, when, and the gate's status at that time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveStatus {
    /// The node's process id.
    pub pid: u32,
    /// Wall time of the write, unix seconds.
    pub written_at_s: f64,
    /// The gate's status, as `EnergyGate::status_at` gives it.
    pub status: serde_json::Value,
    /// How long the file counts as fresh: at least [`FRESH_FOR_S`], more when the node reads
    /// its source less often than the file is rewritten.
    #[serde(default)]
    pub fresh_for_s: f64,
}

/// How long a status written by a node polling every `poll_s` stays fresh.
pub fn fresh_for(poll_s: f64) -> f64 {
    FRESH_FOR_S.max(3.0 * poll_s)
}

/// Writes the status atomically (a reader never sees half a file).
pub fn write(path: &Path, status: &LiveStatus) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        crate::files::private_dir(parent)?;
    }
    let text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// Removes the file when the node stops: from then on the status is nobody's.
pub fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "node status file not removed");
    }
}

/// The status of a node that is running now, if there is one: the file exists, parses, was
/// written recently, and its writer is alive. Anything else (no node, a crashed one, a corrupt
/// file) is `None`, and the caller reads the source itself.
pub fn read_fresh(path: &Path, now_s: f64) -> Option<LiveStatus> {
    let text =
        crate::files::read_text(path, crate::files::limit::STATE, "a node status file").ok()?;
    let live: LiveStatus = serde_json::from_str(&text).ok()?;
    if !live.status.is_object() {
        return None;
    }
    let age = now_s - live.written_at_s;
    let fresh = (-5.0..=live.fresh_for_s.max(FRESH_FOR_S)).contains(&age);
    (fresh && process_alive(live.pid)).then_some(live)
}

/// The status a running node publishes in `status_file` (`Settings::node_status_file`), if
/// one runs.
pub fn running_node(status_file: &Path, now_s: f64) -> Option<LiveStatus> {
    read_fresh(status_file, now_s)
}

fn process_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(pid: u32, written_at_s: f64) -> LiveStatus {
        LiveStatus {
            pid,
            written_at_s,
            status: json!({"decision": {"admit": true}}),
            fresh_for_s: fresh_for(10.0),
        }
    }

    #[test]
    fn a_fresh_status_of_a_live_process_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-status.json");
        write(&path, &status(std::process::id(), 1000.0)).unwrap();
        let live = read_fresh(&path, 1010.0).expect("fresh and alive");
        assert_eq!(live.pid, std::process::id());
        assert_eq!(live.status["decision"]["admit"], true);
    }

    #[test]
    fn a_stale_dead_missing_or_corrupt_status_is_not_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-status.json");
        assert!(read_fresh(&path, 1000.0).is_none(), "missing");
        write(&path, &status(std::process::id(), 1000.0)).unwrap();
        assert!(
            read_fresh(&path, 1000.0 + FRESH_FOR_S + 1.0).is_none(),
            "stale"
        );
        // A node that reads its source every 10 min keeps its file fresh for 30 min.
        let slow = LiveStatus {
            fresh_for_s: fresh_for(600.0),
            ..status(std::process::id(), 1000.0)
        };
        write(&path, &slow).unwrap();
        assert!(read_fresh(&path, 1000.0 + 1700.0).is_some(), "slow poll");
        assert!(
            read_fresh(&path, 1000.0 + 1900.0).is_none(),
            "slow poll, stale"
        );
        // A process id that cannot exist (above Linux's pid_max limit of 2^22).
        write(&path, &status(4_194_305, 1000.0)).unwrap();
        assert!(read_fresh(&path, 1001.0).is_none(), "dead writer");
        let not_an_object = r#"{"pid": 1, "written_at_s": 1000.0, "status": [1, 2]}"#;
        std::fs::write(&path, not_an_object).unwrap();
        assert!(read_fresh(&path, 1001.0).is_none(), "not an object");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(read_fresh(&path, 1001.0).is_none(), "corrupt");
        remove(&path);
        assert!(!path.exists());
        remove(&path); // a second removal is quiet
    }
}
