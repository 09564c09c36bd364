//! Replays a recorded or generated PV trace as if it were a live sensor: for simulations, the
//! demo and tests of the whole node. The file is CSV with the header `time,pv_w` and optionally
//! `load_w` and `battery_soc` columns; times are RFC 3339 or unix seconds. Lines starting with
//! `#` are comments; `# site: latitude=.. longitude=.. tilt=.. azimuth=.. kwp=..` names where
//! the trace was recorded, so the forecast can use the right sun.

use std::path::{Path, PathBuf};

use crate::clock::unix_now;
use crate::energy::forecast::Site;
use crate::energy::sample::{EnergySource, RejectCounter, Sample, SourceError};

/// One row of a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    /// Unix seconds.
    pub time_s: f64,
    /// Panel power.
    pub pv_w: f64,
    /// Node load, if recorded.
    pub load_w: Option<f64>,
    /// Battery state of charge (0..=1), if recorded.
    pub battery_soc: Option<f64>,
}

/// A whole trace file, validated: times strictly increase, powers are finite and not negative.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Where it came from (for messages).
    pub name: String,
    /// The rows, in time order.
    pub points: Vec<TracePoint>,
    /// The site from the `# site:` comment, if any.
    pub site: Option<Site>,
}

/// A trace file that cannot be used, with the line at fault.
#[derive(Debug, thiserror::Error)]
#[error("trace {name}: {what}")]
pub struct TraceError {
    /// The file.
    pub name: String,
    /// What is wrong, with the line number when there is one.
    pub what: String,
}

impl Trace {
    /// Reads and validates a trace file.
    pub fn load(path: &Path) -> Result<Self, TraceError> {
        let name = path.display().to_string();
        let text = crate::files::read_text(path, crate::files::limit::TRACE, "a trace file")
            .map_err(|e| TraceError {
                name: name.clone(),
                what: format!("cannot be read: {e}"),
            })?;
        Self::parse(&text, &name)
    }

