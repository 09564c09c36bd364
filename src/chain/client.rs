//! Which chain pew talks to, and the connection to it.
//!
//! A target comes from a preset (`arbitrum`, `arbitrum-sepolia`) or from explicit RPC URLs and
//! a hub (the devnet's are resolved from its description by the command line, not here). Each
//! preset carries its hub's deployment block, the floor of every log scan: nothing of PoCo's
//! is older. [`connect`] refuses an endpoint whose chain id differs from the expected one,
//! before anything is signed: a key must never sign for a chain it did not mean.

use std::time::Duration;

use alloy::primitives::{Address, address};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use serde::Serialize;

use super::rpc::Endpoints;
use super::sender::{SendPolicy, TxSender};
use crate::abi::IexecInterfaceToken;

/// Everything needed to reach one PoCo deployment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainTarget {
    /// Preset name, "devnet", or "custom".
    pub name: String,
    /// JSON-RPC endpoints, in the order they are tried (the next takes over when one keeps
    /// failing).
    pub rpc_urls: Vec<String>,
    /// Expected chain id; 0 accepts whatever the node reports (custom targets only).
    pub chain_id: u64,
    /// The PoCo proxy.
    pub hub: Address,
    /// The block the hub was deployed in: no log scan starts below it.
    pub deploy_block: u64,
    /// About how many blocks the chain makes in a day (bounds on log scans are in days).
    pub blocks_per_day: u64,
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
        /// Its value (quoted).
        value: String,
        /// Why.
        reason: String,
    },
    /// No endpoint answers.
    #[error(
        "the RPC node at {url} does not answer: {reason} (check the URL, or start the devnet with `pew devnet up`)"
    )]
    Unreachable {
        /// The endpoint(s).
        url: String,
        /// The transport error.
        reason: String,
    },
    /// An endpoint is on another chain.
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

/// Arbitrum makes about four blocks a second.
const ARBITRUM_BLOCKS_PER_DAY: u64 = 4 * 86_400;

impl ChainTarget {
    /// A preset: `arbitrum` (Arbitrum One) or `arbitrum-sepolia`.
    pub fn preset(name: &str) -> Result<Self, ChainError> {
        match name {
            "arbitrum" => Ok(ChainTarget {
                name: name.into(),
                rpc_urls: vec!["https://arb1.arbitrum.io/rpc".into()],
                chain_id: 42161,
                hub: address!("098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0"),
                deploy_block: 363_864_242,
                blocks_per_day: ARBITRUM_BLOCKS_PER_DAY,
                ipfs_api: None,
                ipfs_gateway: Some("https://ipfs-gateway.arbitrum-mainnet.iex.ec".into()),
            }),
            "arbitrum-sepolia" => Ok(ChainTarget {
                name: name.into(),
                rpc_urls: vec!["https://sepolia-rollup.arbitrum.io/rpc".into()],
                chain_id: 421614,
                hub: address!("B2157BF2fAb286b2A4170E3491Ac39770111Da3E"),
                deploy_block: 178_282_956,
                blocks_per_day: ARBITRUM_BLOCKS_PER_DAY,
                ipfs_api: None,
                ipfs_gateway: Some("https://ipfs-gateway.arbitrum-sepolia-testnet.iex.ec".into()),
            }),
            other => Err(ChainError::UnknownPreset(other.into())),
        }
    }

    /// A chain given by its RPC endpoint and hub alone (chain id taken from the node, every
    /// log scan from block 0).
    pub fn custom(rpc_url: &str, hub: &str) -> Result<Self, ChainError> {
        Ok(ChainTarget {
            name: "custom".into(),
            rpc_urls: vec![rpc_url.into()],
            chain_id: 0,
            hub: parse_address("hub", hub)?,
            deploy_block: 0,
            blocks_per_day: 86_400,
            ipfs_api: None,
            ipfs_gateway: None,
        })
    }

    /// The endpoints in force: `urls` when any are given, else the target's own.
    pub fn with_rpc_urls(mut self, urls: &[String]) -> Self {
        let urls: Vec<String> = urls
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if !urls.is_empty() {
            self.rpc_urls = urls;
        }
        self
    }

    /// The first block of log scans: the hub's deployment block, or `configured` when that is
    /// higher (`chain.log_from_block` can only raise the floor).
    pub fn scan_floor(&self, configured: u64) -> u64 {
        self.deploy_block.max(configured)
    }

    /// The fee cap pew uses on this chain unless configured (`chain.max_fee_per_gas_gwei`):
    /// Arbitrum's base fee is a few hundredths of a gwei, so 2 gwei only stops a spike; the
    /// devnet starts at 1 gwei.
    pub fn default_fee_cap_gwei(&self) -> f64 {
        match self.name.as_str() {
            "arbitrum" | "arbitrum-sepolia" => 2.0,
            _ => 100.0,
        }
    }

