//! The CRI log format the shim writes and `kubectl logs` reads: one record
//! per line, `<RFC 3339 time, nanoseconds> <stdout|stderr> <F|P> <text>`,
//! where `P` marks a piece of a line longer than [`MAX_LINE`] and `F` the
//! piece that ends it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Lines longer than this are split into `P` records (as containerd does).
pub const MAX_LINE: usize = 16 * 1024;

/// Fixed nine fractional digits, so records sort as text.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// Which output a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Turns two byte streams into CRI records appended to one file.
pub struct CriLogWriter<W: Write = File> {
    out: W,
    /// The unfinished line of stdout and of stderr.
    pending: [Vec<u8>; 2],
}

impl CriLogWriter<File> {
    /// Opens (appending) or creates the log file.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::new(file))
    }
}

impl<W: Write> CriLogWriter<W> {
    /// A writer over any sink.
    pub fn new(out: W) -> Self {
        Self {
            out,
            pending: [Vec::new(), Vec::new()],
        }
    }

    /// Takes bytes read from one stream: writes every completed line, keeps
    /// the rest until its newline arrives (or it grows past [`MAX_LINE`]).
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let slot = stream as usize;
        while !data.is_empty() {
            let room = MAX_LINE - self.pending[slot].len();
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) if nl <= room => {
                    let mut line = std::mem::take(&mut self.pending[slot]);
                    line.extend_from_slice(&data[..nl]);
                    self.record(stream, 'F', &line)?;
                    data = &data[nl + 1..];
                }
                _ if data.len() >= room => {
                    let mut piece = std::mem::take(&mut self.pending[slot]);
                    piece.extend_from_slice(&data[..room]);
                    self.record(stream, 'P', &piece)?;
                    data = &data[room..];
                }
                _ => {
                    self.pending[slot].extend_from_slice(data);
                    data = &[];
                }
            }
        }
        self.out.flush()
    }

    /// At the end of a stream: its unfinished last line becomes a full record.
    pub fn finish(&mut self, stream: Stream) -> io::Result<()> {
        let line = std::mem::take(&mut self.pending[stream as usize]);
        if !line.is_empty() {
            self.record(stream, 'F', &line)?;
        }
        self.out.flush()
    }

    fn record(&mut self, stream: Stream, tag: char, text: &[u8]) -> io::Result<()> {
        let now = OffsetDateTime::now_utc()
            .format(TIMESTAMP)
            .map_err(io::Error::other)?;
        let mut rec = Vec::with_capacity(text.len() + 48);
        rec.extend_from_slice(now.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_str().as_bytes());
        rec.push(b' ');
        rec.push(tag as u8);
        rec.push(b' ');
        rec.extend_from_slice(text);
        rec.push(b'\n');
        self.out.write_all(&rec)
    }

    /// The sink (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(out: &[u8]) -> Vec<(String, String, String)> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| {
                let mut parts = l.splitn(4, ' ');
                let ts = parts.next().unwrap();
                assert_eq!(ts.len(), "2026-11-25T14:00:00.123456789Z".len(), "{ts}");
                (
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut w = CriLogWriter::new(Vec::new());
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nworld\n\nlast").unwrap();
        w.finish(Stream::Stdout).unwrap();
        let recs = records(&w.into_inner());
        let want = [
            ("stderr", "F", "oops"),
            ("stdout", "F", "hello"),
            ("stdout", "F", "world"),
            ("stdout", "F", ""),
            ("stdout", "F", "last"),
        ];
        let got: Vec<_> = recs
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn long_lines_become_partial_records() {
        let mut w = CriLogWriter::new(Vec::new());
        let mut long = vec![b'a'; MAX_LINE + 10];
        long.push(b'\n');
        w.write(Stream::Stdout, &long[..100]).unwrap();
        w.write(Stream::Stdout, &long[100..]).unwrap();
        let recs = records(&w.into_inner());
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].1.as_str(), recs[0].2.len()), ("P", MAX_LINE));
        assert_eq!((recs[1].1.as_str(), recs[1].2.len()), ("F", 10));
    }
}
