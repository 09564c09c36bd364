//! The node's local HTTP API, for the operator's monitoring: `/health` (200 while the node's
//! rounds keep completing, 503 when they stall), `/metrics` (Prometheus text format), `/status`
//! (JSON), `/history?from=&to=` (what the plots draw, JSON), and `/` (the dashboard page, with
//! its plotting library under `/assets/`). Read-only; it binds where `api.listen` says, the
//! loopback address by default.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use serde::Serialize;

use crate::admission::Decision;
use crate::node::Node;

/// Everything the API shows, taken at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The workerpool this node serves.
    pub pool: String,
    /// Rounds of the node loop so far, and how many did not complete.
    pub rounds: u64,
    /// Rounds that ended in an error (retried at the next round).
    pub failed_rounds: u64,
    /// Seconds since the last completed round ended (`None` before the first).
    pub last_round_age_s: Option<f64>,
    /// Whether the node is healthy: its last completed round ended recently.
    pub healthy: bool,
    /// Journaled tasks by step.
    pub tasks: BTreeMap<String, u64>,
    /// Tasks being worked on now.
    pub running_tasks: usize,
    /// Whether the journal holds an open workerpool order of ours (presigned, not closed).
    pub bid_open: bool,
    /// The gate's last answer on bidding, with its reasons (`None` before the first round).
    pub decision: Option<Decision>,
    /// The admission gate's own status: the energy module's readings, estimate and forecast
    /// when it is the energy gate, else null.
    pub gate: serde_json::Value,
    /// The RPC endpoint in use, and why it last switched.
    pub rpc: crate::chain::rpc::EndpointStatus,
    /// The order index's catch-up (matching waits for it).
    pub order_index: crate::node::index::IndexProgress,
    /// The gate's time now (unix seconds; faster than the wall clock on a replayed trace).
    pub energy_time_s: f64,
    /// What the node earned and spent, since the start, today, and per day.
    pub earnings: crate::node::earnings::Summary,
    /// What the operator should look at: stale readings, a battery at its reserve, no gas, a
    /// stake too small for the bid, rounds failing.
    pub warnings: Vec<String>,
}

/// Takes a snapshot of the node now.
pub fn snapshot(node: &Node) -> Snapshot {
    let now_s = crate::clock::unix_now();
    let last_ms = node.heartbeat.last_round_ms();
    let last_round_age_s = (last_ms > 0).then(|| (now_s - last_ms as f64 / 1000.0).max(0.0));
    let bid_open = node.bid_open();
    let tasks = node.journal().task_counts().unwrap_or_default();
    let running_tasks = node.running.lock().map(|r| r.len()).unwrap_or(0);
    let gate = node.gate.status(now_s as u64);
    let energy_time_s = node.gate.energy_time_s(now_s);
    let mut warnings = energy_warnings(&gate, node.settings.energy.poll_interval_s);
    if let Ok(funds) = node.funds_warnings.lock() {
        warnings.extend(funds.iter().cloned());
    }
    if !healthy(last_round_age_s, node.settings.node.poll_interval_ms) && last_ms > 0 {
        warnings.push("the node's rounds have stalled: see its log".into());
    }
    let earnings = node.earnings.summary(&node.journal(), energy_time_s);
    Snapshot {
        pool: node.pool.to_string(),
        rounds: node.heartbeat.rounds(),
        failed_rounds: node.heartbeat.failed_rounds(),
        last_round_age_s,
        healthy: healthy(last_round_age_s, node.settings.node.poll_interval_ms),
        tasks,
        running_tasks,
        bid_open,
        decision: node.heartbeat.bid_decision(),
        gate,
        rpc: node.sdk.chain.endpoints.status(),
        order_index: node.index.lock().map(|i| i.clone()).unwrap_or_default(),
        energy_time_s,
        earnings,
        warnings,
    }
}

