//! The beanstalkd text protocol without I/O: reply lines split into words, error words
//! mapped to typed errors, and the small YAML documents of `stats*` and `list-*` parsed.

use std::collections::BTreeMap;

use super::Error;

/// The longest reply line we accept; the longest real one (`RESERVED <u64> <u32>`) is
/// under 50 bytes, so anything longer means the stream is not beanstalkd's.
pub(crate) const MAX_REPLY_LINE: usize = 1024;

/// One reply: the first word, its arguments, and the data block if the reply has one.
#[derive(Debug)]
pub(crate) struct Reply {
    pub word: String,
    pub args: Vec<String>,
    pub data: Option<Vec<u8>>,
}

impl Reply {
    /// Splits a reply line (without its CR LF) into word and arguments.
    pub fn parse_line(line: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(line);
        let mut parts = text.split(' ').filter(|p| !p.is_empty()).map(str::to_owned);
        Reply {
            word: parts.next().unwrap_or_default(),
            args: parts.collect(),
            data: None,
        }
    }

    /// The number of data bytes that follow this reply line, for the replies that carry
    /// data (`RESERVED id n`, `FOUND id n`, `OK n`).
    pub fn data_len(&self) -> Option<&str> {
        match self.word.as_str() {
            "RESERVED" | "FOUND" => self.args.get(1).map(String::as_str),
            "OK" => self.args.first().map(String::as_str),
            _ => None,
        }
    }

    /// Argument `i` as a number, or an `UnexpectedReply` naming `command`.
    pub fn num_arg(&self, i: usize, command: &'static str) -> Result<u64, Error> {
        self.args
            .get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| self.unexpected(command))
    }

    /// The error for a reply that is not the success reply of `command`.
    pub fn into_error(self, command: &'static str) -> Error {
        match self.word.as_str() {
            "TIMED_OUT" => Error::TimedOut,
            "DEADLINE_SOON" => Error::DeadlineSoon,
            "NOT_FOUND" => Error::NotFound,
            "JOB_TOO_BIG" => Error::JobTooBig,
            "DRAINING" => Error::Draining,
            "BURIED" => Error::Buried(self.args.first().and_then(|a| a.parse().ok())),
            "OUT_OF_MEMORY" => Error::OutOfMemory,
            "INTERNAL_ERROR" => Error::InternalError,
            "BAD_FORMAT" => Error::BadFormat,
            "UNKNOWN_COMMAND" => Error::UnknownCommand,
            "EXPECTED_CRLF" => Error::ExpectedCrlf,
            "NOT_IGNORED" => Error::NotIgnored,
            _ => self.unexpected(command),
        }
    }

    fn unexpected(&self, command: &'static str) -> Error {
        let mut reply = self.word.clone();
        for a in &self.args {
            reply.push(' ');
            reply.push_str(a);
        }
        Error::UnexpectedReply { command, reply }
    }
}

/// Parses the `key: value` YAML document of a `stats*` reply. beanstalkd quotes only some
/// string values (`version: "1.12"`); the quotes are removed.
pub(crate) fn parse_yaml_map(data: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(data)
        .lines()
        .filter(|l| *l != "---")
        .filter_map(|l| {
            l.split_once(": ")
                .or_else(|| l.strip_suffix(':').map(|k| (k, "")))
        })
        .map(|(k, v)| (k.trim().to_owned(), unquote(v.trim()).to_owned()))
        .collect()
}

/// Parses the `- item` YAML list of a `list-tubes*` reply.
pub(crate) fn parse_yaml_list(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(|v| unquote(v.trim()).to_owned())
        .collect()
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    type IsExpected = fn(&Error) -> bool;

    #[test]
    fn every_error_word_maps_to_its_own_variant() {
        let cases: &[(&str, IsExpected)] = &[
            ("TIMED_OUT", |e| matches!(e, Error::TimedOut)),
            ("DEADLINE_SOON", |e| matches!(e, Error::DeadlineSoon)),
            ("NOT_FOUND", |e| matches!(e, Error::NotFound)),
            ("JOB_TOO_BIG", |e| matches!(e, Error::JobTooBig)),
            ("DRAINING", |e| matches!(e, Error::Draining)),
            ("BURIED 42", |e| matches!(e, Error::Buried(Some(42)))),
            ("BURIED", |e| matches!(e, Error::Buried(None))),
            ("OUT_OF_MEMORY", |e| matches!(e, Error::OutOfMemory)),
            ("INTERNAL_ERROR", |e| matches!(e, Error::InternalError)),
            ("BAD_FORMAT", |e| matches!(e, Error::BadFormat)),
            ("UNKNOWN_COMMAND", |e| matches!(e, Error::UnknownCommand)),
            ("EXPECTED_CRLF", |e| matches!(e, Error::ExpectedCrlf)),
            ("NOT_IGNORED", |e| matches!(e, Error::NotIgnored)),
            (
                "WHAT 1 2",
                |e| matches!(e, Error::UnexpectedReply { reply, .. } if reply == "WHAT 1 2"),
            ),
        ];
        for (line, is_expected) in cases {
            let err = Reply::parse_line(line.as_bytes()).into_error("test");
            assert!(is_expected(&err), "{line} gave {err:?}");
        }
    }

    #[test]
    fn data_length_is_found_for_replies_with_data() {
        assert_eq!(Reply::parse_line(b"RESERVED 7 12").data_len(), Some("12"));
        assert_eq!(Reply::parse_line(b"FOUND 7 0").data_len(), Some("0"));
        assert_eq!(Reply::parse_line(b"OK 955").data_len(), Some("955"));
        assert_eq!(Reply::parse_line(b"INSERTED 7").data_len(), None);
    }

    #[test]
    fn sixty_four_bit_ids_parse() {
        let r = Reply::parse_line(b"INSERTED 18446744073709551615");
        assert_eq!(r.num_arg(0, "put").unwrap(), u64::MAX);
        assert!(Reply::parse_line(b"INSERTED x").num_arg(0, "put").is_err());
    }

    #[test]
    fn yaml_documents_parse_like_beanstalkd_writes_them() {
        let map = parse_yaml_map(b"---\nid: 1\nversion: \"1.12\"\nos: #1 SMP x\nname: a:b\n");
        assert_eq!(map["id"], "1");
        assert_eq!(map["version"], "1.12");
        assert_eq!(map["os"], "#1 SMP x");
        assert_eq!(map["name"], "a:b");
        assert_eq!(
            parse_yaml_list(b"---\n- default\n- camhd.jobs\n"),
            ["default", "camhd.jobs"]
        );
    }
}
