//! Finding where the last N lines of a log file start, reading backwards
//! from the end: a long-running container's log can be large, and
//! `kubectl logs --tail=10` must not read it whole.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::cri;

/// How much is read per step backwards.
const CHUNK: u64 = 64 * 1024;

/// The offset where the last `n` lines begin. A line is one or more records
/// ending with an `F` record, so the answer is just after the `n+1`-th `F`
/// record from the end (or 0). Only complete records count: a record still
/// being written at the end has no newline yet.
pub fn start_of_last_lines(file: &mut File, n: u64) -> io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut back = Backwards {
        file,
        buf: Vec::new(),
        buf_start: len,
    };
    // The end of the last complete record.
    let Some(last_newline) = back.newline_before(len)? else {
        return Ok(0);
    };
    let mut end = last_newline + 1;
    let mut lines_seen = 0;
    loop {
        // The record is [start, end), its newline at end - 1.
        let start = back.newline_before(end - 1)?.map_or(0, |p| p + 1);
        back.keep_below(end);
        if cri::ends_line(back.slice(start, end - 1)) {
            if lines_seen == n {
                return Ok(end);
            }
            lines_seen += 1;
        }
        if start == 0 {
            return Ok(0);
        }
        end = start;
    }
}

/// A window of the file, `[buf_start, buf_start + buf.len())`, grown to the
/// left one chunk at a time.
struct Backwards<'a> {
    file: &'a mut File,
    buf: Vec<u8>,
    buf_start: u64,
}

impl Backwards<'_> {
    /// The offset of the last `\n` before `before`, loading chunks as needed.
    fn newline_before(&mut self, before: u64) -> io::Result<Option<u64>> {
        loop {
            let upto = (before - self.buf_start) as usize;
            let upto = upto.min(self.buf.len());
            if let Some(i) = self.buf[..upto].iter().rposition(|&b| b == b'\n') {
                return Ok(Some(self.buf_start + i as u64));
            }
            if self.buf_start == 0 {
                return Ok(None);
            }
            self.load_previous_chunk()?;
        }
    }

    fn load_previous_chunk(&mut self) -> io::Result<()> {
        let start = self.buf_start.saturating_sub(CHUNK);
        let mut chunk = vec![0; (self.buf_start - start) as usize];
        self.file.seek(SeekFrom::Start(start))?;
        self.file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&self.buf);
        self.buf = chunk;
        self.buf_start = start;
        Ok(())
    }

    /// Drops the bytes from `end` on: the scan never goes right again, and
    /// this bounds the window to one record plus one chunk.
    fn keep_below(&mut self, end: u64) {
        let keep = ((end - self.buf_start) as usize).min(self.buf.len());
        self.buf.truncate(keep);
    }

    fn slice(&self, start: u64, end: u64) -> &[u8] {
        &self.buf[(start - self.buf_start) as usize..(end - self.buf_start) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(content: &str) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn rec(tag: &str, text: &str) -> String {
        format!("2026-11-25T14:00:00Z stdout {tag} {text}\n")
    }

    #[test]
    fn counts_lines_not_records() {
        let content = [
            rec("F", "one"),
            rec("P", "two-a"),
            rec("P", "two-b"),
            rec("F", "two-c"),
            rec("F", "three"),
        ]
        .concat();
        let mut f = file_with(&content);
        let at = |f: &mut File, n| start_of_last_lines(f, n).unwrap() as usize;
        assert_eq!(&content[at(&mut f, 1)..], rec("F", "three"));
        assert!(content[at(&mut f, 2)..].starts_with(&rec("P", "two-a")));
        assert_eq!(at(&mut f, 3), 0);
        assert_eq!(at(&mut f, 30), 0);
        assert_eq!(at(&mut f, 0), content.len());
    }

    #[test]
    fn ignores_an_unfinished_last_record() {
        let content = format!("{}{}2026-11-25T14:00", rec("F", "one"), rec("F", "two"));
        let mut f = file_with(&content);
        let at = start_of_last_lines(&mut f, 1).unwrap() as usize;
        assert!(content[at..].starts_with(&rec("F", "two")));
        assert_eq!(start_of_last_lines(&mut file_with(""), 5).unwrap(), 0);
    }

    #[test]
    fn crosses_chunk_boundaries() {
        // Lines longer than a chunk, and many short ones.
        let long = "x".repeat(CHUNK as usize + 100);
        let mut content = String::new();
        for i in 0..5000 {
            content.push_str(&rec("F", &format!("line {i}")));
        }
        content.push_str(&rec("P", &long));
        content.push_str(&rec("F", &long));
        content.push_str(&rec("F", "last"));
        let mut f = file_with(&content);
        let at = start_of_last_lines(&mut f, 2).unwrap() as usize;
        assert!(content[at..].starts_with(&rec("P", &long)));
        let at = start_of_last_lines(&mut f, 1000).unwrap() as usize;
        assert!(content[at..].starts_with(&rec("F", "line 4002")));
    }
}
