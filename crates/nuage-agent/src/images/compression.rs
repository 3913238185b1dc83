//! Layer and archive decompression, chosen by the stream's first bytes
//! rather than by media type (`docker save` does not say, and some tools
//! label gzip layers as plain tar).

use std::io::{self, BufRead, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Looks at the first bytes without consuming them.
pub(crate) fn detect<R: BufRead>(reader: &mut R) -> io::Result<Compression> {
    let head = reader.fill_buf()?;
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// The decompressed stream.
pub(crate) fn decompress<'a, R: BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match detect(&mut reader)? {
        Compression::None => Box::new(reader),
        // Multi-member gzip is valid and some tools write it.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(ZstdFrames::new(reader)),
    })
}

/// A zstd stream of any number of frames, skippable frames skipped
/// (zstd:chunked layers carry their table of contents in one). The frame
/// loop is `ruzstd::StreamingDecoder`'s, which handles one frame only.
struct ZstdFrames<R: BufRead> {
    reader: R,
    decoder: FrameDecoder,
    /// Inside a frame (its header read).
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(reader: R) -> Self {
        ZstdFrames {
            reader,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }
}

fn zstd_error(e: FrameDecoderError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.reader.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.decoder.init(&mut self.reader) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skipped =
                            io::copy(&mut (&mut self.reader).take(length.into()), &mut io::sink())?;
                        if skipped < u64::from(length) {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "zstd: truncated skippable frame",
                            ));
                        }
                        continue;
                    }
                    Err(e) => return Err(zstd_error(e)),
                }
            }
            // decode_blocks may only fill its window without making bytes
            // collectable: loop until enough are or the frame ends.
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let wanted = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.reader, BlockDecodingStrategy::UptoBytes(wanted))
                    .map_err(zstd_error)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                self.in_frame = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(bytes).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn plain_streams_pass_through() {
        assert_eq!(read_all(b"plain tar bytes"), b"plain tar bytes");
        assert_eq!(read_all(b""), b"");
    }

    #[test]
    fn gzip_members_are_concatenated() {
        let mut gz = Vec::new();
        for part in [&b"one "[..], b"two"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, part).unwrap();
            gz.extend(enc.finish().unwrap());
        }
        assert_eq!(read_all(&gz), b"one two");
    }

    #[test]
    fn zstd_frames_and_skippable_frames() {
        use ruzstd::encoding::{compress_to_vec, CompressionLevel};
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut z = compress_to_vec(&big[..], CompressionLevel::Fastest);
        // A skippable frame (magic 0x184D2A50, little-endian length 3).
        z.extend([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        z.extend(compress_to_vec(&b"tail"[..], CompressionLevel::Fastest));
        let mut want = big.clone();
        want.extend(b"tail");
        assert_eq!(read_all(&z), want);
    }
}
