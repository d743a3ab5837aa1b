//! TLS listeners (issue 15) with rustls, no OpenSSL: the server
//! certificate chain and key from PEM files, optional client certificate
//! verification against a CA bundle, TLS 1.2 and 1.3 only, and reload on
//! SIGHUP: new handshakes take the new files, open connections keep theirs.
//!
//! Record bytes over TLS are encrypted in user space, so a TLS connection's
//! fetches take the copying path (`send::copy_file`), not sendfile.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;

use crate::runtime::TcpStream;
use crate::security::listeners::{ClientAuth, ListenerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("listener {0}: {1}")]
    Config(String, String),
}

/// One TLS listener's server config, swapped whole on reload.
#[derive(Debug)]
pub struct TlsListener {
    name: String,
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    client_auth: ClientAuth,
    /// Read once per handshake (never on the produce or fetch path); written
    /// only by a reload.
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsListener {
    pub fn load(name: &str, config: &ListenerConfig) -> Result<TlsListener, TlsError> {
        let missing = |what: &str| TlsError::Config(name.into(), format!("{what} is not set"));
        let mut l = TlsListener {
            name: name.to_string(),
            cert: config.ssl_cert.clone().ok_or_else(|| missing("ssl_cert"))?,
            key: config.ssl_key.clone().ok_or_else(|| missing("ssl_key"))?,
            ca: config.ssl_ca.clone(),
            client_auth: config.ssl_client_auth,
            current: RwLock::new(Arc::new(placeholder())),
        };
        l.current = RwLock::new(Arc::new(l.build()?));
        Ok(l)
    }

    /// Reads the files again; on any error the old certificates stay.
    pub fn reload(&self) {
        match self.build() {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                tracing::info!(listener = %self.name, "TLS certificates reloaded");
            }
            Err(e) => {
                tracing::error!(listener = %self.name, error = %e, "TLS reload failed; keeping the old certificates")
            }
        }
    }

    /// Runs the server handshake on an accepted connection.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsConn> {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stream = futures_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        Ok(super::stream::CleanClose(Box::new(stream)))
    }

    fn build(&self) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certs(&self.cert)?;
        let key = crate::security::pem::private_key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(self.name.clone(), e.to_string()))?;
        let builder = match (&self.ca, self.client_auth) {
            (Some(ca), ClientAuth::Requested | ClientAuth::Required) => {
                let roots = crate::security::pem::roots(ca)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.client_auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Config(self.name.clone(), e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(self.name.clone(), e.to_string()))
    }
}

/// A config no handshake ever sees: `load` replaces it before returning.
fn placeholder() -> ServerConfig {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring serves the default versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()))
}

pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    crate::security::pem::certs(path).map_err(TlsError::from)
}

impl From<crate::security::pem::PemError> for TlsError {
    fn from(e: crate::security::pem::PemError) -> TlsError {
        TlsError::File {
            path: e.path,
            reason: e.reason,
        }
    }
}

/// A server-side TLS connection over glommio's stream.
pub type TlsConn = super::stream::CleanClose<futures_rustls::server::TlsStream<TcpStream>>;

impl TlsConn {
    /// Whether the client showed a certificate (for logs).
    pub fn has_peer_certificate(&self) -> bool {
        self.peer_certificate().is_some()
    }

    /// The client's own certificate (DER), when it showed one; rustls has
    /// verified it against the listener's CA.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        self.0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.as_ref())
    }
}
