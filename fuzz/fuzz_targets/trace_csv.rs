//! An energy trace (CSV with a `# site:` line) and a job stream, as `pew energy simulate` and
//! the trace source read them; a parsed trace is also looked up at a few times.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pew::energy::simulate::parse_jobs;
use pew::energy::sources::trace::Trace;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(trace) = Trace::parse(text, "fuzz.csv") {
        for time in [f64::MIN, -1.0, 0.0, 1.0e9, f64::MAX, f64::NAN] {
            let _ = trace.at(time);
        }
    }
    let _ = parse_jobs(text, "fuzz-jobs.csv");
});
