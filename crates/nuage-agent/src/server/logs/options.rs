//! The query of `GET /containerLogs/...` (the kubelet's `PodLogOptions`),
//! checked as the API server's validation checks it.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cri::Stream;

/// What a log request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Keep streaming lines as they are written.
    pub follow: bool,
    /// Read the previous attempt's log.
    pub previous: bool,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Only records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// Only one stream (`stream=Stdout|Stderr`); `None` for both.
    pub stream: Option<Stream>,
}

impl LogOptions {
    /// Parses the query pairs; `now` anchors `sinceSeconds`. The error is the
    /// message of a 400.
    pub fn parse(query: &[(String, String)], now: OffsetDateTime) -> Result<Self, String> {
        let get = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let mut o = LogOptions {
            follow: flag(get("follow"), "follow")?,
            previous: flag(get("previous"), "previous")?,
            timestamps: flag(get("timestamps"), "timestamps")?,
            ..Default::default()
        };
        if let Some(n) = int(get("tailLines"), "tailLines")? {
            if n < 0 {
                return Err(format!(
                    "tailLines: Invalid value: {n}: must be greater than or equal to 0"
                ));
            }
            o.tail_lines = Some(n as u64);
        }
        if let Some(n) = int(get("limitBytes"), "limitBytes")? {
            if n < 1 {
                return Err(format!(
                    "limitBytes: Invalid value: {n}: must be greater than 0"
                ));
            }
            o.limit_bytes = Some(n as u64);
        }
        match (get("sinceSeconds"), get("sinceTime")) {
            (Some(_), Some(_)) => {
                return Err("at most one of `sinceTime` or `sinceSeconds` may be specified".into())
            }
            (Some(_), None) => {
                let n = int(get("sinceSeconds"), "sinceSeconds")?.unwrap_or_default();
                if n < 1 {
                    return Err(format!(
                        "sinceSeconds: Invalid value: {n}: must be greater than 0"
                    ));
                }
                // A huge value means "from the beginning", not a panic.
                o.since = Some(
                    now.checked_sub(time::Duration::seconds(n))
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                );
            }
            (None, Some(t)) => {
                let t = OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
                    format!("sinceTime: Invalid value: {t:?}: not an RFC 3339 time")
                })?;
                o.since = Some(t);
            }
            (None, None) => {}
        }
        o.stream = match get("stream") {
            None | Some("All") => None,
            Some("Stdout") => Some(Stream::Stdout),
            Some("Stderr") => Some(Stream::Stderr),
            Some(other) => {
                return Err(format!(
                    "stream: Unsupported value: {other:?}: supported values: \"All\", \"Stderr\", \"Stdout\""
                ))
            }
        };
        if o.stream.is_some() && o.tail_lines.is_some() {
            // The API server refuses this pair too: tail counts lines of
            // both streams.
            return Err("tailLines: Forbidden: `tailLines` and specific `stream` are mutually exclusive for now".into());
        }
        Ok(o)
    }
}

/// A boolean as Go's `strconv.ParseBool` reads it.
fn flag(v: Option<&str>, key: &str) -> Result<bool, String> {
    match v {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(format!("{key}: Invalid value: {other:?}: not a boolean")),
    }
}

fn int(v: Option<&str>, key: &str) -> Result<Option<i64>, String> {
    v.map(|s| {
        s.parse()
            .map_err(|_| format!("{key}: Invalid value: {s:?}: not an integer"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn q(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    const NOW: OffsetDateTime = datetime!(2026-11-25 14:00:00 UTC);

    #[test]
    fn reads_every_option() {
        let o = LogOptions::parse(
            &q("follow=true&previous=1&timestamps=True&tailLines=10&limitBytes=5&sinceSeconds=60"),
            NOW,
        )
        .unwrap();
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!(o.tail_lines, Some(10));
        assert_eq!(o.limit_bytes, Some(5));
        assert_eq!(o.since, Some(datetime!(2026-11-25 13:59:00 UTC)));

        let o = LogOptions::parse(&q("sinceTime=2026-11-25T13:00:00Z&stream=Stderr"), NOW).unwrap();
        assert_eq!(o.since, Some(datetime!(2026-11-25 13:00:00 UTC)));
        assert_eq!(o.stream, Some(Stream::Stderr));
        assert_eq!(LogOptions::parse(&[], NOW).unwrap(), LogOptions::default());
    }

    #[test]
    fn a_huge_since_seconds_means_from_the_beginning() {
        // Found by the agent_query fuzz target: it used to overflow.
        let o = LogOptions::parse(&q("sinceSeconds=9223372036854775807"), NOW).unwrap();
        assert_eq!(o.since, Some(OffsetDateTime::UNIX_EPOCH));
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        for (query, msg) in [
            ("tailLines=-1", "must be greater than or equal to 0"),
            ("limitBytes=0", "must be greater than 0"),
            ("sinceSeconds=0", "must be greater than 0"),
            (
                "sinceSeconds=1&sinceTime=2026-11-25T13:00:00Z",
                "at most one of",
            ),
            ("sinceTime=yesterday", "not an RFC 3339 time"),
            ("follow=maybe", "not a boolean"),
            ("tailLines=ten", "not an integer"),
            ("stream=Stdin", "supported values"),
            ("stream=Stdout&tailLines=1", "mutually exclusive"),
        ] {
            let err = LogOptions::parse(&q(query), NOW).unwrap_err();
            assert!(err.contains(msg), "{query}: {err}");
        }
    }
}
