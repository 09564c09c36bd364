//! The node's workerpool role: keep a presigned workerpool order open while the gate admits
//! work (and close it when it does not), choose the request orders it can serve and match
//! them, and take the tasks of our deals into the journal (initializing them in one
//! transaction when a deal has several).

use std::collections::HashSet;

use alloy::primitives::{Address, U256};
use alloy::sol_types::SolValue;

use super::Node;
use crate::admission::TaskEstimate;
use crate::chain::watcher::Found;
use crate::clock::unix_now_s as now_s;
use crate::node::journal::{Journal, RequestDecision};
use crate::poco::order::{
    DatasetOrder, Order, OrderOperation, RequestOrder, Signed, WorkerpoolOrder,
};
use crate::poco::{Category, DealId, OrderHash, Tag, ids::task_id};
use crate::sdk::Sdk;

const BID_ORDER: &str = "bid_order";

pub(crate) fn estimate(category: Category, volume: u64, app: Option<Address>) -> TaskEstimate {
    TaskEstimate {
        category: category.id,
        max_runtime_s: category.time_ref_s,
        volume,
        deadline_in_s: category.contribution_window_s(),
        app: app.map(|a| a.to_string()),
    }
}

/// The open bid, if any.
fn open_bid(node: &Node) -> anyhow::Result<Option<WorkerpoolOrder>> {
    journaled_bid(&node.journal())
}

fn journaled_bid(store: &Journal) -> anyhow::Result<Option<WorkerpoolOrder>> {
    let Some(hex) = store.get(BID_ORDER)? else {
        return Ok(None);
    };
    let bytes = alloy::hex::decode(hex)?;
    Ok(Some(WorkerpoolOrder::abi_decode(&bytes)?))
}

/// Closes the bid the journal remembers, if it still has volume on chain, and forgets it;
/// true when a close was sent. Takes the chain access and the journal's path rather than a
/// running node, so a node that stops before it could run (still waiting for Docker, IPFS or
/// gas) closes the bid its last run left open too: an open bid while the node is away would
/// take work it cannot do.
pub async fn close_journaled_bid(sdk: &Sdk, journal: &std::path::Path) -> anyhow::Result<bool> {
    let journal = Journal::open(journal)?;
    let Some(order) = journaled_bid(&journal)? else {
        return Ok(false);
    };
    let consumed = sdk.poco().consumed(order.hash(&sdk.chain.domain())).await?;
    let open = !order.volume.saturating_sub(consumed).is_zero();
    if open {
        sdk.poco_writer()?
            .manage_workerpool_order(&order, OrderOperation::Close)
            .await?;
    }
    journal.unset(BID_ORDER)?;
    Ok(open)
}

/// Whether the journal holds an open workerpool order of ours.
pub fn has_open_bid(node: &Node) -> bool {
    matches!(node.journal().get(BID_ORDER), Ok(Some(_)))
}

fn remember_bid(node: &Node, order: Option<&WorkerpoolOrder>) -> anyhow::Result<()> {
    let store = node.journal();
    match order {
        Some(order) => store.set(BID_ORDER, &alloy::hex::encode(order.abi_encode()))?,
        None => store.unset(BID_ORDER)?,
    }
    Ok(())
}

async fn remaining(node: &Node, order: &WorkerpoolOrder) -> anyhow::Result<U256> {
    let consumed = node
        .sdk
        .poco()
        .consumed(order.hash(&node.sdk.chain.domain()))
        .await?;
    Ok(order.volume.saturating_sub(consumed))
}

fn new_order(node: &Node, category: Category, trust: u64, volume: u64) -> WorkerpoolOrder {
    WorkerpoolOrder {
        workerpool: node.pool,
        workerpoolprice: node.price.0,
        volume: U256::from(volume),
        tag: Tag::STANDARD.0,
        category: U256::from(category.id),
        trust: U256::from(trust.max(1)),
        apprestrict: Address::ZERO,
        datasetrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: crate::poco::order::random_salt(),
    }
}

/// The gate's answer, unless the operator stopped bidding (then no, with that reason).
fn admit(node: &Node, estimate: &crate::admission::TaskEstimate) -> crate::admission::Decision {
    match node.switches.stop_reason() {
        Some(reason) => crate::admission::Decision::no(reason),
        None => node.gate.admit(estimate, now_s()),
    }
}

