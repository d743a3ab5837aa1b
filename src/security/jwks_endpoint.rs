//! The identity provider's public keys fetched from its JWKS endpoint
//! (Kafka's `sasl.oauthbearer.jwks.endpoint.url` with an `https:` or
//! `http:` URL) and kept fresh as Kafka's `RefreshingHttpsJwks` keeps
//! them: fetched before the broker serves, again every refresh interval,
//! at once when a token names a key id the set lacks (the provider rotated
//! its keys; at most once a minute per id, 16 ids remembered, Kafka's
//! numbers), and on SIGHUP. A failed fetch
//! keeps the keys in use and is tried again with a growing backoff.
//!
//! Fetches run on a thread of their own: a slow or dead provider never
//! stalls a shard, only delays the new keys.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use super::oauthbearer::{parse_jwks, JwksError, Keys};

/// The longest a fetch may take, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Key ids a missing-key refresh remembers, and for how long each holds
/// off another refresh for the same id (Kafka's 16 entries, 60 s).
const MISSING_KIDS_MAX: usize = 16;
const MISSING_KID_HOLD: Duration = Duration::from_secs(60);
/// A longer key id is not remembered (nor fetched for): Kafka's bound.
const KID_BYTES_MAX: usize = 1000;
/// The least time between two fetches, however many tokens name unknown
/// ids: a stream of made-up ids does not become a stream of fetches.
const FETCH_GAP_MIN: Duration = Duration::from_secs(1);

