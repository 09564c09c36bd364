//! Docker images as iExec names them: an app's on-chain multiaddr is an image reference, and
//! its checksum is the image digest.

use alloy::primitives::B256;
use bollard::Docker;

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The Docker Engine does not answer.
    #[error("the Docker Engine does not answer ({0}): start it (dockerd) or give --checksum")]
    Engine(String),
    /// The image is not in the local engine.
    #[error(
        "image {0} is not in the local Docker Engine: build or pull it first, or give --checksum"
    )]
    Missing(String),
    /// Pulling failed or took too long.
    #[error("pulling image {reference} failed: {reason}")]
    Pull {
        /// The image.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The image differs from the one the app owner registered.
    #[error(
        "image {reference} does not match the app's on-chain checksum {expected} (local id {id}): refusing to run it"
    )]
    ChecksumMismatch {
        /// The image.
        reference: String,
        /// The on-chain checksum.
        expected: B256,
        /// The local image id.
        id: String,
    },
    /// The image is built for another platform.
    #[error("image {reference} is for {platform}, which cannot run on this {host} host")]
    Platform {
        /// The image.
        reference: String,
        /// Its os/architecture.
        platform: String,
        /// This host's architecture.
        host: String,
    },
    /// The digest is not a sha256.
    #[error("image {reference} has digest `{digest}`, not a sha256 digest")]
    BadDigest {
        /// The image.
        reference: String,
        /// What the engine reported.
        digest: String,
    },
}

impl ImageError {
    /// Whether trying again cannot help: the image is not the registered one, or cannot run on
    /// this host. An engine that does not answer or a pull that failed may work next time.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ImageError::ChecksumMismatch { .. }
                | ImageError::Platform { .. }
                | ImageError::BadDigest { .. }
        )
    }
}

/// Connects to the container engine and agrees on an API version: `socket` (a path, or
/// `unix://` and a path: Podman's Docker-compatible socket, for one) when given, else the
/// Docker Engine that `DOCKER_HOST` or the standard socket names.
pub async fn connect(socket: &str) -> Result<Docker, ImageError> {
    let socket = socket.trim();
    let docker = if socket.is_empty() {
        Docker::connect_with_local_defaults()
    } else {
        let path = socket.strip_prefix("unix://").unwrap_or(socket);
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|e| ImageError::Engine(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| ImageError::Engine(e.to_string()))
}

/// The engine behind a connection, for messages and `pew doctor`: "Docker Engine 28.2.2" or
/// "Podman Engine 4.3.1".
pub async fn engine_name(docker: &Docker) -> Result<String, ImageError> {
    let version = docker
        .version()
        .await
        .map_err(|e| ImageError::Engine(e.to_string()))?;
    let component = version
        .components
        .unwrap_or_default()
        .into_iter()
        .next()
        .map(|c| c.name)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "Engine".into());
    let name = if component.contains("Podman") {
        component
    } else {
        "Docker Engine".to_string()
    };
    Ok(format!(
        "{name} {}",
        version
            .version
            .unwrap_or_else(|| "(version unknown)".into())
    ))
}

/// Parses `sha256:<64 hex>` into 32 bytes.
pub fn parse_sha256_digest(digest: &str) -> Option<B256> {
    let hex = digest.rsplit('@').next()?.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    hex.parse().ok()
}

/// The checksum to register for a local image: its registry digest when it has one (what
/// `docker pull` prints), else its image id (for images built locally).
pub async fn local_image_checksum(docker: &Docker, reference: &str) -> Result<B256, ImageError> {
    let image = docker
        .inspect_image(reference)
        .await
        .map_err(|_| ImageError::Missing(crate::text::quote(reference)))?;
    let digest = image
        .repo_digests
        .as_ref()
        .and_then(|digests| digests.first().cloned())
        .or(image.id.clone())
        .unwrap_or_default();
    parse_sha256_digest(&digest).ok_or(ImageError::BadDigest {
        reference: crate::text::quote(reference),
        digest,
    })
}

/// The Docker architecture name of this host.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// Whether an image for `os`/`arch` runs on a host of `host_arch`.
pub fn platform_runs(os: &str, arch: &str, host_arch: &str) -> bool {
    os == "linux" && (arch == host_arch || (host_arch == "arm64" && arch == "arm"))
}

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyImage {
    /// The reference it was asked for.
    pub reference: String,
    /// Its local id (`sha256:…`).
    pub id: String,
    /// Whether pew pulled it just now.
    pub pulled: bool,
    /// Its own `USER`, when it names one.
    pub user: Option<String>,
}

