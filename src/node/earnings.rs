//! What the node's work earned and cost, task by task, as the chain says it: the RLC PoCo paid
//! our accounts for a task (the worker's share of the workerpool price and the scheduler's
//! remainder, each a `Reward` event with the task as its reference, read from the receipt of
//! our finalizing transaction), the gas our transactions for that task burned (from their
//! receipts), and the energy receipt the gate wrote. Kept in the journal's `earnings` table,
//! one row per completed task, so `/status`, `/metrics`, the dashboard and `pew earnings`
//! read the same figures, and a restart loses none.

use std::collections::BTreeMap;
use std::path::Path;

use alloy::primitives::{Address, B256, Log, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolEvent;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::Node;
use super::journal::{Journal, JournalError};
use crate::abi::IexecInterfaceToken as Hub;
use crate::poco::TaskId;

/// Completed tasks whose earnings are looked up in one pass (each costs a few RPC calls).
const PER_PASS: usize = 4;

/// One reward PoCo paid one of our accounts for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardPaid {
    /// The account paid.
    pub to: Address,
    /// How much (nRLC).
    pub nrlc: u64,
}

/// What one completed task earned and cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEarnings {
    /// The task.
    pub task: String,
    /// When it ended (the gate's time, unix seconds: the app's end from its energy receipt,
    /// else when the earnings were read).
    pub at_s: f64,
    /// The RLC our accounts received for it (nRLC); `None` when this node did not finalize it
    /// (another account's transaction paid, and this node has no receipt of it).
    pub earned_nrlc: Option<u64>,
    /// The rewards that make up `earned_nrlc`.
    pub rewards: Vec<RewardPaid>,
    /// Gas our transactions for this task burned (wei): gas used × effective gas price.
    pub gas_wei: u128,
    /// The transactions counted.
    pub transactions: u32,
    /// Energy the app drew above idle (Wh), from its energy receipt.
    pub energy_wh: Option<f64>,
    /// Of which the panel gave (Wh).
    pub pv_wh: Option<f64>,
}

/// Sums over a span of days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Tasks counted.
    pub tasks: u64,
    /// RLC earned (nRLC).
    pub earned_nrlc: u64,
    /// Gas spent (wei).
    pub gas_wei: u128,
    /// Energy the apps drew above idle (Wh).
    pub energy_wh: f64,
    /// Of which the panel gave (Wh).
    pub pv_wh: f64,
    /// nRLC earned per kWh of solar energy the apps used (`None` before any solar energy).
    pub nrlc_per_pv_kwh: Option<f64>,
}

impl Totals {
    fn add(&mut self, task: &TaskEarnings) {
        self.tasks += 1;
        self.earned_nrlc = self
            .earned_nrlc
            .saturating_add(task.earned_nrlc.unwrap_or(0));
        self.gas_wei = self.gas_wei.saturating_add(task.gas_wei);
        self.energy_wh += task.energy_wh.unwrap_or(0.0);
        self.pv_wh += task.pv_wh.unwrap_or(0.0);
        self.nrlc_per_pv_kwh =
            (self.pv_wh > 0.0).then(|| self.earned_nrlc as f64 / (self.pv_wh / 1000.0));
    }
}

/// The earnings report: totals since a time, per UTC day, and the tasks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Since when (unix seconds, the gate's time; 0: since the start).
    pub since_s: f64,
    /// Everything since then.
    pub total: Totals,
    /// Per UTC day (`YYYY-MM-DD`), oldest first.
    pub days: BTreeMap<String, Totals>,
    /// The tasks, oldest first.
    pub tasks: Vec<TaskEarnings>,
}

/// Keeps one task's earnings (a second write for the same task replaces the first).
pub fn put(journal: &Journal, earnings: &TaskEarnings) -> Result<(), JournalError> {
    let detail = serde_json::to_string(earnings).expect("earnings serialize");
    journal
        .connection()
        .execute(
            "INSERT OR REPLACE INTO earnings (task, at_s, earned_nrlc, gas_wei, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                earnings.task,
                earnings.at_s,
                earnings.earned_nrlc.map(|n| n.min(i64::MAX as u64) as i64),
                earnings.gas_wei.to_string(),
                detail
            ],
        )
        .map_err(|e| journal.error(e))?;
    Ok(())
}