/// How often the keys are fetched again, and the backoff after a failure.
#[derive(Clone, Copy, Debug)]
pub struct Refresh {
    pub interval: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

/// The endpoint and an HTTP client for it.
pub struct Endpoint {
    url: String,
    agent: ureq::Agent,
}

impl Endpoint {
    /// HTTPS is verified against the certificate authorities in the PEM
    /// file `ca`, else against the system's (as for OpenSSL,
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` name others).
    pub fn new(url: &str, ca: Option<&Path>) -> Result<Endpoint, JwksError> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(JwksError::Url(url.to_string()));
        }
        let roots = match ca {
            Some(path) => super::pem::certs(path)?,
            None => rustls_native_certs::load_native_certs().certs,
        };
        let certs: Vec<ureq::tls::Certificate<'static>> = roots
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .tls_config(tls)
            .build()
            .new_agent();
        Ok(Endpoint {
            url: url.to_string(),
            agent,
        })
    }

    /// The endpoint's key set, as it is now.
    pub fn fetch(&self) -> Result<JwkSet, JwksError> {
        let fetch_error = |e: ureq::Error| JwksError::Fetch(self.url.clone(), e.to_string());
        let mut response = self.agent.get(&self.url).call().map_err(fetch_error)?;
        let text = response
            .body_mut()
            .with_config()
            .limit(super::oauthbearer::JWKS_BYTES_MAX)
            .read_to_string()
            .map_err(fetch_error)?;
        parse_jwks(&self.url, &text)
    }
}

/// Asks the refresher for a fetch now: on SIGHUP, and when a token names
/// a key id the set lacks.
#[derive(Debug)]
pub struct Trigger {
    wake: SyncSender<()>,
    /// Key ids lately found missing, oldest first, with when.
    missing: Mutex<VecDeque<(String, Instant)>>,
}

impl Trigger {
    /// A trigger, and the end its refresher waits on.
    pub fn new() -> (Trigger, Receiver<()>) {
        // One pending wake is enough: more would fetch the same keys.
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let trigger = Trigger {
            wake,
            missing: Mutex::new(VecDeque::with_capacity(MISSING_KIDS_MAX)),
        };
        (trigger, woken)
    }

    pub fn now(&self) {
        // Full: a fetch is already due.
        let _ = self.wake.try_send(());
    }

    /// A token named `kid`, which the keys lack: fetch, unless the same id
    /// asked within the last minute.
    pub fn missing_kid(&self, kid: &str, now: Instant) {
        if kid.len() > KID_BYTES_MAX {
            return;
        }
        let mut missing = self.missing.lock().unwrap_or_else(|e| e.into_inner());
        missing.retain(|(_, at)| now.saturating_duration_since(*at) < MISSING_KID_HOLD);
        if missing.iter().any(|(id, _)| id == kid) {
            return;
        }
        if missing.len() == MISSING_KIDS_MAX {
            missing.pop_front();
        }
        missing.push_back((kid.to_string(), now));
        drop(missing);
        self.now();
    }
}

/// Starts the thread that keeps `keys` fresh from `endpoint`.
pub fn spawn_refresher(
    keys: Arc<Keys>,
    endpoint: Endpoint,
    refresh: Refresh,
    woken: Receiver<()>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jwks-refresh".into())
        .spawn(move || refresh_loop(&keys, &endpoint, refresh, &woken))
        .map(|_| ())
}

fn refresh_loop(keys: &Keys, endpoint: &Endpoint, refresh: Refresh, woken: &Receiver<()>) {
    let mut backoff: Option<Duration> = None;
    loop {
        match woken.recv_timeout(backoff.unwrap_or(refresh.interval)) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        match endpoint.fetch() {
            Ok(jwks) => {
                backoff = None;
                keys.install(jwks);
                crate::stats::JWKS_FETCHES.add(1);
                tracing::info!(url = %endpoint.url, "OAUTHBEARER keys fetched");
            }
            Err(e) => {
                crate::stats::JWKS_FETCH_FAILURES.add(1);
                let next = backoff.map_or(refresh.backoff, |b| b.saturating_mul(2));
                backoff = Some(next.min(refresh.backoff_max));
                tracing::warn!(error = %e, retry_in = ?backoff, "OAUTHBEARER keys fetch failed; keeping the keys in use");
            }
        }
        // A wake that came during the fetch stays pending: its key may
        // have been published after the fetch began.
        std::thread::sleep(FETCH_GAP_MIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a wake is pending, taking it.
    fn woke(woken: &Receiver<()>) -> bool {
        woken.try_recv().is_ok()
    }

    #[test]
    fn a_missing_kid_asks_for_a_fetch_once_a_minute() {
        let (trigger, woken) = Trigger::new();
        let t0 = Instant::now();
        trigger.missing_kid("k2", t0);
        assert!(woke(&woken));
        trigger.missing_kid("k2", t0 + Duration::from_secs(59));
        assert!(!woke(&woken), "the same id within the minute");
        trigger.missing_kid("k3", t0 + Duration::from_secs(59));
        assert!(woke(&woken), "another id");
        trigger.missing_kid("k2", t0 + MISSING_KID_HOLD);
        assert!(woke(&woken), "the same id a minute later");
        trigger.missing_kid(&"x".repeat(KID_BYTES_MAX + 1), t0);
        assert!(!woke(&woken), "an id no provider issues");
    }

    #[test]
    fn the_missing_kids_remembered_are_bounded() {
        let (trigger, woken) = Trigger::new();
        let t0 = Instant::now();
        for i in 0..=MISSING_KIDS_MAX {
            trigger.missing_kid(&format!("k{i}"), t0);
            assert!(woke(&woken));
        }
        let missing = trigger.missing.lock().unwrap();
        assert_eq!(missing.len(), MISSING_KIDS_MAX);
        assert_eq!(
            missing.front().map(|(id, _)| id.as_str()),
            Some("k1"),
            "the oldest went"
        );
        drop(missing);
        trigger.missing_kid("k0", t0);
        assert!(woke(&woken), "a forgotten id asks again");
    }

    #[test]
    fn wakes_coalesce() {
        let (trigger, woken) = Trigger::new();
        trigger.now();
        trigger.now();
        assert!(woke(&woken));
        assert!(!woke(&woken), "one fetch answers both");
    }

    #[test]
    fn only_http_urls_are_fetched() {
        for url in ["ftp://idp/keys", "idp/keys", "file:///keys.json"] {
            assert!(
                matches!(Endpoint::new(url, None), Err(JwksError::Url(_))),
                "{url}"
            );
        }
    }
}
