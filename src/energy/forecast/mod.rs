//! PV forecasts for the next 24 hours as P10/P50/P90, from a weather model when one is
//! reachable (Open-Meteo) and from the clear-sky model otherwise, both corrected online
//! against what the panel actually delivers.
//!
//! The correction learns the ratio measured / baseline. Its recent value (an hour's weighted
//! mean) says how today compares with the model; the spread of its hourly values over the last
//! two weeks gives the quantiles. Near-term points lean on the recent ratio, far ones on the
//! two-week distribution.

pub mod calibration;
pub mod clear_sky;
pub mod open_meteo;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use open_meteo::WeatherForecast;

/// Where the panel is and what it is: all the clear-sky model and Open-Meteo need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Degrees, north positive.
    pub latitude: f64,
    /// Degrees, east positive.
    pub longitude: f64,
    /// Panel tilt, 0 = horizontal, 90 = vertical.
    pub tilt_deg: f64,
    /// Panel azimuth, 0 = south, -90 = east, 90 = west (Open-Meteo's convention).
    pub azimuth_deg: f64,
    /// Installed DC peak power, kWp.
    pub kwp: f64,
    /// System losses as a fraction (PVWatts default 0.14).
    pub losses: f64,
}

impl Site {
    /// Checks ranges; an out-of-range site gives a forecast for somewhere else.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("latitude", self.latitude, -90.0, 90.0),
            ("longitude", self.longitude, -180.0, 180.0),
            ("tilt", self.tilt_deg, 0.0, 90.0),
            ("azimuth", self.azimuth_deg, -180.0, 180.0),
            ("kwp", self.kwp, 0.0, 1000.0),
            ("losses", self.losses, 0.0, 0.99),
        ];
        for (name, value, low, high) in checks {
            if !value.is_finite() || value < low || value > high {
                return Err(format!("{name} = {value} is outside {low}..={high}"));
            }
        }
        Ok(())
    }

    /// Parses `latitude=48.1 longitude=11.6 tilt=30 azimuth=0 kwp=0.05 [losses=0.14]`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut site = Site {
            latitude: f64::NAN,
            longitude: f64::NAN,
            tilt_deg: 30.0,
            azimuth_deg: 0.0,
            kwp: f64::NAN,
            losses: 0.14,
        };
        for word in spec.split_whitespace() {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("site field `{word}` is not KEY=VALUE"))?;
            let value: f64 = value
                .parse()
                .map_err(|_| format!("site field `{word}`: `{value}` is not a number"))?;
            match key {
                "latitude" | "lat" => site.latitude = value,
                "longitude" | "lon" => site.longitude = value,
                "tilt" => site.tilt_deg = value,
                "azimuth" => site.azimuth_deg = value,
                "kwp" => site.kwp = value,
                "losses" => site.losses = value,
                other => return Err(format!("unknown site field `{other}`")),
            }
        }
        site.validate()?;
        Ok(site)
    }
}

/// One forecast step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastPoint {
    /// Start of the step (unix seconds).
    pub time_s: f64,
    /// PV power exceeded with 90 % probability.
    pub p10_w: f64,
    /// Median PV power.
    pub p50_w: f64,
    /// PV power exceeded with 10 % probability.
    pub p90_w: f64,
}

/// A PV forecast: quantiles at fixed steps from `made_at_s`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// When it was made.
    pub made_at_s: f64,
    /// Step length.
    pub step_s: f64,
    /// "open-meteo" or "clear-sky".
    pub source: String,
    /// The steps.
    pub points: Vec<ForecastPoint>,
}

impl Forecast {
    /// PV power at quantile `q` (0..1; linear between P10, P50 and P90, clamped outside) at
    /// `time_s`; 0 outside the forecast.
    pub fn power_w(&self, q: f64, time_s: f64) -> f64 {
        if time_s < self.made_at_s || self.points.is_empty() {
            return 0.0;
        }
        let index = ((time_s - self.made_at_s) / self.step_s) as usize;
        let Some(point) = self.points.get(index) else {
            return 0.0;
        };
        if q <= 0.1 {
            point.p10_w
        } else if q <= 0.5 {
            point.p10_w + (q - 0.1) / 0.4 * (point.p50_w - point.p10_w)
        } else if q <= 0.9 {
            point.p50_w + (q - 0.5) / 0.4 * (point.p90_w - point.p50_w)
        } else {
            point.p90_w
        }
    }