    /// Parses trace text; `name` appears in errors.
    pub fn parse(text: &str, name: &str) -> Result<Self, TraceError> {
        let fail = |line: usize, what: String| TraceError {
            name: name.to_string(),
            what: format!("line {line}: {what}"),
        };
        let mut site = None;
        let mut columns: Option<Vec<String>> = None;
        let mut points: Vec<TracePoint> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(spec) = comment.trim().strip_prefix("site:") {
                    site = Some(Site::parse(spec).map_err(|e| fail(line_no, e))?);
                }
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let Some(columns) = &columns else {
                let names: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
                if names.len() < 2 || names[0] != "time" || names[1] != "pv_w" {
                    return Err(fail(
                        line_no,
                        format!("the header must start with `time,pv_w`, found `{line}`"),
                    ));
                }
                for extra in &names[2..] {
                    if extra != "load_w" && extra != "battery_soc" {
                        return Err(fail(
                            line_no,
                            format!("unknown column `{extra}` (known: load_w, battery_soc)"),
                        ));
                    }
                }
                columns = Some(names);
                continue;
            };
            if fields.len() != columns.len() {
                return Err(fail(
                    line_no,
                    format!("{} fields, the header has {}", fields.len(), columns.len()),
                ));
            }
            let time_s = parse_time(fields[0]).map_err(|e| fail(line_no, e))?;
            let number = |i: usize| -> Result<Option<f64>, TraceError> {
                if fields[i].is_empty() {
                    return Ok(None);
                }
                let v: f64 = fields[i]
                    .parse()
                    .map_err(|_| fail(line_no, format!("`{}` is not a number", fields[i])))?;
                if !v.is_finite() || v < 0.0 {
                    return Err(fail(
                        line_no,
                        format!("{} = {v} must be a finite number >= 0", columns[i]),
                    ));
                }
                Ok(Some(v))
            };
            let pv_w = number(1)?.ok_or_else(|| fail(line_no, "pv_w is empty".into()))?;
            let mut point = TracePoint {
                time_s,
                pv_w,
                load_w: None,
                battery_soc: None,
            };
            for (i, column) in columns.iter().enumerate().skip(2) {
                match column.as_str() {
                    "load_w" => point.load_w = number(i)?,
                    _ => {
                        point.battery_soc = number(i)?;
                        if point.battery_soc.is_some_and(|s| s > 1.0) {
                            return Err(fail(line_no, "battery_soc must be within 0..=1".into()));
                        }
                    }
                }
            }
            if let Some(last) = points.last()
                && point.time_s <= last.time_s
            {
                return Err(fail(line_no, "times must strictly increase".into()));
            }
            points.push(point);
        }
        if points.len() < 2 {
            return Err(TraceError {
                name: name.to_string(),
                what: "needs a `time,pv_w` header and at least two rows".into(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            points,
            site,
        })
    }

    /// First time in the trace.
    pub fn start_s(&self) -> f64 {
        self.points[0].time_s
    }

    /// Last time in the trace.
    pub fn end_s(&self) -> f64 {
        self.points[self.points.len() - 1].time_s
    }

    /// The row in force at `time_s` (the last one at or before it; the first before the start).
    pub fn at(&self, time_s: f64) -> &TracePoint {
        let index = self.points.partition_point(|p| p.time_s <= time_s);
        &self.points[index.saturating_sub(1)]
    }

    /// Panel power at `time_s`, linearly interpolated between rows, 0 outside the trace.
    pub fn pv_at(&self, time_s: f64) -> f64 {
        if time_s < self.start_s() || time_s > self.end_s() {
            return 0.0;
        }
        let index = self.points.partition_point(|p| p.time_s <= time_s);
        if index == 0 || index >= self.points.len() {
            return self.at(time_s).pv_w;
        }
        let (a, b) = (&self.points[index - 1], &self.points[index]);
        let f = (time_s - a.time_s) / (b.time_s - a.time_s);
        a.pv_w + f * (b.pv_w - a.pv_w)
    }

    /// Mean panel energy (Wh) between two times, by trapezoids at the trace's own rows.
    pub fn energy_wh(&self, from_s: f64, to_s: f64) -> f64 {
        if to_s <= from_s {
            return 0.0;
        }
        let mut total = 0.0;
        let mut t = from_s;
        let mut index = self.points.partition_point(|p| p.time_s <= from_s);
        while t < to_s {
            let next = self
                .points
                .get(index)
                .map(|p| p.time_s.min(to_s))
                .unwrap_or(to_s);
            total += (self.pv_at(t) + self.pv_at(next)) / 2.0 * (next - t);
            t = next;
            index += 1;
        }
        total / 3600.0
    }
}

/// Parses unix seconds or an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<f64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok(seconds);
        }
        return Err(format!("time `{text}` is not a unix time"));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .map_err(|_| format!("time `{text}` is neither unix seconds nor RFC 3339"))
}

/// A trace played back as a live source: trace time runs `speed` times faster than the wall
/// clock from the moment the source is opened, and loops at the end when asked to.
pub struct TraceSource {
    trace: Trace,
    path: PathBuf,
    clock: TraceClock,
    looping: bool,
    rejected: RejectCounter,
}

/// The fastest replay: a trace year in under an hour. Faster would make a planning step of the
/// gate span more of the trace than its deadlines can use, and its arrays huge.
pub const MAX_SPEED: f64 = 10_000.0;

/// Maps wall time to trace time: `trace_start + (wall - wall_start) * speed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceClock {
    /// Wall time (unix seconds) at which the replay began.
    pub wall_start_s: f64,
    /// Trace time at that moment.
    pub trace_start_s: f64,
    /// Trace seconds per wall second (1: real time).
    pub speed: f64,
}

impl TraceClock {
    /// Trace time at wall time `wall_s`.
    pub fn trace_time(&self, wall_s: f64) -> f64 {
        self.trace_start_s + (wall_s - self.wall_start_s) * self.speed
    }
}

impl TraceSource {
    /// Opens `path`, replaying from its first row at `speed` (> 0) times real time.
    pub fn open(path: &Path, speed: f64, looping: bool) -> Result<Self, TraceError> {
        if !(speed > 0.0 && speed <= MAX_SPEED) {
            return Err(TraceError {
                name: path.display().to_string(),
                what: format!(
                    "replay speed {speed} must be within 0..={MAX_SPEED} (1 = real time)"
                ),
            });
        }
        let trace = Trace::load(path)?;
        let clock = TraceClock {
            wall_start_s: unix_now(),
            trace_start_s: trace.start_s(),
            speed,
        };
        Ok(Self {
            trace,
            path: path.to_path_buf(),
            clock,
            looping,
            rejected: RejectCounter::default(),
        })
    }