/// The energy gate's warnings from its status: no reading, stale readings, a battery at its
/// reserve, a low-voltage warning. A gate without energy status gives none.
pub fn energy_warnings(gate: &serde_json::Value, poll_interval_s: f64) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(now) = gate["energy_time_s"].as_f64() else {
        return warnings;
    };
    let stale_after = (3.0 * poll_interval_s).max(600.0);
    match gate["readings"]["time_s"].as_f64() {
        None => warnings.push("no energy reading yet: check the energy source".into()),
        Some(t) if now - t > stale_after => warnings.push(format!(
            "the last energy reading is {:.0} min old: check the energy source",
            (now - t) / 60.0
        )),
        Some(_) => {}
    }
    if let Some(above) = gate["battery"]["above_reserve_wh"].as_f64()
        && above <= 0.0
    {
        warnings.push(format!(
            "the battery is at its reserve ({} %): no work until the sun refills it",
            gate["battery"]["soc_pct"].as_f64().unwrap_or(0.0)
        ));
    }
    if !gate["low_voltage"].is_null() {
        warnings.push(format!("low-voltage warning: {}", gate["low_voltage"]));
    }
    warnings
}

/// Whether a node whose last round ended `last_round_age_s` ago is alive: it must have done a
/// round, and not stalled for three poll intervals plus a minute (a slow RPC call included).
pub fn healthy(last_round_age_s: Option<f64>, poll_interval_ms: u64) -> bool {
    let stall_s = 3.0 * poll_interval_ms as f64 / 1000.0 + 60.0;
    last_round_age_s.is_some_and(|age| age < stall_s)
}

/// The Prometheus text exposition (format 0.0.4) of a snapshot.
pub fn metrics_text(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |value: f64| vec![(String::new(), value)];
    gauge(
        "pew_up",
        "1 while the node's rounds keep completing.",
        "gauge",
        &one(f64::from(u8::from(snapshot.healthy))),
    );
    gauge(
        "pew_rounds_total",
        "Rounds of the node loop.",
        "counter",
        &one(snapshot.rounds as f64),
    );
    gauge(
        "pew_failed_rounds_total",
        "Rounds that ended in an error and were retried.",
        "counter",
        &one(snapshot.failed_rounds as f64),
    );
    let steps: Vec<(String, f64)> = snapshot
        .tasks
        .iter()
        .map(|(step, count)| (format!("{{step=\"{step}\"}}"), *count as f64))
        .collect();
    gauge("pew_tasks", "Journaled tasks by step.", "gauge", &steps);
    gauge(
        "pew_running_tasks",
        "Tasks being worked on now.",
        "gauge",
        &one(snapshot.running_tasks as f64),
    );
    gauge(
        "pew_bid_open",
        "1 while a workerpool order of ours is open.",
        "gauge",
        &one(f64::from(u8::from(snapshot.bid_open))),
    );
    let gate = &snapshot.gate;
    if let Some(admit) = snapshot.decision.as_ref().map(|d| d.admit) {
        gauge(
            "pew_gate_admit",
            "1 while the admission gate admits work.",
            "gauge",
            &one(f64::from(u8::from(admit))),
        );
    }
    let energy = [
        (
            "pew_energy_battery_soc_ratio",
            "Estimated battery state of charge, 0 to 1.",
            gate["battery"]["soc_pct"].as_f64().map(|pct| pct / 100.0),
        ),
        (
            "pew_energy_pv_watts",
            "PV power last read.",
            gate["readings"]["pv_w"].as_f64(),
        ),
        (
            "pew_energy_load_watts",
            "The node's own draw last read.",
            gate["readings"]["load_w"].as_f64(),
        ),
        (
            "pew_energy_surplus_watts",
            "PV minus load.",
            gate["surplus_w"].as_f64(),
        ),
    ];
    for (name, help, value) in energy {
        if let Some(value) = value {
            gauge(name, help, "gauge", &one(value));
        }
    }
    let total = &snapshot.earnings.total;
    gauge(
        "pew_earned_nrlc_total",
        "RLC (nRLC) PoCo paid our accounts for completed tasks.",
        "counter",
        &one(total.earned_nrlc as f64),
    );
    gauge(
        "pew_gas_spent_wei_total",
        "Gas (wei) our transactions for completed tasks burned.",
        "counter",
        &one(total.gas_wei as f64),
    );
    gauge(
        "pew_energy_used_wh_total",
        "Energy (Wh) completed tasks' apps drew above the node's idle draw.",
        "counter",
        &one(total.energy_wh),
    );
    gauge(
        "pew_energy_used_pv_wh_total",
        "Of that energy, what the panel gave (Wh).",
        "counter",
        &one(total.pv_wh),
    );
    gauge(
        "pew_warnings",
        "Warnings the dashboard shows now.",
        "gauge",
        &one(snapshot.warnings.len() as f64),
    );
    out
}

