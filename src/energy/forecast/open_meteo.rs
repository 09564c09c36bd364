//! Open-Meteo's global tilted irradiance forecast (ANCHORS §4.1): fetched at most once per
//! `min_interval_s`, kept in a cache file so a restart or an offline spell still has the last
//! forecast, and backed off after a failure. Hourly values are the mean of the preceding hour;
//! negative GTI (a known Open-Meteo quirk) is clamped to 0.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Site;

/// Irradiance on the panel's plane over the coming hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherForecast {
    /// When it was fetched (unix seconds).
    pub fetched_at_s: f64,
    /// End of each period (unix seconds); each value is the mean over the period before it.
    pub period_end_s: Vec<f64>,
    /// Global tilted irradiance (W/m²) per period.
    pub gti: Vec<f64>,
}

impl WeatherForecast {
    /// GTI in force at `time_s`, if the forecast covers it.
    pub fn gti_at(&self, time_s: f64) -> Option<f64> {
        let index = self.period_end_s.partition_point(|end| *end < time_s);
        let end = *self.period_end_s.get(index)?;
        let length = if index > 0 {
            end - self.period_end_s[index - 1]
        } else {
            self.period_end_s
                .get(1)
                .map(|next| next - end)
                .unwrap_or(3600.0)
        };
        (time_s > end - length)
            .then(|| self.gti.get(index).copied())
            .flatten()
    }

    /// Whether the forecast holds together: as many values as periods, times increasing and
    /// finite, irradiance finite and not negative. [`parse`](Self::parse) only makes sound
    /// ones; a cache or state file edited by hand or cut short may not be.
    pub fn is_sound(&self) -> bool {
        self.fetched_at_s.is_finite()
            && self.gti.len() == self.period_end_s.len()
            && self.period_end_s.iter().all(|t| t.is_finite())
            && self.period_end_s.windows(2).all(|w| w[0] < w[1])
            && self.gti.iter().all(|g| g.is_finite() && *g >= 0.0)
    }

    /// Parses an Open-Meteo `/v1/forecast` response with `hourly=global_tilted_irradiance`
    /// (or `minutely_15=`), times as unix seconds or ISO 8601 in UTC.
    pub fn parse(body: &str, fetched_at_s: f64) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Series {
            time: Vec<serde_json::Value>,
            global_tilted_irradiance: Vec<Option<f64>>,
        }
        #[derive(Deserialize)]
        struct Response {
            hourly: Option<Series>,
            minutely_15: Option<Series>,
            #[serde(default)]
            utc_offset_seconds: i64,
        }
        let response: Response = serde_json::from_str(body).map_err(|e| {
            format!("not an Open-Meteo forecast with global_tilted_irradiance: {e}")
        })?;
        let series = response
            .minutely_15
            .or(response.hourly)
            .ok_or("the response has neither `hourly` nor `minutely_15` data")?;
        if series.time.len() != series.global_tilted_irradiance.len() {
            return Err("time and global_tilted_irradiance differ in length".into());
        }
        let mut forecast = WeatherForecast {
            fetched_at_s,
            period_end_s: Vec::new(),
            gti: Vec::new(),
        };
        for (time, value) in series.time.iter().zip(series.global_tilted_irradiance) {
            let time_s = match time {
                serde_json::Value::Number(n) => n.as_f64().ok_or("a time is not a number")?,
                serde_json::Value::String(text) => {
                    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                        .map_err(|_| format!("time `{text}` is not YYYY-MM-DDTHH:MM"))?;
                    local
                        .and_utc()
                        .timestamp()
                        .checked_sub(response.utc_offset_seconds)
                        .ok_or("utc_offset_seconds is out of range")? as f64
                }
                other => return Err(format!("time {other} is neither a number nor a string")),
            };
            // Missing values (null) leave a gap rather than a made-up number.
            let Some(gti) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            if forecast
                .period_end_s
                .last()
                .is_some_and(|last| *last >= time_s)
            {
                return Err("times do not increase".into());
            }
            forecast.period_end_s.push(time_s);
            forecast.gti.push(gti.max(0.0));
        }
        if forecast.gti.is_empty() {
            return Err("the response holds no irradiance values".into());
        }
        Ok(forecast)
    }
}

