//! Getting a task's inputs into its `/iexec_in`: input files from https or IPFS, a dataset
//! verified against its on-chain SHA-256, or local files for `pew app test`. Every download
//! has a size cap and a timeout, and every failure names the file and the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::B256;

use crate::storage::ipfs::{self, IpfsClient};

/// An input that could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{source_name}`: {reason}")]
pub struct InputError {
    /// The URL or path.
    pub source_name: String,
    /// What went wrong.
    pub reason: String,
}

/// How inputs are fetched.
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    ipfs: Option<IpfsClient>,
    max_bytes: u64,
}

impl Fetcher {
    /// A fetcher with a size cap and timeout; `ipfs` serves `ipfs://` and `/ipfs/` sources.
    pub fn new(ipfs: Option<IpfsClient>, max_bytes: u64, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .expect("a reqwest client builds");
        Self {
            http,
            ipfs,
            max_bytes,
        }
    }

    /// Fetches `source` into `dir/name`.
    pub async fn fetch(&self, source: &str, dir: &Path, name: &str) -> Result<PathBuf, InputError> {
        let fail = |reason: String| InputError {
            source_name: source.to_string(),
            reason,
        };
        let bytes = if source.starts_with("ipfs://") || source.starts_with("/ipfs/") {
            let ipfs = self.ipfs.as_ref().ok_or_else(|| {
                fail("no IPFS node is configured to fetch it from (ipfs.api)".into())
            })?;
            ipfs.cat(source, self.max_bytes)
                .await
                .map_err(|e| fail(e.to_string()))?
        } else if source.starts_with("https://") || source.starts_with("http://") {
            self.http_get(source).await.map_err(fail)?
        } else {
            return Err(fail(
                "only https://, http://, ipfs:// and /ipfs/ sources can be downloaded".into(),
            ));
        };
        let path = dir.join(name);
        std::fs::write(&path, &bytes)
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    async fn http_get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the server answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes)
        {
            return Err(format!("larger than the {} byte limit", self.max_bytes));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > self.max_bytes {
                return Err(format!("larger than the {} byte limit", self.max_bytes));
            }
        }
        Ok(bytes)
    }

    /// Fetches a dataset into `dir/name` and checks its SHA-256 against `checksum`.
    pub async fn fetch_dataset(
        &self,
        source: &str,
        dir: &Path,
        name: &str,
        checksum: B256,
    ) -> Result<PathBuf, InputError> {
        let path = self.fetch(source, dir, name).await?;
        let actual = crate::results::digest::file_sha256(&path).map_err(|e| InputError {
            source_name: source.into(),
            reason: e.to_string(),
        })?;
        if actual != checksum {
            let _ = std::fs::remove_file(&path);
            return Err(InputError {
                source_name: source.into(),
                reason: format!("its SHA-256 is {actual}, not the on-chain checksum {checksum}"),
            });
        }
        Ok(path)
    }
}

/// Copies a local file into `dir` under its own name (for `pew app test`).
pub fn copy_local(path: &Path, dir: &Path, max_bytes: u64) -> Result<PathBuf, InputError> {
    let fail = |reason: String| InputError {
        source_name: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > max_bytes {
        return Err(fail(format!("larger than the {max_bytes} byte limit")));
    }
    let name = path
        .file_name()
        .ok_or_else(|| fail("has no file name".into()))?;
    let target = dir.join(name);
    std::fs::copy(path, &target).map_err(|e| fail(e.to_string()))?;
    Ok(target)
}

/// Whether an input names something to download rather than a local file.
pub fn is_remote(source: &str) -> bool {
    ["https://", "http://", "ipfs://", "/ipfs/"]
        .iter()
        .any(|p| source.starts_with(p))
        && (!source.starts_with("/ipfs/") || ipfs::parse_reference(source).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unsupported_schemes_name_the_source() {
        let fetcher = Fetcher::new(None, 1024, Duration::from_secs(1));
        let dir = tempfile::tempdir().unwrap();
        let err = fetcher
            .fetch("file:///etc/passwd", dir.path(), "x")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("file:///etc/passwd"), "{err}");
        let err = fetcher
            .fetch(
                "ipfs://QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
                dir.path(),
                "x",
            )
            .await
            .unwrap_err();
        assert!(err.reason.contains("no IPFS node"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_with_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let fetcher = Fetcher::new(None, 1024, Duration::from_secs(2));
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/data.csv");
        let err = fetcher.fetch(&url, dir.path(), "x").await.unwrap_err();
        assert_eq!(err.source_name, url);
    }

    #[test]
    fn local_copies_keep_the_name_and_respect_the_cap() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let file = src.path().join("in.txt");
        std::fs::write(&file, "12345").unwrap();
        assert_eq!(
            copy_local(&file, dst.path(), 10).unwrap(),
            dst.path().join("in.txt")
        );
        assert!(
            copy_local(&file, dst.path(), 4)
                .unwrap_err()
                .reason
                .contains("limit")
        );
        assert!(copy_local(src.path(), dst.path(), 10).is_err());
    }

    #[test]
    fn remote_sources_are_recognised() {
        assert!(is_remote("https://x/y"));
        assert!(is_remote("ipfs://Qm"));
        assert!(!is_remote("data/in.txt"));
        assert!(!is_remote("/ipfs/notacid"));
    }
}