/// The span `/history` serves: `from` and `to` in unix seconds (the gate's time), defaulting
/// to the last 7 days up to now. A bad value is refused with one line saying so.
pub fn history_span(query: Option<&str>, now: f64) -> Result<(f64, f64), String> {
    let mut from = None;
    let mut to = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let parsed = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    format!(
                        "{key}={} is not a unix time in seconds",
                        crate::text::one_line(value, 40)
                    )
                })
        };
        match key {
            "from" => from = Some(parsed()?),
            "to" => to = Some(parsed()?),
            _ => {
                return Err(format!(
                    "unknown parameter {}: use from= and to= (unix seconds)",
                    crate::text::one_line(key, 40)
                ));
            }
        }
    }
    let to = to.unwrap_or(now + 86_400.0);
    let from = from.unwrap_or(now - 7.0 * 86_400.0);
    if from > to {
        return Err(format!("from={from} is after to={to}"));
    }
    Ok((from, to))
}

/// The `/history` answer for the query string, or a 400 line.
fn history_json(node: &Node, query: Option<&str>) -> Result<String, String> {
    let now_wall = crate::clock::unix_now();
    let now = node.gate.energy_time_s(now_wall);
    let (from, to) = history_span(query, now)?;
    let status = node.gate.status(now_wall as u64);
    let forecast = crate::node::history::forecast_from_status(&status);
    let view = node
        .history
        .view(&node.journal(), from, to, now, forecast)
        .map_err(|e| e.to_string())?;
    Ok(serde_json::to_string(&view).unwrap_or_default())
}

/// Whether a request's `Host` header may be served: an IP address, `localhost`, an mDNS
/// `.local` name, or this machine's own name (any port). Anything else is a name that points
/// here only because someone made it so: a web page using DNS rebinding to read the API from
/// the operator's browser.
pub fn allowed_host(host: Option<&str>, own_name: &str, extra: &[String]) -> bool {
    let Some(host) = host else {
        return true; // HTTP/1.0 without a Host header: no name to rebind
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, _)) => inside,
            None => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || name.ends_with(".local")
        || (!own_name.is_empty() && name == own_name.to_ascii_lowercase())
        || extra
            .iter()
            .any(|allowed| allowed.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

/// This machine's name, for [`allowed_host`].
fn own_host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|n| n.trim().chars().take(253).collect())
            .unwrap_or_default()
    })
}

/// Answers one request for `path` with its `query` string.
pub fn respond(
    node: &Node,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "read-only: use GET\n".into(),
        );
    }
    match path {
        "/health" => {
            let snapshot = snapshot(node);
            let (status, word) = if snapshot.healthy {
                (StatusCode::OK, "ok")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "stalled")
            };
            let body = serde_json::json!({
                "status": word,
                "rounds": snapshot.rounds,
                "last_round_age_s": snapshot.last_round_age_s,
            });
            text(status, "application/json", body.to_string())
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics_text(&snapshot(node)),
        ),
        "/status" => text(
            StatusCode::OK,
            "application/json",
            serde_json::to_string_pretty(&snapshot(node)).unwrap_or_default(),
        ),
        "/history" => match history_json(node, query) {
            Ok(body) => text(StatusCode::OK, "application/json", body),
            Err(reason) => text(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("bad request: {reason}\n"),
            ),
        },
        "/" => text(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.into()),
        "/assets/uplot.js" => asset("text/javascript; charset=utf-8", UPLOT_JS),
        "/assets/uplot.css" => asset("text/css; charset=utf-8", UPLOT_CSS),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: /health, /metrics, /status, /history or /\n".into(),
        ),
    }
}