/// Whether a local image is the one an app registered with `checksum` (zero: not set): its
/// id or one of its repository digests.
fn matches_checksum(image: &bollard::models::ImageInspect, checksum: B256) -> bool {
    if checksum == B256::ZERO {
        return true;
    }
    image
        .repo_digests
        .iter()
        .flatten()
        .filter_map(|d| parse_sha256_digest(d))
        .chain(image.id.as_deref().and_then(parse_sha256_digest))
        .any(|digest| digest == checksum)
}

/// Makes `reference` available locally (pulling it with progress logs and a timeout when
/// absent), checks it against the app's on-chain `checksum` (zero: not set) and refuses an
/// image this host cannot run.
pub async fn prepare(
    docker: &Docker,
    reference: &str,
    checksum: B256,
    pull_timeout: std::time::Duration,
) -> Result<ReadyImage, ImageError> {
    let mut pulled = false;
    let inspect = || async {
        docker
            .inspect_image(reference)
            .await
            .map_err(|_| ImageError::Missing(crate::text::quote(reference)))
    };
    let mut image = match docker.inspect_image(reference).await {
        Ok(image) => image,
        Err(_) => {
            pull(docker, reference, pull_timeout).await?;
            pulled = true;
            inspect().await?
        }
    };
    // A tag that moved since it was pulled (its owner registered a new version) is pulled
    // again once before the image is called wrong.
    if !matches_checksum(&image, checksum) && !pulled {
        match pull(docker, reference, pull_timeout).await {
            Ok(()) => {
                pulled = true;
                image = inspect().await?;
            }
            Err(error) => {
                tracing::debug!(image = reference, %error, "no newer image to pull");
            }
        }
    }
    let id = image.id.clone().unwrap_or_default();
    if !matches_checksum(&image, checksum) {
        return Err(ImageError::ChecksumMismatch {
            reference: crate::text::quote(reference),
            expected: checksum,
            id,
        });
    }
    let os = image.os.clone().unwrap_or_default();
    let arch = image.architecture.clone().unwrap_or_default();
    let host = host_architecture();
    if !platform_runs(&os, &arch, host) {
        return Err(ImageError::Platform {
            reference: crate::text::quote(reference),
            platform: format!("{os}/{arch}"),
            host: host.into(),
        });
    }
    let user = image
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .filter(|u| !u.trim().is_empty());
    Ok(ReadyImage {
        reference: reference.into(),
        id,
        pulled,
        user,
    })
}

async fn pull(
    docker: &Docker,
    reference: &str,
    timeout: std::time::Duration,
) -> Result<(), ImageError> {
    use futures_util::StreamExt;
    tracing::info!(image = reference, "pulling");
    let options = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_image(reference)
        .build();
    let pulling = async {
        let mut stream = docker.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(step) = stream.next().await {
            let info = step.map_err(|e| e.to_string())?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(error);
            }
            let status = info.status.unwrap_or_default();
            if status != last {
                tracing::info!(image = reference, progress = %status, "pull");
                last = status;
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, pulling).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(ImageError::Pull {
            reference: crate::text::quote(reference),
            reason: crate::text::quote(&reason),
        }),
        Err(_) => Err(ImageError::Pull {
            reference: crate::text::quote(reference),
            reason: format!(
                "not done after {} s (executor.pull_timeout_s)",
                timeout.as_secs()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn platforms_that_run_here_are_recognised() {
        assert!(super::platform_runs("linux", "amd64", "amd64"));
        assert!(super::platform_runs("linux", "arm64", "arm64"));
        assert!(
            super::platform_runs("linux", "arm", "arm64"),
            "32-bit arm runs on a 64-bit Pi"
        );
        assert!(
            !super::platform_runs("linux", "amd64", "arm64"),
            "an amd64-only image on a Pi"
        );
        assert!(!super::platform_runs("windows", "amd64", "amd64"));
    }

    use super::*;

    #[test]
    fn digests_parse_from_ids_and_repo_digests() {
        let hex = "7f6aa116d9bcbd06ae7737dec5d8294b9ffe855e84bae1b5027c885fb1f932d3";
        let expected: B256 = hex.parse().unwrap();
        assert_eq!(
            parse_sha256_digest(&format!("sha256:{hex}")),
            Some(expected)
        );
        assert_eq!(
            parse_sha256_digest(&format!("docker.io/a/b@sha256:{hex}")),
            Some(expected)
        );
        assert_eq!(parse_sha256_digest("sha512:abc"), None);
        assert_eq!(parse_sha256_digest("sha256:abc"), None);
    }
}
