//! The dialing side of TLS to another broker's inter-broker listener:
//! rustls over glommio's stream, as `net::tls` on the accepting side. The
//! peer's certificate is verified against a CA bundle for the host part of
//! its advertised address (an IP address against the IP SANs); this
//! broker's certificate is shown when the peer asks for one (mTLS). TLS 1.2
//! and 1.3 only. SIGHUP reads the files again.

use std::sync::{Arc, RwLock};

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;

use crate::net::tls::{certs, TlsError};
use crate::runtime::TcpStream;
use crate::security::listeners::ClientTlsFiles;

/// The client config every inter-broker connection of this process shares,
/// read again from its files on SIGHUP ([`ClientTls::reload`]).
#[derive(Debug)]
pub struct ClientTls {
    files: ClientTlsFiles,
    config: RwLock<Arc<ClientConfig>>,
    /// This broker's own certificate (DER) as read at start, when it has
    /// one to show: its principal on a listener that requires client
    /// certificates (checked against the super users at start).
    certificate: Option<CertificateDer<'static>>,
}

impl ClientTls {
    pub fn load(files: &ClientTlsFiles) -> Result<ClientTls, TlsError> {
        let (config, certificate) = Self::read(files)?;
        Ok(ClientTls {
            files: files.clone(),
            config: RwLock::new(config),
            certificate,
        })
    }

    /// Reads the files again; a failure keeps the config in use.
    pub fn reload(&self) {
        match Self::read(&self.files) {
            Ok((config, _)) => {
                *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
                tracing::info!("inter-broker TLS certificates reloaded");
            }
            Err(e) => tracing::error!(
                error = %e,
                "inter-broker TLS reload failed; keeping the old certificates"
            ),
        }
    }

    fn read(
        files: &ClientTlsFiles,
    ) -> Result<(Arc<ClientConfig>, Option<CertificateDer<'static>>), TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = crate::security::pem::roots(&files.ca)?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config("inter-broker client".into(), e.to_string()))?
            .with_root_certificates(roots);
        let (config, certificate) = match &files.cert_and_key {
            Some((cert, key)) => {
                let chain = certs(cert)?;
                let key = crate::security::pem::private_key(key)?;
                let first = chain.first().cloned();
                let config = builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Config("inter-broker client".into(), e.to_string()))?;
                (config, first)
            }
            None => (builder.with_no_client_auth(), None),
        };
        Ok((Arc::new(config), certificate))
    }

    /// This broker's certificate (DER), if it shows one.
    pub fn certificate(&self) -> Option<&[u8]> {
        self.certificate.as_ref().map(|c| c.as_ref())
    }

    /// Runs the client handshake with the broker at `host` over `stream`.
    /// Unbounded by itself: the caller's deadline covers it.
    pub async fn connect(&self, host: &str, stream: TcpStream) -> std::io::Result<TlsClientConn> {
        let name = crate::security::pem::server_name(host)?;
        let config = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stream = futures_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await?;
        Ok(crate::net::stream::CleanClose(Box::new(stream)))
    }
}

/// A client-side TLS connection over glommio's stream.
pub type TlsClientConn =
    crate::net::stream::CleanClose<futures_rustls::client::TlsStream<TcpStream>>;

/// The host part of `host:port` (IPv6 brackets removed).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("broker-1.example:9093"), "broker-1.example");
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
        // An IP address is a server name too (checked against IP SANs).
        assert!(matches!(
            crate::security::pem::server_name("127.0.0.1"),
            Ok(rustls_pki_types::ServerName::IpAddress(_))
        ));
        assert!(crate::security::pem::server_name("not a name").is_err());
    }
}