    /// The endpoints, shown without their keys, for messages.
    pub fn endpoints_shown(&self) -> String {
        self.rpc_urls
            .iter()
            .map(|u| match u.parse::<url::Url>() {
                Ok(url) => super::rpc::shown(&url),
                Err(_) => crate::text::quote(u),
            })
            .collect::<Vec<_>>()
            .join(", ")
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

fn parse_urls(urls: &[String]) -> Result<Vec<url::Url>, ChainError> {
    if urls.is_empty() {
        return Err(ChainError::Incomplete);
    }
    urls.iter()
        .map(|u| {
            u.parse().map_err(|e: url::ParseError| ChainError::Invalid {
                what: "RPC URL",
                value: crate::text::quote(u),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// A read-only provider over the endpoints `urls` (see [`super::rpc`]), every request timing
/// out after [`RPC_TIMEOUT`].
pub fn provider(urls: Vec<url::Url>) -> (DynProvider, Endpoints) {
    let is_local = urls.iter().all(|u| {
        u.host_str()
            .is_some_and(|h| h == "127.0.0.1" || h == "localhost")
    });
    let endpoints = Endpoints::new(urls, RPC_TIMEOUT);
    let rpc = alloy::rpc::client::RpcClient::new(endpoints.clone(), is_local);
    (
        ProviderBuilder::new().connect_client(rpc).erased(),
        endpoints,
    )
}

/// A read-only provider over one endpoint (for helpers outside a node: the devnet, facts).
pub fn http_provider(url: url::Url) -> DynProvider {
    provider(vec![url]).0
}

/// A connection to a verified chain.
#[derive(Clone)]
pub struct Chain {
    /// What was connected to; `chain_id` is the node's.
    pub target: ChainTarget,
    /// Read-only provider (signing goes through [`TxSender`]).
    pub provider: DynProvider,
    /// The endpoints behind the provider: which is in use, why it switched.
    pub endpoints: Endpoints,
}

/// Connects and checks the chain id of every endpoint that answers; at least one must. An
/// endpoint that answers for another chain is refused outright, even behind a good one.
pub async fn connect(target: ChainTarget) -> Result<Chain, ChainError> {
    let urls = parse_urls(&target.rpc_urls)?;
    let mut actual_id = None;
    let mut unreachable = Vec::new();
    for url in &urls {
        // Each endpoint on its own, once, with no retries: a dead one is noted, not waited for.
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with timeouts builds");
        let transport = alloy::transports::http::Http::with_client(probe, url.clone());
        let single = ProviderBuilder::new()
            .connect_client(alloy::rpc::client::RpcClient::new(transport, true))
            .erased();
        let shown = super::rpc::shown(url);
        match tokio::time::timeout(Duration::from_secs(15), single.get_chain_id()).await {
            Ok(Ok(actual)) => {
                let expected = if target.chain_id != 0 {
                    target.chain_id
                } else {
                    actual_id.unwrap_or(actual)
                };
                if actual != expected {
                    return Err(ChainError::WrongChain {
                        url: shown,
                        name: target.name.clone(),
                        expected,
                        actual,
                    });
                }
                actual_id = Some(actual);
            }
            Ok(Err(error)) => unreachable.push(format!(
                "{shown}: {}",
                crate::text::one_line(&error.to_string(), 160)
            )),
            Err(_) => unreachable.push(format!("{shown}: no answer within 15 s")),
        }
    }
    let Some(actual) = actual_id else {
        return Err(ChainError::Unreachable {
            url: target.endpoints_shown(),
            reason: unreachable.join("; "),
        });
    };
    for dead in &unreachable {
        tracing::warn!(endpoint = %dead, "an RPC endpoint does not answer; the others are used");
    }
    let (provider, endpoints) = provider(urls);
    let mut target = target;
    target.chain_id = actual;
    Ok(Chain {
        target,
        provider,
        endpoints,
    })
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
    fn presets_carry_the_known_deployments_and_their_floors() {
        let arbitrum = ChainTarget::preset("arbitrum").unwrap();
        assert_eq!(arbitrum.chain_id, 42161);
        assert_eq!(
            arbitrum.hub,
            address!("098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0")
        );
        assert_eq!(arbitrum.deploy_block, 363_864_242);
        let sepolia = ChainTarget::preset("arbitrum-sepolia")
            .unwrap()
            .with_rpc_urls(&["http://127.0.0.1:1".into()]);
        assert_eq!(
            (sepolia.chain_id, sepolia.rpc_urls.as_slice()),
            (421614, ["http://127.0.0.1:1".to_string()].as_slice())
        );
        assert_eq!(sepolia.deploy_block, 178_282_956);
        // chain.log_from_block can only raise the floor.
        assert_eq!(arbitrum.scan_floor(0), 363_864_242);
        assert_eq!(arbitrum.scan_floor(100), 363_864_242);
        assert_eq!(arbitrum.scan_floor(400_000_000), 400_000_000);
        assert!(matches!(
            ChainTarget::preset("mainnet"),
            Err(ChainError::UnknownPreset(_))
        ));
    }

    #[test]
    fn custom_targets_need_a_valid_hub() {
        let bad = ChainTarget::custom("http://x", "0x12");
        assert!(bad.unwrap_err().to_string().contains("hub"));
        assert_eq!(
            ChainTarget::custom("http://x", "0x098bfcb1e50ebca0baa92c12ea0c3f045a1ad9f0")
                .unwrap()
                .deploy_block,
            0
        );
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
}