/// Fetches and caches Open-Meteo forecasts for one site.
#[derive(Debug, Clone)]
pub struct OpenMeteo {
    /// The forecast endpoint, e.g. `https://api.open-meteo.com/v1/forecast`.
    pub base_url: String,
    /// The site.
    pub site: Site,
    /// Where the last good response is kept.
    pub cache_path: PathBuf,
    /// Fetch at most this often (the data only change every 15 min to 1 h).
    pub min_interval_s: f64,
    /// After a failure, wait this long before trying again.
    pub retry_after_s: f64,
    last_failure_s: Option<f64>,
}

impl OpenMeteo {
    /// A client; nothing is fetched until [`refresh`](Self::refresh).
    pub fn new(base_url: &str, site: Site, cache_path: PathBuf, min_interval_s: f64) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            site,
            cache_path,
            min_interval_s,
            retry_after_s: 900.0,
            last_failure_s: None,
        }
    }

    /// The request for this site: two days of hourly GTI on the panel's plane, unix times.
    pub fn request_url(&self) -> String {
        format!(
            "{}?latitude={}&longitude={}&hourly=global_tilted_irradiance&tilt={}&azimuth={}\
             &timezone=UTC&timeformat=unixtime&forecast_days=2",
            self.base_url,
            self.site.latitude,
            self.site.longitude,
            self.site.tilt_deg,
            self.site.azimuth_deg
        )
    }

    /// The cached forecast, if a readable one exists.
    pub fn cached(&self) -> Option<WeatherForecast> {
        let text = crate::files::read_text(
            &self.cache_path,
            crate::files::limit::STATE,
            "a forecast cache",
        )
        .ok()?;
        serde_json::from_str::<WeatherForecast>(&text)
            .ok()
            .filter(WeatherForecast::is_sound)
    }

    /// The freshest forecast: the cache when it is recent enough, else a new fetch (kept in
    /// the cache); on failure the cache, however old, and the error.
    pub async fn refresh(
        &mut self,
        client: &reqwest::Client,
        now_s: f64,
    ) -> (Option<WeatherForecast>, Option<String>) {
        let cached = self.cached();
        if let Some(cache) = &cached
            && now_s - cache.fetched_at_s < self.min_interval_s
        {
            return (cached, None);
        }
        if self
            .last_failure_s
            .is_some_and(|t| now_s - t < self.retry_after_s)
        {
            return (cached, None);
        }
        match self.fetch(client, now_s).await {
            Ok(fresh) => {
                self.last_failure_s = None;
                if let Err(error) = self.store(&fresh) {
                    tracing::warn!(%error, path = %self.cache_path.display(), "forecast cache not written");
                }
                (Some(fresh), None)
            }
            Err(error) => {
                self.last_failure_s = Some(now_s);
                (cached, Some(error))
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client, now_s: f64) -> Result<WeatherForecast, String> {
        let response = client
            .get(self.request_url())
            .timeout(std::time::Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| format!("Open-Meteo is not reachable: {e}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| format!("Open-Meteo answer cut short: {e}"))?;
        if !status.is_success() {
            let reason: String = body.chars().take(200).collect();
            return Err(format!("Open-Meteo answered {status}: {reason}"));
        }
        WeatherForecast::parse(&body, now_s)
    }

    fn store(&self, forecast: &WeatherForecast) -> std::io::Result<()> {
        if let Some(parent) = self.cache_path.parent() {
            crate::files::private_dir(parent)?;
        }
        let temporary = self.cache_path.with_extension("tmp");
        std::fs::write(&temporary, serde_json::to_vec(forecast)?)?;
        std::fs::rename(temporary, &self.cache_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const RECORDED: &str = include_str!("../../../tests/data/energy/open-meteo-munich.json");

    #[test]
    fn a_forecast_that_does_not_hold_together_is_unsound_and_never_indexed_out_of_range() {
        let short = WeatherForecast {
            fetched_at_s: 0.0,
            period_end_s: vec![3600.0, 7200.0],
            gti: vec![100.0],
        };
        assert!(!short.is_sound());
        assert_eq!(short.gti_at(3000.0), Some(100.0));
        assert_eq!(short.gti_at(7000.0), None);
        let backwards = WeatherForecast {
            period_end_s: vec![7200.0, 3600.0],
            gti: vec![1.0, 2.0],
            ..short.clone()
        };
        assert!(!backwards.is_sound());
        assert!(WeatherForecast::parse(RECORDED, 0.0).unwrap().is_sound());
        let absurd_offset = r#"{"utc_offset_seconds": -9223372036854775807,
            "hourly": {"time": ["2026-06-01T12:00"], "global_tilted_irradiance": [500.0]}}"#;
        let err = WeatherForecast::parse(absurd_offset, 0.0).unwrap_err();
        assert!(err.contains("utc_offset_seconds"), "{err}");
    }

    #[test]
    fn a_recorded_response_parses_with_negative_values_clamped_and_gaps_kept() {
        let forecast = WeatherForecast::parse(RECORDED, 0.0).unwrap();
        assert!(forecast.gti.len() >= 24);
        assert!(forecast.gti.iter().all(|g| *g >= 0.0));
        let first = forecast.period_end_s[0];
        // The value stamped at T is the mean of the hour before T.
        assert_eq!(forecast.gti_at(first - 1800.0), Some(forecast.gti[0]));
        assert_eq!(forecast.gti_at(first + 1.0), Some(forecast.gti[1]));
        assert_eq!(forecast.gti_at(first - 7200.0), None);
        let iso = r#"{"utc_offset_seconds":0,"hourly":{"time":["2026-06-01T10:00","2026-06-01T11:00"],
            "global_tilted_irradiance":[500.5,-3.0]}}"#;
        let parsed = WeatherForecast::parse(iso, 0.0).unwrap();
        assert_eq!(parsed.period_end_s[0], 1_780_308_000.0);
        assert_eq!(parsed.gti, vec![500.5, 0.0]);
        assert!(
            WeatherForecast::parse(
                r#"{"hourly":{"time":[1],"global_tilted_irradiance":[]}}"#,
                0.0
            )
            .is_err()
        );
        assert!(WeatherForecast::parse("<html>", 0.0).is_err());
    }

    /// Serves the recorded response on 127.0.0.1, counting requests.
    fn serve_recorded(hits: Arc<AtomicUsize>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                hits.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    RECORDED.len(),
                    RECORDED
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        format!("http://{address}/v1/forecast")
    }

    #[tokio::test]
    async fn fetches_are_cached_and_rate_limited_and_failures_fall_back_to_the_cache() {
        let hits = Arc::new(AtomicUsize::new(0));
        let url = serve_recorded(hits.clone());
        let dir = tempfile::tempdir().unwrap();
        let site = Site::parse("latitude=48.1 longitude=11.6 tilt=30 azimuth=0 kwp=0.1").unwrap();
        let mut client = OpenMeteo::new(&url, site.clone(), dir.path().join("f.json"), 3600.0);
        assert!(client.request_url().contains("tilt=30&azimuth=0"));
        let http = reqwest::Client::new();
        let (first, error) = client.refresh(&http, 1000.0).await;
        assert!(first.is_some() && error.is_none(), "{error:?}");
        let (second, _) = client.refresh(&http, 2000.0).await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "served from the cache within the hour"
        );
        assert_eq!(first, second);
        // The endpoint goes away: the old forecast stays, with the error, and no retry storm.
        let mut offline = OpenMeteo::new(
            "http://127.0.0.1:9/v1/forecast",
            site,
            dir.path().join("f.json"),
            3600.0,
        );
        let (kept, error) = offline.refresh(&http, 10_000.0).await;
        assert_eq!(kept, first);
        assert!(error.unwrap().contains("not reachable"));
        let (_, again) = offline.refresh(&http, 10_100.0).await;
        assert!(again.is_none(), "backs off instead of retrying at once");
    }
}