    /// Energy (Wh) at quantile `q` between two times.
    pub fn energy_wh(&self, q: f64, from_s: f64, to_s: f64) -> f64 {
        let mut total = 0.0;
        let mut t = from_s;
        while t < to_s {
            let next = (t + self.step_s).min(to_s);
            if next <= t {
                break; // a step lost in the precision of a huge time
            }
            total += self.power_w(q, t) * (next - t);
            t = next;
        }
        total / 3600.0
    }
}

/// The PV power the planner counts on at each time: the forecast at `quantile`, or, without a
/// forecast (no site known), only what shines now and only for the next hour.
pub fn planning_pv(
    forecast: Option<Forecast>,
    quantile: f64,
    now_s: f64,
    pv_now_w: f64,
) -> impl Fn(f64) -> f64 {
    move |time_s| match &forecast {
        Some(f) => f.power_w(quantile, time_s),
        None if time_s < now_s + 3600.0 => pv_now_w,
        None => 0.0,
    }
}

/// The persistence nowcast's way of following the sun: how the panel's clear-sky power at a
/// time compares with now, never above 1 (today's sky is carried forward, never brightened),
/// and 0 throughout when the sun is too low now for a ratio to mean anything.
pub fn sky_trend(site: &Site, now_s: f64) -> impl Fn(f64) -> f64 + use<> {
    let site = site.clone();
    let peak = site.kwp * 1000.0 * (1.0 - site.losses);
    let now = clear_sky::clear_sky_pv_w(&site, now_s);
    move |time_s| {
        if now <= 0.05 * peak {
            0.0
        } else {
            (clear_sky::clear_sky_pv_w(&site, time_s) / now).clamp(0.0, 1.0)
        }
    }
}

/// Hourly ratios kept for the quantiles: two weeks of daylight hours.
const HISTORY_HOURS: usize = 14 * 24;
/// How fast the recent ratio forgets (seconds).
const RECENT_TIME_CONSTANT_S: f64 = 3600.0;
/// Share of the two-week spread kept for the very next minutes.
const NEAR_SPREAD: f64 = 0.35;
/// How fast a forecast point moves from the recent ratio to the two-week distribution.
const PERSISTENCE_HORIZON_S: f64 = 2.0 * 3600.0;

/// Hour-ahead errors needed before their own quantiles replace the fixed near-term spread.
const MIN_NOWCAST_ERRORS: usize = 12;

/// Learns measured / baseline online (ANCHORS §1.3: calibrated quantiles beat fixed margins).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Corrector {
    default_quantiles: [f64; 3],
    recent: Option<(f64, f64)>,
    hour: Option<(i64, f64, f64)>,
    hourly: VecDeque<f64>,
    /// The recent ratio (time, value) when the hour being summed began.
    #[serde(default)]
    hour_start_recent: Option<(f64, f64)>,
    /// How far each past hour's ratio fell from the recent ratio at its start: the nowcast's
    /// own errors, two weeks of them, whose quantiles make the near-term spread.
    #[serde(default)]
    nowcast_errors: VecDeque<f64>,
}

impl Corrector {
    /// A corrector that starts from `default_quantiles` (P10, P50, P90 ratios) until it has
    /// seen half a day of daylight hours.
    pub fn new(default_quantiles: [f64; 3]) -> Self {
        Self {
            default_quantiles,
            recent: None,
            hour: None,
            hourly: VecDeque::new(),
            hour_start_recent: None,
            nowcast_errors: VecDeque::new(),
        }
    }

    /// Feeds one measurement. Only daylight counts (baseline above 5 % of `peak_w`): at dawn a
    /// ratio of two tiny numbers says nothing.
    pub fn observe(&mut self, time_s: f64, measured_w: f64, baseline_w: f64, peak_w: f64) {
        if baseline_w <= 0.05 * peak_w || baseline_w <= 0.0 || !measured_w.is_finite() {
            return;
        }
        let ratio = (measured_w / baseline_w).clamp(0.0, 3.0);
        let before = self.recent;
        self.recent = Some(match self.recent {
            None => (time_s, ratio),
            Some((last_s, value)) => {
                let dt = (time_s - last_s).max(0.0);
                let keep = (-dt / RECENT_TIME_CONSTANT_S).exp();
                (time_s, keep * value + (1.0 - keep) * ratio)
            }
        });
        let hour = (time_s / 3600.0).floor() as i64;
        match &mut self.hour {
            Some((h, measured, baseline)) if *h == hour => {
                *measured += measured_w;
                *baseline += baseline_w;
            }
            slot => {
                if let Some((_, measured, baseline)) = slot.take()
                    && baseline > 0.0
                {
                    let closed = (measured / baseline).clamp(0.0, 3.0);
                    self.hourly.push_back(closed);
                    if self.hourly.len() > HISTORY_HOURS {
                        self.hourly.pop_front();
                    }
                    if let Some((_, start)) = self.hour_start_recent {
                        self.nowcast_errors.push_back(closed - start);
                        if self.nowcast_errors.len() > HISTORY_HOURS {
                            self.nowcast_errors.pop_front();
                        }
                    }
                }
                *slot = Some((hour, measured_w, baseline_w));
                // What the nowcast said as this hour began, if it said anything fresh (not
                // last evening's sky for this morning's first hour).
                self.hour_start_recent =
                    before.filter(|(t, _)| time_s - t <= RECENT_TIME_CONSTANT_S);
            }
        }
    }

