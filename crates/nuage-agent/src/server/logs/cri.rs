//! The CRI log format the shim writes, one record per line:
//! `<RFC 3339 nano time> <stdout|stderr> <F|P>[:more tags] <text>`.
//! `F` ends a line; `P` is a piece of a long line that the next record of the
//! same stream continues.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Which output a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// When the runtime read it.
    pub time: OffsetDateTime,
    /// stdout or stderr.
    pub stream: Stream,
    /// `P`: the line continues in the next record.
    pub partial: bool,
    /// The text, without the record's newline.
    pub text: &'a [u8],
}

/// Parses one record (`line` without its trailing newline). `None` for a
/// malformed line, which readers skip as the kubelet does.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let (time, rest) = split_field(line)?;
    let (stream, rest) = split_field(rest)?;
    // The text may be empty, and then the delimiter after the tag may be
    // missing too.
    let (tags, text) = split_field(rest).unwrap_or((rest, &[]));
    let time = OffsetDateTime::parse(std::str::from_utf8(time).ok()?, &Rfc3339).ok()?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // More tags may follow the first after `:` (the format is open to them).
    let partial = match tags.split(|&b| b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        partial,
        text,
    })
}

/// Whether a record is the last piece of a line (`F`), read from its head
/// only: the tail scan calls it on every record it passes.
pub fn ends_line(line: &[u8]) -> bool {
    parse(line).is_some_and(|r| !r.partial)
}

fn split_field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == b' ')?;
    Some((&s[..i], &s[i + 1..]))
}

/// Formats a time as Go's `time.RFC3339Nano` does in UTC (what the kubelet
/// prints with `timestamps=true`): trailing zeros of the fraction dropped,
/// no fraction at all when it is zero.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_full_and_partial_records() {
        let r = parse(b"2026-11-25T14:00:00.123456789Z stdout F hello world").unwrap();
        assert_eq!(r.time, datetime!(2026-11-25 14:00:00.123456789 UTC));
        assert_eq!(r.stream, Stream::Stdout);
        assert!(!r.partial);
        assert_eq!(r.text, b"hello world");

        let r = parse(b"2026-11-25T14:00:00Z stderr P:x part ").unwrap();
        assert_eq!(r.stream, Stream::Stderr);
        assert!(r.partial);
        assert_eq!(r.text, b"part ");
    }

    #[test]
    fn empty_text_with_or_without_delimiter() {
        assert_eq!(parse(b"2026-11-25T14:00:00Z stdout F ").unwrap().text, b"");
        assert_eq!(parse(b"2026-11-25T14:00:00Z stdout F").unwrap().text, b"");
    }

    #[test]
    fn malformed_records_are_none() {
        assert!(parse(b"").is_none());
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"yesterday stdout F x").is_none());
        assert!(parse(b"2026-11-25T14:00:00Z stdin F x").is_none());
        assert!(parse(b"2026-11-25T14:00:00Z stdout X x").is_none());
        assert!(ends_line(b"2026-11-25T14:00:00Z stdout F x"));
        assert!(!ends_line(b"2026-11-25T14:00:00Z stdout P x"));
    }

    #[test]
    fn formats_like_go_rfc3339_nano() {
        assert_eq!(
            format_time(datetime!(2026-11-25 14:00:00.123456789 UTC)),
            "2026-11-25T14:00:00.123456789Z"
        );
        assert_eq!(
            format_time(datetime!(2026-11-25 14:00:00.1 UTC)),
            "2026-11-25T14:00:00.1Z"
        );
        assert_eq!(
            format_time(datetime!(2026-11-25 15:00:00 +01:00)),
            "2026-11-25T14:00:00Z"
        );
    }
}
