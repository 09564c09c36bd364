//! The JSON-RPC transport under every provider pew makes: one or more HTTP endpoints with the
//! manners public ones expect. A rate limit (HTTP 429, or a JSON-RPC "limit exceeded" answer)
//! is waited out with exponential backoff and jitter instead of failing; an endpoint that does
//! not answer (refused, timed out, 5xx) is tried again after a backoff, and after
//! [`SWITCH_AFTER`] failures in a row the next endpoint of `chain.rpc_urls` takes over. Which
//! endpoint is in use and why it last switched is kept for the log, `/status` and `pew doctor`.
//! Answers are read with a size limit: a server cannot make pew buffer without end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};
use serde::Serialize;

/// Failures in a row after which the next endpoint takes over.
pub const SWITCH_AFTER: u32 = 3;
/// Attempts of one request, endpoints included, before its error is returned.
pub const MAX_ATTEMPTS: u32 = 8;
/// Waits for a rate limit before giving up on one request.
pub const MAX_RATE_LIMIT_WAITS: u32 = 10;
/// The largest answer read (a page of logs is far smaller: scans are chunked).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Why an endpoint was left for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Switch {
    /// The endpoint left.
    pub from: String,
    /// The endpoint now in use.
    pub to: String,
    /// Its last error.
    pub reason: String,
    /// When (unix seconds).
    pub at_s: u64,
}

/// What the transport says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    /// The endpoint requests go to now.
    pub in_use: String,
    /// How many endpoints are configured.
    pub endpoints: usize,
    /// The last switch, if any.
    pub last_switch: Option<Switch>,
    /// Requests sent so far (each attempt counts: it costs the endpoint's patience).
    pub requests: u64,
    /// Rate limits met so far.
    pub rate_limited: u64,
}

/// The transport: cheap to clone, shared by every provider clone.
#[derive(Clone)]
pub struct Endpoints {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("urls", &self.inner.urls)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: reqwest::Client,
    urls: Vec<url::Url>,
    state: Mutex<State>,
    requests: AtomicU64,
    rate_limited: AtomicU64,
    /// The first backoff; doubled per attempt (tests make it short).
    base_backoff: Duration,
}

#[derive(Debug, Default)]
struct State {
    current: usize,
    failures: u32,
    last_switch: Option<Switch>,
}

/// What one attempt gave.
enum Attempt {
    Answer(ResponsePacket),
    /// Rate limited, with the server's own hint when it gave one.
    RateLimited(TransportError, Option<Duration>),
    /// The endpoint did not answer usefully; `processed` is whether it may have acted on the
    /// request anyway (a timeout after sending).
    Unavailable {
        error: TransportError,
        maybe_processed: bool,
    },
    /// An answer that no retry changes.
    Final(TransportError),
}

impl Endpoints {
    /// A transport over `urls` (tried in order), each request timing out after `timeout`.
    pub fn new(urls: Vec<url::Url>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with timeouts builds");
        Self {
            inner: Arc::new(Inner {
                client,
                urls,
                state: Mutex::default(),
                requests: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
                base_backoff: Duration::from_millis(250),
            }),
        }
    }

    /// The same transport with another first backoff (tests).
    pub fn with_base_backoff(self, backoff: Duration) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            client: shared.client.clone(),
            urls: shared.urls.clone(),
            state: Mutex::default(),
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            base_backoff: shared.base_backoff,
        });
        Self {
            inner: Arc::new(Inner {
                base_backoff: backoff,
                ..inner
            }),
        }
    }

    /// Which endpoint is in use, and why it last switched.
    pub fn status(&self) -> EndpointStatus {
        let state = self.inner.lock();
        EndpointStatus {
            in_use: shown(&self.inner.urls[state.current]),
            endpoints: self.inner.urls.len(),
            last_switch: state.last_switch.clone(),
            requests: self.inner.requests.load(Ordering::Relaxed),
            rate_limited: self.inner.rate_limited.load(Ordering::Relaxed),
        }
    }
}

