//! The result digest, exactly as iExec workers compute it (PROTOCOL.md §7.2–§7.3), so that
//! pew's contributions agree with every other worker's and requesters can verify downloads.
//!
//! - callback deal: `keccak256(callback-data bytes)`;
//! - `deterministic-output-path` is a file: `sha256(file)`;
//! - it is a folder: `keccak256(sha256(child₁) ‖ sha256(child₂) ‖ …)` over the folder's direct
//!   regular-file children sorted by name (UTF-16 order, as Java sorts); sub-folders add nothing.
//!
//! Nothing outside the output folder is ever read: symlinks are refused, and so is a path that
//! leaves the folder.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use alloy::primitives::{B256, keccak256};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the app's output folder is mounted inside its container.
pub const CONTAINER_OUT: &str = "/iexec_out";

/// `computed.json`, the app's statement of what its result is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputedFile {
    /// The result file or folder, as a path inside the container (under `/iexec_out`).
    #[serde(
        rename = "deterministic-output-path",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deterministic_output_path: Option<String>,
    /// 0x-hex bytes handed to the deal's callback contract.
    #[serde(
        rename = "callback-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_data: Option<String>,
    /// The task, when the worker records it.
    #[serde(rename = "task-id", default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The digest, when the worker records it.
    #[serde(
        rename = "result-digest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub result_digest: Option<String>,
    /// An error message, when the app reports one.
    #[serde(
        rename = "error-message",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
}

