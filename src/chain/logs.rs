//! Reading logs in bounded block ranges, because public RPC nodes cap the range of one
//! `eth_getLogs` and the size of its answer: pew asks for at most `chunk` blocks at a time,
//! halves the range when the node refuses one (too many blocks or results), and widens it again
//! after a few answers, up to `chunk`. Rate limits and endpoints that do not answer are the
//! transport's business (`super::rpc`).

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};

/// Answers in a row at one width before the range is doubled again.
const WIDEN_AFTER: u32 = 4;

/// Logs of `address` whose topic0 is one of `topics0` (and, if given, topic1 `topic1`) in
/// `from..=to`, oldest first.
pub async fn scan(
    provider: &DynProvider,
    address: Address,
    topics0: &[B256],
    topic1: Option<B256>,
    from: u64,
    to: u64,
    chunk: u64,
) -> Result<Vec<Log>, String> {
    let mut logs = Vec::new();
    let mut start = from;
    let chunk = chunk.max(1);
    let mut width = chunk;
    let mut answered = 0u32;
    while start <= to {
        let end = start.saturating_add(width - 1).min(to);
        let mut filter = Filter::new()
            .address(address)
            .event_signature(topics0.to_vec())
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
                answered += 1;
                if answered >= WIDEN_AFTER && width < chunk {
                    width = width.saturating_mul(2).min(chunk);
                    answered = 0;
                }
            }
            Err(error) if width > 1 && refuses_range(&error) => {
                width /= 2;
                answered = 0;
            }
            Err(error) => {
                return Err(format!(
                    "eth_getLogs {start}..{end}: {}",
                    crate::text::brief(&error)
                ));
            }
        }
    }
    Ok(logs)
}

/// Whether the node refused the range or the size of the answer (ask for less), rather than
/// failing.
fn refuses_range(error: &alloy::transports::TransportError) -> bool {
    match error.as_error_resp() {
        Some(payload) => {
            super::rpc::is_range_refusal(&payload.message)
                || payload.code == -32005
                || payload.code == -32602
                || payload.code == -32600
        }
        None => {
            matches!(error, alloy::transports::RpcError::Transport(alloy::transports::TransportErrorKind::HttpError(e)) if e.status == 413)
        }
    }
}
