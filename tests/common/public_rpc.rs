//! A relay in front of the devnet's anvil that behaves like a public RPC endpoint: it caps
//! `eth_getLogs` at 1 000 blocks and 1 000 results (answering with the errors public nodes
//! give), answers HTTP 429 above 10 requests a second, adds 150 ms of latency, and fails 2 % of
//! calls with a 502. It counts what it is asked, per method. [`dead_endpoint`] gives the URL of
//! an endpoint that refuses every connection. Both listen on 127.0.0.1 only.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};

/// How the relay behaves (the defaults are the public endpoint).
#[derive(Debug, Clone)]
pub struct Manners {
    pub max_log_blocks: u64,
    pub max_log_results: usize,
    pub max_requests_per_s: usize,
    pub latency: Duration,
    pub failure_share: f64,
}

impl Default for Manners {
    fn default() -> Self {
        Self {
            max_log_blocks: 1000,
            max_log_results: 1000,
            max_requests_per_s: 10,
            latency: Duration::from_millis(150),
            failure_share: 0.02,
        }
    }
}

/// What the relay saw.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Requests per JSON-RPC method (those answered 429 or 502 included).
    pub methods: BTreeMap<String, u64>,
    pub rate_limited: u64,
    pub failed: u64,
    pub refused_ranges: u64,
}

impl Counts {
    /// Every request received.
    pub fn total(&self) -> u64 {
        self.methods.values().sum()
    }
}

struct Shared {
    target: String,
    manners: Manners,
    client: reqwest::Client,
    recent: Mutex<VecDeque<Instant>>,
    counts: Mutex<Counts>,
    rng: Mutex<u64>,
}

/// A running relay; stops when dropped.
pub struct PublicRpc {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PublicRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PublicRpc {
    /// A relay to `target` (anvil's URL) with the public endpoint's manners.
    pub async fn start(target: &str) -> Self {
        Self::with_manners(target, Manners::default()).await
    }

    pub async fn with_manners(target: &str, manners: Manners) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            target: target.to_string(),
            manners,
            client: reqwest::Client::new(),
            recent: Mutex::default(),
            counts: Mutex::default(),
            rng: Mutex::new(0x9e37_79b9_7f4a_7c15),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Self { url, shared, task }
    }

    /// What it has seen so far.
    pub fn counts(&self) -> Counts {
        self.shared.counts.lock().unwrap().clone()
    }
}

/// An endpoint nobody listens on (connections are refused).
pub fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn error(id: &serde_json::Value, code: i64, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    respond(StatusCode::OK, body.to_string())
}

async fn answer(shared: &Shared, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let Ok(body) = request.into_body().collect().await else {
        return respond(StatusCode::BAD_REQUEST, "bad body");
    };
    let body = body.to_bytes();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let method = parsed["method"].as_str().unwrap_or("batch").to_string();
    let id = parsed["id"].clone();
    *shared
        .counts
        .lock()
        .unwrap()
        .methods
        .entry(method.clone())
        .or_default() += 1;
    tokio::time::sleep(shared.manners.latency).await;

    // More than N requests in the last second: 429.
    {
        let mut recent = shared.recent.lock().unwrap();
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            recent.pop_front();
        }
        if recent.len() >= shared.manners.max_requests_per_s {
            shared.counts.lock().unwrap().rate_limited += 1;
            return respond(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        }
        recent.push_back(now);
    }
    // A share of calls fail as an overloaded gateway would.
    let roll = {
        let mut state = shared.rng.lock().unwrap();
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % 10_000) as f64 / 10_000.0
    };
    if roll < shared.manners.failure_share {
        shared.counts.lock().unwrap().failed += 1;
        return respond(
            StatusCode::BAD_GATEWAY,
            "<html><body>502 Bad Gateway</body></html>",
        );
    }

    if method == "eth_getLogs" {
        let filter = &parsed["params"][0];
        let from = block_number(shared, &filter["fromBlock"]).await;
        let to = block_number(shared, &filter["toBlock"]).await;
        if let (Some(from), Some(to)) = (from, to)
            && to.saturating_sub(from) + 1 > shared.manners.max_log_blocks
        {
            shared.counts.lock().unwrap().refused_ranges += 1;
            return error(
                &id,
                -32600,
                &format!(
                    "eth_getLogs is limited to a {} block range",
                    shared.manners.max_log_blocks
                ),
            );
        }
    }
    let forwarded = match shared
        .client
        .post(&shared.target)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
    {
        Ok(response) => response.bytes().await.unwrap_or_default(),
        Err(_) => return respond(StatusCode::BAD_GATEWAY, "upstream down"),
    };
    if method == "eth_getLogs" {
        let value: serde_json::Value = serde_json::from_slice(&forwarded).unwrap_or_default();
        if value["result"]
            .as_array()
            .is_some_and(|logs| logs.len() > shared.manners.max_log_results)
        {
            shared.counts.lock().unwrap().refused_ranges += 1;
            return error(
                &id,
                -32005,
                &format!(
                    "query returned more than {} results",
                    shared.manners.max_log_results
                ),
            );
        }
    }
    respond(StatusCode::OK, forwarded)
}

/// A block tag as a number ("latest" asks anvil).
async fn block_number(shared: &Shared, tag: &serde_json::Value) -> Option<u64> {
    match tag.as_str()? {
        "latest" | "safe" | "finalized" | "pending" => {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []});
            let answer: serde_json::Value = shared
                .client
                .post(&shared.target)
                .json(&body)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            u64::from_str_radix(answer["result"].as_str()?.trim_start_matches("0x"), 16).ok()
        }
        "earliest" => Some(0),
        hex => u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok(),
    }
}
