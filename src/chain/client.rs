//! Which chain pew talks to, and the connection to it.
//!
//! A target comes from a preset (`arbitrum`, `arbitrum-sepolia`, `devnet`) or from an explicit
//! RPC URL and hub; [`connect`] refuses a node whose chain id differs from the expected one,
//! before anything is signed: a key must never sign for a chain it did not mean.

use std::path::Path;
use std::time::Duration;

use alloy::primitives::{Address, address};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use serde::Serialize;

use super::bindings::IexecInterfaceToken;
use super::sender::{SendPolicy, TxSender};
use crate::devnet::DevnetInfo;

/// Everything needed to reach one PoCo deployment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainTarget {
    /// Preset name, or "custom".
    pub name: String,
    /// JSON-RPC endpoint.
    pub rpc_url: String,
    /// Expected chain id; 0 accepts whatever the node reports (custom targets only).
    pub chain_id: u64,
    /// The PoCo proxy.
    pub hub: Address,
    /// IPFS RPC API for uploads and fetches, if one is known.
    pub ipfs_api: Option<String>,
    /// IPFS HTTP gateway for fetches, if one is known.
    pub ipfs_gateway: Option<String>,
}

/// A chain that cannot be reached or is not the expected one.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A preset name pew does not know.
    #[error(
        "unknown chain `{0}`: use arbitrum, arbitrum-sepolia or devnet (or --rpc-url with --hub)"
    )]
    UnknownPreset(String),
    /// A custom target lacks its hub or RPC URL.
    #[error("a custom chain needs both --rpc-url and --hub")]
    Incomplete,
    /// A malformed address or URL.
    #[error("{what} `{value}` is not valid: {reason}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The devnet description could not be read.
    #[error(transparent)]
    Devnet(#[from] crate::devnet::DevnetError),
    /// The node does not answer.
    #[error(
        "the RPC node at {url} does not answer: {reason} (check the URL, or start the devnet with `pew devnet up`)"
    )]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The node is on another chain.
    #[error(
        "the RPC node at {url} is on chain {actual}, not {expected} ({name}): refusing to sign anything for it"
    )]
    WrongChain {
        /// The endpoint.
        url: String,
        /// The preset or "custom".
        name: String,
        /// What was expected.
        expected: u64,
        /// What the node says.
        actual: u64,
    },
}

impl ChainTarget {
    /// Resolves a target: `preset` gives defaults, `rpc_url` and `hub` override them.
    /// `devnet` reads `devnet_file`. A preset of "custom" needs both overrides.
    pub fn resolve(
        preset: &str,
        rpc_url: Option<&str>,
        hub: Option<&str>,
        devnet_file: &Path,
    ) -> Result<Self, ChainError> {
        let mut target = match preset {
            "arbitrum" => ChainTarget {
                name: preset.into(),
                rpc_url: "https://arb1.arbitrum.io/rpc".into(),
                chain_id: 42161,
                hub: address!("098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0"),
                ipfs_api: None,
                ipfs_gateway: Some("https://ipfs-gateway.arbitrum-mainnet.iex.ec".into()),
            },
            "arbitrum-sepolia" => ChainTarget {
                name: preset.into(),
                rpc_url: "https://sepolia-rollup.arbitrum.io/rpc".into(),
                chain_id: 421614,
                hub: address!("B2157BF2fAb286b2A4170E3491Ac39770111Da3E"),
                ipfs_api: None,
                ipfs_gateway: Some("https://ipfs-gateway.arbitrum-sepolia-testnet.iex.ec".into()),
            },
            "devnet" => {
                let info = DevnetInfo::read(devnet_file)?;
                ChainTarget {
                    name: preset.into(),
                    rpc_url: info.rpc_url,
                    chain_id: info.chain_id,
                    hub: info.hub,
                    ipfs_api: info.ipfs_api,
                    ipfs_gateway: info.ipfs_gateway,
                }
            }
            "custom" | "" => {
                let (Some(url), Some(hub)) = (rpc_url, hub) else {
                    return Err(ChainError::Incomplete);
                };
                ChainTarget {
                    name: "custom".into(),
                    rpc_url: url.into(),
                    chain_id: 0,
                    hub: parse_address("hub", hub)?,
                    ipfs_api: None,
                    ipfs_gateway: None,
                }
            }
            other => return Err(ChainError::UnknownPreset(other.into())),
        };
        if let Some(url) = rpc_url.filter(|u| !u.is_empty()) {
            target.rpc_url = url.into();
        }
        if let Some(hub) = hub.filter(|h| !h.is_empty()) {
            target.hub = parse_address("hub", hub)?;
        }
        Ok(target)
    }
}

/// Parses an address, naming the setting when it is malformed. An address written in mixed
/// case carries an EIP-55 checksum, and one whose checksum fails is refused: it is a typo or a
/// tampered copy, and funds sent there are lost. All-lower and all-upper hex carry none and
/// are taken as they are.
pub fn parse_address(what: &'static str, value: &str) -> Result<Address, ChainError> {
    let invalid = |reason: String| ChainError::Invalid {
        what,
        value: crate::text::quote(value),
        reason,
    };
    let text = value.trim();
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let address: Address = text
        .parse()
        .map_err(|e: alloy::hex::FromHexError| invalid(e.to_string()))?;
    let mixed_case =
        hex.bytes().any(|b| b.is_ascii_uppercase()) && hex.bytes().any(|b| b.is_ascii_lowercase());
    if mixed_case && Address::parse_checksummed(format!("0x{hex}"), None).is_err() {
        return Err(invalid(format!(
            "its mixed-case EIP-55 checksum is wrong (the checksummed form of that hex is {}); check for a typo, or write it all in lower case",
            address.to_checksum(None)
        )));
    }
    Ok(address)
}

