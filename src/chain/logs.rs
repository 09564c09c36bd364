//! Reading logs in bounded block ranges, because public RPC nodes cap the range of one
//! `eth_getLogs` (and the answer size): pew asks for at most `chunk` blocks at a time and
//! halves the range when the node refuses one.

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};

/// Logs of `address` with topic0 `topic0` (and, if given, topic1 `topic1`) in
/// `from..=to`, oldest first.
pub async fn scan(
    provider: &DynProvider,
    address: Address,
    topic0: B256,
    topic1: Option<B256>,
    from: u64,
    to: u64,
    chunk: u64,
) -> Result<Vec<Log>, String> {
    let mut logs = Vec::new();
    let mut start = from;
    let mut width = chunk.max(1);
    while start <= to {
        let end = start.saturating_add(width - 1).min(to);
        let mut filter = Filter::new()
            .address(address)
            .event_signature(topic0)
            .from_block(start)
            .to_block(end);
        if let Some(topic) = topic1 {
            filter = filter.topic1(topic);
        }
        match provider.get_logs(&filter).await {
            Ok(batch) => {
                logs.extend(batch);
                if end == u64::MAX {
                    break;
                }
                start = end + 1;
            }
            Err(error)
                if width > 1 && !matches!(error, alloy::transports::RpcError::Transport(_)) =>
            {
                // The node refused the range (too wide or too many results): halve it.
                width /= 2;
            }
            Err(error) => return Err(format!("eth_getLogs {start}..{end}: {error}")),
        }
    }
    Ok(logs)
}
