//! stdout and stderr that never stop pew. `println!` panics when its reader has gone
//! (`pew task show T | head -c1`), and a log line written to a closed stderr must not take a
//! running node down with it: the node would leave its bid open and its tasks half done. Here a
//! write that fails marks that stream closed, and later writes to it are dropped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_to(mut stream: impl Write, closed: &AtomicBool, text: &str, newline: bool) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let written = stream
        .write_all(text.as_bytes())
        .and_then(|()| {
            if newline {
                stream.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| stream.flush());
    if written.is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Prints one line of results on stdout (dropped once stdout is closed).
pub fn out_line(text: &str) {
    write_to(std::io::stdout().lock(), &STDOUT_CLOSED, text, true);
}

/// Prints one line of progress or an error on stderr (dropped once stderr is closed).
pub fn err_line(text: &str) {
    write_to(std::io::stderr().lock(), &STDERR_CLOSED, text, true);
}

/// Prints a prompt on stderr, without a line end.
pub fn err_prompt(text: &str) {
    write_to(std::io::stderr().lock(), &STDERR_CLOSED, text, false);
}

/// The log sink: stderr, where a failed write is dropped instead of reported. tracing hands
/// every event to a writer made here.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

/// One event's writer (see [`LogSink`]).
#[derive(Debug)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !STDERR_CLOSED.load(Ordering::Relaxed) && std::io::stderr().write_all(buf).is_err() {
            STDERR_CLOSED.store(true, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}