/// A file of the dashboard's, cached by the browser for a day.
fn asset(content_type: &str, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::OK, content_type, String::new());
    *response.body_mut() = Full::new(Bytes::from_static(body.as_bytes()));
    if let Ok(value) = "max-age=86400".parse() {
        response
            .headers_mut()
            .insert(hyper::header::CACHE_CONTROL, value);
    }
    response
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Serves the API on `listener` until the node shuts down. Connections that do not send their
/// request headers within 10 s are dropped.
pub async fn serve(listener: tokio::net::TcpListener, node: Arc<Node>) {
    loop {
        let accepted = tokio::select! {
            _ = node.shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await; // e.g. out of file handles
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let uri = request.uri();
                let host = request
                    .headers()
                    .get(hyper::header::HOST)
                    .map(|h| h.to_str().unwrap_or("\u{0}"));
                let allowed = &node.settings.api.allowed_hosts;
                let response = if allowed_host(host, own_host_name(), allowed) {
                    respond(&node, request.method(), uri.path(), uri.query())
                } else {
                    text(
                        StatusCode::FORBIDDEN,
                        "text/plain",
                        "forbidden: reach the node by its IP address, localhost or its own name \
                         (other names are refused against DNS rebinding)\n"
                            .into(),
                    )
                };
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

/// The dashboard: one page, no external resources, refreshed from `/status` and `/history`.
const DASHBOARD: &str = include_str!("dashboard.html");

/// uPlot, the plotting library, from its npm package (`tools/dashboard/package-lock.json`),
/// embedded by `build.rs`.
const UPLOT_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/uPlot.iife.min.js"));

/// uPlot's style sheet.
const UPLOT_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/uPlot.min.css"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_healthy_only_after_a_round_and_until_it_stalls() {
        assert!(!healthy(None, 1000), "no round yet");
        assert!(healthy(Some(2.0), 1000));
        assert!(healthy(Some(62.0), 1000));
        assert!(!healthy(Some(64.0), 1000), "stalled past 3 × 1 s + 60 s");
    }

    #[test]
    fn metrics_follow_the_prometheus_text_format() {
        let snapshot = Snapshot {
            pool: "0xpool".into(),
            rounds: 42,
            failed_rounds: 1,
            last_round_age_s: Some(0.2),
            healthy: true,
            tasks: [("completed".to_string(), 3), ("failed".to_string(), 1)].into(),
            running_tasks: 1,
            bid_open: true,
            decision: Some(Decision::no("night")),
            gate: serde_json::json!({
                "battery": {"soc_pct": 61.5},
                "readings": {"pv_w": 0.0, "load_w": 2.7},
                "surplus_w": -2.7,
            }),
            rpc: crate::chain::rpc::EndpointStatus {
                in_use: "http://127.0.0.1:8545".into(),
                endpoints: 1,
                last_switch: None,
                requests: 10,
                rate_limited: 0,
            },
            order_index: Default::default(),
            energy_time_s: 1_780_272_000.0,
            earnings: crate::node::earnings::Summary {
                total: crate::node::earnings::Totals {
                    tasks: 2,
                    earned_nrlc: 190_000_000,
                    gas_wei: 12_345,
                    energy_wh: 1.5,
                    pv_wh: 1.5,
                    nrlc_per_pv_kwh: Some(1.0),
                },
                ..Default::default()
            },
            warnings: vec!["no energy reading yet".into()],
        };
        let text = metrics_text(&snapshot);
        for line in [
            "# TYPE pew_up gauge",
            "pew_up 1",
            "# TYPE pew_rounds_total counter",
            "pew_rounds_total 42",
            "pew_failed_rounds_total 1",
            "pew_tasks{step=\"completed\"} 3",
            "pew_tasks{step=\"failed\"} 1",
            "pew_running_tasks 1",
            "pew_bid_open 1",
            "pew_gate_admit 0",
            "pew_energy_battery_soc_ratio 0.615",
            "pew_energy_pv_watts 0",
            "pew_energy_load_watts 2.7",
            "pew_energy_surplus_watts -2.7",
            "# TYPE pew_earned_nrlc_total counter",
            "pew_earned_nrlc_total 190000000",
            "pew_gas_spent_wei_total 12345",
            "pew_energy_used_wh_total 1.5",
            "pew_warnings 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // Every sample line is `name[{labels}] value`, and every name has its HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let bare = name.split('{').next().unwrap();
            assert!(text.contains(&format!("# TYPE {bare} ")), "{line}");
        }
        // A gate without energy readings gives no energy lines.
        let plain = Snapshot {
            gate: serde_json::json!({"source": "always"}),
            ..snapshot
        };
        assert!(!metrics_text(&plain).contains("pew_energy_battery"));
    }

    #[test]
    fn only_addresses_local_names_and_our_own_name_are_served() {
        for host in [
            None,
            Some("127.0.0.1:9464"),
            Some("127.0.0.1"),
            Some("[::1]:9464"),
            Some("192.168.1.20:9464"),
            Some("localhost:9464"),
            Some("raspberrypi.local:9464"),
            Some("solarpi:9464"),
            Some("SolarPi."),
        ] {
            assert!(allowed_host(host, "solarpi", &[]), "{host:?}");
        }
        for host in [
            Some("attacker.example:9464"),
            Some("127.0.0.1.nip.io"),
            Some("[::1"),
            Some("solarpi.attacker.example"),
            Some(""),
            Some("\u{0}"),
        ] {
            assert!(!allowed_host(host, "solarpi", &[]), "{host:?}");
        }
        assert!(
            !allowed_host(Some("anything"), "", &[]),
            "no own name: nothing matches it"
        );
        let proxy = vec!["pew.example.org".to_string()];
        assert!(allowed_host(Some("PEW.example.org:443"), "solarpi", &proxy));
        assert!(!allowed_host(Some("other.example.org"), "solarpi", &proxy));
    }

    #[test]
    fn history_spans_default_to_a_week_and_refuse_bad_values() {
        let now = 1_000_000.0;
        assert_eq!(
            history_span(None, now),
            Ok((now - 7.0 * 86_400.0, now + 86_400.0))
        );
        assert_eq!(history_span(Some("from=10&to=20"), now), Ok((10.0, 20.0)));
        assert_eq!(
            history_span(Some("from=10.5"), now),
            Ok((10.5, now + 86_400.0))
        );
        for bad in [
            "from=x",
            "to=-1",
            "from=NaN",
            "from=inf",
            "from=30&to=20",
            "since=1",
        ] {
            let error = history_span(Some(bad), now).unwrap_err();
            assert!(!error.contains('\n') && error.len() < 200, "{error}");
        }
        let long = format!("from={}", "9".repeat(10_000));
        assert!(history_span(Some(&long), now).is_err());
        let hostile = format!("{}=1", "\u{202e}x".repeat(1000));
        assert!(history_span(Some(&hostile), now).unwrap_err().len() < 300);
    }

    #[test]
    fn energy_warnings_name_stale_readings_and_an_empty_battery() {
        let fresh = serde_json::json!({
            "energy_time_s": 10_000.0,
            "readings": {"time_s": 9_990.0},
            "battery": {"above_reserve_wh": 20.0, "soc_pct": 60.0},
            "low_voltage": null,
        });
        assert!(energy_warnings(&fresh, 5.0).is_empty());
        let stale = serde_json::json!({
            "energy_time_s": 10_000.0,
            "readings": {"time_s": 8_000.0},
            "battery": {"above_reserve_wh": 0.0, "soc_pct": 30.0},
            "low_voltage": null,
        });
        let warnings = energy_warnings(&stale, 5.0);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("33 min old"), "{warnings:?}");
        assert!(warnings[1].contains("reserve"), "{warnings:?}");
        assert!(energy_warnings(&serde_json::Value::Null, 5.0).is_empty());
    }
}
