//! Binding the client and metrics listeners. The main thread binds first,
//! so port 0 resolves once and the address is known before start-up ends;
//! each shard then binds the same address with SO_REUSEPORT.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use crate::runtime::TcpListener;

/// A bound (not listening) SO_REUSEPORT socket on `listen`: it resolves
/// port 0 and holds the port until every shard has bound it.
pub fn reserve(listen: &str) -> io::Result<(socket2::Socket, SocketAddr)> {
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("resolves to no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    let bound = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP address"))?;
    Ok((socket, bound))
}

/// One shard's listener on the reserved address.
pub fn bind_shard(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| io::Error::other(e.to_string()))
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
