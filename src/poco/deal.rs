//! A deal's fixed facts. Once `matchOrders` has made a deal, nothing in it changes: its app,
//! dataset, params, tag, trust, category, start time, prices, callback and beneficiary are
//! read once, when the node takes the deal, and journaled; later steps read them from the
//! journal and ask the chain only what can change (the task's status, deadlines, the
//! contributions). Here too is the one check that a task is one a standard worker can run.

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use super::{Category, RequestParams, Tag};
use crate::abi::IexecLibCore_v5;

/// What a deal fixed when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealFacts {
    /// The app.
    pub app: Address,
    /// The dataset (zero when none).
    pub dataset: Address,
    /// The workerpool.
    pub workerpool: Address,
    /// The requester.
    pub requester: Address,
    /// Who receives the result.
    pub beneficiary: Address,
    /// The callback contract (zero when none).
    pub callback: Address,
    /// The request's params, as the requester wrote them.
    pub params: String,
    /// The tag.
    pub tag: B256,
    /// Trust (0 and 1 both mean one worker).
    pub trust: u64,
    /// Category id.
    pub category: u64,
    /// When the deal was made (unix seconds, chain time).
    pub start_time: u64,
    /// The first task's index.
    pub bot_first: u64,
    /// How many tasks.
    pub bot_size: u64,
    /// The app's price per task (nRLC).
    pub app_price: U256,
    /// The dataset's price per task (nRLC).
    pub dataset_price: U256,
    /// The workerpool's price per task (nRLC).
    pub workerpool_price: U256,
    /// The stake each worker puts on a contribution (nRLC).
    pub worker_stake: U256,
}

impl DealFacts {
    /// The facts of a deal as `viewDeal` returns it.
    pub fn from_view(view: &IexecLibCore_v5::Deal) -> Self {
        Self {
            app: view.app.pointer,
            dataset: view.dataset.pointer,
            workerpool: view.workerpool.pointer,
            requester: view.requester,
            beneficiary: view.beneficiary,
            callback: view.callback,
            params: view.params.clone(),
            tag: view.tag,
            trust: view.trust.saturating_to(),
            category: view.category.saturating_to(),
            start_time: view.startTime.saturating_to(),
            bot_first: view.botFirst.saturating_to(),
            bot_size: view.botSize.saturating_to(),
            app_price: view.app.price,
            dataset_price: view.dataset.price,
            workerpool_price: view.workerpool.price,
            worker_stake: view.workerStake,
        }
    }

    /// Whether the result goes on chain to a callback contract (nothing is uploaded).
    pub fn has_callback(&self) -> bool {
        self.callback != Address::ZERO
    }

    /// The deal's standard category, if it is one.
    pub fn standard_category(&self) -> Option<Category> {
        Category::standard(self.category)
    }

    /// The deal's final deadline (chain time): after it, its tasks can only be claimed. `None`
    /// for a category pew does not know.
    pub fn final_deadline(&self) -> Option<u64> {
        let category = self.standard_category()?;
        Some(
            self.start_time.saturating_add(
                category
                    .time_ref_s
                    .saturating_mul(super::category::FINAL_DEADLINE_RATIO),
            ),
        )
    }

    /// The indexes of the deal's tasks.
    pub fn indexes(&self) -> std::ops::Range<u64> {
        self.bot_first..self.bot_first.saturating_add(self.bot_size)
    }

    /// The deal's params when a standard worker can run its tasks (see [`standard_task`]).
    pub fn runnable(&self) -> Result<RequestParams, String> {
        standard_task(Tag(self.tag), &self.params)
    }
}

/// The one check that a task, by its tag and params, is one a standard (non-TEE) worker can
/// run: no TEE tag, and params that need no enclave (secrets, encryption, other result
/// storage, bulk processing) and name input files by URL. Returns the parsed params.
pub fn standard_task(tag: Tag, params: &str) -> Result<RequestParams, String> {
    if tag.requires_tee() {
        return Err("asks for a TEE task; this node runs standard tasks".into());
    }
    let params = RequestParams::parse(params).map_err(|e| e.to_string())?;
    params.check_standard().map_err(|e| e.to_string())?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> IexecLibCore_v5::Deal {
        IexecLibCore_v5::Deal {
            app: IexecLibCore_v5::Resource {
                pointer: Address::repeat_byte(1),
                owner: Address::repeat_byte(2),
                price: U256::from(5),
            },
            dataset: IexecLibCore_v5::Resource {
                pointer: Address::ZERO,
                owner: Address::ZERO,
                price: U256::ZERO,
            },
            workerpool: IexecLibCore_v5::Resource {
                pointer: Address::repeat_byte(3),
                owner: Address::repeat_byte(4),
                price: U256::from(7),
            },
            trust: U256::from(1),
            category: U256::ZERO,
            tag: Tag::STANDARD.0,
            requester: Address::repeat_byte(5),
            beneficiary: Address::repeat_byte(6),
            callback: Address::ZERO,
            params: r#"{"iexec_args":"a b"}"#.into(),
            startTime: U256::from(1_000),
            botFirst: U256::from(2),
            botSize: U256::from(3),
            workerStake: U256::ZERO,
            schedulerRewardRatio: U256::from(1),
            sponsor: Address::repeat_byte(5),
        }
    }

    #[test]
    fn the_facts_are_the_deals_and_survive_the_journal() {
        let facts = DealFacts::from_view(&view());
        assert_eq!(facts.app, Address::repeat_byte(1));
        assert_eq!(facts.workerpool_price, U256::from(7));
        assert_eq!(facts.indexes(), 2..5);
        assert!(!facts.has_callback());
        let text = serde_json::to_string(&facts).unwrap();
        assert_eq!(serde_json::from_str::<DealFacts>(&text).unwrap(), facts);
    }

    #[test]
    fn the_final_deadline_is_ten_times_the_category_after_the_start() {
        let facts = DealFacts::from_view(&view());
        // XS: 300 s; the final deadline is 10 × that after the start.
        assert_eq!(facts.final_deadline(), Some(1_000 + 3_000));
        let unknown = DealFacts {
            category: 99,
            ..facts
        };
        assert_eq!(unknown.final_deadline(), None);
    }

    #[test]
    fn only_standard_tasks_are_runnable() {
        let facts = DealFacts::from_view(&view());
        assert_eq!(facts.runnable().unwrap().iexec_args.as_deref(), Some("a b"));
        let tee = DealFacts {
            tag: B256::with_last_byte(1),
            ..facts.clone()
        };
        assert!(tee.runnable().unwrap_err().contains("TEE"));
        let secrets = DealFacts {
            params: r#"{"iexec_secrets":{"1":"x"}}"#.into(),
            ..facts.clone()
        };
        assert!(secrets.runnable().is_err());
        let not_an_object = DealFacts {
            params: "[1, 2]".into(),
            ..facts.clone()
        };
        assert!(not_an_object.runnable().is_err());
        // As iExec's workers do, text that is not JSON is the app's arguments.
        let plain = DealFacts {
            params: "--sunny".into(),
            ..facts
        };
        assert_eq!(
            plain.runnable().unwrap().iexec_args.as_deref(),
            Some("--sunny")
        );
    }
}
