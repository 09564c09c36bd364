//! Foreign text in pew's own messages. An error or a log line may quote what a server, a
//! container, a file or a setting said, but never all of it: a 5 MB HTML error page or a
//! 10 MB setting echoed whole floods a terminal and a journal, and control characters in it
//! can rewrite the operator's screen. Everything quoted goes through here: at most a short
//! prefix, on one line, with control characters escaped.

/// How much of a foreign text an error quotes by default.
pub const QUOTE_CHARS: usize = 200;

/// The longest error line the command line prints, our own words included.
pub const LINE_CHARS: usize = 2000;

/// `text` as one line of at most `max` characters: control characters (newlines included)
/// escaped as `\n`, `\t` or `\u{..}`, and, when cut, an ellipsis with the full length in
/// bytes so a reader knows how much was left out.
pub fn one_line(text: &str, max: usize) -> String {
    cut(text, max, text.len())
}

/// [`one_line`] of a text that is the start of `total_len` bytes.
fn cut(text: &str, max: usize, total_len: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 32);
    let mut shown = 0;
    for c in text.chars() {
        let escaped: String = match c {
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            c if c.is_control() || is_bidi_control(c) => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        };
        let width = escaped.chars().count();
        if shown + width > max {
            out.push_str(&format!("… ({total_len} bytes in all)"));
            return out;
        }
        shown += width;
        out.push_str(&escaped);
    }
    if total_len > text.len() {
        out.push_str(&format!("… ({total_len} bytes in all)"));
    }
    out
}

/// `text` with its lines kept but every other control character escaped (an app's logs shown
/// on a terminal: escape sequences could rewrite the screen).
pub fn escape_controls(text: &str) -> String {
    text.lines()
        .map(|line| cut(line, usize::MAX, line.len()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` quoted for a message: at most [`QUOTE_CHARS`] characters on one line.
pub fn quote(text: &str) -> String {
    one_line(text, QUOTE_CHARS)
}

/// An error for a log line: its whole chain (`{:#}`), on one line of at most 500 characters
/// (an RPC node's error may carry a whole HTML page).
pub fn brief(error: impl std::fmt::Display) -> String {
    one_line(&format!("{error:#}"), 500)
}

/// Bytes that may not be UTF-8 (a server's body, a file's head), quoted like [`quote`].
pub fn quote_bytes(bytes: &[u8]) -> String {
    // Decoding a prefix is enough: nothing past the quote length is shown.
    let head = &bytes[..bytes.len().min(QUOTE_CHARS * 4)];
    cut(&String::from_utf8_lossy(head), QUOTE_CHARS, bytes.len())
}

/// Characters that reorder what a terminal shows (a "Trojan Source" line).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_control_characters_are_escaped() {
        assert_eq!(one_line("plain", 10), "plain");
        assert_eq!(
            one_line("a\nb\tc\u{1b}[2J\u{202e}", 100),
            "a\\nb\\tc\\u{1b}[2J\\u{202e}"
        );
    }

    #[test]
    fn long_text_is_cut_with_its_length() {
        let huge = "<html>".repeat(1_000_000);
        let quoted = quote(&huge);
        assert!(quoted.chars().count() < QUOTE_CHARS + 40, "{quoted}");
        assert!(quoted.ends_with("(6000000 bytes in all)"), "{quoted}");
        assert!(!quoted.contains('\n'));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_quoted_too() {
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend(std::iter::repeat_n(b'x', 10_000));
        let quoted = quote_bytes(&bytes);
        assert!(quoted.starts_with("\u{fffd}\u{fffd}xx"), "{quoted}");
        assert!(quoted.ends_with("(10002 bytes in all)"), "{quoted}");
    }
}
