//! The byte layout of a saved state that carries a header before its body: a magic line naming
//! the format, the header's length (8 bytes, little-endian), the header (JSON), then the body.
//! The deep models store their card before their weights this way, and calibrated models their
//! factors before the wrapped model's own state.

/// `magic`, the length of `head`, `head`, then `body`.
pub fn frame(magic: &[u8], head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(magic.len() + 8 + head.len() + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    out
}

/// Why framed bytes cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unframe {
    /// The bytes do not start with the magic line.
    NoHeader,
    /// They end before the header's length.
    Truncated,
    /// They end before the header does.
    TruncatedHeader,
}

/// The header and body of bytes written by [`frame`] with the same `magic`.
pub fn unframe<'a>(magic: &[u8], bytes: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), Unframe> {
    let rest = bytes.strip_prefix(magic).ok_or(Unframe::NoHeader)?;
    let (len, rest) = rest.split_first_chunk::<8>().ok_or(Unframe::Truncated)?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| Unframe::TruncatedHeader)?;
    rest.split_at_checked(len).ok_or(Unframe::TruncatedHeader)
}

/// A wrapper's stored state split into its header and the wrapped model's own state; `None` for
/// a state without the wrapper's header (the wrapped model saved alone, before the wrapper
/// stored anything), and an error naming `model` and `what` the header holds when the bytes end
/// inside it.
pub fn wrapped<'a>(
    magic: &[u8],
    bytes: &'a [u8],
    model: &str,
    what: &str,
) -> crate::error::Result<Option<(&'a [u8], &'a [u8])>> {
    match unframe(magic, bytes) {
        Ok(parts) => Ok(Some(parts)),
        Err(Unframe::NoHeader) => Ok(None),
        Err(_) => Err(crate::error::Error::data(format!("{model}: the stored {what} is cut short"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_bytes_read_back_and_short_ones_say_where_they_end() {
        let bytes = frame(b"M\n", b"{}", b"body");
        assert_eq!(unframe(b"M\n", &bytes), Ok((&b"{}"[..], &b"body"[..])));
        assert_eq!(unframe(b"X\n", &bytes), Err(Unframe::NoHeader));
        assert_eq!(unframe(b"M\n", &bytes[..5]), Err(Unframe::Truncated));
        assert_eq!(unframe(b"M\n", &bytes[..11]), Err(Unframe::TruncatedHeader));
    }
}
