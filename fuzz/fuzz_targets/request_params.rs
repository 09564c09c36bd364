//! A request's `params` string (JSON written by any requester), parsed, checked against what
//! a standard task may ask, and written back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pew::poco::RequestParams;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(params) = RequestParams::parse(text) {
        let _ = params.check_standard();
        let again = RequestParams::parse(&params.to_json());
        assert!(again.is_ok(), "what pew writes, pew reads back");
        if let Some(args) = &params.iexec_args {
            let _ = pew::executor::args::split_args(args);
        }
    }
});