/// Why no digest can be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// `computed.json` is missing or unreadable.
    #[error("computed.json: {0}")]
    Computed(String),
    /// `deterministic-output-path` is missing, outside `/iexec_out`, or does not exist.
    #[error("deterministic-output-path `{path}`: {reason}")]
    OutputPath {
        /// The path as written by the app.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A symlink where a result file was expected.
    #[error("{0} is a symbolic link: results may only be regular files inside /iexec_out")]
    Symlink(PathBuf),
    /// A file name that is not UTF-8: the digest's sort order and the archive's names are
    /// defined on text only.
    #[error("{0} has a file name that is not UTF-8 text: results may only hold UTF-8 names")]
    NotText(PathBuf),
    /// The callback data is missing or not hex.
    #[error("callback-data: {0}")]
    CallbackData(String),
    /// A read error.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DigestError + '_ {
    move |e| DigestError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads `out_dir/computed.json`.
pub fn read_computed(out_dir: &Path) -> Result<ComputedFile, DigestError> {
    let path = out_dir.join("computed.json");
    let meta = fs::symlink_metadata(&path)
        .map_err(|_| DigestError::Computed("not found in the output folder".into()))?;
    if meta.file_type().is_symlink() {
        return Err(DigestError::Symlink(path));
    }
    // An app's file: a regular file of bounded size (a FIFO would hang the node, a 95 MB
    // JSON document would take hundreds of MB to parse on a Pi).
    let text = crate::files::read_text(&path, crate::files::limit::COMPUTED_JSON, "computed.json")
        .map_err(|e| DigestError::Computed(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| DigestError::Computed(format!("not valid JSON: {e}")))
}

/// The bytes a callback deal hands its callback contract: `callback-data` in computed.json,
/// 0x-hex, not empty.
pub fn callback_data(out_dir: &Path) -> Result<Vec<u8>, DigestError> {
    callback_bytes(&read_computed(out_dir)?)
}

/// The most callback data a task may hand on: it goes into the final transaction's calldata
/// and into chain storage (about 20 000 gas per 32 bytes, paid by the node).
pub const MAX_CALLBACK_BYTES: usize = 8 * 1024;

fn callback_bytes(computed: &ComputedFile) -> Result<Vec<u8>, DigestError> {
    let hex = computed
        .callback_data
        .as_deref()
        .ok_or_else(|| DigestError::CallbackData("missing for a callback deal".into()))?;
    let bytes = alloy::hex::decode(hex).map_err(|e| DigestError::CallbackData(e.to_string()))?;
    if bytes.is_empty() {
        return Err(DigestError::CallbackData("empty".into()));
    }
    if bytes.len() > MAX_CALLBACK_BYTES {
        return Err(DigestError::CallbackData(format!(
            "{} bytes, more than the {MAX_CALLBACK_BYTES} a node puts on chain",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The digest of a task's output folder (`out_dir` is what the container saw as `/iexec_out`).
pub fn result_digest(out_dir: &Path, has_callback: bool) -> Result<B256, DigestError> {
    let computed = read_computed(out_dir)?;
    if has_callback {
        return Ok(keccak256(callback_bytes(&computed)?));
    }
    let declared = computed
        .deterministic_output_path
        .ok_or_else(|| DigestError::OutputPath {
            path: String::new(),
            reason: "missing from computed.json".into(),
        })?;
    let host = host_path(out_dir, &declared)?;
    path_digest(&host, &declared)
}

/// Maps a container path under `/iexec_out` to the host folder, refusing anything that leaves
/// it (`..`, other roots) or passes through a symlink.
pub fn host_path(out_dir: &Path, container_path: &str) -> Result<PathBuf, DigestError> {
    let bad = |reason: &str| DigestError::OutputPath {
        path: crate::text::quote(container_path),
        reason: reason.to_string(),
    };
    let relative = Path::new(container_path)
        .strip_prefix(CONTAINER_OUT)
        .map_err(|_| bad("must be /iexec_out or a path under it"))?;
    let mut host = out_dir.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                host.push(part);
                match fs::symlink_metadata(&host) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        return Err(DigestError::Symlink(host));
                    }
                    Ok(_) => {}
                    Err(_) => return Err(bad("does not exist in the output folder")),
                }
            }
            Component::CurDir => {}
            _ => return Err(bad("must not contain `..`")),
        }
    }
    Ok(host)
}

fn path_digest(host: &Path, declared: &str) -> Result<B256, DigestError> {
    let meta = fs::symlink_metadata(host).map_err(|_| DigestError::OutputPath {
        path: crate::text::quote(declared),
        reason: "does not exist in the output folder".into(),
    })?;
    if meta.is_file() {
        return file_sha256(host);
    }
    if !meta.is_dir() {
        return Err(DigestError::OutputPath {
            path: crate::text::quote(declared),
            reason: "is neither a file nor a folder".into(),
        });
    }
    let mut children: Vec<(Vec<u16>, PathBuf)> = Vec::new();
    for entry in fs::read_dir(host).map_err(io_error(host))? {
        let entry = entry.map_err(io_error(host))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            return Err(DigestError::NotText(entry.path()));
        };
        children.push((name.encode_utf16().collect(), entry.path()));
    }
    children.sort();
    let mut files = Vec::with_capacity(children.len());
    for (_, child) in children {
        let meta = fs::symlink_metadata(&child).map_err(io_error(&child))?;
        if meta.file_type().is_symlink() {
            return Err(DigestError::Symlink(child));
        }
        if meta.is_file() {
            files.push(child);
        }
    }
    // Files are hashed on every core (a Pi has four), and joined in name order.
    let digests = hash_files_parallel(&files)?;
    let mut concatenated = Vec::with_capacity(digests.len() * 32);
    for digest in digests {
        concatenated.extend_from_slice(digest.as_slice());
    }
    Ok(keccak256(concatenated))
}

/// SHA-256 of every file, in order, using all available cores.
fn hash_files_parallel(files: &[PathBuf]) -> Result<Vec<B256>, DigestError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().max(1));
    if workers <= 1 {
        return files.iter().map(|f| file_sha256(f)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<B256, DigestError>>> =
        (0..files.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(file) = files.get(index) else { break };
                    let digest = file_sha256(file);
                    slots
                        .lock()
                        .expect("no worker panics while holding the lock")[index] = Some(digest);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every file was hashed"))
        .collect()
}

/// SHA-256 of a file, streamed.
pub fn file_sha256(path: &Path) -> Result<B256, DigestError> {
    let mut file = fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(B256::from_slice(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::b256;

    fn out_with(computed: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("computed.json"), computed).unwrap();
        dir
    }

    #[test]
    fn a_single_file_digest_is_its_sha256() {
        let dir = out_with(r#"{"deterministic-output-path":"/iexec_out/result.txt"}"#);
        fs::write(dir.path().join("result.txt"), "Hello, iExec!\n").unwrap();
        assert_eq!(
            result_digest(dir.path(), false).unwrap(),
            b256!("7f6aa116d9bcbd06ae7737dec5d8294b9ffe855e84bae1b5027c885fb1f932d3")
        );
    }

    #[test]
    fn a_folder_digest_follows_the_sorted_children_rule() {
        // PROTOCOL.md §15.5: a.txt = "A", b.txt = "B".
        let dir = out_with(r#"{"deterministic-output-path":"/iexec_out/out"}"#);
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("b.txt"), "B").unwrap();
        fs::write(out.join("a.txt"), "A").unwrap();
        fs::create_dir(out.join("sub")).unwrap();
        fs::write(out.join("sub").join("ignored"), "x").unwrap();
        assert_eq!(
            result_digest(dir.path(), false).unwrap(),
            b256!("3e414b345ce4e8d016eff459b112b41de5bc488237863d83187f93ba096a9666")
        );
    }

    #[test]
    fn the_callback_digest_is_keccak_of_the_data() {
        let dir = out_with(
            r#"{"callback-data":"0x0000000000000000000000000000000000000000000000000000000000000001"}"#,
        );
        assert_eq!(
            result_digest(dir.path(), true).unwrap(),
            b256!("b10e2d527612073b26eecdfd717e6a320cf44b4afac2b0732d9fcbe2b7fa0cf6")
        );
        let huge = out_with(&format!(
            r#"{{"callback-data":"0x{}"}}"#,
            "ab".repeat(MAX_CALLBACK_BYTES + 1)
        ));
        let err = result_digest(huge.path(), true).unwrap_err().to_string();
        assert!(err.contains("8192"), "{err}");
        let empty = out_with(r#"{"callback-data":"0x"}"#);
        assert!(matches!(
            result_digest(empty.path(), true),
            Err(DigestError::CallbackData(_))
        ));
    }

    #[test]
    fn paths_outside_the_output_folder_are_refused() {
        for path in ["/etc/passwd", "/iexec_out/../etc/passwd", "iexec_out/x"] {
            let dir = out_with(&format!(r#"{{"deterministic-output-path":"{path}"}}"#));
            assert!(
                matches!(
                    result_digest(dir.path(), false),
                    Err(DigestError::OutputPath { .. })
                ),
                "{path} must be refused"
            );
        }
    }

    #[test]
    fn symlinks_are_never_followed() {
        let dir = out_with(r#"{"deterministic-output-path":"/iexec_out/result"}"#);
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("result")).unwrap();
        assert!(matches!(
            result_digest(dir.path(), false),
            Err(DigestError::Symlink(_))
        ));

        let dir = out_with(r#"{"deterministic-output-path":"/iexec_out"}"#);
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("leak")).unwrap();
        assert!(matches!(
            result_digest(dir.path(), false),
            Err(DigestError::Symlink(_))
        ));
    }

    #[test]
    fn a_computed_json_that_is_huge_or_a_fifo_is_refused() {
        let dir = out_with(&format!(
            r#"{{"deterministic-output-path":"/iexec_out","error-message":"{}"}}"#,
            "x".repeat(2 << 20)
        ));
        let err = result_digest(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("computed.json");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = result_digest(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
    }

    #[test]
    fn a_missing_computed_json_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = result_digest(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("computed.json"), "{err}");
    }

    #[test]
    fn children_sort_in_utf16_order_like_java() {
        // U+FF21 (fullwidth A, BMP) sorts after U+1F600 (emoji, a surrogate pair) in UTF-16
        // order, but before it in UTF-8 byte order.
        let dir = out_with(r#"{"deterministic-output-path":"/iexec_out/o"}"#);
        let out = dir.path().join("o");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("\u{FF21}"), "1").unwrap();
        fs::write(out.join("\u{1F600}"), "2").unwrap();
        let sha = |s: &str| Sha256::digest(s.as_bytes()).to_vec();
        let expected = keccak256([sha("2"), sha("1")].concat());
        assert_eq!(result_digest(dir.path(), false).unwrap(), expected);
    }
}
