//! A client of the Kubo RPC API (`/api/v0/...`), which Kubo and js-ipfs both serve: add (and
//! pin), cat, pin and id, with timeouts, retries of connection errors, and a size cap on
//! everything read. Replies from both implementations are accepted (js-ipfs returns `Size`
//! as a number where Kubo returns a string).

use std::time::Duration;

use serde::Deserialize;

/// Why an IPFS call failed.
#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    /// The node could not be reached.
    #[error(
        "the IPFS node at {endpoint} does not answer: {reason} (is it running? `pew devnet up` starts one)"
    )]
    Unreachable {
        /// The API or gateway base URL.
        endpoint: String,
        /// The transport error.
        reason: String,
    },
    /// The node answered with an error.
    #[error("IPFS {call} failed: {status}: {body}")]
    Status {
        /// The API call.
        call: String,
        /// HTTP status.
        status: u16,
        /// The node's message.
        body: String,
    },
    /// The node answered something unexpected.
    #[error("IPFS {call} gave an unexpected reply: {reason}")]
    Reply {
        /// The API call.
        call: String,
        /// What is wrong with the reply.
        reason: String,
    },
    /// The content is larger than allowed.
    #[error("the content of {cid} is larger than {max} bytes: refusing it")]
    TooLarge {
        /// The content id.
        cid: String,
        /// The cap.
        max: u64,
    },
    /// A string that is not a CID or an /ipfs/ path.
    #[error("`{0}` is not an IPFS reference: use a CID, /ipfs/CID or ipfs://CID")]
    BadReference(String),
}

/// What `add` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The content id.
    pub cid: String,
    /// The size the node reports.
    pub size: u64,
}

#[derive(Deserialize)]
struct AddReply {
    #[serde(rename = "Hash")]
    hash: String,
    #[serde(rename = "Size")]
    size: SizeField,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeField {
    Number(u64),
    Text(String),
}

impl SizeField {
    fn value(&self) -> Option<u64> {
        match self {
            SizeField::Number(n) => Some(*n),
            SizeField::Text(t) => t.parse().ok(),
        }
    }
}

/// Extracts the CID from `Qm…`, `/ipfs/Qm…[/path]` or `ipfs://Qm…[/path]` (path kept).
pub fn parse_reference(reference: &str) -> Result<String, IpfsError> {
    let text = reference.trim();
    let rest = text
        .strip_prefix("ipfs://")
        .or_else(|| text.strip_prefix("/ipfs/"))
        .unwrap_or(text);
    let cid = rest.split('/').next().unwrap_or_default();
    let plausible = cid.len() >= 46 && cid.bytes().all(|b| b.is_ascii_alphanumeric());
    if plausible {
        Ok(rest.to_string())
    } else {
        Err(IpfsError::BadReference(reference.into()))
    }
}

/// A Kubo RPC API endpoint.
#[derive(Debug, Clone)]
pub struct IpfsClient {
    api: String,
    http: reqwest::Client,
    retries: u32,
}

impl IpfsClient {
    /// A client of the API at `api` (e.g. `http://127.0.0.1:5001`).
    pub fn new(api: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a reqwest client with a timeout builds");
        Self {
            api: api.trim_end_matches('/').to_string(),
            http,
            retries: 3,
        }
    }

    /// The API base URL.
    pub fn endpoint(&self) -> &str {
        &self.api
    }

