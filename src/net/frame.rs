//! Kafka framing: a big-endian i32 size, then that many bytes.

use bytes::{Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is negative")]
    Negative { size: i32 },
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i32, max: u32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Checks a frame's size prefix against the bound before anything is allocated.
pub fn check_size(size: i32, max: u32) -> Result<usize, FrameError> {
    if size < 0 {
        return Err(FrameError::Negative { size });
    }
    if size as u32 > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size as usize)
}

/// Reads one frame's body; `None` when the peer closed between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    max: u32,
) -> Result<Option<Bytes>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match stream.read(&mut prefix[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let size = check_size(i32::from_be_bytes(prefix), max)?;
    let mut body = BytesMut::zeroed(size);
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded() {
        assert!(matches!(
            check_size(-1, 10),
            Err(FrameError::Negative { .. })
        ));
        assert!(matches!(
            check_size(11, 10),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(check_size(10, 10).unwrap(), 10);
    }

    #[test]
    fn reads_frames_and_clean_eof() {
        futures::executor::block_on(async {
            let mut input: &[u8] = &[0, 0, 0, 2, 7, 8];
            let frame = read_frame(&mut input, 100).await.unwrap().unwrap();
            assert_eq!(&frame[..], &[7, 8]);
            assert!(read_frame(&mut input, 100).await.unwrap().is_none());
            let mut torn: &[u8] = &[0, 0, 0, 5, 1];
            assert!(matches!(
                read_frame(&mut torn, 100).await,
                Err(FrameError::Truncated)
            ));
        });
    }
}
