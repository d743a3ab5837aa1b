//! A client connection: plain TCP, or TLS over it (issue 15). Framing and
//! handlers see one `AsyncRead + AsyncWrite`; the response writer asks
//! [`Conn::tcp`] whether it may sendfile.

use super::tls::TlsConn;
use crate::runtime::TcpStream;

pub type Conn = super::stream::MaybeTls<TlsConn>;

impl Conn {
    /// The client certificate (DER) of a TLS connection that showed one.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(t) => t.peer_certificate(),
        }
    }

    /// The socket itself when bytes may go to it directly (sendfile, cork):
    /// never under TLS, whose records are encrypted in user space.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Conn::Plain(s) => Some(s),
            Conn::Tls(_) => None,
        }
    }
}