    /// Whether every learned ratio is a number within 0..=3 (what `observe` ever stores).
    pub fn is_sound(&self) -> bool {
        let ratio = |r: f64| (0.0..=3.0).contains(&r);
        self.default_quantiles.iter().all(|&q| ratio(q))
            && self.recent.is_none_or(|(t, r)| t.is_finite() && ratio(r))
            && self
                .hour
                .is_none_or(|(_, m, b)| m.is_finite() && b.is_finite())
            && self.hourly.iter().all(|&r| ratio(r))
            && self
                .hour_start_recent
                .is_none_or(|(t, r)| t.is_finite() && ratio(r))
            && self
                .nowcast_errors
                .iter()
                .all(|&e| e.is_finite() && (-3.0..=3.0).contains(&e))
    }

    /// The recent ratio, if there is one from the last few hours.
    pub fn recent(&self, now_s: f64) -> Option<f64> {
        self.recent
            .filter(|(t, _)| now_s - t < 6.0 * 3600.0)
            .map(|(_, r)| r)
    }

    /// P10, P50 and P90 of the hourly ratios (the defaults until 12 hours are known).
    pub fn quantiles(&self) -> [f64; 3] {
        if self.hourly.len() < 12 {
            return self.default_quantiles;
        }
        let mut sorted: Vec<f64> = self.hourly.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        [pick(0.1), pick(0.5), pick(0.9)]
    }

    /// P10, P50 and P90 of the nowcast's hour-ahead errors, once enough are known.
    fn nowcast_error_quantiles(&self) -> Option<[f64; 3]> {
        if self.nowcast_errors.len() < MIN_NOWCAST_ERRORS {
            return None;
        }
        let mut sorted: Vec<f64> = self.nowcast_errors.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some([pick(0.1), pick(0.5), pick(0.9)])
    }

    /// Ratios for a point `ahead_s` from now (see [`Spread::ratios`]).
    pub fn ratios(&self, now_s: f64, ahead_s: f64) -> [f64; 3] {
        self.spread(now_s).ratios(ahead_s)
    }

    /// What the ratios at `now_s` are made of, sorted once for a whole forecast: a forecast
    /// asks for hundreds of points, and each would sort two weeks of hours again.
    pub fn spread(&self, now_s: f64) -> Spread {
        Spread {
            far: self.quantiles(),
            recent: self.recent(now_s),
            errors: self.nowcast_error_quantiles(),
        }
    }
}

/// A corrector's state at one moment, ready to give the ratios for any point ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    far: [f64; 3],
    recent: Option<f64>,
    errors: Option<[f64; 3]>,
}

impl Spread {
    /// Ratios for a point `ahead_s` from now. Near points come from the recent ratio and the
    /// quantiles of its own past hour-ahead errors (before a day of them is known: a third of
    /// the two-week spread around it); far ones from the two-week distribution; in between,
    /// each quantile moves from the one to the other.
    pub fn ratios(&self, ahead_s: f64) -> [f64; 3] {
        let [q10, q50, q90] = self.far;
        let Some(recent) = self.recent else {
            return [q10, q50, q90];
        };
        let near = (-ahead_s.max(0.0) / PERSISTENCE_HORIZON_S).exp();
        if let Some(errors) = self.errors {
            let far = self.far;
            return [0, 1, 2]
                .map(|i| (near * (recent + errors[i]) + (1.0 - near) * far[i]).max(0.0));
        }
        let centre = near * recent + (1.0 - near) * q50;
        let width = NEAR_SPREAD + (1.0 - NEAR_SPREAD) * (1.0 - near);
        [q10, q50, q90].map(|q| (centre + (q - q50) * width).max(0.0))
    }
}