/// Completed tasks that have no earnings row yet, oldest first, at most `limit`.
pub fn unsettled(journal: &Journal, limit: usize) -> Result<Vec<TaskId>, JournalError> {
    let mut statement = journal
        .connection()
        .prepare(
            "SELECT task FROM tasks WHERE json_extract(step, '$.step') = 'completed' \
             AND task NOT IN (SELECT task FROM earnings) ORDER BY updated_at LIMIT ?1",
        )
        .map_err(|e| journal.error(e))?;
    let rows = statement
        .query_map([limit as i64], |row| row.get::<_, String>(0))
        .map_err(|e| journal.error(e))?;
    Ok(rows
        .flatten()
        .filter_map(|text| text.parse::<B256>().ok().map(TaskId))
        .collect())
}

/// The report from the `earnings` table of the SQLite database `connection`, for tasks that
/// ended at or after `since_s`.
pub fn report(connection: &Connection, since_s: f64) -> rusqlite::Result<Report> {
    let exists: Option<String> = connection
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'earnings'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    let mut report = Report {
        since_s,
        ..Report::default()
    };
    if exists.is_none() {
        return Ok(report);
    }
    let mut statement =
        connection.prepare("SELECT detail FROM earnings WHERE at_s >= ?1 ORDER BY at_s")?;
    let rows = statement.query_map([since_s], |row| row.get::<_, String>(0))?;
    for text in rows.flatten() {
        let Ok(task) = serde_json::from_str::<TaskEarnings>(&text) else {
            continue; // a row written by a later version: skipped, not fatal
        };
        report.total.add(&task);
        report
            .days
            .entry(utc_day(task.at_s))
            .or_default()
            .add(&task);
        report.tasks.push(task);
    }
    Ok(report)
}

/// Opens a journal for reading only (`pew earnings` beside a running node: it never writes,
/// and waits up to 5 s for the node's own writes).
pub fn open_read_only(path: &Path) -> Result<Connection, String> {
    if !path.is_file() {
        return Err(format!(
            "no journal at {}: the node has not run with this config yet (node.journal)",
            path.display()
        ));
    }
    let connection = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("journal {}: {e}", path.display()))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| format!("journal {}: {e}", path.display()))?;
    Ok(connection)
}