/// Longest wait for one RPC answer: a node that stops answering must not hang pew.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// A read-only provider over HTTP whose every request times out after [`RPC_TIMEOUT`].
pub fn http_provider(url: url::Url) -> DynProvider {
    let client = reqwest::Client::builder()
        .timeout(RPC_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client with timeouts builds");
    let transport = alloy::transports::http::Http::with_client(client, url.clone());
    let is_local = url
        .host_str()
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost");
    let rpc = alloy::rpc::client::RpcClient::new(transport, is_local);
    ProviderBuilder::new().connect_client(rpc).erased()
}

/// A connection to a verified chain.
#[derive(Clone)]
pub struct Chain {
    /// What was connected to; `chain_id` is the node's.
    pub target: ChainTarget,
    /// Read-only provider (signing goes through [`TxSender`]).
    pub provider: DynProvider,
}

/// Connects and checks the chain id.
pub async fn connect(target: ChainTarget) -> Result<Chain, ChainError> {
    let url = target
        .rpc_url
        .parse()
        .map_err(|e: url::ParseError| ChainError::Invalid {
            what: "RPC URL",
            value: target.rpc_url.clone(),
            reason: e.to_string(),
        })?;
    let provider = http_provider(url);
    let actual = tokio::time::timeout(Duration::from_secs(15), provider.get_chain_id())
        .await
        .map_err(|_| ChainError::Unreachable {
            url: target.rpc_url.clone(),
            reason: "no answer within 15 s".into(),
        })?
        .map_err(|e| ChainError::Unreachable {
            url: target.rpc_url.clone(),
            // A server that is not a JSON-RPC node may answer with a whole HTML page.
            reason: crate::text::quote(&e.to_string()),
        })?;
    if target.chain_id != 0 && actual != target.chain_id {
        return Err(ChainError::WrongChain {
            url: target.rpc_url.clone(),
            name: target.name.clone(),
            expected: target.chain_id,
            actual,
        });
    }
    let mut target = target;
    target.chain_id = actual;
    Ok(Chain { target, provider })
}

impl Chain {
    /// The PoCo proxy, for reads.
    pub fn hub(&self) -> IexecInterfaceToken::IexecInterfaceTokenInstance<DynProvider> {
        IexecInterfaceToken::new(self.target.hub, self.provider.clone())
    }

    /// The EIP-712 domain of this chain's PoCo.
    pub fn domain(&self) -> Eip712Domain {
        crate::poco::order::domain(self.target.chain_id, self.target.hub)
    }

    /// A transaction sender for `signer` on this (verified) chain.
    pub fn sender(&self, signer: PrivateKeySigner, policy: SendPolicy) -> TxSender {
        TxSender::new(self.provider.clone(), signer, self.target.chain_id, policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_carry_the_known_deployments() {
        let arbitrum = ChainTarget::resolve("arbitrum", None, None, Path::new("")).unwrap();
        assert_eq!(arbitrum.chain_id, 42161);
        assert_eq!(
            arbitrum.hub,
            address!("098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0")
        );
        let sepolia = ChainTarget::resolve(
            "arbitrum-sepolia",
            Some("http://127.0.0.1:1"),
            None,
            Path::new(""),
        )
        .unwrap();
        assert_eq!(
            (sepolia.chain_id, sepolia.rpc_url.as_str()),
            (421614, "http://127.0.0.1:1")
        );
    }

    #[test]
    fn custom_targets_need_url_and_hub() {
        assert!(matches!(
            ChainTarget::resolve("custom", Some("http://x"), None, Path::new("")),
            Err(ChainError::Incomplete)
        ));
        let bad = ChainTarget::resolve("custom", Some("http://x"), Some("0x12"), Path::new(""));
        assert!(bad.unwrap_err().to_string().contains("hub"));
        assert!(matches!(
            ChainTarget::resolve("mainnet", None, None, Path::new("")),
            Err(ChainError::UnknownPreset(_))
        ));
    }

    #[test]
    fn mixed_case_addresses_must_carry_a_valid_checksum() {
        let good = "0x098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0";
        assert!(parse_address("hub", good).is_ok());
        assert!(parse_address("hub", &good.to_lowercase()).is_ok());
        assert!(parse_address("hub", &good[2..].to_uppercase()).is_ok());
        // One letter's case flipped: the checksum fails.
        let typo = good.replacen("bFCb", "bFcb", 1);
        let err = parse_address("node.pool", &typo).unwrap_err().to_string();
        assert!(
            err.contains("node.pool") && err.contains("checksum"),
            "{err}"
        );
        assert!(err.contains(good), "the right form is suggested: {err}");
    }

    #[test]
    fn a_huge_bad_value_is_quoted_not_echoed() {
        let huge = "z".repeat(10_000_000);
        let err = parse_address("node.pool", &huge).unwrap_err().to_string();
        assert!(err.len() < 600, "{} bytes", err.len());
        assert!(err.contains("10000000 bytes in all"), "{}", &err[..300]);
    }

    #[test]
    fn a_missing_devnet_file_says_to_start_the_devnet() {
        let err = ChainTarget::resolve("devnet", None, None, Path::new("/nowhere/devnet.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pew devnet up"), "{err}");
    }
}
