//! Deploys the real iExec PoCo v6 contracts (token flavour, the Arbitrum facet set) from the
//! compiled artifacts of the pinned `@iexec/poco` package onto a fresh chain.
//!
//! The sequence follows shared/poco/DEVNET.md §3: RLC, the diamond plumbing, the Diamond, the
//! orders library, every iExec facet cut in, the three registries, `configure`, the five
//! categories and the Arbitrum callback gas. Nothing here imitates PoCo: every byte of code that
//! lands on chain comes from the package.

use std::path::{Path, PathBuf};

use alloy::json_abi::JsonAbi;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{SolCall, SolValue};
use serde::Deserialize;

use crate::abi::{AppRegistry, IexecInterfaceToken, RLC};

/// The Arbitrum facet set, in upstream's deployment order (the two Boost facets are not
/// deployed on Arbitrum, so they are not deployed here either).
pub const IEXEC_FACETS: [&str; 11] = [
    "IexecAccessorsABILegacyFacet",
    "IexecCategoryManagerFacet",
    "IexecConfigurationExtraFacet",
    "IexecConfigurationFacet",
    "IexecERC20Facet",
    "IexecEscrowTokenFacet",
    "IexecOrderManagementFacet",
    "IexecPoco1Facet",
    "IexecPoco2Facet",
    "IexecPocoAccessorsFacet",
    "IexecRelayFacet",
];

/// The categories of the production deployments: (name, workClockTimeRef in seconds).
pub const CATEGORIES: [(&str, u64); 5] = [
    ("XS", 300),
    ("S", 1200),
    ("M", 3600),
    ("L", 10800),
    ("XL", 36000),
];

/// Callback gas set on Arbitrum since PoCo 6.2.0.
const CALLBACK_GAS: u64 = 200_000;

/// RLC given to each dev account other than the deployer: 1 000 000 RLC in nRLC.
pub const DEV_ACCOUNT_RLC: u64 = 1_000_000 * 1_000_000_000;

/// The fully qualified name whose hash makes the library link placeholder.
const ORDERS_LIBRARY: &str = "contracts/libs/IexecLibOrders_v5.sol:IexecLibOrders_v5";

sol! {
    /// One entry of an ERC-2535 diamond cut.
    struct FacetCut { address facetAddress; uint8 action; bytes4[] functionSelectors; }
    /// The Diamond constructor's second argument.
    struct DiamondArgs { address owner; address init; bytes initCalldata; }
    /// The standard ERC-2535 cut function, served by DiamondCutFacet.
    interface IDiamondCut {
        function diamondCut(FacetCut[] cut, address init, bytes data) external;
    }
}

/// Addresses of a deployed PoCo instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The Diamond proxy every client talks to.
    pub hub: Address,
    /// The RLC token.
    pub rlc: Address,
    /// The app registry.
    pub app_registry: Address,
    /// The dataset registry.
    pub dataset_registry: Address,
    /// The workerpool registry.
    pub workerpool_registry: Address,
}

/// A deployment step that failed, named so the operator knows where it stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// An artifact file is missing or malformed.
    #[error("artifact {path}: {reason} (run scripts/setup to reinstall the PoCo package)")]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A transaction failed or reverted.
    #[error("deployment step `{step}` failed: {reason}")]
    Step {
        /// The step, e.g. "deploy IexecPoco1Facet".
        step: String,
        /// What the node said.
        reason: String,
    },
}

/// The parts of a compiled artifact that deployment needs.
#[derive(Debug, Deserialize)]
struct RawArtifact {
    abi: JsonAbi,
    bytecode: String,
    #[serde(default, rename = "linkReferences")]
    link_references: serde_json::Map<String, serde_json::Value>,
}

/// A loaded artifact, with its creation bytecode linked.
struct Artifact {
    abi: JsonAbi,
    bytecode: Bytes,
}

