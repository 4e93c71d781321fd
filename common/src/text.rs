//! Text from outside made safe to show, the rule written once: whatever a body, a path or
//! a video name holds, what `gridctl` prints, the dashboard shows or the sink writes into
//! a commit message cannot move the cursor, clear the screen, retitle the window or
//! reorder a line.

use std::borrow::Cow;

/// `s` with every control character (C0 but newline and tab, DEL, C1, and the bidi
/// overrides that reorder what a line seems to say) written as a visible `\u{…}` escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    escaped(s, |c| format!("\\u{{{:x}}}", c as u32))
}

/// `s` with every [`unsafe_char`] replaced by what `escape` writes for it.
fn escaped(s: &str, escape: impl Fn(char) -> String) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&escape(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` cut to at most `max` characters, with a mark when it was.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… (cut)", &s[..i]),
        None => s.to_owned(),
    }
}

/// The longest host or video name shown from a heartbeat (a real one is under 300).
pub const MAX_NAME: usize = 1000;

/// [`printable`] for one line of a table: newlines and tabs escaped too.
pub fn one_line(s: &str) -> String {
    printable(s).replace('\n', "\\n").replace('\t', "\\t")
}

/// `s` on one line with every unsafe character (controls, line breaks included, and bidi
/// overrides) dropped: for text that is read as it stands, such as a commit message.
pub fn plain_line(s: &str) -> String {
    s.chars()
        .filter(|&c| !unsafe_char(c) && !c.is_control())
        .collect()
}

/// JSON text (as serde_json writes it) with the characters [`printable`] escapes written
/// as JSON `\uXXXX` escapes: the same JSON value, but a terminal shows it instead of
/// obeying it. serde_json escapes C0 controls itself, not DEL, C1 (U+009B is a one-byte
/// CSI) or bidi overrides; they can only stand inside strings, where the escape is valid.
pub fn safe_json(text: String) -> String {
    match escaped(&text, |c| format!("\\u{:04x}", c as u32)) {
        Cow::Borrowed(_) => text,
        Cow::Owned(out) => out,
    }
}

fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        assert_eq!(printable("plain é ✓"), "plain é ✓");
        assert_eq!(printable("\x1b[2J\x07x\u{9b}"), "\\u{1b}[2J\\u{7}x\\u{9b}");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(one_line("a\nb\r"), "a\\nb\\u{d}");
        assert_eq!(plain_line("a\nb\u{1b}[2J\u{202e}c\t"), "ab[2Jc");
    }

    #[test]
    fn json_keeps_its_value_but_not_its_terminal_tricks() {
        let value = serde_json::json!({"video": "a\u{9b}2J\u{202e}vom.exe\u{7f}", "n": [1, 2]});
        let text = safe_json(serde_json::to_string_pretty(&value).unwrap());
        assert!(text.contains("a\\u009b2J\\u202evom.exe\\u007f"), "{text}");
        assert!(!text.chars().any(unsafe_char));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}
