//! Certificates, keys and CA bundles from PEM files, for every TLS config
//! Sluice builds (its listeners, its inter-broker client, the metadata
//! quorum's transport), and the name a client checks a server's
//! certificate against.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Most certificates read from one PEM file (chain or CA bundle).
const PEM_CERTS_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PemError {
    pub path: PathBuf,
    pub reason: String,
}

/// `host` (a DNS name or an IP) as the name a TLS client checks the
/// server's certificate against.
pub fn server_name(host: &str) -> std::io::Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host:?} is no TLS server name: {e}"),
        )
    })
}

fn bad(path: &Path, reason: impl ToString) -> PemError {
    PemError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The certificates of a chain or a CA bundle; at least one.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .take(PEM_CERTS_MAX)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no certificate"));
    }
    Ok(certs)
}

pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| bad(path, e))
}

/// A CA bundle as the roots a peer's certificate is verified against.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, PemError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(path)? {
        roots.add(cert).map_err(|e| bad(path, e))?;
    }
    Ok(roots)
}
