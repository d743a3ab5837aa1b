//! A reader that refuses to yield more than a fixed number of bytes, so a
//! decompression bomb ends in an error instead of an allocation.

use std::fmt;
use std::io::{self, ErrorKind, Read};

use super::{Codec, CompressionError};

/// Carried inside an `io::Error` when a bound is crossed, so the caller can
/// tell a bomb from a corrupt stream.
#[derive(Debug)]
pub(crate) struct BoundExceeded;

impl fmt::Display for BoundExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("decompressed size bound exceeded")
    }
}

impl std::error::Error for BoundExceeded {}

pub(crate) fn bound_exceeded() -> io::Error {
    io::Error::other(BoundExceeded)
}

/// Maps an error from a decoder stack to a [`CompressionError`].
pub(crate) fn map_io(codec: Codec, error: io::Error, max: usize) -> CompressionError {
    let is_bound = error
        .get_ref()
        .is_some_and(|inner| inner.is::<BoundExceeded>());
    if is_bound {
        CompressionError::TooLarge { max }
    } else {
        CompressionError::corrupt(codec, error)
    }
}

/// Yields at most `left` bytes of `inner`; one byte more is an error.
pub(crate) struct Bounded<R> {
    inner: R,
    left: usize,
}

impl<R: Read> Bounded<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        Bounded { inner, left: max }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // Exactly `max` bytes is fine; find out whether more would come.
            let mut probe = [0u8; 1];
            loop {
                return match self.inner.read(&mut probe) {
                    Ok(0) => Ok(0),
                    Ok(_) => Err(bound_exceeded()),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
            }
        }
        let want = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..want])?;
        assert!(got <= want, "reader returned more than asked");
        self.left -= got;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bound_passes_and_one_more_fails() {
        let data = [7u8; 100];
        let mut out = Vec::new();
        Bounded::new(&data[..], 100).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 100);
        let err = Bounded::new(&data[..], 99)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(
            map_io(Codec::Gzip, err, 99),
            CompressionError::TooLarge { max: 99 }
        );
    }
}
