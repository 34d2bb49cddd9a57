//! Packet framing: a 3-byte little-endian payload length, a 1-byte sequence id, the payload.
//!
//! See MySQL's "MySQL Packets" page. [`decode`] buffers whole payloads of at most [`MAX_PAYLOAD`]
//! bytes; only result rows may be larger (a replica status row with long filters or GTID sets),
//! and the session streams those, 16 MiB continuation frames included, using [`header`].

use super::ProtocolError;

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// The largest payload we accept from a server. A greeting is under 128 bytes, a public key under
/// 1 KiB, a health-check row a few KiB; anything bigger is refused before it is buffered.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// One decoded frame, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub seq: u8,
    pub payload: &'a [u8],
}

/// Decodes one frame from the front of `buf`.
///
/// `Ok(None)` means more bytes are needed. `Ok(Some((packet, used)))` consumed `used` bytes.
/// A length over [`MAX_PAYLOAD`] is an error as soon as the header is complete, so a hostile
/// server cannot make us buffer a 16 MiB packet.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, ProtocolError> {
    let Some((len, seq)) = header(buf) else {
        return Ok(None);
    };
    if len > MAX_PAYLOAD {
        return Err(ProtocolError::PacketTooLarge(len));
    }
    match buf.get(HEADER_LEN..HEADER_LEN + len) {
        Some(payload) => Ok(Some((Packet { seq, payload }, HEADER_LEN + len))),
        None => Ok(None),
    }
}

/// The payload length and sequence id of the frame at the front of `buf`, once its header is in.
pub fn header(buf: &[u8]) -> Option<(usize, u8)> {
    let h = buf.get(..HEADER_LEN)?;
    Some((usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16, h[3]))
}

/// Appends one frame holding `payload` to `out`.
///
/// Callers only ever frame packets they built themselves, all far below 16 MiB.
pub fn encode(out: &mut Vec<u8>, seq: u8, payload: &[u8]) {
    let len = payload.len().min(0xFF_FFFF) as u32;
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(payload);
}

/// A cursor over a payload, for the protocol's basic types. Every read is bounds-checked and
/// reports a truncated payload as [`ProtocolError::Malformed`] naming the field.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::Malformed(field));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.bytes(1, field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string. Without a NUL the rest of the payload is taken, as some old
    /// servers end the greeting's plugin name at the end of the packet.
    pub fn nul_str(&mut self) -> &'a [u8] {
        match self.buf.iter().position(|&b| b == 0) {
            Some(end) => {
                let s = &self.buf[..end];
                self.buf = &self.buf[end + 1..];
                s
            }
            None => std::mem::take(&mut self.buf),
        }
    }

    /// A length-encoded integer. `None` is the 0xFB marker, which stands for NULL in a text row.
    pub fn lenenc_int(&mut self, field: &'static str) -> Result<Option<u64>, ProtocolError> {
        let first = self.u8(field)?;
        let n = match first {
            0..=0xFA => return Ok(Some(u64::from(first))),
            0xFB => return Ok(None),
            0xFC => 2,
            0xFD => 3,
            0xFE => 8,
            0xFF => return Err(ProtocolError::Malformed(field)),
        };
        let b = self.bytes(n, field)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Ok(Some(u64::from_le_bytes(v)))
    }

    /// A length-encoded string; `None` is SQL NULL.
    pub fn lenenc_str(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, ProtocolError> {
        match self.lenenc_int(field)? {
            None => Ok(None),
            Some(len) => {
                let len = usize::try_from(len).map_err(|_| ProtocolError::Malformed(field))?;
                self.bytes(len, field).map(Some)
            }
        }
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xFA => out.push(v as u8),
        0xFB..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_of_a_frame_needs_more_bytes() {
        let mut frame = Vec::new();
        encode(&mut frame, 7, b"hello");
        for n in 0..frame.len() {
            assert_eq!(decode(&frame[..n]), Ok(None), "prefix {n}");
        }
        let (p, used) = decode(&frame).unwrap().unwrap();
        assert_eq!((p.seq, p.payload, used), (7, &b"hello"[..], 9));
    }

    #[test]
    fn an_oversized_length_is_refused_from_the_header_alone() {
        assert_eq!(decode(&[0xFF, 0xFF, 0xFF, 0]), Err(ProtocolError::PacketTooLarge(0xFF_FFFF)));
        assert_eq!(decode(&[0x01, 0x00, 0x01, 0]), Err(ProtocolError::PacketTooLarge(65537)));
    }

    #[test]
    fn lenenc_integers_round_trip() {
        for v in [0, 1, 250, 251, 252, 0xFFFF, 0x1_0000, 0xFF_FFFF, 0x100_0000, u64::MAX] {
            let mut out = Vec::new();
            put_lenenc_int(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.lenenc_int("v"), Ok(Some(v)), "{v}");
            assert!(r.is_empty());
            for n in 0..out.len() {
                assert!(Reader::new(&out[..n]).lenenc_int("v").is_err(), "prefix {n} of {v}");
            }
        }
        assert_eq!(Reader::new(&[0xFB]).lenenc_int("v"), Ok(None));
        assert!(Reader::new(&[0xFF]).lenenc_int("v").is_err());
    }
}
