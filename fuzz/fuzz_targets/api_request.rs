//! What a browser or any local program sends the node's HTTP API: the `/history` query string
//! and the `Host` header. Neither may panic; a refused query is one bounded line; an accepted
//! span runs forwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pew::node::api::{allowed_host, history_span};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (query, host) = text.split_once('\n').unwrap_or((&text, ""));
    match history_span(Some(query), 1_780_272_000.0) {
        Ok((from, to)) => assert!(from <= to, "{from} > {to}"),
        Err(line) => assert!(!line.contains('\n') && line.len() < 400, "{line}"),
    }
    let _ = allowed_host(Some(host), "solarpi", &["pew.example.org".to_string()]);
});