/// An endpoint as shown in logs and status: without credentials or query (API keys often
/// live in the path or the query; the host and the first path segment are kept).
pub fn shown(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let first = url
        .path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty() && s.len() < 24)
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    let rest = if url.path().len() > first.len() + 1 || url.query().is_some() {
        "/…"
    } else {
        ""
    };
    format!("{}://{host}{port}{first}{rest}", url.scheme())
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> (usize, url::Url) {
        let index = self.lock().current;
        (index, self.urls[index].clone())
    }

    fn succeeded(&self, index: usize) {
        let mut state = self.lock();
        if state.current == index {
            if state.failures > 0 {
                tracing::info!(endpoint = %shown(&self.urls[index]), "RPC endpoint answers again");
            }
            state.failures = 0;
        }
    }

    /// Counts a failure of endpoint `index`; after [`SWITCH_AFTER`] in a row, moves on.
    fn failed(&self, index: usize, error: &TransportError) {
        let mut state = self.lock();
        if state.current != index {
            return; // another request already moved on
        }
        state.failures += 1;
        if state.failures == 1 {
            // The first failure of a streak is worth a line: an outage retried in silence
            // looks like a hang. The rest of the streak stays quiet until a switch or recovery.
            tracing::warn!(
                endpoint = %shown(&self.urls[index]),
                error = %crate::text::one_line(&error.to_string(), 200),
                "RPC endpoint did not answer; retrying"
            );
        }
        if state.failures < SWITCH_AFTER || self.urls.len() < 2 {
            return;
        }
        let next = (index + 1) % self.urls.len();
        let switch = Switch {
            from: shown(&self.urls[index]),
            to: shown(&self.urls[next]),
            reason: crate::text::one_line(&error.to_string(), 200),
            at_s: crate::clock::unix_now() as u64,
        };
        tracing::warn!(from = %switch.from, to = %switch.to, reason = %switch.reason, "RPC endpoint switched");
        state.current = next;
        state.failures = 0;
        state.last_switch = Some(switch);
    }

    fn backoff(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let exponential = self
            .base_backoff
            .saturating_mul(1u32 << attempt.min(8))
            .min(Duration::from_secs(30));
        let base = hint.map_or(exponential, |hint| hint.max(exponential));
        // Up to half again at random: clients that failed together do not retry together.
        let jitter = base.mul_f64(rand::random::<f64>() * 0.5);
        (base + jitter).min(Duration::from_secs(300))
    }

    async fn attempt(&self, url: url::Url, body: &[u8], is_send: bool) -> Attempt {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = match self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                // Not connected: the endpoint never saw the request. A timeout after sending:
                // it may have.
                let maybe_processed = is_send && !error.is_connect();
                // Without its URL: an API key often lives in the path, and this text reaches
                // the log, /status and the errors the node returns.
                let error = error.without_url();
                return Attempt::Unavailable {
                    error: TransportErrorKind::custom_str(&crate::text::brief(&error)),
                    maybe_processed,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match read_limited(response).await {
            Ok(body) => body,
            Err(reason) => {
                return Attempt::Unavailable {
                    error: TransportErrorKind::custom_str(&reason),
                    maybe_processed: is_send,
                };
            }
        };
        let quoted = || crate::text::quote_bytes(&body);
        if status.as_u16() == 429 {
            return Attempt::RateLimited(
                TransportErrorKind::http_error(429, quoted()),
                retry_after,
            );
        }
        if status.is_server_error() {
            return Attempt::Unavailable {
                error: TransportErrorKind::http_error(status.as_u16(), quoted()),
                maybe_processed: is_send && status.as_u16() != 503,
            };
        }
        if !status.is_success() {
            // A JSON-RPC error may come with a 4xx status; otherwise it is final.
            if let Ok(packet) = serde_json::from_slice::<ResponsePacket>(&body) {
                return classify(packet);
            }
            return Attempt::Final(TransportErrorKind::http_error(status.as_u16(), quoted()));
        }
        match serde_json::from_slice::<ResponsePacket>(&body) {
            Ok(packet) => classify(packet),
            Err(error) => Attempt::Final(TransportError::deser_err(error, quoted())),
        }
    }

    async fn send(
        self: Arc<Self>,
        request: RequestPacket,
    ) -> Result<ResponsePacket, TransportError> {
        let body = serde_json::to_vec(&request).map_err(TransportError::ser_err)?;
        let is_send = request
            .method_names()
            .any(|m| m == "eth_sendRawTransaction" || m == "eth_sendTransaction");
        let mut failures = 0u32;
        let mut rate_limits = 0u32;
        loop {
            let (index, url) = self.current();
            match self.attempt(url, &body, is_send).await {
                Attempt::Answer(packet) => {
                    self.succeeded(index);
                    return Ok(packet);
                }
                Attempt::Final(error) => {
                    self.succeeded(index); // the endpoint answered
                    return Err(error);
                }
                Attempt::RateLimited(error, hint) => {
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    rate_limits += 1;
                    if rate_limits > MAX_RATE_LIMIT_WAITS {
                        return Err(error);
                    }
                    let wait = self.backoff(rate_limits - 1, hint);
                    tracing::debug!(wait_ms = wait.as_millis() as u64, "RPC rate limit; waiting");
                    tokio::time::sleep(wait).await;
                }
                Attempt::Unavailable {
                    error,
                    maybe_processed,
                } => {
                    self.failed(index, &error);
                    failures += 1;
                    // A transaction the endpoint may have taken is not sent again from here:
                    // the sender checks the chain and decides.
                    if maybe_processed || failures >= MAX_ATTEMPTS {
                        return Err(error);
                    }
                    tokio::time::sleep(self.backoff(failures - 1, None)).await;
                }
            }
        }
    }
}