    /// POSTs an API call; `file` is sent as a multipart file part when given.
    async fn post(
        &self,
        call: &str,
        query: &[(&str, &str)],
        file: Option<&[u8]>,
    ) -> Result<reqwest::Response, IpfsError> {
        let url = format!("{}/api/v0/{call}", self.api);
        let mut attempt = 0;
        loop {
            let mut request = self.http.post(&url).query(query);
            if let Some(bytes) = file {
                let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name("result")
                    .mime_str("application/octet-stream")
                    .expect("a valid MIME type");
                request = request.multipart(reqwest::multipart::Form::new().part("file", part));
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    return Err(IpfsError::Status {
                        call: call.into(),
                        status,
                        body: body.chars().take(300).collect(),
                    });
                }
                Err(e) if (e.is_connect() || e.is_timeout()) && attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
                Err(e) => {
                    return Err(IpfsError::Unreachable {
                        endpoint: self.api.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// The node's peer id (proves it answers).
    pub async fn id(&self) -> Result<String, IpfsError> {
        let reply: serde_json::Value =
            self.post("id", &[], None)
                .await?
                .json()
                .await
                .map_err(|e| IpfsError::Reply {
                    call: "id".into(),
                    reason: e.to_string(),
                })?;
        reply
            .get("ID")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| IpfsError::Reply {
                call: "id".into(),
                reason: "no ID".into(),
            })
    }

    /// Adds `bytes` as one file, pinned, and returns its CID (CIDv0, as iExec links use).
    pub async fn add(&self, bytes: &[u8]) -> Result<Added, IpfsError> {
        let text = self
            .post("add", &[("pin", "true"), ("cid-version", "0")], Some(bytes))
            .await?
            .text()
            .await
            .map_err(|e| IpfsError::Reply {
                call: "add".into(),
                reason: e.to_string(),
            })?;
        // One JSON object per line; the last one is the file.
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        let reply: AddReply = serde_json::from_str(line).map_err(|e| IpfsError::Reply {
            call: "add".into(),
            reason: format!("{e}: {line}"),
        })?;
        let size = reply.size.value().ok_or_else(|| IpfsError::Reply {
            call: "add".into(),
            reason: "Size is not a number".into(),
        })?;
        Ok(Added {
            cid: reply.hash,
            size,
        })
    }

    /// Pins content already known to the node.
    pub async fn pin(&self, cid: &str) -> Result<(), IpfsError> {
        self.post("pin/add", &[("arg", cid)], None)
            .await
            .map(|_| ())
    }

    /// Reads content by CID or /ipfs/ path, refusing more than `max` bytes.
    pub async fn cat(&self, reference: &str, max: u64) -> Result<Vec<u8>, IpfsError> {
        let path = parse_reference(reference)?;
        let response = self.post("cat", &[("arg", &path)], None).await?;
        read_capped(response, &path, max).await
    }
}

/// Reads content through an HTTP gateway (`{gateway}/ipfs/{cid}`), refusing more than `max`.
pub async fn gateway_get(
    gateway: &str,
    reference: &str,
    max: u64,
    timeout: Duration,
) -> Result<Vec<u8>, IpfsError> {
    let path = parse_reference(reference)?;
    let url = format!("{}/ipfs/{path}", gateway.trim_end_matches('/'));
    let response = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("a reqwest client builds")
        .get(&url)
        .send()
        .await
        .map_err(|e| IpfsError::Unreachable {
            endpoint: gateway.into(),
            reason: e.to_string(),
        })?;
    if !response.status().is_success() {
        return Err(IpfsError::Status {
            call: format!("GET {url}"),
            status: response.status().as_u16(),
            body: String::new(),
        });
    }
    read_capped(response, &path, max).await
}

async fn read_capped(
    mut response: reqwest::Response,
    cid: &str,
    max: u64,
) -> Result<Vec<u8>, IpfsError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| IpfsError::Reply {
        call: "cat".into(),
        reason: e.to_string(),
    })? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max {
            return Err(IpfsError::TooLarge {
                cid: cid.into(),
                max,
            });
        }
    }
    Ok(bytes)
}

/// The results link PoCo stores for an IPFS result, byte for byte as iExec workers write it
/// (PROTOCOL.md §6.9), so the official SDK can parse and download it.
pub fn results_link(cid: &str) -> String {
    format!("{{ \"storage\": \"ipfs\", \"location\": \"/ipfs/{cid}\" }}")
}

/// The results link of a callback task: nothing is uploaded, the result went to the callback
/// contract (PROTOCOL.md §6.9; the address in lower case, as web3j prints it).
pub fn callback_results_link(callback: alloy::primitives::Address) -> String {
    format!("{{ \"storage\": \"ethereum\", \"location\": \"{callback:#x}\" }}")
}

/// The IPFS location in a task's `results` bytes, if they are an IPFS results link.
pub fn location_from_results(results: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(results).ok()?;
    if json.get("storage")?.as_str()? != "ipfs" {
        return None;
    }
    json.get("location")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN";

    #[test]
    fn the_results_link_is_byte_exact() {
        assert_eq!(
            results_link(CID),
            r#"{ "storage": "ipfs", "location": "/ipfs/QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN" }"#
        );
        assert_eq!(
            location_from_results(results_link(CID).as_bytes()),
            Some(format!("/ipfs/{CID}"))
        );
        assert_eq!(
            location_from_results(br#"{"storage":"ethereum","location":"0x1"}"#),
            None
        );
        assert_eq!(location_from_results(b"garbage"), None);
        let callback = alloy::primitives::address!("5FbDB2315678afecb367f032d93F642f64180aa3");
        assert_eq!(
            callback_results_link(callback),
            r#"{ "storage": "ethereum", "location": "0x5fbdb2315678afecb367f032d93f642f64180aa3" }"#
        );
        assert_eq!(
            location_from_results(callback_results_link(callback).as_bytes()),
            None
        );
    }

    #[test]
    fn references_are_parsed_in_every_form() {
        assert_eq!(parse_reference(CID).unwrap(), CID);
        assert_eq!(parse_reference(&format!("/ipfs/{CID}")).unwrap(), CID);
        assert_eq!(
            parse_reference(&format!("ipfs://{CID}/a.txt")).unwrap(),
            format!("{CID}/a.txt")
        );
        assert!(parse_reference("/ipfs/../../etc").is_err());
        assert!(parse_reference("").is_err());
    }

    #[test]
    fn add_replies_of_kubo_and_js_ipfs_both_parse() {
        let kubo: AddReply =
            serde_json::from_str(r#"{"Name":"f","Hash":"Qm","Size":"14"}"#).unwrap();
        let js: AddReply = serde_json::from_str(r#"{"Name":"f","Hash":"Qm","Size":14}"#).unwrap();
        assert_eq!(kubo.size.value(), Some(14));
        assert_eq!(js.size.value(), Some(14));
    }
}
