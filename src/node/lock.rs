//! One node per state folder, per key and per workerpool. Two `pew run` sharing a key fight
//! over its nonces (one's transactions replace the other's, and a stop fails to close the bid
//! with "nonce too low"); two sharing a journal or a workerpool take the same tasks twice.
//! Each start takes exclusive `flock` locks, held for the node's whole life and released by
//! the kernel when the process ends however it ends (a power cut leaves no stale lock); a
//! second node is refused with the first one's pid.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use alloy::primitives::Address;

/// Another node holds a lock, or a lock file cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another node runs with the same state folder, key or workerpool.
    #[error(
        "another pew node (pid {pid}) already runs with {what}: stop it first (two nodes on one {what} would fight over its nonces and tasks)"
    )]
    Taken {
        /// What is shared ("the workerpool 0x…").
        what: String,
        /// The running node's pid, as it wrote it ("unknown" if unreadable).
        pid: String,
    },
    /// The lock file cannot be created or locked.
    #[error("lock file {path}: {reason}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
}

/// The locks a running node holds; dropping it releases them.
#[derive(Debug)]
pub struct NodeLocks {
    _files: Vec<File>,
}

/// Takes the node's locks: its state folder (the journal's), its work folder, its keys (owner
/// and worker) and its workerpool on the hub `hub` (those two in `shared`, the runtime folder every node of this user sees). Fails at once, naming the running node, if another holds one.
pub fn acquire(
    state_dir: &Path,
    shared: &Path,
    hub: Address,
    keys: &[Address],
    pool: Address,
    work_dir: &Path,
) -> Result<NodeLocks, LockError> {
    let mut wanted = vec![
        (
            state_dir.join("node.lock"),
            format!("the state folder {}", state_dir.display()),
        ),
        (
            shared.join(format!("pool-{hub}-{pool}.lock")),
            format!("the workerpool {pool}"),
        ),
        // The work folder names the apps' containers: two nodes on one would remove and pause
        // each other's apps.
        (
            work_dir.join("node.lock"),
            format!("the work folder {}", work_dir.display()),
        ),
    ];
    // The owner key and a separate worker key: each has one nonce sequence.
    for key in keys {
        wanted.push((
            shared.join(format!("key-{hub}-{key}.lock")),
            format!("the key {key}"),
        ));
    }
    let mut files = Vec::with_capacity(wanted.len());
    let mut taken = std::collections::HashSet::new();
    for (path, what) in wanted {
        // One folder may serve two purposes (the state and the work): one lock for it.
        let key = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        if taken.insert(key) {
            files.push(lock(&path, what)?);
        }
    }
    Ok(NodeLocks { _files: files })
}

fn lock(path: &Path, what: String) -> Result<File, LockError> {
    let io = |e: std::io::Error| LockError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        crate::files::private_dir(parent).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io(error));
        }
        let mut text = String::new();
        let _ = (&file).take(32).read_to_string(&mut text);
        let pid = text.trim();
        return Err(LockError::Taken {
            what,
            pid: if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                "unknown".into()
            } else {
                pid.to_string()
            },
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.lock");
        let first = lock(&path, "the workerpool 0x1".into()).unwrap();
        // flock locks belong to open file descriptions: a second open in this process
        // conflicts as another process's would.
        let err = lock(&path, "the workerpool 0x1".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("the workerpool 0x1"), "{err}");
        drop(first);
        assert!(lock(&path, "the workerpool 0x1".into()).is_ok());
    }
}
