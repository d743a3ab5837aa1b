//! Writing a response: framing bytes through glommio, file slices with
//! sendfile(2) from the page cache straight to the socket.
//!
//! The socket is made non-blocking (glommio's own sends use MSG_DONTWAIT
//! and readiness polling, so this changes nothing for them); a sendfile that
//! would block waits for writability on the shard's poller registration.
//! TCP_CORK holds the framing until file data follows, so a response leaves
//! in full segments rather than a packet per header.

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use futures::AsyncWriteExt;

use super::conn::Conn;
use crate::handlers::Piece;
use crate::runtime::writable::{Registration, ShardWritable};
use crate::stats;
use crate::storage::FileSlice;

/// Largest sendfile call; also how often a large send yields to other tasks.
const SENDFILE_CHUNK_BYTES: usize = 1 << 20;
/// Buffer for the copying path.
const COPY_CHUNK_BYTES: usize = 256 << 10;

/// A connection's sending state.
pub struct ResponseWriter {
    zero_copy: bool,
    /// How long a send may wait for a client that does not read.
    write_timeout: Duration,
    writable: Rc<ShardWritable>,
    /// Made on the first sendfile that would block; dropped before the socket.
    registration: Option<Registration>,
}

impl ResponseWriter {
    pub fn new(
        stream: &Conn,
        zero_copy: bool,
        write_timeout: Duration,
        writable: Rc<ShardWritable>,
    ) -> std::io::Result<Self> {
        // Under TLS record bytes are encrypted in user space: no sendfile.
        let zero_copy = zero_copy && stream.tcp().is_some();
        if let (true, Some(tcp)) = (zero_copy, stream.tcp()) {
            set_nonblocking(tcp.as_raw_fd())?;
        }
        Ok(ResponseWriter {
            zero_copy,
            write_timeout,
            writable,
            registration: None,
        })
    }

    pub async fn write(&mut self, stream: &mut Conn, pieces: Vec<Piece>) -> std::io::Result<()> {
        let has_files = pieces.iter().any(|p| matches!(p, Piece::File(_)));
        // `zero_copy` is only ever true on a plain socket (see `new`).
        let socket = stream.tcp().map(|s| s.as_raw_fd());
        let cork = has_files && self.zero_copy;
        if let (true, Some(fd)) = (cork, socket) {
            set_cork(fd, true)?;
        }
        let mut result = Ok(());
        for piece in pieces {
            result = match piece {
                Piece::Bytes(b) => stream.write_all(&b).await,
                Piece::File(slice) if self.zero_copy && socket.is_some() => {
                    self.send_file(socket.expect("checked"), &slice).await
                }
                Piece::File(slice) => copy_file(stream, &slice).await,
            };
            if result.is_err() {
                break;
            }
        }
        if let (true, Some(fd)) = (cork, socket) {
            // Uncorking pushes out whatever is held.
            set_cork(fd, false)?;
        }
        if result.is_ok() && socket.is_none() {
            // A TLS stream holds records until flushed.
            result = stream.flush().await;
        }
        result
    }

    async fn send_file(&mut self, socket: RawFd, slice: &FileSlice) -> std::io::Result<()> {
        let mut offset = slice.position as libc::off_t;
        let mut left = slice.len as usize;
        while left > 0 {
            // SAFETY: both fds are open for the call (the slice holds its
            // file; the caller holds the socket); offset is a valid pointer.
            let n = unsafe {
                libc::sendfile(
                    socket,
                    slice.file.as_raw_fd(),
                    &mut offset,
                    left.min(SENDFILE_CHUNK_BYTES),
                )
            };
            if n > 0 {
                left -= n as usize;
                stats::FETCH_SENDFILE_BYTES.add(n as u64);
                crate::runtime::yield_if_needed().await;
                continue;
            }
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file ended before its slice",
                ));
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => {}
                std::io::ErrorKind::WouldBlock => self.wait_writable(socket).await?,
                _ => return Err(e),
            }
        }
        Ok(())
    }

    async fn wait_writable(&mut self, socket: RawFd) -> std::io::Result<()> {
        if self.registration.is_none() {
            self.registration = self.writable.register(socket);
        }
        match &self.registration {
            Some(r) => match crate::runtime::timeout(self.write_timeout, r.writable()).await {
                Some(()) => Ok(()),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client stopped reading (socket_write_timeout_ms)",
                )),
            },
            None => Err(std::io::Error::other(
                "no writability slot left for this shard",
            )),
        }
    }
}

/// The fallback: read into a bounded buffer, write it out.
async fn copy_file(stream: &mut Conn, slice: &FileSlice) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min(slice.len as usize)];
    let mut at = 0usize;
    while at < slice.len as usize {
        let n = buf.len().min(slice.len as usize - at);
        slice
            .file
            .read_exact_at(&mut buf[..n], slice.position + at as u64)?;
        stream.write_all(&buf[..n]).await?;
        stats::FETCH_COPIED_BYTES.add(n as u64);
        at += n;
    }
    Ok(())
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an open fd; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn set_cork(fd: RawFd, on: bool) -> std::io::Result<()> {
    let value: libc::c_int = on.into();
    // SAFETY: passes a pointer to a live c_int with its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
