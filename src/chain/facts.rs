//! A quick read of what a PoCo deployment says about itself: categories, token, registries,
//! EIP-712 separator. Used by `pew devnet status` (and the demo) to prove the contracts answer.

use alloy::primitives::{Address, B256};
use alloy::providers::{Provider, ProviderBuilder};
use serde::Serialize;

use crate::abi::IexecInterfaceToken;

/// One work category as stored on chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CategoryFact {
    /// Category id (0-based).
    pub id: u64,
    /// Its name, e.g. "XS".
    pub name: String,
    /// Its reference run time in seconds.
    pub work_clock_time_ref: u64,
}

/// Facts read live from a PoCo proxy.
#[derive(Debug, Clone, Serialize)]
pub struct HubFacts {
    /// The chain id the RPC reports.
    pub chain_id: u64,
    /// The latest block.
    pub block: u64,
    /// The proxy address the facts were read from.
    pub hub: Address,
    /// `token()`: the RLC token.
    pub token: Address,
    /// `name()` of the escrow ledger ("Staked RLC").
    pub name: String,
    /// `appregistry()`.
    pub app_registry: Address,
    /// `datasetregistry()`.
    pub dataset_registry: Address,
    /// `workerpoolregistry()`.
    pub workerpool_registry: Address,
    /// `eip712domain_separator()`.
    pub domain_separator: B256,
    /// `callbackgas()`.
    pub callback_gas: u64,
    /// Every category, from `countCategory()` and `viewCategory(i)`.
    pub categories: Vec<CategoryFact>,
}

/// Reads [`HubFacts`] from `hub` through `rpc_url`.
pub async fn read_hub_facts(rpc_url: &str, hub: Address) -> anyhow::Result<HubFacts> {
    use anyhow::Context;
    let url = rpc_url
        .parse()
        .with_context(|| format!("bad RPC URL {rpc_url}"))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let chain_id = provider
        .get_chain_id()
        .await
        .with_context(|| format!("no answer from the RPC node at {rpc_url}"))?;
    let block = provider.get_block_number().await?;
    let poco = IexecInterfaceToken::new(hub, &provider);
    let context = || format!("reading PoCo at {hub} (is it deployed on this chain?)");
    let count = poco.countCategory().call().await.with_context(context)?;
    let mut categories = Vec::new();
    for id in 0..count.saturating_to::<u64>() {
        let category = poco
            .viewCategory(alloy::primitives::U256::from(id))
            .call()
            .await
            .with_context(context)?;
        categories.push(CategoryFact {
            id,
            name: category.name,
            work_clock_time_ref: category.workClockTimeRef.saturating_to(),
        });
    }
    Ok(HubFacts {
        chain_id,
        block,
        hub,
        token: poco.token().call().await.with_context(context)?,
        name: poco.name().call().await.with_context(context)?,
        app_registry: poco.appregistry().call().await.with_context(context)?,
        dataset_registry: poco.datasetregistry().call().await.with_context(context)?,
        workerpool_registry: poco
            .workerpoolregistry()
            .call()
            .await
            .with_context(context)?,
        domain_separator: poco
            .eip712domain_separator()
            .call()
            .await
            .with_context(context)?,
        callback_gas: poco
            .callbackgas()
            .call()
            .await
            .with_context(context)?
            .saturating_to(),
        categories,
    })
}
