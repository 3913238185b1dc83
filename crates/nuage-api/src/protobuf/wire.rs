//! The protobuf wire format: a reader of `(field number, value)` pairs that
//! checks every length against the bytes left, so truncated or garbage input
//! is an error, never a panic or an out-of-bounds read.

use crate::status::{ApiError, ApiResult};

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire<'a> {
    /// Wire type 0: int32, int64, uint*, sint*, bool, enum.
    Varint(u64),
    /// Wire type 1: fixed64, sfixed64, double.
    Fixed64(u64),
    /// Wire type 2: string, bytes, embedded message, packed repeated.
    Bytes(&'a [u8]),
    /// Wire type 5: fixed32, sfixed32, float.
    Fixed32(u32),
}

impl Wire<'_> {
    /// The wire type's name, for error messages.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "64-bit",
            Wire::Bytes(_) => "length-delimited",
            Wire::Fixed32(_) => "32-bit",
        }
    }
}

/// Reads the fields of one message in wire order. After an error it yields
/// nothing more.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads the fields of `message`.
    pub(super) fn new(message: &'a [u8]) -> Self {
        Self { rest: message }
    }

    /// Whether every byte has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// A base-128 varint of at most 10 bytes.
    pub(super) fn varint(&mut self) -> ApiResult<u64> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(malformed(if self.rest.len() < 10 {
            "truncated varint"
        } else {
            "varint longer than 10 bytes"
        }))
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> ApiResult<&'a [u8]> {
        if n > self.rest.len() {
            return Err(malformed(&format!(
                "field of {n} bytes with only {} left",
                self.rest.len()
            )));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// Four little-endian bytes.
    pub(super) fn fixed32(&mut self) -> ApiResult<u32> {
        let bytes: [u8; 4] = self.take(4)?.try_into().expect("took 4 bytes");
        Ok(u32::from_le_bytes(bytes))
    }

    /// Eight little-endian bytes.
    pub(super) fn fixed64(&mut self) -> ApiResult<u64> {
        let bytes: [u8; 8] = self.take(8)?.try_into().expect("took 8 bytes");
        Ok(u64::from_le_bytes(bytes))
    }

    fn field(&mut self) -> ApiResult<(u32, Wire<'a>)> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..1 << 29).contains(n))
            .ok_or_else(|| malformed(&format!("invalid field number {}", key >> 3)))?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(self.fixed64()?),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| malformed("length does not fit in memory"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => Wire::Fixed32(self.fixed32()?),
            3 | 4 => return Err(malformed("protobuf groups are not supported")),
            other => return Err(malformed(&format!("invalid wire type {other}"))),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = ApiResult<(u32, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }
}

/// 400 for bytes that are not a valid protobuf encoding.
pub(super) fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(format!("the protobuf body is malformed: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bytes: &[u8]) -> ApiResult<Vec<(u32, Wire<'_>)>> {
        Reader::new(bytes).collect()
    }

    #[test]
    fn reads_each_wire_type() {
        let bytes = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 0x02, b'h', b'i', // 3: "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        assert_eq!(
            fields(&bytes).unwrap(),
            vec![
                (1, Wire::Varint(150)),
                (2, Wire::Fixed64(1)),
                (3, Wire::Bytes(b"hi")),
                (4, Wire::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn negative_int32_takes_ten_bytes() {
        let mut bytes = vec![0x08];
        bytes.extend([0xff; 9]);
        bytes.push(0x01);
        assert_eq!(fields(&bytes).unwrap(), vec![(1, Wire::Varint(u64::MAX))]);
    }

    #[test]
    fn truncation_and_garbage_are_bad_requests() {
        for bytes in [
            &[0x08][..],         // value missing
            &[0x08, 0x80],       // varint cut short
            &[0x0a, 0x05, b'a'], // length beyond the end
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            &[0x11, 0x00], // fixed64 cut short
            &[0x0b],       // group
            &[0x0e, 0x00], // wire type 6
            &[0x00, 0x00], // field number 0
            &[0x80; 11],   // endless varint
        ] {
            let err = fields(bytes).unwrap_err();
            assert_eq!(err.code, 400, "{bytes:?}");
        }
    }

    #[test]
    fn yields_nothing_after_an_error() {
        let mut reader = Reader::new(&[0x0b, 0x08, 0x01]);
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
    }
}