    /// The replayed trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// How wall time maps to trace time.
    pub fn clock(&self) -> TraceClock {
        self.clock
    }

    /// The sample at trace time `time_s` (wrapped into the trace when looping).
    pub fn sample_at(&mut self, time_s: f64) -> Result<Sample, SourceError> {
        let (start, end) = (self.trace.start_s(), self.trace.end_s());
        let mut t = time_s;
        if t > end {
            if !self.looping {
                return Err(SourceError::Ended {
                    source_name: self.name(),
                });
            }
            t = start + (t - start) % (end - start);
        }
        let row = *self.trace.at(t);
        let mut sample = Sample::at(time_s);
        sample.pv_w = Some(self.trace.pv_at(t));
        sample.load_w = row.load_w;
        sample.battery_soc = row.battery_soc;
        let name = self.name();
        self.rejected.check(&name, sample)
    }
}

impl EnergySource for TraceSource {
    fn name(&self) -> String {
        format!("trace:{}", self.path.display())
    }

    fn read(&mut self) -> Result<Sample, SourceError> {
        let t = self.clock.trace_time(unix_now());
        self.sample_at(t)
    }

    fn rejected(&self) -> u64 {
        self.rejected.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# a test trace\n# site: latitude=48.1 longitude=11.6 tilt=30 azimuth=0 kwp=0.05\n\
time,pv_w,load_w,battery_soc\n\
2026-06-01T00:00:00Z,0,3.0,0.5\n\
2026-06-01T00:10:00Z,10,3.1,\n\
1780273200,20,,0.6\n";

    #[test]
    fn rfc3339_and_unix_times_both_parse_and_interpolate() {
        let trace = Trace::parse(TEXT, "t").unwrap();
        assert_eq!(trace.points.len(), 3);
        assert_eq!(trace.start_s(), 1_780_272_000.0);
        assert_eq!(trace.points[2].time_s, 1_780_273_200.0);
        assert_eq!(trace.pv_at(trace.start_s() + 300.0), 5.0);
        assert_eq!(trace.at(trace.start_s() + 900.0).load_w, Some(3.1));
        assert_eq!(trace.points[1].battery_soc, None);
        let site = trace.site.clone().unwrap();
        assert_eq!((site.latitude, site.kwp), (48.1, 0.05));
        // 10 min ramping 0..10 W then 10 min 10..20 W: 5 W·(1/6 h) + 15 W·(1/6 h).
        let wh = trace.energy_wh(trace.start_s(), trace.end_s());
        assert!((wh - 20.0 / 6.0).abs() < 1e-9, "{wh}");
    }

    #[test]
    fn bad_traces_name_the_line_and_the_fault() {
        for (text, expected) in [
            ("pv,time\n1,2\n", "header"),
            (
                "time,pv_w\n1,2\n1,3\n",
                "line 3: times must strictly increase",
            ),
            ("time,pv_w\n1,-2\n2,3\n", "line 2"),
            (
                "time,pv_w\nyesterday,2\n2,3\n",
                "neither unix seconds nor RFC 3339",
            ),
            ("time,pv_w,volts\n1,2,3\n", "unknown column"),
            ("time,pv_w\n1,2\n", "at least two rows"),
            ("time,pv_w,battery_soc\n1,2,1.5\n2,3,0.5\n", "0..=1"),
        ] {
            let error = Trace::parse(text, "bad.csv").unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_replay_clock_runs_at_the_asked_speed_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "time,pv_w\n0,0\n100,100\n").unwrap();
        let mut source = TraceSource::open(&path, 50.0, true).unwrap();
        let clock = source.clock();
        assert_eq!(clock.trace_time(clock.wall_start_s + 1.0), 50.0);
        assert_eq!(source.sample_at(30.0).unwrap().pv_w, Some(30.0));
        assert_eq!(source.sample_at(130.0).unwrap().pv_w, Some(30.0), "looped");
        let mut once = TraceSource::open(&path, 1.0, false).unwrap();
        assert!(matches!(
            once.sample_at(130.0),
            Err(SourceError::Ended { .. })
        ));
        assert!(TraceSource::open(&path, 0.0, true).is_err());
    }
}
