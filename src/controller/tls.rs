//! Mutual TLS on the metadata quorum's transport (Kafka's SSL controller
//! listener with client authentication required): every connection between
//! controllers, either way, is TLS 1.2 or 1.3, each side shows its
//! certificate and verifies the other's against the quorum's CA bundle, the
//! dialed side's for the host it was dialed at (as Kafka's
//! `ssl.endpoint.identification.algorithm=https`). Without it anyone who
//! can reach a quorum port and knows the cluster id could vote, or send a
//! follower entries of its own. One certificate per node serves both roles,
//! so it carries both the server and the client key usage. SIGHUP reads the
//! files again (`reload`), as it does a listener's.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::ControllerError;
use crate::security::pem;

/// The quorum transport's certificate files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA bundle peers' certificates are verified against.
    pub ca: PathBuf,
    /// This node's certificate chain and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Both sides of the quorum's TLS: built at start, and again from the same
/// files on SIGHUP ([`QuorumTls::reload`]). Clones share the configs, so a
/// reload reaches every handshake after it; open connections keep theirs.
#[derive(Clone)]
pub struct QuorumTls {
    files: TlsFiles,
    configs: Arc<RwLock<Configs>>,
}

/// The server and client configs built from one reading of the files.
struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

fn refused(what: &str, e: impl std::fmt::Display) -> ControllerError {
    ControllerError::Config(format!("quorum TLS: {what}: {e}"))
}

impl QuorumTls {
    pub fn load(files: &TlsFiles) -> Result<QuorumTls, ControllerError> {
        Ok(QuorumTls {
            files: files.clone(),
            configs: Arc::new(RwLock::new(Self::read(files)?)),
        })
    }

    /// Reads the files again; a failure keeps the configs in use (and
    /// says why), so a half-written certificate cannot cut the quorum off.
    pub fn reload(&self) {
        match Self::read(&self.files) {
            Ok(configs) => {
                *self.configs.write().unwrap_or_else(|e| e.into_inner()) = configs;
                tracing::info!("quorum TLS certificates reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "quorum TLS reload failed; keeping the old certificates")
            }
        }
    }

    fn current(&self) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let configs = self.configs.read().unwrap_or_else(|e| e.into_inner());
        (configs.server.clone(), configs.client.clone())
    }

    fn read(files: &TlsFiles) -> Result<Configs, ControllerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let file = |e: pem::PemError| refused("file", e);
        let roots = Arc::new(pem::roots(&files.ca).map_err(file)?);
        let chain = pem::certs(&files.cert).map_err(file)?;
        let key = pem::private_key(&files.key).map_err(file)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| refused("client verifier", e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| refused("versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| refused("certificate", e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| refused("versions", e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| refused("certificate", e))?;
        Ok(Configs {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The server handshake on an accepted connection.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Stream> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current().0);
        Ok(Stream::Tls(Box::new(acceptor.accept(stream).await?.into())))
    }

    /// The client handshake with the peer dialed at `host`.
    pub async fn connect(&self, host: &str, stream: TcpStream) -> std::io::Result<Stream> {
        let name = crate::security::pem::server_name(host)?;
        let connector = tokio_rustls::TlsConnector::from(self.current().1);
        Ok(Stream::Tls(Box::new(
            connector.connect(name, stream).await?.into(),
        )))
    }
}

/// A quorum connection: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Stream {
        Stream::Plain(stream)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