/// Rate-limit answers are JSON-RPC errors too: look inside.
fn classify(packet: ResponsePacket) -> Attempt {
    let limited = match &packet {
        ResponsePacket::Single(response) => response
            .payload
            .as_error()
            .is_some_and(|e| is_rate_limit(e.code, &e.message)),
        ResponsePacket::Batch(responses) => responses.iter().any(|r| {
            r.payload
                .as_error()
                .is_some_and(|e| is_rate_limit(e.code, &e.message))
        }),
    };
    if limited {
        let message = match &packet {
            ResponsePacket::Single(r) => r
                .payload
                .as_error()
                .map(|e| e.message.to_string())
                .unwrap_or_default(),
            ResponsePacket::Batch(_) => "rate limited".into(),
        };
        return Attempt::RateLimited(
            TransportErrorKind::custom_str(&crate::text::quote(&message)),
            None,
        );
    }
    Attempt::Answer(packet)
}

/// Whether a JSON-RPC error is a rate limit (wait and retry), not a refusal of what was asked
/// (a log range too wide: the caller narrows it). Infura answers -32005 for both, so the
/// message decides.
pub fn is_rate_limit(code: i64, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    if is_range_refusal(&message) {
        return false;
    }
    matches!(code, 429 | -32005 | -32016 | -32012 | -32007 | -32055)
        || message.contains("rate limit")
        || message.contains("too many requests")
        || message.contains("limit exceeded")
        || message.contains("request limit reached")
}

/// Whether an error message refuses a log query's range or result count (the caller splits the
/// range and asks again).
pub fn is_range_refusal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    (message.contains("range") && (message.contains("block") || message.contains("too large")))
        || (message.contains("more than") && message.contains("result"))
        || message.contains("response size")
        || message.contains("too many logs")
        || message.contains("query timeout")
        || message.contains("exceed max")
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| crate::text::brief(&e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the RPC answer is larger than {MAX_ANSWER_BYTES} bytes: refused"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl tower::Service<RequestPacket> for Endpoints {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.inner.clone().send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_range_refusals_are_told_apart() {
        assert!(is_rate_limit(
            -32005,
            "daily request count exceeded, request rate limited"
        ));
        assert!(is_rate_limit(429, "Too Many Requests"));
        assert!(is_rate_limit(-32000, "rate limit reached"));
        assert!(!is_rate_limit(
            -32005,
            "query returned more than 10000 results"
        ));
        assert!(!is_rate_limit(
            -32600,
            "eth_getLogs is limited to a 1000 block range"
        ));
        assert!(!is_rate_limit(-32000, "execution reverted"));
        assert!(is_range_refusal("Block range is too large"));
        assert!(is_range_refusal("query returned more than 1000 results"));
        assert!(!is_range_refusal("execution reverted"));
    }

    #[test]
    fn endpoints_are_shown_without_their_keys() {
        let url: url::Url = "https://arb-mainnet.g.alchemy.com/v2/SECRETKEY123456789012345678"
            .parse()
            .unwrap();
        assert_eq!(shown(&url), "https://arb-mainnet.g.alchemy.com/v2/…");
        let url: url::Url = "http://127.0.0.1:8545".parse().unwrap();
        assert_eq!(shown(&url), "http://127.0.0.1:8545");
        let url: url::Url = "https://rpc.example/?apikey=secret".parse().unwrap();
        assert!(!shown(&url).contains("secret"));
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_hints() {
        let endpoints = Endpoints::new(
            vec!["http://127.0.0.1:1".parse().unwrap()],
            Duration::from_secs(1),
        );
        let inner = &endpoints.inner;
        let first = inner.backoff(0, None);
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(375));
        let later = inner.backoff(4, None);
        assert!(later >= Duration::from_millis(4000) && later <= Duration::from_millis(6000));
        let hinted = inner.backoff(0, Some(Duration::from_secs(10)));
        assert!(hinted >= Duration::from_secs(10));
    }
}