/// Opens a bid when the gate admits work and none is open; closes it when the gate says no.
pub async fn keep_bid(node: &Node) -> anyhow::Result<()> {
    let volume = node.settings.node.volume.max(1);
    let decision = admit(node, &estimate(node.category, volume, None));
    node.heartbeat.bid_decided(&decision);
    let bid = open_bid(node)?;
    let left = match &bid {
        Some(order) => remaining(node, order).await?,
        None => U256::ZERO,
    };
    if decision.admit && left.is_zero() {
        let order = new_order(node, node.category, served_trust(node).await?, volume);
        let hash = node.sdk.publish_workerpool_order(&order).await?;
        remember_bid(node, Some(&order))?;
        tracing::info!(order = %hash, volume, reasons = ?decision.reasons, "bid: workerpool order presigned");
    } else if !decision.admit && !left.is_zero() {
        close_bid(node).await?;
        tracing::info!(reasons = ?decision.reasons, "bid withdrawn: the gate says no");
    } else if bid.is_some() && left.is_zero() {
        remember_bid(node, None)?;
    }
    Ok(())
}

/// The highest trust this node serves: the configured one, capped at what its lone worker
/// reaches consensus on (PoCo's weights: trust 2 for a fresh worker).
pub async fn served_trust(node: &Node) -> anyhow::Result<u64> {
    let worker = node.worker_sdk().sender()?.address();
    let score: u64 = node.sdk.poco().score(worker).await?.saturating_to();
    Ok(node
        .settings
        .node
        .trust
        .clamp(1, crate::poco::consensus::max_trust_alone(score)))
}

/// Closes the open bid, if any (on a "no" from the gate and at shutdown).
pub async fn close_bid(node: &Node) -> anyhow::Result<()> {
    close_journaled_bid(&node.sdk, &node.settings.node.journal).await?;
    Ok(())
}

/// Why this node cannot serve a request, if it cannot (checks that need no transaction).
fn refusal(node: &Node, request: &RequestOrder) -> Option<String> {
    let trust = request.trust.max(U256::from(1));
    if request.workerpool != Address::ZERO && request.workerpool != node.pool {
        return Some(format!("restricted to workerpool {}", request.workerpool));
    }
    if let Err(reason) = crate::poco::deal::standard_task(Tag(request.tag), &request.params) {
        return Some(reason);
    }
    if request.tag != Tag::STANDARD.0 {
        return Some(format!(
            "asks for capabilities {} this node does not offer",
            Tag(request.tag)
        ));
    }
    if trust > U256::from(node.settings.node.trust) {
        return Some(format!(
            "asks for trust {trust}; this node serves up to {}",
            node.settings.node.trust
        ));
    }
    if request.workerpoolmaxprice < node.price.0 {
        return Some(format!(
            "pays at most {} per task; this node asks {}",
            crate::poco::Nrlc(request.workerpoolmaxprice),
            node.price
        ));
    }
    if Category::standard(request.category.saturating_to()).is_none() {
        return Some(format!(
            "category {} is not a standard category",
            request.category
        ));
    }
    None
}