fn read_artifact(path: &Path, library: Option<Address>) -> Result<Artifact, DeployError> {
    let bad = |reason: String| DeployError::Artifact {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let raw: RawArtifact = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut hex = raw.bytecode.trim_start_matches("0x").to_string();
    let slots = link_slots(&raw.link_references);
    if !slots.is_empty() {
        let library =
            library.ok_or_else(|| bad("needs the orders library, not deployed yet".into()))?;
        let address = alloy::hex::encode(library.as_slice());
        for start in slots {
            let at = start.saturating_mul(2);
            if !hex.is_ascii() || at.saturating_add(40) > hex.len() {
                return Err(bad(format!(
                    "link slot at byte {start} is past the bytecode end"
                )));
            }
            hex.replace_range(at..at + 40, &address);
        }
    }
    if hex.contains("__$") {
        return Err(bad(
            "bytecode still has an unlinked library placeholder".into()
        ));
    }
    let bytecode =
        alloy::hex::decode(&hex).map_err(|e| bad(format!("bytecode is not hex: {e}")))?;
    Ok(Artifact {
        abi: raw.abi,
        bytecode: bytecode.into(),
    })
}

/// Byte offsets of every slot that must receive the orders library address.
fn link_slots(references: &serde_json::Map<String, serde_json::Value>) -> Vec<usize> {
    let (file, name) = ORDERS_LIBRARY
        .split_once(':')
        .expect("ORDERS_LIBRARY is file:name");
    references
        .get(file)
        .and_then(|libs| libs.get(name))
        .and_then(|slots| slots.as_array())
        .map(|slots| {
            slots
                .iter()
                .filter_map(|slot| slot.get("start").and_then(|s| s.as_u64()))
                .map(|s| s as usize)
                .collect()
        })
        .unwrap_or_default()
}

/// Every selector a facet serves: its functions, plus the fallback (`0xffffffff`) and receive
/// (`0x00000000`) pseudo-selectors that the iExec Diamond routes by.
fn facet_selectors(abi: &JsonAbi) -> Vec<FixedBytes<4>> {
    let mut selectors: Vec<FixedBytes<4>> = abi.functions().map(|f| f.selector()).collect();
    if abi.fallback.is_some() {
        selectors.push(FixedBytes([0xff; 4]));
    }
    if abi.receive.is_some() {
        selectors.push(FixedBytes([0; 4]));
    }
    selectors
}

/// Sends transactions from the deployer and waits for each receipt.
struct Deployer {
    provider: DynProvider,
}

impl Deployer {
    async fn send(
        &self,
        step: &str,
        tx: TransactionRequest,
    ) -> Result<TransactionReceipt, DeployError> {
        let fail = |reason: String| DeployError::Step {
            step: step.to_string(),
            reason,
        };
        let pending = self
            .provider
            .send_transaction(tx)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let receipt = pending
            .get_receipt()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !receipt.status() {
            return Err(fail(format!(
                "transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        tracing::debug!(step, gas = receipt.gas_used, "done");
        Ok(receipt)
    }

    async fn deploy(&self, name: &str, code: Bytes) -> Result<Address, DeployError> {
        let step = format!("deploy {name}");
        let receipt = self
            .send(&step, TransactionRequest::default().with_deploy_code(code))
            .await?;
        receipt.contract_address.ok_or_else(|| DeployError::Step {
            step,
            reason: "the receipt has no contract address".into(),
        })
    }

    async fn call(&self, step: &str, to: Address, data: Vec<u8>) -> Result<(), DeployError> {
        self.send(
            step,
            TransactionRequest::default().with_to(to).with_input(data),
        )
        .await
        .map(|_| ())
    }
}

/// Deploys a complete PoCo instance with `deployer_key` (which becomes the owner of
/// everything) and gives each of `dev_accounts` [`DEV_ACCOUNT_RLC`].
pub async fn deploy_poco(
    rpc_url: &str,
    deployer_key: &PrivateKeySigner,
    poco_package: &Path,
    rlc_artifact: &Path,
    chain_id: u64,
    dev_accounts: &[Address],
) -> Result<Deployment, DeployError> {
    let deployer_address = deployer_key.address();
    let url = rpc_url.parse().map_err(|e| DeployError::Step {
        step: "connect".into(),
        reason: format!("bad RPC URL {rpc_url}: {e}"),
    })?;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer_key.clone()))
        .connect_http(url)
        .erased();
    let d = Deployer { provider };
    let arbitrum = poco_package.join("deployments/arbitrum");
    let artifacts = poco_package.join("artifacts/contracts");

    // 1. The RLC token (mints its whole supply to the deployer).
    let rlc = d
        .deploy("RLC", read_artifact(rlc_artifact, None)?.bytecode)
        .await?;

    // 2. Diamond plumbing: only the Arbitrum deployment files carry its bytecode.
    let mut plumbing = Vec::new();
    for name in [
        "DiamondInit",
        "DiamondCutFacet",
        "DiamondLoupeFacet",
        "OwnershipFacet",
    ] {
        let artifact = read_artifact(&arbitrum.join(format!("{name}.json")), None)?;
        let address = d.deploy(name, artifact.bytecode.clone()).await?;
        plumbing.push((name, address, artifact.abi));
    }
    let init = plumbing[0].1;
    let init_selector = plumbing[0]
        .2
        .function("init")
        .and_then(|f| f.first())
        .map(|f| f.selector())
        .ok_or_else(|| DeployError::Artifact {
            path: arbitrum.join("DiamondInit.json"),
            reason: "no init() function".into(),
        })?;
    let cut: Vec<FacetCut> = plumbing[1..]
        .iter()
        .map(|(_, address, abi)| FacetCut {
            facetAddress: *address,
            action: 0,
            functionSelectors: facet_selectors(abi),
        })
        .collect();

    // 3. The Diamond itself, cut with the plumbing and initialised through DiamondInit.
    let diamond = read_artifact(&artifacts.join("Diamond.sol/Diamond.json"), None)?;
    let args = DiamondArgs {
        owner: deployer_address,
        init,
        initCalldata: init_selector.to_vec().into(),
    };
    let mut code = diamond.bytecode.to_vec();
    code.extend((cut, args).abi_encode_params());
    let hub = d.deploy("Diamond", code.into()).await?;

    // 4. The orders library, linked into five facets.
    let library = read_artifact(
        &artifacts.join("libs/IexecLibOrders_v5.sol/IexecLibOrders_v5.json"),
        None,
    )?;
    let library = d.deploy("IexecLibOrders_v5", library.bytecode).await?;

    // 5. Every iExec facet, each cut in with all its selectors.
    for name in IEXEC_FACETS {
        let artifact = read_artifact(
            &artifacts.join(format!("facets/{name}.sol/{name}.json")),
            Some(library),
        )?;
        let facet = d.deploy(name, artifact.bytecode).await?;
        let call = IDiamondCut::diamondCutCall {
            cut: vec![FacetCut {
                facetAddress: facet,
                action: 0,
                functionSelectors: facet_selectors(&artifact.abi),
            }],
            init: Address::ZERO,
            data: Bytes::new(),
        };
        d.call(&format!("diamondCut {name}"), hub, call.abi_encode())
            .await?;
    }

    // 6. The registries: each deploys its own asset master in its constructor.
    let chain = chain_id.to_string();
    let mut registries = Vec::new();
    for (name, folder, kind) in [
        ("AppRegistry", "apps", "app"),
        ("DatasetRegistry", "datasets", "dataset"),
        ("WorkerpoolRegistry", "workerpools", "workerpool"),
    ] {
        let artifact = read_artifact(
            &artifacts.join(format!("registries/{folder}/{name}.sol/{name}.json")),
            None,
        )?;
        let registry = d.deploy(name, artifact.bytecode).await?;
        let initialize = AppRegistry::initializeCall {
            _previous: Address::ZERO,
        };
        d.call(
            &format!("{name}.initialize"),
            registry,
            initialize.abi_encode(),
        )
        .await?;
        let base_uri = AppRegistry::setBaseURICall {
            _baseURI: format!("https://nfts-metadata.iex.ec/{kind}/{chain}/"),
        };
        d.call(
            &format!("{name}.setBaseURI"),
            registry,
            base_uri.abi_encode(),
        )
        .await?;
        registries.push(registry);
    }
    let (app_registry, dataset_registry, workerpool_registry) =
        (registries[0], registries[1], registries[2]);

    // 7. Configuration, categories and callback gas, as on Arbitrum.
    let configure = IexecInterfaceToken::configureCall {
        _0: rlc,
        _1: "Staked RLC".into(),
        _2: "SRLC".into(),
        _3: 9,
        _4: app_registry,
        _5: dataset_registry,
        _6: workerpool_registry,
        _7: Address::ZERO,
    };
    d.call("configure", hub, configure.abi_encode()).await?;
    for (name, seconds) in CATEGORIES {
        // Upstream JSON-encodes the (empty) description, so the on-chain text is `""`.
        let create = IexecInterfaceToken::createCategoryCall {
            _0: name.into(),
            _1: "\"\"".into(),
            _2: U256::from(seconds),
        };
        d.call(&format!("createCategory {name}"), hub, create.abi_encode())
            .await?;
    }
    let callback_gas = IexecInterfaceToken::setCallbackGasCall::new((U256::from(CALLBACK_GAS),));
    d.call("setCallbackGas", hub, callback_gas.abi_encode())
        .await?;

    // 8. RLC for the other dev accounts.
    for account in dev_accounts.iter().filter(|a| **a != deployer_address) {
        let transfer = RLC::transferCall {
            _to: *account,
            _value: U256::from(DEV_ACCOUNT_RLC),
        };
        d.call(&format!("RLC to {account}"), rlc, transfer.abi_encode())
            .await?;
    }

    Ok(Deployment {
        hub,
        rlc,
        app_registry,
        dataset_registry,
        workerpool_registry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_slots_are_read_for_the_orders_library_only() {
        let refs: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"contracts/libs/IexecLibOrders_v5.sol":{"IexecLibOrders_v5":[{"length":20,"start":3},{"length":20,"start":40}]},
                "contracts/Other.sol":{"Other":[{"length":20,"start":99}]}}"#,
        )
        .unwrap();
        assert_eq!(link_slots(&refs), vec![3, 40]);
    }

    #[test]
    fn linking_replaces_every_placeholder_with_the_library_address() {
        let placeholder = "__$9d824026d0515d8abd681f0f0f4707f16a$__";
        let bytecode = format!("0x6080{placeholder}00{placeholder}");
        let artifact = serde_json::json!({
            "abi": [],
            "bytecode": bytecode,
            "linkReferences": {"contracts/libs/IexecLibOrders_v5.sol": {"IexecLibOrders_v5": [
                {"length": 20, "start": 2}, {"length": 20, "start": 23}]}}
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, artifact.to_string()).unwrap();
        let library: Address = "0x0165878A594ca255338adfa4d48449f69242Eb8F"
            .parse()
            .unwrap();
        let linked = read_artifact(&path, Some(library)).unwrap();
        let hex = alloy::hex::encode(&linked.bytecode);
        assert_eq!(
            hex,
            format!("6080{0}00{0}", "0165878a594ca255338adfa4d48449f69242eb8f")
        );
        assert!(
            read_artifact(&path, None).is_err(),
            "unlinked code must be refused"
        );
    }

    #[test]
    fn facet_selectors_include_fallback_and_receive() {
        let abi: JsonAbi = serde_json::from_str(
            r#"[{"type":"function","name":"deposit","inputs":[{"name":"a","type":"uint256"}],"outputs":[],"stateMutability":"nonpayable"},
                {"type":"fallback","stateMutability":"payable"},{"type":"receive","stateMutability":"payable"}]"#,
        )
        .unwrap();
        let selectors = facet_selectors(&abi);
        assert_eq!(
            selectors,
            vec![
                "0xb6b55f25".parse::<FixedBytes<4>>().unwrap(),
                FixedBytes([0xff; 4]),
                FixedBytes([0; 4])
            ]
        );
    }
}
