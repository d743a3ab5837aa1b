//! How this broker dials the others: the client side of its inter-broker
//! listener's protocol (TLS, SASL, both or neither), loaded at start (TLS
//! files again on SIGHUP) and shared by every shard's fetchers and marker
//! writers.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::tls::ClientTls;
use crate::net::tls::TlsError;
use crate::security::listeners::{InterBrokerClient, SaslLogin};
use crate::security::scram::Mechanism;

/// Longest password file accepted (a password, perhaps a newline).
const PASSWORD_FILE_BYTES_MAX: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("inter_broker_sasl_password_file {path}: {reason}")]
    PasswordFile { path: PathBuf, reason: String },
}

/// The inter-broker client's security; `Security::default()` is PLAINTEXT.
#[derive(Debug, Default)]
pub struct Security {
    pub(super) tls: Option<ClientTls>,
    pub(super) sasl: Option<Login>,
}

impl Security {
    /// Reads the CA, certificate, key and password files.
    pub fn load(client: &InterBrokerClient) -> Result<Security, SecurityError> {
        let tls = client.tls.as_ref().map(ClientTls::load).transpose()?;
        let sasl = client.sasl.as_ref().map(Login::load).transpose()?;
        Ok(Security { tls, sasl })
    }

    /// Whether this broker dials the others over TLS.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads the TLS files again (SIGHUP); new connections take them.
    pub fn reload_tls(&self) {
        if let Some(tls) = &self.tls {
            tls.reload();
        }
    }

    /// The certificate (DER) this broker shows when a peer asks for one.
    pub fn certificate(&self) -> Option<&[u8]> {
        self.tls.as_ref().and_then(ClientTls::certificate)
    }

    /// The SASL user this broker logs in as, if it does.
    pub fn sasl_user(&self) -> Option<&str> {
        self.sasl.as_ref().map(|l| l.username.as_str())
    }
}

/// The mechanisms the client side speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LoginMechanism {
    Plain,
    Scram(Mechanism),
}

impl LoginMechanism {
    pub(super) fn name(self) -> &'static str {
        match self {
            LoginMechanism::Plain => "PLAIN",
            LoginMechanism::Scram(m) => m.name(),
        }
    }
}

/// The broker's own SASL login. The password stays in memory only here and
/// is never formatted (see the `Debug` impl).
pub(super) struct Login {
    pub(super) mechanism: LoginMechanism,
    pub(super) username: String,
    pub(super) password: Vec<u8>,
    /// The last SCRAM salted password and what it was derived from: PBKDF2
    /// runs once per (salt, iterations), not once per connection.
    pub(super) salted: Mutex<Option<Salted>>,
}

/// A salted password and the salt and iterations it was derived with.
pub(super) struct Salted {
    salt: Vec<u8>,
    iterations: u32,
    salted: Vec<u8>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Login {
    fn load(login: &SaslLogin) -> Result<Login, SecurityError> {
        let mechanism = match Mechanism::from_name(&login.mechanism) {
            Some(m) => LoginMechanism::Scram(m),
            None => LoginMechanism::Plain,
        };
        Ok(Login {
            mechanism,
            username: login.username.clone(),
            password: read_password(&login.password_file)?,
            salted: Mutex::new(None),
        })
    }

    /// The salted password cached for `salt`/`iterations`, if it is.
    pub(super) fn cached_salted(&self, salt: &[u8], iterations: u32) -> Option<Vec<u8>> {
        let cached = self.salted.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|c| c.salt == salt && c.iterations == iterations)
            .map(|c| c.salted.clone())
    }

    pub(super) fn cache_salted(&self, salt: Vec<u8>, iterations: u32, salted: Vec<u8>) {
        let fresh = Salted {
            salt,
            iterations,
            salted,
        };
        *self.salted.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
    }
}

/// The password file's content without a trailing line break: bounded,
/// not empty.
fn read_password(path: &Path) -> Result<Vec<u8>, SecurityError> {
    let bad = |reason: String| SecurityError::PasswordFile {
        path: path.to_path_buf(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if len > PASSWORD_FILE_BYTES_MAX {
        return Err(bad(format!(
            "{len} bytes; a password file holds at most {PASSWORD_FILE_BYTES_MAX}"
        )));
    }
    let mut password = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    while password.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        password.pop();
    }
    if password.is_empty() {
        return Err(bad("empty".into()));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_files_are_trimmed_bounded_and_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_password(&path).unwrap(), b"s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_password(&path).is_err());
        std::fs::write(&path, vec![b'x'; 2000]).unwrap();
        assert!(read_password(&path).is_err());
        let login = Login {
            mechanism: LoginMechanism::Plain,
            username: "broker".into(),
            password: b"s3cret".to_vec(),
            salted: Mutex::new(None),
        };
        assert!(!format!("{login:?}").contains("s3cret"));
    }
}
