//! Binding the client and metrics listeners. The main thread binds first,
//! so port 0 resolves once and the address is known before start-up ends;
//! each shard then binds the same address with SO_REUSEPORT.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use crate::runtime::TcpListener;

/// Connections waiting to be accepted per shard listener (glommio's own).
const LISTEN_BACKLOG: i32 = 1024;

/// A bound (not listening) SO_REUSEPORT socket on `listen`: it resolves
/// port 0 and holds the port until every shard has bound it.
///
/// A named port is first bound without SO_REUSEPORT, because with it a
/// second broker started as the same user on a port in use would bind too
/// and silently take a share of the connections; Kafka fails such a start
/// with "address already in use", and so do we. (Two brokers starting in
/// the same instant could both pass the probe; that window is accepted.)
pub fn reserve(listen: &str) -> io::Result<(socket2::Socket, SocketAddr)> {
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("resolves to no address"))?;
    if addr.port() != 0 {
        drop(bound_socket(addr, false)?);
    }
    let socket = bound_socket(addr, true)?;
    let bound = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP address"))?;
    Ok((socket, bound))
}

/// A socket bound to `addr`, with SO_REUSEADDR so a restart is not refused
/// over connections in TIME_WAIT.
fn bound_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// One shard's listener on the reserved address. Bound here rather than
/// by glommio's `TcpListener::bind`, which sets no SO_REUSEADDR: the
/// connections it accepts inherit the flag, and without it those a killed
/// broker leaves closing would make its restart's probe in [`reserve`]
/// fail.
pub fn bind_shard(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = bound_socket(addr, true)?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: a listening TCP socket this function owns alone.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// The metrics endpoint, bound on the main thread; its fd goes to shard 0
/// ([`adopt_metrics`]).
pub fn bind_metrics(listen: &str) -> io::Result<(SocketAddr, RawFd)> {
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    Ok((addr, listener.into_raw_fd()))
}

/// Takes over the metrics listener [`bind_metrics`] made.
///
/// # Safety
/// `fd` must come from [`bind_metrics`] and be adopted exactly once.
pub unsafe fn adopt_metrics(fd: RawFd) -> TcpListener {
    // SAFETY: the caller hands over a listening TCP socket it owns alone.
    unsafe { TcpListener::from_raw_fd(fd) }
}
