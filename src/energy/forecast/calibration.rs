//! How honest a forecast's quantiles are: the share of daylight hours whose measured PV fell
//! under the forecast's P10 (about 10 % for an honest P10) and over its P90, an hour ahead and
//! a day ahead. A P10 that is too pessimistic costs work; one too optimistic costs the battery.
//! `pew energy simulate` reports it for every trace it replays.

use std::collections::HashMap;

use serde::Serialize;

use super::{Forecast, Site, clear_sky};

/// How far ahead of the hour its forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lead {
    /// Made at the hour's start (what the planner uses for work starting now).
    Hour,
    /// Made 23 hours before the hour's start (what a day's plan counts on).
    Day,
}

/// Collects forecasts and measurements hour by hour.
#[derive(Debug, Clone)]
pub struct Calibration {
    site: Site,
    /// (hour, lead) → (P10, P90) mean power over the hour, W.
    expected: HashMap<(i64, Lead), (f64, f64)>,
    /// hour → (energy in W·s, seconds measured).
    measured: HashMap<i64, (f64, f64)>,
}

/// The calibration of one lead time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LeadCalibration {
    /// Daylight hours with both a forecast and a whole hour of measurements.
    pub hours: u64,
    /// Share of them whose measured PV fell under P10, %.
    pub under_p10_pct: f64,
    /// Share of them whose measured PV rose over P90, %.
    pub over_p90_pct: f64,
}

/// The calibration of a forecast over a trace, an hour and a day ahead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationReport {
    /// Forecasts made at the hour's start.
    pub hour_ahead: LeadCalibration,
    /// Forecasts made 23 hours before the hour's start.
    pub day_ahead: LeadCalibration,
}

const HOUR_S: f64 = 3600.0;
/// Differences smaller than this (W) are ties: a dark hour is neither under nor over.
const TIE_W: f64 = 0.01;

impl Calibration {
    /// An empty record for `site` (its sun says which hours are daylight).
    pub fn new(site: Site) -> Self {
        Self {
            site,
            expected: HashMap::new(),
            measured: HashMap::new(),
        }
    }

    /// Records what `forecast` (made at an hour's start) says of that hour and of the hour 23
    /// hours later.
    pub fn forecast_made(&mut self, forecast: &Forecast) {
        let hour = (forecast.made_at_s / HOUR_S).floor() as i64;
        for (lead, ahead) in [(Lead::Hour, 0), (Lead::Day, 23)] {
            let start = (hour + ahead) as f64 * HOUR_S;
            if start < forecast.made_at_s {
                continue; // the hour had begun before the forecast was made
            }
            let mean = |q: f64| forecast.energy_wh(q, start, start + HOUR_S);
            self.expected
                .insert((hour + ahead, lead), (mean(0.1), mean(0.9)));
        }
    }

    /// Adds a measurement of `pv_w` held for `dt_s` seconds from `time_s`.
    pub fn measured(&mut self, time_s: f64, pv_w: f64, dt_s: f64) {
        if !(pv_w.is_finite() && dt_s > 0.0) {
            return;
        }
        let entry = self
            .measured
            .entry((time_s / HOUR_S).floor() as i64)
            .or_default();
        entry.0 += pv_w * dt_s;
        entry.1 += dt_s;
    }

    /// The shares so far.
    pub fn report(&self) -> CalibrationReport {
        CalibrationReport {
            hour_ahead: self.lead(Lead::Hour),
            day_ahead: self.lead(Lead::Day),
        }
    }

    fn lead(&self, lead: Lead) -> LeadCalibration {
        let peak = self.site.kwp * 1000.0 * (1.0 - self.site.losses);
        let (mut hours, mut under, mut over) = (0u64, 0u64, 0u64);
        for (&(hour, l), &(p10, p90)) in &self.expected {
            if l != lead {
                continue;
            }
            let Some(&(energy, seconds)) = self.measured.get(&hour) else {
                continue;
            };
            let middle = (hour as f64 + 0.5) * HOUR_S;
            if seconds < HOUR_S - 1e-6
                || clear_sky::clear_sky_pv_w(&self.site, middle) <= 0.05 * peak
            {
                continue; // not a whole hour, or night and dawn
            }
            let mean = energy / seconds;
            hours += 1;
            under += u64::from(mean < p10 - TIE_W);
            over += u64::from(mean > p90 + TIE_W);
        }
        let pct = |n: u64| {
            if hours == 0 {
                0.0
            } else {
                (n as f64 / hours as f64 * 1000.0).round() / 10.0
            }
        };
        LeadCalibration {
            hours,
            under_p10_pct: pct(under),
            over_p90_pct: pct(over),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::forecast::ForecastPoint;

    fn site() -> Site {
        Site::parse("latitude=0 longitude=0 tilt=0 azimuth=0 kwp=0.1").unwrap()
    }

    /// A flat forecast of P10 = 10 W, P90 = 30 W from `made_at_s` for two days.
    fn flat(made_at_s: f64) -> Forecast {
        Forecast {
            made_at_s,
            step_s: 300.0,
            source: "test".into(),
            points: (0..576)
                .map(|i| ForecastPoint {
                    time_s: made_at_s + i as f64 * 300.0,
                    p10_w: 10.0,
                    p50_w: 20.0,
                    p90_w: 30.0,
                })
                .collect(),
        }
    }

    #[test]
    fn hours_under_p10_and_over_p90_are_counted_in_daylight_only() {
        let mut calibration = Calibration::new(site());
        // Day 2 of 1970 at the equator: the sun is up from about 06:00 to 18:00 UTC.
        let day = 86_400.0;
        for hour in 0..48 {
            calibration.forecast_made(&flat(hour as f64 * HOUR_S));
        }
        // Measured: 5 W (under) from 08:00 to 10:00, 40 W (over) 10:00-11:00, 20 W otherwise.
        let mut t = day;
        while t < 2.0 * day {
            let hour = ((t - day) / HOUR_S) as u32;
            let pv = match hour {
                8 | 9 => 5.0,
                10 => 40.0,
                _ => 20.0,
            };
            calibration.measured(t, pv, 60.0);
            t += 60.0;
        }
        let report = calibration.report();
        let daylight = report.hour_ahead.hours;
        assert!((10..=13).contains(&daylight), "{report:?}");
        let pct = |n: f64| (n / daylight as f64 * 1000.0).round() / 10.0;
        assert_eq!(report.hour_ahead.under_p10_pct, pct(2.0));
        assert_eq!(report.hour_ahead.over_p90_pct, pct(1.0));
        // The day-ahead forecasts for day 2 were made on day 1: the same figures.
        assert_eq!(report.day_ahead, report.hour_ahead);
    }

    #[test]
    fn partial_hours_and_no_forecast_count_for_nothing() {
        let mut calibration = Calibration::new(site());
        calibration.forecast_made(&flat(12.0 * HOUR_S));
        calibration.measured(12.0 * HOUR_S, 0.0, 1800.0); // half an hour only
        calibration.measured(14.0 * HOUR_S, 0.0, 3600.0); // no forecast for it
        calibration.measured(15.0 * HOUR_S, f64::NAN, 3600.0);
        let report = calibration.report();
        assert_eq!(report.hour_ahead.hours, 0);
        assert_eq!(report.hour_ahead.under_p10_pct, 0.0);
    }
}
