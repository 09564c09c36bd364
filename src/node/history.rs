//! What the dashboard plots: energy samples (PV, load, state of charge) with the bid's state
//! and the gate's answer at each, the moments the bid opened or closed and the gate changed its
//! mind (with its reason), each task's run with its energy receipt and earnings, and the
//! forecast ahead.
//!
//! Recent samples (one per `history.sample_every_s`, a day of them) stay in memory. Every
//! `history.journal_every_s` of wall time the mean of the samples since goes to the journal's
//! `history_points` table, kept `history.keep_days` and bounded in rows; the bid's and the
//! gate's changes go to `history_events` when they happen (bounded too). An idle node on the
//! defaults thus writes one small row every five minutes. Times are the gate's (unix seconds:
//! the wall clock, except on a replayed trace), so plots line up with the readings and the
//! forecast.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Node;
use super::journal::{Journal, JournalError};
use crate::config::HistorySettings;

/// Events kept in the journal; older ones are dropped.
const MAX_EVENTS: i64 = 5_000;
/// Samples kept in memory at most, whatever the settings (a day at one a minute is 1 440).
const MAX_RECENT: usize = 20_000;
/// Points kept in the journal at most, whatever the settings (8 days at one every five
/// minutes is 2 304).
const MAX_JOURNAL_POINTS: i64 = 50_000;
/// Points one `/history` answer carries at most (longer spans are thinned evenly).
pub const MAX_POINTS: usize = 4_000;
/// Tasks one `/history` answer carries at most (the latest).
const MAX_TASKS: i64 = 2_000;
/// The longest reason kept with an event.
const MAX_TEXT: usize = 300;

/// One energy sample with what the node was doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The gate's time (unix seconds).
    pub t: f64,
    /// PV power (W), when read.
    pub pv_w: Option<f64>,
    /// The node's draw (W), when known.
    pub load_w: Option<f64>,
    /// Battery state of charge (%), when known.
    pub soc_pct: Option<f64>,
    /// Whether our bid was open (for a mean, whether it was open at the end).
    pub bid_open: bool,
    /// The gate's last answer on bidding, when it had given one.
    pub admit: Option<bool>,
}

/// A change: the bid opened or closed, or the gate turned to yes or no.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The gate's time (unix seconds).
    pub t: f64,
    /// `bid` or `gate`.
    pub kind: String,
    /// Open (bid) or yes (gate).
    pub on: bool,
    /// The gate's first reason, for a gate change.
    pub text: String,
}

/// One span of time the bid was open (`to` is `None` while it still is).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// Opened at.
    pub from: f64,
    /// Closed at.
    pub to: Option<f64>,
}

/// One task as the plots show it: when its app ran, what it drew and earned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskMark {
    /// The task.
    pub task: String,
    /// Its app started (the gate's time).
    pub started_s: f64,
    /// Its app stopped.
    pub finished_s: f64,
    /// Energy above idle (Wh).
    pub wh_used: f64,
    /// The panel's share (%).
    pub pv_share_pct: f64,
    /// What it earned (nRLC), once read from the chain.
    pub earned_nrlc: Option<u64>,
}

/// One hour of the forecast ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastPoint {
    /// The hour (the gate's time).
    pub t: f64,
    /// PV power quantiles (W).
    pub p10: f64,
    /// The median.
    pub p50: f64,
    /// The optimistic one.
    pub p90: f64,
}

/// What `/history` serves for a span.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    /// The span asked for (the gate's time, unix seconds).
    pub from: f64,
    /// Its end.
    pub to: f64,
    /// The gate's time now.
    pub now: f64,
    /// Samples, oldest first (journal points, then the in-memory ones).
    pub points: Vec<Point>,
    /// Changes in the span, oldest first.
    pub events: Vec<Event>,
    /// When the bid was open in the span.
    pub bid_periods: Vec<Period>,
    /// Tasks whose app ran in the span.
    pub tasks: Vec<TaskMark>,
    /// The forecast from now on (empty without one).
    pub forecast: Vec<ForecastPoint>,
}

/// The node's history: recent samples in memory, the rest in the journal.
pub struct History {
    settings: HistorySettings,
    state: Mutex<State>,
}

struct State {
    recent: VecDeque<Point>,
    unwritten: Vec<Point>,
    written_at: Instant,
    bid_open: Option<bool>,
    admit: Option<bool>,
}

