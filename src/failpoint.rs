//! Crash points for the power-cut tests: with `PEW_FAILPOINT=<name>` set, the process kills
//! itself (SIGKILL, like a power cut: no destructor or flush runs) when it reaches the named
//! point. Without the variable, every point is a no-op.

use std::sync::OnceLock;

fn configured() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            std::env::var("PEW_FAILPOINT")
                .ok()
                .filter(|p| !p.is_empty())
        })
        .as_deref()
}

/// Dies here if `PEW_FAILPOINT` names this point.
pub fn hit(name: &str) {
    if configured() == Some(name) {
        eprintln!("failpoint {name}: killing the process");
        // SAFETY: raising SIGKILL on ourselves.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
