//! The `pew` binary: argument parsing lives in `pew::cli`; this only hands over and turns an
//! error into one clear line on stderr and a non-zero exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    pew::cli::main()
}
