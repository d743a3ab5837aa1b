//! Binding the client and metrics listeners. The main thread binds first,
//! so port 0 resolves once and the address is known before start-up ends;
//! each shard then binds the same address with SO_REUSEPORT.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use crate::runtime::TcpListener;

/// How long [`reserve`]'s probe waits for a listener on a local address.
const LISTEN_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// Connections a shard's listener queues before it accepts them (as
/// glommio's own bind asks).
const LISTEN_BACKLOG: i32 = 1024;

/// A bound (not listening) SO_REUSEPORT socket on `listen`: it resolves
/// port 0 and holds the port until every shard has bound it.
///
/// A named port someone already listens on is refused first: with
/// SO_REUSEPORT a second broker started as the same user would bind it
/// too and silently take a share of the connections. Kafka fails such a
/// start with "address already in use", and so do we. (Two brokers
/// starting in the same instant could both pass the probe; that window is
/// accepted.)
pub fn reserve(listen: &str) -> io::Result<(socket2::Socket, SocketAddr)> {
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("resolves to no address"))?;
    if addr.port() != 0 {
        refuse_if_listened_on(addr)?;
    }
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

/// Fails with `AddrInUse` if a process accepts connections on `addr`.
/// A connection, not a bind without SO_REUSEPORT: such a bind also fails
/// over the connections a killed broker leaves closing on its port, which
/// would refuse its own restart.
fn refuse_if_listened_on(addr: SocketAddr) -> io::Result<()> {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    match std::net::TcpStream::connect_timeout(&target, LISTEN_PROBE_TIMEOUT) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "Address already in use: another process listens there",
        )),
        Err(_) => Ok(()),
    }
}

/// One shard's listener, with its descriptor to stop listening at once.
pub struct ShardListener {
    pub listener: TcpListener,
    fd: RawFd,
}

impl ShardListener {
    /// Takes the socket out of LISTEN now (`shutdown`). Dropped, it would
    /// go on listening until its accept queued on io_uring is cancelled,
    /// which may be after the process exits (the ring is torn down
    /// asynchronously), and a broker started on the port right after would
    /// find it taken.
    pub fn stop_listening(&self) {
        // SAFETY: `fd` is the listener's own descriptor, open while `self`
        // holds the listener; shutdown does not close it.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RD);
        }
    }
}

/// One shard's listener on the reserved address (SO_REUSEPORT, as every
/// shard listens on it).
pub fn bind_shard(addr: SocketAddr) -> io::Result<ShardListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let fd = socket.into_raw_fd();
    // SAFETY: a listening TCP socket made here and owned by nothing else.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    Ok(ShardListener { listener, fd })
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
