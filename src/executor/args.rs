//! Splitting `iexec_args` into the app's argument vector, shell-style: whitespace separates
//! words, single quotes keep everything literally, double quotes keep spaces and honour `\"`
//! and `\\`, and a backslash outside quotes escapes the next character. No expansion of any
//! kind happens: no variables, globs or commands.

/// A string that cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("iexec_args has an unterminated {0} quote")]
pub struct ArgsError(&'static str);

/// Splits `args` into words.
pub fn split_args(args: &str) -> Result<Vec<String>, ArgsError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ArgsError("single")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(ArgsError("double")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(ArgsError("double")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_args(s).unwrap()
    }

    #[test]
    fn words_and_quotes_split_like_a_shell() {
        assert_eq!(split("hello world"), ["hello", "world"]);
        assert_eq!(split("  a   b  "), ["a", "b"]);
        assert_eq!(
            split(r#"--name "Alice Smith" 'x y'"#),
            ["--name", "Alice Smith", "x y"]
        );
        assert_eq!(
            split(r#"a\ b "q\"uote" 'it''s'"#),
            ["a b", "q\"uote", "its"]
        );
        assert_eq!(split(r#""""#), [""]);
        assert!(split("").is_empty());
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(split("$HOME `id` *"), ["$HOME", "`id`", "*"]);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert_eq!(split_args("'open").unwrap_err(), ArgsError("single"));
        assert_eq!(split_args("\"open").unwrap_err(), ArgsError("double"));
    }
}
