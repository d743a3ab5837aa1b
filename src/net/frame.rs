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

impl FrameError {
    /// The peer went away (reset, aborted): an ordinary end of a
    /// connection, not bad input.
    pub fn is_peer_gone(&self) -> bool {
        use std::io::ErrorKind;
        matches!(self, FrameError::Io(e) if matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
        ))
    }
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
/// Reads exactly the frame and nothing past it, so a stream used for one
/// request and its answer at a time needs no reader kept beside it; a
/// read dropped part way leaves the stream mid-frame.
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
    let mut body = BytesMut::zeroed(check_size(i32::from_be_bytes(prefix), max)?);
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(Some(body.freeze()))
}

/// What a connection's reads go into: a request smaller than this arrives
/// with its size prefix (and often the next request) in one `recv`, where
/// reading the prefix alone first costs a system call per request. Fetch
/// requests of a session, a consumer group's requests and one partition's
/// produce (librdkafka's sticky partitioner makes most produces that) fit.
/// Held for the connection's life: 8 KiB for each of
/// `max_connections_per_shard`, 80 MiB at its default.
pub const READ_CHUNK_BYTES: usize = 8 << 10;

/// Reads frames keeping its progress in itself, so a read dropped part way
/// (a connection selecting between its next request and a finished
/// answer) loses nothing: the next read goes on where it stopped. Each
/// await is a single `read`, which takes bytes only when it completes.
///
/// Reads go into a chunk of [`READ_CHUNK_BYTES`], and a frame found whole
/// there is copied out: a frame's buffer is its own size, so what a
/// handler keeps of a request (a group's member metadata, a name) holds
/// no more memory than the request did. A frame larger than the chunk is
/// read straight into a buffer of its own.
#[derive(Default)]
pub struct FrameReader {
    /// Allocated on the first read.
    chunk: Vec<u8>,
    /// `chunk[start..end]` was read and not yet framed.
    start: usize,
    end: usize,
    /// A frame too large for the chunk, and how much of it is read.
    large: Option<(BytesMut, usize)>,
}

impl FrameReader {
    /// The next frame's body; `None` when the peer closed between frames.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        max: u32,
    ) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some((body, got)) = self.large.as_mut() {
                while *got < body.len() {
                    match stream.read(&mut body[*got..]).await? {
                        0 => return Err(FrameError::Truncated),
                        n => *got += n,
                    }
                }
                let (body, _) = self.large.take().expect("matched above");
                return Ok(Some(body.freeze()));
            }
            if let Some(frame) = self.framed(max)? {
                return Ok(Some(frame));
            }
            if self.large.is_none() {
                self.make_room();
                match stream.read(&mut self.chunk[self.end..]).await? {
                    0 if self.start == self.end => return Ok(None),
                    0 => return Err(FrameError::Truncated),
                    n => self.end += n,
                }
            }
        }
    }

    /// The frame at the front of the chunk if it is all there; starts a
    /// large frame's own buffer once its size is known.
    fn framed(&mut self, max: u32) -> Result<Option<Bytes>, FrameError> {
        let held = &self.chunk[self.start..self.end];
        let Some(prefix) = held.get(..4) else {
            return Ok(None);
        };
        let size = check_size(i32::from_be_bytes(prefix.try_into().expect("4")), max)?;
        if held.len() >= 4 + size {
            let frame = Bytes::copy_from_slice(&held[4..4 + size]);
            self.start += 4 + size;
            return Ok(Some(frame));
        }
        if 4 + size > READ_CHUNK_BYTES {
            let mut body = BytesMut::zeroed(size);
            let got = held.len() - 4;
            body[..got].copy_from_slice(&held[4..]);
            self.start = self.end;
            self.large = Some((body, got));
        }
        Ok(None)
    }

    /// Moves what is held to the chunk's front, so the rest of a frame
    /// that fits the chunk fits after it.
    fn make_room(&mut self) {
        if self.chunk.is_empty() {
            self.chunk = vec![0; READ_CHUNK_BYTES];
        }
        self.chunk.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        assert!(
            self.end < self.chunk.len(),
            "a frame that fills the chunk was framed"
        );
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

    #[test]
    fn a_reset_is_the_peer_going_not_bad_input() {
        use std::io::{Error, ErrorKind};
        let io = |kind| FrameError::Io(Error::from(kind));
        assert!(io(ErrorKind::ConnectionReset).is_peer_gone());
        assert!(io(ErrorKind::BrokenPipe).is_peer_gone());
        assert!(!io(ErrorKind::InvalidData).is_peer_gone());
        assert!(!FrameError::Truncated.is_peer_gone());
        assert!(!FrameError::Negative { size: -1 }.is_peer_gone());
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

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Frames of every size around the chunk's, back to back, read as
    /// they come in reads of a few awkward sizes.
    #[test]
    fn frames_across_and_beyond_the_chunk_come_out_whole() {
        let sizes = [
            0,
            1,
            3,
            READ_CHUNK_BYTES - 5,
            READ_CHUNK_BYTES - 4,
            READ_CHUNK_BYTES - 3,
            7,
            READ_CHUNK_BYTES * 3 + 11,
            2,
        ];
        let bodies: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|b| (b * 31 + i) as u8).collect())
            .collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        for step in [1, 3, 4, 1000, READ_CHUNK_BYTES + 1, wire.len()] {
            let mut input = Stepped(wire.clone(), 0, step);
            let mut reader = FrameReader::default();
            futures::executor::block_on(async {
                for body in &bodies {
                    let frame = reader.read(&mut input, u32::MAX >> 1).await.unwrap();
                    assert_eq!(frame.as_deref(), Some(&body[..]), "reads of {step}");
                }
                assert!(reader.read(&mut input, 100).await.unwrap().is_none());
            });
        }
    }

    /// Gives at most `.2` bytes per read.
    struct Stepped(Vec<u8>, usize, usize);

    impl futures::AsyncRead for Stepped {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.2).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            std::task::Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn a_frame_cut_short_or_too_large_is_an_error() {
        futures::executor::block_on(async {
            for wire in [&[0u8, 0][..], &[0, 0, 0, 5, 1, 2][..]] {
                let mut input = wire;
                let read = FrameReader::default().read(&mut input, 100).await;
                assert!(matches!(read, Err(FrameError::Truncated)), "{wire:?}");
            }
            // Declares more than it holds, and more than the chunk.
            let mut large = vec![0u8; READ_CHUNK_BYTES * 3];
            let declared = large.len() as i32;
            large[..4].copy_from_slice(&declared.to_be_bytes());
            let mut input = &large[..];
            let read = FrameReader::default().read(&mut input, u32::MAX >> 1).await;
            assert!(matches!(read, Err(FrameError::Truncated)));
            let mut input = &large[..];
            let read = FrameReader::default().read(&mut input, 1000).await;
            assert!(matches!(read, Err(FrameError::TooLarge { .. })));
        });
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
