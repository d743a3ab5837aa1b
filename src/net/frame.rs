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
    FrameReader::default().read(stream, max).await
}

/// Reads frames keeping its progress in itself, so a read dropped part way
/// (a connection selecting between its next request and a finished
/// answer) loses nothing: the next read goes on where it stopped. Each
/// await is a single `read`, which takes bytes only when it completes.
#[derive(Default)]
pub struct FrameReader {
    prefix: [u8; 4],
    prefix_got: usize,
    /// The body being read, once its size is known and checked.
    body: Option<BytesMut>,
    body_got: usize,
}

impl FrameReader {
    /// The next frame's body; `None` when the peer closed between frames.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        max: u32,
    ) -> Result<Option<Bytes>, FrameError> {
        while self.prefix_got < self.prefix.len() {
            match stream.read(&mut self.prefix[self.prefix_got..]).await? {
                0 if self.prefix_got == 0 => return Ok(None),
                0 => return Err(FrameError::Truncated),
                n => self.prefix_got += n,
            }
        }
        if self.body.is_none() {
            let size = check_size(i32::from_be_bytes(self.prefix), max)?;
            self.body = Some(BytesMut::zeroed(size));
        }
        let body = self.body.as_mut().expect("sized above");
        while self.body_got < body.len() {
            match stream.read(&mut body[self.body_got..]).await? {
                0 => return Err(FrameError::Truncated),
                n => self.body_got += n,
            }
        }
        let body = self.body.take().expect("sized above");
        self.prefix_got = 0;
        self.body_got = 0;
        Ok(Some(body.freeze()))
    }
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

    /// Gives one byte per read, and is not ready before each.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        ready: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            if !self.ready {
                self.ready = true;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            self.ready = false;
            if self.at == self.data.len() {
                return std::task::Poll::Ready(Ok(0));
            }
            buf[0] = self.data[self.at];
            self.at += 1;
            std::task::Poll::Ready(Ok(1))
        }
    }

    #[test]
    fn a_read_dropped_part_way_loses_nothing() {
        use std::future::Future;
        let mut stream = Trickle {
            data: vec![0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1, 9],
            at: 0,
            ready: false,
        };
        let mut reader = FrameReader::default();
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut frames = Vec::new();
        for _ in 0..100 {
            // Polled once, then dropped: what a connection's select does
            // when an answer finishes first.
            let mut read = std::pin::pin!(reader.read(&mut stream, 100));
            match read.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(Ok(Some(frame))) => frames.push(frame),
                std::task::Poll::Ready(Ok(None)) => break,
                std::task::Poll::Ready(Err(e)) => panic!("{e}"),
                std::task::Poll::Pending => {}
            }
        }
        assert_eq!(frames, [&[1u8, 2, 3][..], &[9][..]]);
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
