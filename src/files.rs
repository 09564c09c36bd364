//! Reading files pew did not write itself: key files, configs, password files, an app's
//! `computed.json`, traces, state files. Each read has a limit that fits the file's kind,
//! and only regular files are read: `/dev/zero` would grow pew's memory without end and a
//! FIFO would hang it, so both are refused with a clear error before a byte is read.
//!
//! Private folders live here too: the node's state and work folders hold keys, journals and
//! task data that no other local user may reach.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How much pew reads of each kind of file, at most.
pub mod limit {
    /// A JSON V3 key file (geth's are about 500 bytes).
    pub const KEYSTORE: u64 = 64 * 1024;
    /// A password, private key or mnemonic file.
    pub const SECRET: u64 = 4 * 1024;
    /// A TOML configuration file.
    pub const CONFIG: u64 = 1024 * 1024;
    /// An app's `computed.json` (callback data is at most 8 KiB, 16 KiB as hex).
    pub const COMPUTED_JSON: u64 = 1024 * 1024;
    /// A small state file pew writes itself (devnet description, energy state, caches).
    pub const STATE: u64 = 16 * 1024 * 1024;
    /// An energy trace or a job stream (a year of one-minute rows is about 20 MB).
    pub const TRACE: u64 = 64 * 1024 * 1024;
}

/// A file that could not be read, and why; never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Nothing at that path.
    #[error("{path}: no such file")]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// A device, FIFO, socket or folder.
    #[error("{path} is {kind}, not a regular file: pew only reads regular files here")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// Larger than its kind allows.
    #[error("{path} is larger than {max} bytes, the most pew reads for {what}")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        max: u64,
        /// What the file was meant to be.
        what: &'static str,
    },
    /// Not UTF-8 where text is expected.
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// The path.
        path: PathBuf,
    },
    /// Any other OS error.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
}

impl ReadError {
    /// Whether the file does not exist (callers often have a better message for that).
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Missing { .. })
    }
}

fn kind_of(file_type: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads the whole of a regular file of at most `max` bytes; `what` names its kind in the
/// error ("a key file"). Links are followed (an operator may link their config), but what
/// they lead to must be a regular file too.
pub fn read(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing {
            path: path.to_path_buf(),
        },
        _ => ReadError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    };
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of hanging; it does
    // not change how a regular file reads.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        });
    }
    let too_large = || ReadError::TooLarge {
        path: path.to_path_buf(),
        max,
        what,
    };
    if meta.len() > max {
        return Err(too_large());
    }
    // The size may change while reading (a file still being written): read one byte past
    // the limit to notice.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Like [`read`], for UTF-8 text.
pub fn read_text(path: &Path, max: u64, what: &'static str) -> Result<String, ReadError> {
    String::from_utf8(read(path, max, what)?).map_err(|_| ReadError::NotText {
        path: path.to_path_buf(),
    })
}

/// The first line of a secret file (a password, a private key, a mnemonic), without its line
/// ending.
pub fn read_secret_line(path: &Path, what: &'static str) -> Result<String, ReadError> {
    let text = read_text(path, limit::SECRET, what)?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Replaces `path` with `contents` atomically (a temporary file in the same folder, then a
/// rename): a power cut leaves the old file or the new one, never half of one. An existing
/// file's mode is kept (a config readable by the service stays so).
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mode = fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777);
    let mut staged = tempfile::Builder::new()
        .prefix(".pew-write-")
        .tempfile_in(&folder)?;
    staged.write_all(contents)?;
    staged.as_file().sync_all()?;
    if let Some(mode) = mode {
        fs::set_permissions(staged.path(), fs::Permissions::from_mode(mode))?;
    } else {
        fs::set_permissions(staged.path(), fs::Permissions::from_mode(0o644))?;
    }
    staged.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates `dir` (and its parents) and makes it private to this user (0700), so task data,
/// journals and keys below it are out of other local users' reach. A folder that exists is
/// made private too: an older pew created them 0755.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = fs::symlink_metadata(dir)?;
    // A folder someone else made (in /tmp, say) is theirs to read: never pew's private one.
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || (meta.uid() != uid && uid != 0) {
        return Err(std::io::Error::other(format!(
            "{} is not a folder of this user's (uid {uid}): remove it or choose another place",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        fs::write(&path, "x = 1\n").unwrap();
        assert_eq!(read_text(&path, 100, "a config").unwrap(), "x = 1\n");
    }

    #[test]
    fn devices_fifos_and_folders_are_refused_before_reading() {
        let err = read(Path::new("/dev/zero"), 100, "a key file").unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::NotRegular {
                    kind: "a character device",
                    ..
                }
            ),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let err = read(&fifo, 100, "a key file").unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "a FIFO", .. }));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(matches!(
            read(dir.path(), 100, "x").unwrap_err(),
            ReadError::NotRegular {
                kind: "a folder",
                ..
            }
        ));
    }

    #[test]
    fn a_file_over_its_limit_is_refused_and_names_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, vec![b'a'; 101]).unwrap();
        let err = read(&path, 100, "a password file").unwrap_err().to_string();
        assert!(
            err.contains("100 bytes") && err.contains("a password file"),
            "{err}"
        );
        assert!(
            read(&dir.path().join("nothing"), 1, "x")
                .unwrap_err()
                .is_missing()
        );
    }

    #[test]
    fn private_dirs_are_0700_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&open).unwrap();
        private_dir(&dir.path().join("new/deeper")).unwrap();
        for path in [open, dir.path().join("new/deeper")] {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", path.display());
        }
    }
}
