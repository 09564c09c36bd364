//! `pew earnings`: what the node's completed tasks earned (the RLC PoCo paid our accounts, read
//! from the chain when each task completed), the gas they cost, and the solar energy they used,
//! per UTC day and in total. Reads the journal in `node.journal`, also while the node runs.

use std::process::ExitCode;

use alloy::primitives::U256;

use crate::config::Settings;
use crate::node::earnings::{Report, Totals};
use crate::poco::Nrlc;

/// Flags of `pew earnings`.
#[derive(Debug, clap::Args)]
pub struct EarningsArgs {
    /// Only tasks that ended since then: a date (2026-12-01, UTC), a span back from now (24h,
    /// 7d), or unix seconds. Default: since the first task.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
}

/// Runs `pew earnings`.
pub fn run(args: EarningsArgs, json: bool, settings: &Settings) -> anyhow::Result<ExitCode> {
    let since_s = match args.since.as_deref() {
        Some(text) => parse_since(text, crate::clock::unix_now()).map_err(anyhow::Error::msg)?,
        None => 0.0,
    };
    let connection = crate::node::earnings::open_read_only(&settings.node.journal)
        .map_err(anyhow::Error::msg)?;
    let report = crate::node::earnings::report(&connection, since_s).map_err(|e| {
        anyhow::anyhow!(
            "journal {}: {e}",
            crate::text::quote(&settings.node.journal.display().to_string())
        )
    })?;
    if json {
        super::output::out_line(&serde_json::to_string(&report)?);
    } else {
        for line in text_lines(&report) {
            super::output::out_line(&line);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`: a UTC date, a span back from `now_s` (`90m`, `24h`, `7d`), or unix seconds.
pub fn parse_since(text: &str, now_s: f64) -> Result<f64, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "--since {}: give a date (2026-12-01), a span back from now (24h, 7d) or unix seconds",
            crate::text::one_line(text, 40)
        )
    };
    if let Some((unit, scale)) = [('m', 60.0), ('h', 3600.0), ('d', 86_400.0)]
        .into_iter()
        .find(|(unit, _)| text.ends_with(*unit))
    {
        let amount: f64 = text[..text.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| bad())?;
        if !amount.is_finite() || amount < 0.0 {
            return Err(bad());
        }
        return Ok((now_s - amount * scale).max(0.0));
    }
    if let Some(days) = days_from_date(text) {
        return Ok(days as f64 * 86_400.0);
    }
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(bad()),
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date, if it is one.
fn days_from_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // Refuse dates that do not exist (2026-02-30): they would not round-trip.
    (crate::node::earnings::utc_day(days as f64 * 86_400.0) == text).then_some(days)
}

fn rlc(nrlc: u64) -> String {
    Nrlc(U256::from(nrlc)).to_string()
}

fn eth(wei: u128) -> String {
    format!("{:.6} ETH", wei as f64 / 1e18)
}

fn totals_line(label: &str, t: &Totals) -> String {
    format!(
        "{label:<12} {:>4} tasks  {:>16}  gas {:>14}  {:>9.3} Wh ({:.3} Wh solar)",
        t.tasks,
        rlc(t.earned_nrlc),
        eth(t.gas_wei),
        t.energy_wh,
        t.pv_wh
    )
}

/// The report as text: a line per day, the total, and the RLC per solar kWh.
pub fn text_lines(report: &Report) -> Vec<String> {
    if report.tasks.is_empty() {
        return vec!["no completed task with earnings yet".into()];
    }
    let mut lines: Vec<String> = report
        .days
        .iter()
        .map(|(day, t)| totals_line(day, t))
        .collect();
    lines.push(totals_line("total", &report.total));
    let unknown = report
        .tasks
        .iter()
        .filter(|t| t.earned_nrlc.is_none())
        .count();
    if unknown > 0 {
        lines.push(format!(
            "{unknown} task(s) finalized by another account: their reward is not counted"
        ));
    }
    lines.push(match report.total.nrlc_per_pv_kwh {
        Some(per) => format!(
            "{} per kWh of solar energy used",
            rlc(per.round().clamp(0.0, u64::MAX as f64) as u64)
        ),
        None => "no solar energy measured for these tasks yet".into(),
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_spans_and_unix_seconds() {
        let now = 1_780_272_000.0 + 3_600.0;
        assert_eq!(parse_since("2026-06-01", now), Ok(1_780_272_000.0));
        assert_eq!(parse_since("24h", now), Ok(now - 86_400.0));
        assert_eq!(parse_since("7d", now), Ok(now - 7.0 * 86_400.0));
        assert_eq!(parse_since("90m", now), Ok(now - 5_400.0));
        assert_eq!(parse_since("1780272000", now), Ok(1_780_272_000.0));
        assert_eq!(parse_since("1000000d", now), Ok(0.0), "clamped at 1970");
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "yesterday",
            "-5",
            "-1d",
            "NaNd",
            "",
            "d",
            "26-06-01",
        ] {
            let error = parse_since(bad, now).unwrap_err();
            assert!(error.starts_with("--since"), "{bad}: {error}");
        }
        assert!(parse_since(&"9".repeat(5000), now).is_err(), "infinite");
        let long = parse_since(&format!("{}x", "\u{202e}".repeat(1000)), now).unwrap_err();
        assert!(long.len() < 300, "{long}");
    }
}