impl History {
    /// An empty history with these settings.
    pub fn new(settings: HistorySettings) -> Self {
        History {
            settings,
            state: Mutex::new(State {
                recent: VecDeque::new(),
                unwritten: Vec::new(),
                written_at: Instant::now(),
                bid_open: None,
                admit: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Samples kept in memory: one day's worth, bounded.
    fn recent_capacity(&self) -> usize {
        ((86_400.0 / self.settings.sample_every_s.max(0.1)).ceil() as usize).min(MAX_RECENT)
    }

    /// Journal points kept, bounded.
    fn journal_capacity(&self) -> i64 {
        ((self.settings.keep_days * 86_400.0 / self.settings.journal_every_s.max(1.0)).ceil()
            as i64)
            .min(MAX_JOURNAL_POINTS)
    }

    /// Takes up where the journal left off: the bid's last recorded state, so a restart
    /// records the bid's closing (or reopening) instead of skipping it.
    pub fn resume(&self, journal: &Journal) {
        use rusqlite::OptionalExtension;
        let last: Option<bool> = journal
            .connection()
            .query_row(
                "SELECT is_on FROM history_events WHERE kind = 'bid' ORDER BY t DESC, id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .ok()
            .flatten();
        self.state().bid_open = last;
    }

    /// Notes the bid's state and the gate's answer after a round: a change becomes an event,
    /// written to the journal at once (changes are rare; losing one to a power cut would
    /// misdraw the bid's periods).
    pub fn observe(
        &self,
        journal: &Journal,
        t: f64,
        bid_open: bool,
        decision: Option<&crate::admission::Decision>,
    ) {
        let mut events = Vec::new();
        {
            let mut state = self.state();
            if state.bid_open != Some(bid_open) {
                if state.bid_open.is_some() || bid_open {
                    events.push(Event {
                        t,
                        kind: "bid".into(),
                        on: bid_open,
                        text: if bid_open { "bid opened" } else { "bid closed" }.into(),
                    });
                }
                state.bid_open = Some(bid_open);
            }
            if let Some(decision) = decision
                && state.admit != Some(decision.admit)
            {
                state.admit = Some(decision.admit);
                let reason = decision.reasons.first().cloned().unwrap_or_default();
                events.push(Event {
                    t,
                    kind: "gate".into(),
                    on: decision.admit,
                    text: crate::text::one_line(&reason, MAX_TEXT),
                });
            }
        }
        for event in events {
            if let Err(error) = put_event(journal, &event, MAX_EVENTS) {
                tracing::warn!(%error, "history: event not journaled");
            }
        }
    }

    /// Takes one sample; every `journal_every_s` of wall time, writes the mean of the samples
    /// since to the journal.
    pub fn sample(&self, journal: &Journal, point: Point) {
        let write = {
            let mut state = self.state();
            state.recent.push_back(point.clone());
            while state.recent.len() > self.recent_capacity() {
                state.recent.pop_front();
            }
            state.unwritten.push(point);
            if state.written_at.elapsed().as_secs_f64() >= self.settings.journal_every_s {
                state.written_at = Instant::now();
                mean(&std::mem::take(&mut state.unwritten))
            } else {
                None
            }
        };
        if let Some(mean) = write {
            let cutoff = mean.t - self.settings.keep_days * 86_400.0;
            if let Err(error) = put_point(journal, &mean, cutoff, self.journal_capacity()) {
                tracing::warn!(%error, "history: point not journaled");
            }
        }
    }

    /// The history of `[from, to]` (the gate's time); `now` and `forecast` come from the gate.
    pub fn view(
        &self,
        journal: &Journal,
        from: f64,
        to: f64,
        now: f64,
        forecast: Vec<ForecastPoint>,
    ) -> Result<HistoryView, JournalError> {
        let (recent, oldest_recent) = {
            let state = self.state();
            let points: Vec<Point> = state
                .recent
                .iter()
                .filter(|p| p.t >= from && p.t <= to)
                .cloned()
                .collect();
            (points, state.recent.front().map(|p| p.t))
        };
        let journal_to = oldest_recent.map_or(to, |t| t.min(to));
        let mut points = journal_points(journal, from, journal_to)?;
        points.retain(|p| oldest_recent.is_none_or(|t| p.t < t));
        points.extend(recent);
        let points = thin(points, MAX_POINTS);
        let (before, events) = journal_events(journal, from, to)?;
        let bid_periods = periods(before, &events, from);
        let tasks = task_marks(journal, from, to)?;
        Ok(HistoryView {
            from,
            to,
            now,
            points,
            events,
            bid_periods,
            tasks,
            forecast,
        })
    }
}

/// The mean of some samples: averaged readings, the last one's flags and time.
pub fn mean(points: &[Point]) -> Option<Point> {
    let last = points.last()?;
    let average = |get: fn(&Point) -> Option<f64>| {
        let values: Vec<f64> = points
            .iter()
            .filter_map(get)
            .filter(|v| v.is_finite())
            .collect();
        (!values.is_empty()).then(|| {
            let sum: f64 = values.iter().sum();
            (sum / values.len() as f64 * 100.0).round() / 100.0
        })
    };
    Some(Point {
        t: last.t,
        pv_w: average(|p| p.pv_w),
        load_w: average(|p| p.load_w),
        soc_pct: average(|p| p.soc_pct),
        bid_open: points.iter().any(|p| p.bid_open),
        admit: last.admit,
    })
}

/// At most `most` points (two at least), evenly spaced, the first and the last kept.
pub fn thin(points: Vec<Point>, most: usize) -> Vec<Point> {
    let most = most.max(2);
    if points.len() <= most {
        return points;
    }
    let last = points.len() - 1;
    // Every step-th point before the last, then the last: ceil(last / step) + 1 <= most.
    let step = last.div_ceil(most - 1);
    points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (i % step == 0 && *i < last) || *i == last)
        .map(|(_, p)| p)
        .collect()
}

/// The bid's open periods in a span, from the bid's state before it (`before`) and its events.
pub fn periods(before: Option<bool>, events: &[Event], from: f64) -> Vec<Period> {
    let mut out = Vec::new();
    let mut open = before.unwrap_or(false).then_some(from);
    for event in events.iter().filter(|e| e.kind == "bid") {
        match (open, event.on) {
            (None, true) => open = Some(event.t),
            (Some(start), false) => {
                out.push(Period {
                    from: start,
                    to: Some(event.t),
                });
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        out.push(Period {
            from: start,
            to: None,
        });
    }
    out
}

/// The samples a sampler takes from the gate's status and the node's state.
pub fn point_from_status(
    status: &serde_json::Value,
    fallback_t: f64,
    bid_open: bool,
    admit: Option<bool>,
) -> Point {
    let number = |v: &serde_json::Value| v.as_f64().filter(|x| x.is_finite());
    Point {
        t: number(&status["energy_time_s"]).unwrap_or(fallback_t),
        pv_w: number(&status["readings"]["pv_w"]),
        load_w: number(&status["readings"]["load_w"]),
        soc_pct: number(&status["battery"]["soc_pct"]).or_else(|| {
            number(&status["readings"]["battery_soc"]).map(|soc| (soc * 1000.0).round() / 10.0)
        }),
        bid_open,
        admit,
    }
}

/// The forecast ahead, from the gate's status.
pub fn forecast_from_status(status: &serde_json::Value) -> Vec<ForecastPoint> {
    status["forecast"]["hourly_w"]
        .as_array()
        .map(|hours| {
            hours
                .iter()
                .filter_map(|h| {
                    Some(ForecastPoint {
                        t: h["time_s"].as_f64()?,
                        p10: h["p10"].as_f64()?,
                        p50: h["p50"].as_f64()?,
                        p90: h["p90"].as_f64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn put_point(journal: &Journal, point: &Point, cutoff: f64, keep: i64) -> Result<(), JournalError> {
    let text = serde_json::to_string(point).expect("a point serializes");
    journal
        .connection()
        .execute_batch("BEGIN")
        .map_err(|e| journal.error(e))?;
    let written = (|| {
        let connection = journal.connection();
        connection.execute(
            "INSERT OR REPLACE INTO history_points (t, point) VALUES (?1, ?2)",
            rusqlite::params![point.t, text],
        )?;
        connection.execute(
            "DELETE FROM history_points WHERE t < ?1 OR t <= (SELECT t FROM history_points \
             ORDER BY t DESC LIMIT 1 OFFSET ?2)",
            rusqlite::params![cutoff, keep],
        )?;
        connection.execute_batch("COMMIT")
    })();
    if let Err(error) = written {
        let _ = journal.connection().execute_batch("ROLLBACK");
        return Err(journal.error(error));
    }
    Ok(())
}

fn put_event(journal: &Journal, event: &Event, keep: i64) -> Result<(), JournalError> {
    let connection = journal.connection();
    connection
        .execute(
            "INSERT INTO history_events (t, kind, is_on, text) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![event.t, event.kind, event.on, event.text],
        )
        .and_then(|_| {
            connection.execute(
                "DELETE FROM history_events WHERE id <= (SELECT id FROM history_events \
                 ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                [keep],
            )
        })
        .map(|_| ())
        .map_err(|e| journal.error(e))
}

/// The journal's points in `[from, to]`, thinned in SQLite to about [`MAX_POINTS`] (every
/// k-th row), so a long span never loads more than that.
fn journal_points(journal: &Journal, from: f64, to: f64) -> Result<Vec<Point>, JournalError> {
    let connection = journal.connection();
    let count: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM history_points WHERE t >= ?1 AND t <= ?2",
            [from, to],
            |row| row.get(0),
        )
        .map_err(|e| journal.error(e))?;
    let every = (count as usize).div_ceil(MAX_POINTS).max(1) as i64;
    let mut statement = connection
        .prepare(
            "SELECT point FROM history_points WHERE t >= ?1 AND t <= ?2 AND rowid % ?3 = 0 \
             ORDER BY t LIMIT ?4",
        )
        .map_err(|e| journal.error(e))?;
    let rows = statement
        .query_map(
            rusqlite::params![from, to, every, 2 * MAX_POINTS as i64],
            |row| row.get::<_, String>(0),
        )
        .map_err(|e| journal.error(e))?;
    Ok(rows
        .flatten()
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect())
}

/// The bid's state before `from` (its last event then), and the events in `[from, to]`.
fn journal_events(
    journal: &Journal,
    from: f64,
    to: f64,
) -> Result<(Option<bool>, Vec<Event>), JournalError> {
    use rusqlite::OptionalExtension;
    let connection = journal.connection();
    let before: Option<bool> = connection
        .query_row(
            "SELECT is_on FROM history_events WHERE kind = 'bid' AND t < ?1 ORDER BY t DESC, id DESC LIMIT 1",
            [from],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| journal.error(e))?;
    let mut statement = connection
        .prepare(
            "SELECT t, kind, is_on, text FROM history_events WHERE t >= ?1 AND t <= ?2 \
             ORDER BY t, id LIMIT ?3",
        )
        .map_err(|e| journal.error(e))?;
    let rows = statement
        .query_map(rusqlite::params![from, to, MAX_EVENTS], |row| {
            Ok(Event {
                t: row.get(0)?,
                kind: row.get(1)?,
                on: row.get(2)?,
                text: row.get(3)?,
            })
        })
        .map_err(|e| journal.error(e))?;
    Ok((before, rows.flatten().collect()))
}

fn task_marks(journal: &Journal, from: f64, to: f64) -> Result<Vec<TaskMark>, JournalError> {
    let mut statement = journal
        .connection()
        .prepare(
            "SELECT r.task, json_extract(r.receipt, '$.started_s'), json_extract(r.receipt, '$.finished_s'), \
             json_extract(r.receipt, '$.wh_used'), json_extract(r.receipt, '$.pv_share_pct'), e.earned_nrlc \
             FROM energy_receipts r LEFT JOIN earnings e ON e.task = r.task \
             WHERE json_extract(r.receipt, '$.finished_s') >= ?1 AND json_extract(r.receipt, '$.started_s') <= ?2 \
             ORDER BY 3 DESC LIMIT ?3",
        )
        .map_err(|e| journal.error(e))?;
    let rows = statement
        .query_map(rusqlite::params![from, to, MAX_TASKS], |row| {
            Ok(TaskMark {
                task: row.get(0)?,
                started_s: row.get::<_, Option<f64>>(1)?.unwrap_or(0.0),
                finished_s: row.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                wh_used: row.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                pv_share_pct: row.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                earned_nrlc: row.get::<_, Option<i64>>(5)?.map(|n| n.max(0) as u64),
            })
        })
        .map_err(|e| journal.error(e))?;
    let mut marks: Vec<TaskMark> = rows.flatten().collect();
    marks.reverse();
    Ok(marks)
}

/// Samples the node every `history.sample_every_s` until it shuts down.
pub async fn run(node: std::sync::Arc<Node>) {
    let every = Duration::from_secs_f64(node.settings.history.sample_every_s.max(0.1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = node.shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::unix_now();
        let status = node.gate.status(now as u64);
        let point = point_from_status(
            &status,
            node.gate.energy_time_s(now),
            node.bid_open(),
            node.heartbeat.bid_decision().map(|d| d.admit),
        );
        // The journal is locked only now: bid_open above reads it too.
        let journal = node.journal();
        node.history.sample(&journal, point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Decision;

    fn settings(sample: f64, journal: f64, days: f64) -> HistorySettings {
        HistorySettings {
            sample_every_s: sample,
            journal_every_s: journal,
            keep_days: days,
        }
    }

    fn point(t: f64, pv: f64, bid: bool) -> Point {
        Point {
            t,
            pv_w: Some(pv),
            load_w: Some(3.0),
            soc_pct: Some(50.0),
            bid_open: bid,
            admit: Some(bid),
        }
    }

    #[test]
    fn means_average_what_was_read_and_keep_the_last_flags() {
        let mut points = vec![point(10.0, 10.0, false), point(20.0, 20.0, true)];
        points.push(Point {
            pv_w: None,
            ..point(30.0, 0.0, false)
        });
        let m = mean(&points).unwrap();
        assert_eq!(m.t, 30.0);
        assert_eq!(m.pv_w, Some(15.0), "a missing reading is not a zero");
        assert!(m.bid_open, "open at any sample in the span");
        assert_eq!(m.admit, Some(false));
        assert!(mean(&[]).is_none());
    }

    #[test]
    fn thinning_keeps_the_ends_and_stays_under_the_bound() {
        let points: Vec<Point> = (0..10_001).map(|i| point(i as f64, 0.0, false)).collect();
        let thinned = thin(points, 4_000);
        assert!(thinned.len() <= 4_000, "{}", thinned.len());
        assert!(thinned.len() >= 3_300, "{}", thinned.len());
        assert_eq!(thinned.first().unwrap().t, 0.0);
        assert_eq!(thinned.last().unwrap().t, 10_000.0);
        let few: Vec<Point> = (0..3).map(|i| point(i as f64, 0.0, false)).collect();
        assert_eq!(thin(few.clone(), 4_000), few);
    }

    #[test]
    fn bid_periods_follow_the_events_and_the_state_before() {
        let event = |t: f64, on: bool| Event {
            t,
            kind: "bid".into(),
            on,
            text: String::new(),
        };
        let gate = Event {
            t: 15.0,
            kind: "gate".into(),
            on: false,
            text: "night".into(),
        };
        let events = vec![
            event(10.0, false),
            gate,
            event(20.0, true),
            event(30.0, false),
            event(40.0, true),
        ];
        assert_eq!(
            periods(Some(true), &events, 0.0),
            vec![
                Period {
                    from: 0.0,
                    to: Some(10.0)
                },
                Period {
                    from: 20.0,
                    to: Some(30.0)
                },
                Period {
                    from: 40.0,
                    to: None
                },
            ]
        );
        assert_eq!(periods(None, &events[..2], 0.0), vec![]);
    }

    #[test]
    fn the_journal_keeps_bounded_means_and_every_change_and_serves_a_span() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        // Every sample is written (journal_every_s 0 s would be refused by the config; here
        // the clock check passes at once because the interval is tiny); keep 10 rows.
        let history = History::new(HistorySettings {
            journal_every_s: 1e-9,
            keep_days: 1.0,
            ..settings(1.0, 1.0, 1.0)
        });
        let keep = 10;
        for i in 0..25 {
            let p = point(1_000.0 + i as f64 * 300.0, i as f64, i % 2 == 0);
            let cutoff = p.t - 86_400.0;
            put_point(&journal, &p, cutoff, keep).unwrap();
        }
        let stored = journal_points(&journal, 0.0, f64::MAX).unwrap();
        assert_eq!(stored.len(), 10, "bounded in rows, oldest dropped");
        assert_eq!(stored.first().unwrap().pv_w, Some(15.0));
        // Old rows also go by time.
        put_point(
            &journal,
            &point(1_000_000.0, 1.0, false),
            1_000_000.0 - 86_400.0,
            keep,
        )
        .unwrap();
        assert_eq!(journal_points(&journal, 0.0, f64::MAX).unwrap().len(), 1);

        // Changes: the bid opens, the gate says no (reason kept, one line), the bid closes.
        history.observe(&journal, 100.0, false, None);
        history.observe(&journal, 110.0, true, Some(&Decision::yes("surplus 40 W")));
        history.observe(&journal, 115.0, true, Some(&Decision::yes("surplus 41 W")));
        history.observe(&journal, 120.0, true, Some(&Decision::no("night\nfalls")));
        history.observe(&journal, 130.0, false, Some(&Decision::no("night")));
        let (before, events) = journal_events(&journal, 0.0, 1e12).unwrap();
        assert_eq!(before, None);
        let kinds: Vec<(&str, bool)> = events.iter().map(|e| (e.kind.as_str(), e.on)).collect();
        assert_eq!(
            kinds,
            vec![
                ("bid", true),
                ("gate", true),
                ("gate", false),
                ("bid", false)
            ]
        );
        assert!(!events[2].text.contains('\n'), "{:?}", events[2]);
        let (before, later) = journal_events(&journal, 125.0, 1e12).unwrap();
        assert_eq!(before, Some(true));
        assert_eq!(
            periods(before, &later, 125.0),
            vec![Period {
                from: 125.0,
                to: Some(130.0)
            }]
        );

        // A view joins journal points and in-memory samples without overlap.
        history.sample(&journal, point(1_000_100.0, 7.0, true));
        let view = history
            .view(&journal, 0.0, 2e6, 1_000_100.0, vec![])
            .unwrap();
        let times: Vec<f64> = view.points.iter().map(|p| p.t).collect();
        assert_eq!(times, vec![1_000_000.0, 1_000_100.0]);
        assert_eq!(
            view.bid_periods,
            vec![Period {
                from: 110.0,
                to: Some(130.0)
            }]
        );
    }

    #[test]
    fn a_restart_records_the_bid_closing_and_long_spans_are_thinned_in_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let before = History::new(settings(60.0, 300.0, 8.0));
        before.observe(&journal, 10.0, true, None);
        // The node stops with its bid open (say, power cut); the next one starts closed.
        let after = History::new(settings(60.0, 300.0, 8.0));
        after.resume(&journal);
        after.observe(&journal, 20.0, false, None);
        let (_, events) = journal_events(&journal, 0.0, 1e9).unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            periods(None, &events, 0.0),
            vec![Period {
                from: 10.0,
                to: Some(20.0)
            }]
        );

        let connection = journal.connection();
        connection.execute_batch("BEGIN").unwrap();
        for i in 0..12_000 {
            let p = point(i as f64, 1.0, false);
            connection
                .execute(
                    "INSERT INTO history_points (t, point) VALUES (?1, ?2)",
                    rusqlite::params![p.t, serde_json::to_string(&p).unwrap()],
                )
                .unwrap();
        }
        connection.execute_batch("COMMIT").unwrap();
        let loaded = journal_points(&journal, 0.0, f64::MAX).unwrap();
        assert!(
            (MAX_POINTS / 2..=MAX_POINTS + 1).contains(&loaded.len()),
            "{} points loaded for 12 000 rows",
            loaded.len()
        );
        assert!(loaded.windows(2).all(|w| w[0].t < w[1].t), "in time order");
    }

    #[test]
    fn samples_come_from_the_gate_status() {
        let status = serde_json::json!({
            "energy_time_s": 1_780_272_000.0,
            "readings": {"pv_w": 12.5, "load_w": 3.1, "battery_soc": 0.615},
            "battery": {"soc_pct": 40.0},
            "forecast": {"hourly_w": [{"time_s": 1.0, "p10": 0.0, "p50": 1.0, "p90": 2.0}, {"time_s": 2.0}]},
        });
        let p = point_from_status(&status, 5.0, true, Some(true));
        assert_eq!(p.t, 1_780_272_000.0);
        assert_eq!(
            p.soc_pct,
            Some(40.0),
            "the gate's estimate, as /status shows it"
        );
        let measured_only = serde_json::json!({"readings": {"battery_soc": 0.615}});
        assert_eq!(
            point_from_status(&measured_only, 5.0, true, None).soc_pct,
            Some(61.5)
        );
        assert_eq!(p.pv_w, Some(12.5));
        let forecast = forecast_from_status(&status);
        assert_eq!(
            forecast,
            vec![ForecastPoint {
                t: 1.0,
                p10: 0.0,
                p50: 1.0,
                p90: 2.0
            }]
        );
        // The always gate has no status: a point with the wall time and no readings.
        let bare = point_from_status(&serde_json::Value::Null, 5.0, false, None);
        assert_eq!((bare.t, bare.pv_w, bare.soc_pct), (5.0, None, None));
        assert!(forecast_from_status(&serde_json::Value::Null).is_empty());
    }
}