/// Makes forecasts for one site and keeps learning from what the panel measures. It is saved
/// with the energy state, so what it learned survives the nightly power-off.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forecaster {
    site: Site,
    weather: Option<WeatherForecast>,
    clear_sky: Corrector,
    weather_corrector: Corrector,
    peak_w: f64,
}

impl Forecaster {
    /// A forecaster with no weather yet (clear-sky model only).
    pub fn new(site: Site) -> Self {
        let peak_w = site.kwp * 1000.0 * (1.0 - site.losses);
        Self {
            site,
            weather: None,
            clear_sky: Corrector::new([0.15, 0.6, 1.0]),
            weather_corrector: Corrector::new([0.6, 0.95, 1.2]),
            peak_w,
        }
    }

    /// The site.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Hands in a fresh weather forecast (from Open-Meteo or its cache).
    pub fn set_weather(&mut self, weather: WeatherForecast) {
        if !weather.is_sound() {
            tracing::warn!("a weather forecast that does not hold together was ignored");
            return;
        }
        self.weather = Some(weather);
    }

    /// The same forecaster, loaded from a state file, with whatever cannot be right put back
    /// to a fresh start: a weather forecast that does not hold together, a learned ratio out of
    /// its 0..=3 range or not a number, a peak power other than the site's. A file cut short or
    /// edited by hand must not make the gate count on sun that is not there.
    pub fn sanitized(mut self) -> Self {
        if self.weather.as_ref().is_some_and(|w| !w.is_sound()) {
            tracing::warn!("the saved weather forecast does not hold together; dropped");
            self.weather = None;
        }
        let fresh = Forecaster::new(self.site.clone());
        if !self.clear_sky.is_sound() {
            tracing::warn!("the saved clear-sky correction is out of range; learning again");
            self.clear_sky = fresh.clear_sky.clone();
        }
        if !self.weather_corrector.is_sound() {
            tracing::warn!("the saved weather correction is out of range; learning again");
            self.weather_corrector = fresh.weather_corrector.clone();
        }
        self.peak_w = fresh.peak_w;
        // A list longer than ever kept (a hand-edited file) would be sorted at every forecast.
        for corrector in [&mut self.clear_sky, &mut self.weather_corrector] {
            while corrector.hourly.len() > HISTORY_HOURS {
                corrector.hourly.pop_front();
            }
            while corrector.nowcast_errors.len() > HISTORY_HOURS {
                corrector.nowcast_errors.pop_front();
            }
        }
        self
    }

    /// The weather forecast in use, if any.
    pub fn weather(&self) -> Option<&WeatherForecast> {
        self.weather.as_ref()
    }

    fn weather_pv_w(&self, time_s: f64) -> Option<f64> {
        let gti = self.weather.as_ref()?.gti_at(time_s)?;
        Some(clear_sky::pv_power_w(&self.site, gti))
    }

    /// Learns from one measurement of the panel's power.
    pub fn observe(&mut self, time_s: f64, measured_pv_w: f64) {
        let clear = clear_sky::clear_sky_pv_w(&self.site, time_s);
        self.clear_sky
            .observe(time_s, measured_pv_w, clear, self.peak_w);
        if let Some(weather) = self.weather_pv_w(time_s) {
            // The weather model's own ratio only counts where it predicts real light.
            self.weather_corrector
                .observe(time_s, measured_pv_w, weather.max(0.0), self.peak_w);
        }
    }