/// Looks at every pending request: refuses, defers (the gate says not now) or matches it.
pub async fn decide_requests(node: &Node, _found: &Found) -> anyhow::Result<()> {
    let pending = node.journal().pending_requests()?;
    let now = std::time::Instant::now();
    for hash in pending {
        let later = node
            .deferred
            .lock()
            .expect("not poisoned")
            .get(&hash)
            .is_some_and(|at| *at > now);
        if later {
            continue;
        }
        match decide_request(node, hash).await {
            Ok(Some(decision)) => {
                // Journaled first: a match made is never forgotten, whatever comes next.
                node.journal().decide_request(hash, &decision)?;
                match &decision {
                    RequestDecision::Matched(deal) => {
                        tracing::info!(request = %hash, %deal, "request matched")
                    }
                    RequestDecision::PartlyMatched(deal) => {
                        tracing::info!(request = %hash, %deal, "request matched in part; the rest is matched when the node has room")
                    }
                    RequestDecision::Refused(reason) => {
                        tracing::info!(request = %hash, reason, "request not served")
                    }
                    RequestDecision::Deferred(reason) => {
                        node.deferred
                            .lock()
                            .expect("not poisoned")
                            .insert(hash, now + std::time::Duration::from_secs(60));
                        tracing::info!(request = %hash, reason, "request not served now; looked at again in a minute")
                    }
                    RequestDecision::Pending => {}
                }
                if let RequestDecision::Matched(deal) | RequestDecision::PartlyMatched(deal) =
                    &decision
                {
                    // Our own match: its receipt holds the SchedulerNotice; take the deal now
                    // instead of waiting for the next log poll. One match per round: the next
                    // round sees the tasks this one took.
                    take_deal(node, *deal).await?;
                    break;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(request = %hash, error = %crate::text::brief(&error), "request not decided yet")
            }
        }
    }
    Ok(())
}

async fn decide_request(node: &Node, hash: OrderHash) -> anyhow::Result<Option<RequestDecision>> {
    // From the order index: no history scan.
    let request = match super::index::request_order(&node.journal(), hash)? {
        Some(Ok(order)) => order,
        Some(Err(reason)) => return Ok(Some(RequestDecision::Refused(reason))),
        None => return Ok(None), // its presign is not indexed yet
    };
    let poco = node.sdk.poco();
    let left = request.volume.saturating_sub(poco.consumed(hash).await?);
    if left.is_zero() {
        return Ok(Some(RequestDecision::Refused(
            "nothing left to match (volume used or closed)".into(),
        )));
    }
    if let Some(reason) = refusal(node, &request) {
        return Ok(Some(RequestDecision::Refused(reason)));
    }
    let served = served_trust(node).await?;
    if request.trust > U256::from(served) {
        return Ok(Some(RequestDecision::Refused(format!(
            "asks for trust {}; this node's worker reaches consensus alone up to trust {served}",
            request.trust
        ))));
    }
    let category = Category::standard(request.category.saturating_to()).expect("checked above");
    // Never more tasks in one match than the bid's own volume: a request's volume is the
    // requester's to choose, and the node must not commit (or plan) without bound.
    let volume: u64 = left
        .saturating_to::<u64>()
        .min(node.settings.node.volume.max(1));
    let decision = admit(node, &estimate(category, volume, Some(request.app)));
    if !decision.admit {
        tracing::debug!(request = %hash, reasons = ?decision.reasons, "gate says not now");
        return Ok(None);
    }
    // Room: never more unfinished tasks than the node runs at once or bids for, whichever is
    // more. Without it a large request (or many) would be matched round after round, past
    // what can be computed before the deadlines, and each task missed costs stake.
    let room = (node.concurrency() as u64).max(node.settings.node.volume.max(1));
    let unfinished = node.journal().tasks(true)?.len() as u64;
    if unfinished + volume > room {
        tracing::debug!(request = %hash, unfinished, room, "no room for more tasks now");
        return Ok(None);
    }

    // A usable app order presigned on chain.
    let app_info = match node.sdk.app(request.app).await {
        Ok(info) => info,
        Err(error) => return Ok(Some(RequestDecision::Refused(error.to_string()))),
    };
    let mut app_order = None;
    let app_orders = super::index::app_orders(&node.journal(), request.app)?;
    for (app_hash, order) in app_orders {
        let usable = order.appprice <= request.appmaxprice
            && order.tag == Tag::STANDARD.0
            && (order.workerpoolrestrict == Address::ZERO || order.workerpoolrestrict == node.pool)
            && (order.requesterrestrict == Address::ZERO
                || order.requesterrestrict == request.requester)
            && (order.datasetrestrict == Address::ZERO || order.datasetrestrict == request.dataset)
            && poco.consumed(app_hash).await? < order.volume;
        if usable {
            app_order = Some(order);
        }
    }
    let Some(app_order) = app_order else {
        return Ok(None); // the app owner may publish an order later
    };
    // The dataset's side, when the request names one: a usable dataset order presigned on
    // chain that lets this app, this pool and this requester use it.
    let dataset_order = if request.dataset == Address::ZERO {
        DatasetOrder::none()
    } else {
        if let Err(error) = node.sdk.dataset(request.dataset).await {
            return Ok(Some(RequestDecision::Refused(error.to_string())));
        }
        let mut usable = None;
        let dataset_orders = super::index::dataset_orders(&node.journal(), request.dataset)?;
        for (hash, order) in dataset_orders {
            let fits = order.datasetprice <= request.datasetmaxprice
                && order.tag == Tag::STANDARD.0
                && (order.apprestrict == Address::ZERO || order.apprestrict == request.app)
                && (order.workerpoolrestrict == Address::ZERO
                    || order.workerpoolrestrict == node.pool)
                && (order.requesterrestrict == Address::ZERO
                    || order.requesterrestrict == request.requester)
                && poco.consumed(hash).await? < order.volume;
            if fits {
                usable = Some(order);
            }
        }
        match usable {
            Some(order) => order,
            None => return Ok(None), // the dataset owner may publish an order later
        }
    };
    // The image must run here before any work is accepted for it.
    if let Err(error) = node
        .executor
        .prepare_image(&app_info.image, app_info.checksum)
        .await
    {
        return Ok(Some(RequestDecision::Refused(error.to_string())));
    }

    // Our side: the open bid if it fits, else a workerpool order made for this request.
    let trust: u64 = request.trust.max(U256::from(1)).saturating_to();
    let bid = open_bid(node)?;
    let fits = |o: &WorkerpoolOrder| o.category == request.category && o.trust >= U256::from(trust);
    // Gas that pays: the chain's estimate of this very match (with the open bid, when it
    // fits) scales the path's figures to the chain's cost (L1 data included on Arbitrum).
    let estimate = match &bid {
        Some(order) if fits(order) => {
            node.sdk
                .poco()
                .estimate_match(
                    Signed::presigned(app_order.clone()),
                    Signed::presigned(dataset_order.clone()),
                    Signed::presigned(order.clone()),
                    Signed::presigned(request.clone()),
                )
                .await
        }
        _ => None,
    };
    if let Some(reason) = gas_refusal(node, &request, volume, trust, estimate).await? {
        // Fees change: the request is looked at again later, its reason journaled.
        return Ok(Some(RequestDecision::Deferred(reason)));
    }
    let pool_order = match bid {
        Some(order) if fits(&order) && !remaining(node, &order).await?.is_zero() => order,
        _ => {
            let order = new_order(node, category, trust, volume);
            node.sdk.publish_workerpool_order(&order).await?;
            order
        }
    };
    let (deal, _) = node
        .sdk
        .poco_writer()?
        .match_orders(
            Signed::presigned(app_order),
            Signed::presigned(dataset_order),
            Signed::presigned(pool_order),
            Signed::presigned(request.clone()),
        )
        .await?;
    // A request's volume may be larger than what one match takes (our bid's volume): it stays
    // pending for the rest.
    let left = request.volume.saturating_sub(poco.consumed(hash).await?);
    Ok(Some(if left.is_zero() {
        RequestDecision::Matched(deal)
    } else {
        RequestDecision::PartlyMatched(deal)
    }))
}

/// Why a request does not pay for its gas, when `node.rlc_per_eth` is set and it does not.
async fn gas_refusal(
    node: &Node,
    request: &RequestOrder,
    volume: u64,
    trust: u64,
    match_estimate: Option<u64>,
) -> anyhow::Result<Option<String>> {
    use crate::poco::gas;
    use alloy::providers::Provider;
    let rate = node.settings.node.rlc_per_eth;
    if rate.is_nan() || rate <= 0.0 {
        return Ok(None);
    }
    let fee = node.sdk.chain.provider.get_gas_price().await?;
    let path = gas::task_path_gas(trust, request.callback != Address::ZERO, volume);
    let gas = gas::scaled(path, match_estimate, gas::MATCH_ORDERS);
    let cost = gas::cost_nrlc(gas, fee, rate);
    Ok(
        gas::shortfall(node.price, cost, node.settings.node.min_margin)
            .map(|why| format!("{why}: about {gas} gas per task at {fee} wei per gas")),
    )
}

/// Journals every task of one of our deals, initializing them all at once when several.
pub async fn take_deal(node: &Node, deal_id: DealId) -> anyhow::Result<()> {
    node.timings
        .lock()
        .expect("not poisoned")
        .notice_at
        .entry(deal_id)
        .or_insert_with(std::time::Instant::now);
    // The deal's facts are read here, once, and journaled for every later step.
    let Some(deal) = node.deal_facts(deal_id).await? else {
        return Ok(()); // gone in a reorg
    };
    if Tag(deal.tag).requires_tee() {
        tracing::warn!(%deal_id, "deal with a TEE tag: not accepted");
        return Ok(());
    }
    let mut new = Vec::new();
    for index in deal.indexes() {
        let task = task_id(deal_id, U256::from(index));
        if node.journal().add_task(task, deal_id, index)? {
            new.push(index);
            if let Some(category) = deal.standard_category() {
                let estimate = estimate(category, 1, Some(deal.app));
                node.gate
                    .task_admitted(task, &estimate, crate::clock::unix_now());
            }
        }
    }
    if new.len() > 1 {
        let indexes: Vec<U256> = new.iter().map(|i| U256::from(*i)).collect();
        match node
            .sdk
            .poco_writer()?
            .initialize_array(deal_id, &indexes)
            .await
        {
            Ok(_) => tracing::info!(%deal_id, tasks = new.len(), "tasks initialized"),
            // Each task's own step initializes it if this did not.
            Err(error) => {
                tracing::warn!(%deal_id, error = %crate::text::brief(&error), "initializeArray failed; tasks initialize one by one")
            }
        }
    }
    if !new.is_empty() {
        tracing::info!(%deal_id, tasks = new.len(), "deal taken");
    }
    Ok(())
}

/// The journal's reason for a task whose deal a reorg took away; such tasks are watched for
/// the deal's return, across restarts too.
pub const VANISHED: &str = "the deal vanished in a chain reorganisation";

/// Tasks the journal records as vanished in a reorg (the node's watch list at start).
pub fn vanished_in_journal(
    store: &crate::node::journal::Journal,
) -> anyhow::Result<HashSet<crate::poco::TaskId>> {
    Ok(store
        .tasks(false)?
        .into_iter()
        .filter(
            |r| matches!(&r.step, crate::node::journal::TaskStep::Failed { reason } if reason == VANISHED),
        )
        .map(|r| r.task)
        .collect())
}

/// After a reorg: our cached nonce is forgotten, tasks of vanished deals stop, and requests
/// whose deal vanished are looked at again.
pub async fn reconcile_after_reorg(node: &Node) -> anyhow::Result<()> {
    node.sdk.sender()?.reset_nonce().await;
    if let Some(worker) = &node.worker {
        worker.sender()?.reset_nonce().await;
    }
    if let Some(bid) = open_bid(node)?
        && node
            .sdk
            .poco()
            .presigner(bid.hash(&node.sdk.chain.domain()))
            .await?
            == Address::ZERO
    {
        remember_bid(node, None)?; // its presign vanished too
    }
    // Finished tasks too (a reorg can take a completed task away), but only those of the last
    // day: no reorganisation reaches further back, and the journal keeps every task ever taken.
    let day_ago = (now_s() as i64).saturating_sub(86_400);
    // The journal's transactions follow the chain: a receipt the new branch lacks is no
    // longer "mined".
    super::startup::recheck_mined_after_reorg(&node.sdk, &node.journal, day_ago).await?;
    let records = node.journal().tasks_touched_since(day_ago)?;
    for record in records {
        if node.sdk.poco().deal(record.deal).await?.is_none() {
            tracing::warn!(task = %record.task, deal = %record.deal, "the deal vanished in a reorg");
            node.journal().forget_deal(record.deal)?;
            node.vanished
                .lock()
                .expect("not poisoned")
                .insert(record.task);
            node.journal().set_step(
                record.task,
                &crate::node::journal::TaskStep::Failed {
                    reason: VANISHED.into(),
                },
            )?;
        }
    }
    let matched = node.journal().matched_requests()?;
    for (hash, deal) in matched {
        if node.sdk.poco().deal(deal).await?.is_none() {
            tracing::warn!(request = %hash, %deal, "the match vanished in a reorg; looking at the request again");
            let store = node.journal();
            store.forget_request_deal(hash, deal)?;
            store.decide_request(hash, &RequestDecision::Pending)?;
        }
    }
    Ok(())
}

/// Starts again, from the first step, the tasks whose deal vanished in a reorg and came back
/// on the new branch (a re-created deal has the same ids). A running task is left to notice
/// the change itself first.
pub async fn revive_vanished(node: &Node) -> anyhow::Result<()> {
    let candidates: Vec<_> = node
        .vanished
        .lock()
        .expect("not poisoned")
        .iter()
        .copied()
        .collect();
    for task in candidates {
        if node.running.lock().expect("not poisoned").contains(&task) {
            continue;
        }
        let Some(record) = node.journal().task(task)? else {
            node.vanished.lock().expect("not poisoned").remove(&task);
            continue;
        };
        if node.sdk.poco().deal(record.deal).await?.is_some() {
            tracing::warn!(%task, "the deal is back on the new branch of the chain; starting the task over");
            node.journal()
                .set_step(task, &crate::node::journal::TaskStep::New)?;
            node.vanished.lock().expect("not poisoned").remove(&task);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::journal::{Journal, TaskStep};

    #[test]
    fn tasks_vanished_in_a_reorg_are_found_again_in_the_journal_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let deal = DealId(alloy::primitives::B256::repeat_byte(1));
        let (gone, failed) = (task_id(deal, U256::ZERO), task_id(deal, U256::from(1)));
        {
            let store = Journal::open(&path).unwrap();
            for task in [gone, failed] {
                store.add_task(task, deal, 0).unwrap();
            }
            store
                .set_step(
                    gone,
                    &TaskStep::Failed {
                        reason: VANISHED.into(),
                    },
                )
                .unwrap();
            store
                .set_step(
                    failed,
                    &TaskStep::Failed {
                        reason: "app crashed".into(),
                    },
                )
                .unwrap();
        }
        let reopened = Journal::open(&path).unwrap();
        let watch = vanished_in_journal(&reopened).unwrap();
        assert_eq!(watch, HashSet::from([gone]));
    }
}
