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
    /// The digest is not a sha256.
    #[error("image {reference} has digest `{digest}`, not a sha256 digest")]
    BadDigest {
        /// The image.
        reference: String,
        /// What the engine reported.
        digest: String,
    },
}

/// Connects to the local Docker Engine and agrees on an API version.
pub async fn connect() -> Result<Docker, ImageError> {
    let docker =
        Docker::connect_with_local_defaults().map_err(|e| ImageError::Engine(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| ImageError::Engine(e.to_string()))
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
        .map_err(|_| ImageError::Missing(reference.into()))?;
    let digest = image
        .repo_digests
        .as_ref()
        .and_then(|digests| digests.first().cloned())
        .or(image.id.clone())
        .unwrap_or_default();
    parse_sha256_digest(&digest).ok_or(ImageError::BadDigest {
        reference: reference.into(),
        digest,
    })
}

#[cfg(test)]
mod tests {
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