    /// P10/P50/P90 from `now_s` for `horizon_s` in steps of `step_s`.
    pub fn forecast(&self, now_s: f64, horizon_s: f64, step_s: f64) -> Forecast {
        let steps = (horizon_s / step_s).ceil().max(1.0) as usize;
        let mut used_weather = false;
        let clear_sky_spread = self.clear_sky.spread(now_s);
        let weather_spread = self.weather_corrector.spread(now_s);
        let points = (0..steps)
            .map(|i| {
                let t = now_s + i as f64 * step_s;
                let middle = t + step_s / 2.0;
                let (baseline, spread) = match self.weather_pv_w(middle) {
                    Some(w) => {
                        used_weather = true;
                        (w, &weather_spread)
                    }
                    None => (
                        clear_sky::clear_sky_pv_w(&self.site, middle),
                        &clear_sky_spread,
                    ),
                };
                let [r10, r50, r90] = spread.ratios(middle - now_s);
                ForecastPoint {
                    time_s: t,
                    p10_w: baseline * r10,
                    p50_w: baseline * r50,
                    p90_w: baseline * r90,
                }
            })
            .collect();
        Forecast {
            made_at_s: now_s,
            step_s,
            source: if used_weather {
                "open-meteo"
            } else {
                "clear-sky"
            }
            .into(),
            points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::parse("latitude=48 longitude=0 tilt=30 azimuth=0 kwp=0.1").unwrap()
    }

    const JUNE_21: f64 = 1_782_000_000.0;

    #[test]
    fn sites_parse_and_bad_ones_say_which_field() {
        assert_eq!(site().kwp, 0.1);
        assert!(
            Site::parse("latitude=95 longitude=0 kwp=1")
                .unwrap_err()
                .contains("latitude")
        );
        assert!(
            Site::parse("latitude=1 longitude=0")
                .unwrap_err()
                .contains("kwp")
        );
        assert!(
            Site::parse("lat=1 lon=2 kwp=x")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn quantiles_are_ordered_and_learn_a_cloudier_sky() {
        let mut forecaster = Forecaster::new(site());
        // Three days at 40 % of clear sky, with some spread.
        for step in 0..(3 * 288) {
            let t = JUNE_21 + step as f64 * 300.0;
            let clear = clear_sky::clear_sky_pv_w(forecaster.site(), t);
            let wobble = 0.3 + 0.2 * ((step % 7) as f64 / 6.0);
            forecaster.observe(t, clear * wobble);
        }
        let now = JUNE_21 + 3.0 * 86_400.0 + 12.0 * 3600.0;
        let forecast = forecaster.forecast(now, 86_400.0, 900.0);
        for point in &forecast.points {
            assert!(
                point.p10_w <= point.p50_w && point.p50_w <= point.p90_w,
                "{point:?}"
            );
        }
        let clear = clear_sky::clear_sky_pv_w(forecaster.site(), now + 450.0);
        let first = forecast.points[0];
        assert!(
            (first.p50_w / clear - 0.4).abs() < 0.08,
            "median follows the learned 40 %: {}",
            first.p50_w / clear
        );
        assert!(
            first.p10_w / clear > 0.25 && first.p90_w / clear < 0.55,
            "{first:?}"
        );
        assert_eq!(forecast.source, "clear-sky");
        let night = forecast.power_w(0.1, now + 12.0 * 3600.0);
        assert_eq!(night, 0.0, "midnight");
        let total = forecast.energy_wh(0.5, now, now + 86_400.0);
        assert!(total > 50.0, "{total}");
    }

    #[test]
    fn the_near_term_spread_is_learned_from_the_nowcasts_own_misses() {
        // A sky that swings between 20 % and 80 % of the model from one hour to the next: the
        // last hour says little about the next one, and the near-term band must say so.
        let mut corrector = Corrector::new([0.15, 0.6, 1.0]);
        let fixed = corrector.clone();
        for step in 0..(48 * 12) {
            let t = JUNE_21 + step as f64 * 300.0;
            let ratio = if (step / 12) % 2 == 0 { 0.2 } else { 0.8 };
            corrector.observe(t, 100.0 * ratio, 100.0, 100.0);
        }
        let now = JUNE_21 + 48.0 * 3600.0;
        let [p10, _, p90] = corrector.ratios(now, 600.0);
        assert!(p10 <= 0.3 && p90 >= 0.7, "learned band {p10:.2}..{p90:.2}");
        // With the fixed third of the two-week spread the band would be far narrower.
        let mut narrow = fixed;
        narrow.recent = corrector.recent;
        narrow.hourly = corrector.hourly.clone();
        let [n10, _, n90] = narrow.ratios(now, 600.0);
        assert!(
            n90 - n10 < 0.5 * (p90 - p10),
            "fixed band {n10:.2}..{n90:.2}"
        );
        // A state file with an error out of range is not sound.
        corrector.nowcast_errors.push_back(f64::NAN);
        assert!(!corrector.is_sound());
    }

    #[test]
    fn the_sky_trend_follows_the_sun_down_and_is_dark_at_night() {
        let noon = JUNE_21 + 12.0 * 3600.0;
        let trend = sky_trend(&site(), noon);
        assert!((trend(noon) - 1.0).abs() < 1e-9);
        let afternoon = trend(noon + 4.0 * 3600.0);
        assert!(afternoon > 0.1 && afternoon < 0.9, "{afternoon}");
        assert_eq!(trend(noon + 12.0 * 3600.0), 0.0, "midnight");
        let morning = sky_trend(&site(), noon - 5.0 * 3600.0);
        assert_eq!(morning(noon), 1.0, "never brighter than now");
        let night = sky_trend(&site(), noon + 12.0 * 3600.0);
        assert_eq!(night(noon + 24.0 * 3600.0), 0.0, "no sky at night to carry");
    }
}