/// `YYYY-MM-DD` of a unix time, in UTC.
pub fn utc_day(unix_s: f64) -> String {
    // Clamped to the year 9999: a hostile or broken time must not overflow the arithmetic.
    let days = (unix_s.clamp(0.0, 253_402_300_799.0) / 86_400.0).floor() as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The rewards in `logs` (a finalizing transaction's receipt) that the hub at `hub` paid to
/// one of `ours` for `task`. Logs from other contracts, other events, other tasks and other
/// accounts (the app's and dataset's owners) are left out; a log that does not decode is too.
pub fn rewards_in(logs: &[Log], hub: Address, task: TaskId, ours: &[Address]) -> Vec<RewardPaid> {
    logs.iter()
        .filter(|log| log.address == hub)
        .filter(|log| log.topics().first() == Some(&Hub::Reward::SIGNATURE_HASH))
        .filter_map(|log| Hub::Reward::decode_log(log).ok())
        .filter(|reward| reward.data.r#ref == task.0 && ours.contains(&reward.data.owner))
        .map(|reward| RewardPaid {
            to: reward.data.owner,
            nrlc: u64::try_from(reward.data.amount).unwrap_or(u64::MAX),
        })
        .collect()
}

/// Whether a transaction label is one of `task`'s (`contribute 0x…`, `finalize 0x…`).
fn is_for_task(label: &str, task: TaskId) -> bool {
    label
        .rsplit_once(' ')
        .is_some_and(|(_, id)| id.eq_ignore_ascii_case(&task.to_string()))
}

/// Whether a transaction label finalizes (the one whose receipt carries the rewards).
fn finalizes(label: &str) -> bool {
    label.starts_with("finalize ") || label.starts_with("contributeAndFinalize ")
}

/// Reads one completed task's earnings from the chain: the receipts of our transactions for it
/// (their hashes are in the journal), and the rewards in the finalizing one.
pub async fn read(node: &Node, task: TaskId) -> anyhow::Result<TaskEarnings> {
    let entries: Vec<_> = node
        .journal()
        .transactions_about(&task.to_string())?
        .into_iter()
        .filter(|entry| is_for_task(&entry.label, task))
        .collect();
    let mut ours = vec![node.owner.address()];
    if let Ok(worker) = node.worker_sdk().sender().map(|s| s.address())
        && !ours.contains(&worker)
    {
        ours.push(worker);
    }
    let hub = node.sdk.chain.target.hub;
    let provider = &node.sdk.chain.provider;
    let mut earnings = TaskEarnings {
        task: task.to_string(),
        at_s: node.gate.energy_time_s(crate::clock::unix_now()),
        earned_nrlc: None,
        rewards: Vec::new(),
        gas_wei: 0,
        transactions: 0,
        energy_wh: None,
        pv_wh: None,
    };
    for entry in &entries {
        let hashes = entry.hash.as_deref().unwrap_or("");
        for hash in hashes
            .split(',')
            .filter_map(|h| h.trim().parse::<B256>().ok())
        {
            let Some(receipt) = provider.get_transaction_receipt(hash).await? else {
                continue; // a replaced or dropped attempt: never mined, cost nothing
            };
            let gas = u128::from(receipt.gas_used).saturating_mul(receipt.effective_gas_price);
            earnings.gas_wei = earnings.gas_wei.saturating_add(gas);
            earnings.transactions += 1;
            if finalizes(&entry.label) && receipt.status() {
                let logs: Vec<Log> = receipt
                    .inner
                    .logs()
                    .iter()
                    .map(|l| l.inner.clone())
                    .collect();
                let rewards = rewards_in(&logs, hub, task, &ours);
                earnings.earned_nrlc = Some(
                    rewards
                        .iter()
                        .fold(0u64, |sum, r| sum.saturating_add(r.nrlc)),
                );
                earnings.rewards = rewards;
            }
        }
    }
    if let Some(text) = node.journal().receipt(task)?
        && let Ok(receipt) = serde_json::from_str::<crate::admission::EnergyReceipt>(&text)
    {
        earnings.at_s = receipt.finished_s;
        earnings.energy_wh = Some(receipt.wh_used);
        earnings.pv_wh = Some(receipt.pv_wh);
    }
    Ok(earnings)
}

/// Looks up the earnings of completed tasks that have none yet (a few per call): after each
/// task completes, and again every few rounds for any an RPC error left behind.
pub async fn settle(node: &Node) {
    let pending = match unsettled(&node.journal(), PER_PASS) {
        Ok(pending) => pending,
        Err(error) => {
            tracing::warn!(%error, "earnings: the journal could not be read");
            return;
        }
    };
    for task in pending {
        match read(node, task).await {
            Ok(earnings) => {
                tracing::info!(
                    %task,
                    earned = %crate::poco::Nrlc(U256::from(earnings.earned_nrlc.unwrap_or(0))),
                    gas_wei = earnings.gas_wei,
                    "task earnings"
                );
                if let Err(error) = put(&node.journal(), &earnings) {
                    tracing::warn!(%task, %error, "earnings not journaled");
                }
            }
            // The others are still tried: one task whose receipts cannot be read must not
            // hold back the rest.
            Err(error) => {
                tracing::warn!(%task, error = %crate::text::brief(&error), "earnings not read yet; retrying later");
            }
        }
    }
    node.earnings.invalidate();
}

/// The summary `/status` and `/metrics` show, computed from the journal once and again only
/// after new earnings were written (the table grows with every task; the API is asked often).
#[derive(Default)]
pub struct SummaryCache {
    cached: std::sync::Mutex<Option<(Totals, BTreeMap<String, Totals>)>>,
}

impl SummaryCache {
    /// The summary at the gate's time `now_s`.
    pub fn summary(&self, journal: &Journal, now_s: f64) -> Summary {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.is_none() {
            let Ok(report) = report(journal.connection(), 0.0) else {
                return Summary::default();
            };
            *cached = Some((report.total, report.days));
        }
        let (total, days) = cached.as_ref().expect("filled above");
        let keep = days.len().saturating_sub(7);
        Summary {
            today: days.get(&utc_day(now_s)).cloned().unwrap_or_default(),
            total: total.clone(),
            days: days
                .iter()
                .skip(keep)
                .map(|(d, t)| (d.clone(), t.clone()))
                .collect(),
        }
    }

    /// Forgets the summary (new earnings were written).
    pub fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The totals for `/status` and `/metrics`: since the start, and today (UTC, the gate's time).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Since the node's first task.
    pub total: Totals,
    /// Today.
    pub today: Totals,
    /// Per UTC day, the last 7 days with tasks.
    pub days: BTreeMap<String, Totals>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Bytes, LogData, address};

    fn reward_log(hub: Address, owner: Address, amount: u64, task: TaskId) -> Log {
        let event = Hub::Reward {
            owner,
            amount: U256::from(amount),
            r#ref: task.0,
        };
        Log {
            address: hub,
            data: event.encode_log_data(),
        }
    }

    #[test]
    fn only_rewards_to_our_accounts_for_this_task_count() {
        let hub = address!("3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f");
        let worker = address!("1111111111111111111111111111111111111111");
        let owner = address!("2222222222222222222222222222222222222222");
        let app_owner = address!("3333333333333333333333333333333333333333");
        let task = TaskId(B256::repeat_byte(7));
        let other_task = TaskId(B256::repeat_byte(8));
        let logs = vec![
            reward_log(hub, app_owner, 500, task), // the app's price: not ours
            reward_log(hub, worker, 95_000_000, task), // the worker's share
            reward_log(hub, owner, 5_000_000, task), // the scheduler's remainder
            reward_log(hub, owner, 1, other_task), // another task
            reward_log(
                address!("4444444444444444444444444444444444444444"),
                owner,
                9,
                task,
            ), // not the hub
            Log {
                address: hub,
                data: LogData::new_unchecked(
                    vec![Hub::Reward::SIGNATURE_HASH],
                    Bytes::from(vec![1, 2]),
                ),
            }, // truncated data
        ];
        let paid = rewards_in(&logs, hub, task, &[worker, owner]);
        assert_eq!(
            paid,
            vec![
                RewardPaid {
                    to: worker,
                    nrlc: 95_000_000
                },
                RewardPaid {
                    to: owner,
                    nrlc: 5_000_000
                },
            ]
        );
    }

    #[test]
    fn labels_belong_to_their_task() {
        let task = TaskId(B256::repeat_byte(0xab));
        assert!(is_for_task(&format!("contribute {task}"), task));
        assert!(is_for_task(
            &format!(
                "finalize {}",
                task.to_string().to_uppercase().replace("0X", "0x")
            ),
            task
        ));
        assert!(!is_for_task(
            &format!("contribute {}", TaskId(B256::repeat_byte(1))),
            task
        ));
        assert!(!is_for_task("initializeArray 0xdeal", task));
        assert!(finalizes(&format!("contributeAndFinalize {task}")));
        assert!(!finalizes(&format!("reveal {task}")));
    }

    #[test]
    fn utc_days_follow_the_calendar() {
        assert_eq!(utc_day(0.0), "1970-01-01");
        assert_eq!(utc_day(951_782_400.0), "2000-02-29");
        assert_eq!(utc_day(1_780_272_000.0), "2026-06-01");
        assert_eq!(utc_day(1_798_761_599.0), "2026-12-31");
        assert_eq!(utc_day(-5.0), "1970-01-01");
        assert_eq!(
            utc_day(f64::MAX),
            "9999-12-31",
            "no overflow on a hostile time"
        );
        assert_eq!(utc_day(f64::NAN), "1970-01-01");
    }

    #[test]
    fn the_report_sums_per_day_and_per_solar_kwh_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let journal = Journal::open(&path).unwrap();
        let day = 1_780_272_000.0;
        for (i, (at, nrlc, pv)) in [
            (day + 60.0, 100, 2.0),
            (day + 120.0, 300, 2.0),
            (day + 86_400.0, 50, 0.0),
        ]
        .into_iter()
        .enumerate()
        {
            put(
                &journal,
                &TaskEarnings {
                    task: format!("0x{i:064x}"),
                    at_s: at,
                    earned_nrlc: Some(nrlc),
                    rewards: vec![],
                    gas_wei: 1_000,
                    transactions: 2,
                    energy_wh: Some(pv + 1.0),
                    pv_wh: Some(pv),
                },
            )
            .unwrap();
        }
        drop(journal);
        let read = open_read_only(&path).unwrap();
        let all = report(&read, 0.0).unwrap();
        assert_eq!(all.total.tasks, 3);
        assert_eq!(all.total.earned_nrlc, 450);
        assert_eq!(all.total.gas_wei, 3_000);
        assert_eq!(all.total.pv_wh, 4.0);
        assert_eq!(all.total.nrlc_per_pv_kwh, Some(450.0 / 0.004));
        assert_eq!(all.days.len(), 2);
        assert_eq!(all.days["2026-06-01"].earned_nrlc, 400);
        assert_eq!(
            all.days["2026-06-02"].nrlc_per_pv_kwh, None,
            "no solar energy that day"
        );
        let later = report(&read, day + 86_000.0).unwrap();
        assert_eq!(later.total.tasks, 1);
        assert_eq!(later.tasks[0].earned_nrlc, Some(50));
        // A journal without the table reads as no earnings, not as an error.
        let empty = tempfile::tempdir().unwrap();
        let bare = empty.path().join("j.sqlite");
        Journal::open(&bare).unwrap();
        assert_eq!(
            report(&open_read_only(&bare).unwrap(), 0.0)
                .unwrap()
                .total
                .tasks,
            0
        );
        assert!(
            open_read_only(&empty.path().join("none.sqlite"))
                .unwrap_err()
                .contains("no journal")
        );
    }
}
