//! Request params: the JSON string a requester puts in its order and the deal carries
//! (PROTOCOL.md §7.5). pew reads what the official SDK writes as it is, and refuses what a
//! standard (non-TEE) worker cannot honour before any work is accepted.

use serde::{Deserialize, Serialize};

/// The params of a request, every documented key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestParams {
    /// Where results go: `ipfs` (the default, and the only value for standard tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_result_storage_provider: Option<String>,
    /// A result-proxy URL (pew publishes on its own IPFS node and ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_result_storage_proxy: Option<String>,
    /// Encrypt results for the beneficiary: TEE only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_result_encryption: Option<bool>,
    /// URLs downloaded into `/iexec_in` before the app runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iexec_input_files: Vec<String>,
    /// Command-line arguments for the app, split shell-style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_args: Option<String>,
    /// Secret mapping: TEE only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_secrets: Option<serde_json::Map<String, serde_json::Value>>,
    /// Bulk processing: TEE only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_cid: Option<String>,
    /// Legacy flag, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_developer_logger: Option<bool>,
    /// Legacy TEE keys, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_tee_post_compute_image: Option<String>,
    /// Legacy TEE keys, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iexec_tee_post_compute_fingerprint: Option<String>,
}

/// Why a standard worker cannot run a request with these params.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Params that are a JSON value but not an object, or whose keys have the wrong types.
    #[error("request params are not valid: {0}")]
    Malformed(String),
    /// A feature only TEE workers provide.
    #[error("request params ask for {0}, which only TEE workers provide; pew runs standard tasks")]
    TeeOnly(&'static str),
    /// An input file URL pew cannot download.
    #[error("input file `{0}` is not an http(s):// or ipfs URL")]
    BadInputFile(String),
}

impl RequestParams {
    /// Parses a deal's params. As iExec's workers do, a string that is not JSON at all is
    /// taken whole as `iexec_args`.
    pub fn parse(text: &str) -> Result<Self, ParamsError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<serde_json::Value>(text) {
            Err(_) => Ok(Self {
                iexec_args: Some(text.to_string()),
                ..Self::default()
            }),
            Ok(value @ serde_json::Value::Object(_)) => {
                serde_json::from_value(value).map_err(|e| ParamsError::Malformed(e.to_string()))
            }
            Ok(other) => Err(ParamsError::Malformed(format!(
                "expected a JSON object, got `{other}`"
            ))),
        }
    }

    /// The JSON string to put in a request order; empty keys are left out.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("params serialize")
    }

    /// Checks that a standard (non-TEE) worker can honour these params.
    pub fn check_standard(&self) -> Result<(), ParamsError> {
        if let Some(provider) = &self.iexec_result_storage_provider
            && provider != "ipfs"
        {
            return Err(ParamsError::TeeOnly("a result storage other than ipfs"));
        }
        if self.iexec_result_encryption == Some(true) {
            return Err(ParamsError::TeeOnly("result encryption"));
        }
        if self.iexec_secrets.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(ParamsError::TeeOnly("secrets"));
        }
        if self.bulk_cid.is_some() {
            return Err(ParamsError::TeeOnly("bulk processing"));
        }
        for url in &self.iexec_input_files {
            let ok = url.starts_with("https://")
                || url.starts_with("http://")
                || url.starts_with("ipfs://")
                || url.starts_with("/ipfs/");
            if !ok {
                return Err(ParamsError::BadInputFile(url.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_sdk_default_params_are_accepted_as_they_are() {
        let sdk = r#"{"iexec_result_storage_provider":"ipfs","iexec_result_encryption":false,"iexec_input_files":[],"iexec_args":"hello world"}"#;
        let params = RequestParams::parse(sdk).unwrap();
        assert_eq!(params.iexec_args.as_deref(), Some("hello world"));
        assert!(params.check_standard().is_ok());
        let short = r#"{"iexec_result_storage_provider":"ipfs","iexec_args":"x"}"#;
        assert!(
            RequestParams::parse(short)
                .unwrap()
                .check_standard()
                .is_ok()
        );
    }

    #[test]
    fn a_string_that_is_not_json_is_the_args() {
        let params = RequestParams::parse("--size 10 hello").unwrap();
        assert_eq!(params.iexec_args.as_deref(), Some("--size 10 hello"));
        assert_eq!(RequestParams::parse("").unwrap(), RequestParams::default());
    }

    #[test]
    fn tee_only_features_and_bad_urls_are_refused() {
        let encrypted = RequestParams::parse(r#"{"iexec_result_encryption":true}"#).unwrap();
        assert!(matches!(
            encrypted.check_standard(),
            Err(ParamsError::TeeOnly(_))
        ));
        let dropbox =
            RequestParams::parse(r#"{"iexec_result_storage_provider":"dropbox"}"#).unwrap();
        assert!(dropbox.check_standard().is_err());
        let secrets = RequestParams::parse(r#"{"iexec_secrets":{"1":"key"}}"#).unwrap();
        assert!(secrets.check_standard().is_err());
        let file = RequestParams::parse(r#"{"iexec_input_files":["file:///etc/passwd"]}"#).unwrap();
        assert_eq!(
            file.check_standard(),
            Err(ParamsError::BadInputFile("file:///etc/passwd".into()))
        );
    }

    #[test]
    fn wrong_types_and_non_objects_are_malformed() {
        assert!(matches!(
            RequestParams::parse(r#"{"iexec_input_files":"one"}"#),
            Err(ParamsError::Malformed(_))
        ));
        assert!(matches!(
            RequestParams::parse("[1,2]"),
            Err(ParamsError::Malformed(_))
        ));
    }

    #[test]
    fn serialization_leaves_empty_keys_out_and_round_trips() {
        let params = RequestParams {
            iexec_result_storage_provider: Some("ipfs".into()),
            iexec_args: Some("a b".into()),
            iexec_input_files: vec!["https://example.org/x".into()],
            ..Default::default()
        };
        let json = params.to_json();
        assert_eq!(
            json,
            r#"{"iexec_result_storage_provider":"ipfs","iexec_input_files":["https://example.org/x"],"iexec_args":"a b"}"#
        );
        assert_eq!(RequestParams::parse(&json).unwrap(), params);
    }
}
