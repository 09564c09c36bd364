//! The images pew pulled, and their clean-up. A Pi's SD card is small: when free disk falls
//! under the configured floor, pew removes the images it pulled itself, least recently used
//! first, but never one the operator pinned or one a container still uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveImageOptionsBuilder};
use serde::{Deserialize, Serialize};

/// When an image was pulled and last used (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Pulled by pew at.
    pub pulled_at: u64,
    /// Last run at.
    pub last_used: u64,
}

/// The record of pulled images, kept as JSON next to the work folder.
#[derive(Debug, Clone, Default)]
pub struct ImageCache {
    path: PathBuf,
    entries: BTreeMap<String, CacheEntry>,
}

use crate::clock::unix_now_s as now;

impl ImageCache {
    /// Loads the record at `path` (empty if absent or unreadable: the worst case is that an
    /// image pew pulled is never pruned).
    pub fn load(path: &Path) -> Self {
        let entries = crate::files::read_text(path, crate::files::limit::STATE, "an image record")
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Self {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// The images pew pulled.
    pub fn entries(&self) -> &BTreeMap<String, CacheEntry> {
        &self.entries
    }

    /// Records a pull of `image` (at `at`, default now).
    pub fn record_pull(&mut self, image: &str, at: Option<u64>) {
        let at = at.unwrap_or_else(now);
        self.entries.insert(
            image.to_string(),
            CacheEntry {
                pulled_at: at,
                last_used: at,
            },
        );
    }

    /// Records a run of `image`, if pew pulled it.
    pub fn record_use(&mut self, image: &str, at: Option<u64>) {
        if let Some(entry) = self.entries.get_mut(image) {
            entry.last_used = at.unwrap_or_else(now);
        }
    }

    /// Writes the record (atomically).
    pub fn save(&self) -> std::io::Result<()> {
        if let Some(parent) = self.path.parent() {
            crate::files::private_dir(parent)?;
        }
        let staged = self.path.with_extension("json.tmp");
        std::fs::write(
            &staged,
            serde_json::to_string_pretty(&self.entries).expect("serializes"),
        )?;
        std::fs::rename(staged, &self.path)
    }

    /// Which pulled images may go, in the order they should go: least recently used first,
    /// never pinned or in-use ones.
    pub fn prune_order(&self, pinned: &[String], in_use: &[String]) -> Vec<String> {
        let mut candidates: Vec<(&String, &CacheEntry)> = self
            .entries
            .iter()
            .filter(|(image, _)| {
                let image = normalize(image);
                !pinned.iter().any(|p| normalize(p) == image)
                    && !in_use.iter().any(|u| normalize(u) == image)
            })
            .collect();
        candidates.sort_by_key(|(image, entry)| (entry.last_used, (*image).clone()));
        candidates
            .into_iter()
            .map(|(image, _)| image.clone())
            .collect()
    }

    /// Removes pulled images, least recently used first, until `free_bytes()` reports at least
    /// `min_free`. Returns the images removed.
    pub async fn prune(
        &mut self,
        docker: &Docker,
        pinned: &[String],
        min_free: u64,
        free_bytes: impl Fn() -> u64,
    ) -> Vec<String> {
        if free_bytes() >= min_free {
            return Vec::new();
        }
        let in_use = images_in_use(docker).await;
        let mut removed = Vec::new();
        for image in self.prune_order(pinned, &in_use) {
            if free_bytes() >= min_free {
                break;
            }
            let options = RemoveImageOptionsBuilder::new().force(false).build();
            match docker.remove_image(&image, Some(options), None).await {
                Ok(_) => {
                    tracing::info!(image, "removed a pulled image to free disk space");
                    self.entries.remove(&image);
                    removed.push(image);
                }
                Err(error) => tracing::warn!(image, %error, "could not remove a pulled image"),
            }
        }
        if let Err(error) = self.save() {
            tracing::warn!(%error, file = %self.path.display(), "could not save the image record");
        }
        removed
    }
}

/// One spelling of an image reference: Podman names `busybox:1` as
/// `docker.io/library/busybox:1`, and `busybox` means `busybox:latest`.
pub fn normalize(reference: &str) -> String {
    let mut name = reference.trim();
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
        "localhost/",
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest;
            break;
        }
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// The images of every container, running or not (a stopped container still holds its image).
pub async fn images_in_use(docker: &Docker) -> Vec<String> {
    let options = ListContainersOptionsBuilder::new().all(true).build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.image)
        .collect()
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return u64::MAX;
    };
    // SAFETY: statvfs writes into the zeroed struct we own.
    unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return u64::MAX;
        }
        (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_compared_in_one_spelling() {
        assert_eq!(normalize("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("localhost/pew-test/app:abc"), "pew-test/app:abc");
        assert_eq!(normalize("registry:5000/app"), "registry:5000/app:latest");
        assert_eq!(normalize("app@sha256:00"), "app@sha256:00");
    }

    #[test]
    fn pruning_goes_least_recently_used_first_and_spares_pinned_and_running_images() {
        let mut cache = ImageCache::default();
        cache.record_pull("old:1", Some(100));
        cache.record_pull("new:1", Some(300));
        cache.record_pull("middle:1", Some(200));
        cache.record_pull("pinned:1", Some(50));
        cache.record_pull("running:1", Some(60));
        cache.record_use("old:1", Some(250));
        cache.record_use("not-pulled:1", Some(10));
        let order = cache.prune_order(&["pinned:1".into()], &["running:1".into()]);
        assert_eq!(order, ["middle:1", "old:1", "new:1"]);
    }

    #[test]
    fn the_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.json");
        let mut cache = ImageCache::load(&path);
        cache.record_pull("a:1", Some(5));
        cache.save().unwrap();
        let again = ImageCache::load(&path);
        assert_eq!(again.entries().get("a:1").unwrap().pulled_at, 5);
    }

    #[test]
    fn free_bytes_reads_the_file_system() {
        assert!(free_bytes(Path::new("/")) > 0);
    }
}
