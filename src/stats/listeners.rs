//! Per listener, its connections and authentications (Kafka's
//! socket-server-metrics: connection-count, connection-creation-total,
//! connection-close-total, successful- and failed-authentication-total).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One listener's counts, shared by its connections on every shard.
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
    authenticated: AtomicU64,
    authentications_failed: AtomicU64,
}

impl ListenerStats {
    /// A connection taken to be served.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection that was accepted is gone.
    pub fn closed(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed at once: the shard holds its most.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A SASL login, or an SSL listener's TLS handshake, succeeded.
    pub fn authenticated(&self) {
        self.authenticated.fetch_add(1, Ordering::Relaxed);
    }

    /// A SASL login, or a TLS handshake, failed.
    pub fn authentication_failed(&self) {
        self.authentications_failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every listener by name; taken when a listener is set up and at a
/// scrape only.
static LISTENERS: Mutex<BTreeMap<String, Arc<ListenerStats>>> = Mutex::new(BTreeMap::new());

/// The counts of listener `name`, the same `Arc` each time (a reload of
/// the listener's TLS keeps counting into it).
pub fn listener_stats(name: &str) -> Arc<ListenerStats> {
    let mut listeners = LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
    listeners.entry(name.to_string()).or_default().clone()
}

/// A per-listener series: name, help, kind, the value.
type ListenerSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ListenerStats) -> u64,
);

pub(super) fn render(out: &mut String) {
    let listeners = LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
    const SERIES: [ListenerSeries; 6] = [
        (
            "sluice_connections",
            "Connections open on the listener.",
            "gauge",
            // Read closed first: a close counted between the reads can
            // only make the count high, never wrap it.
            |s| {
                let closed = s.closed.load(Ordering::Relaxed);
                s.accepted.load(Ordering::Relaxed).saturating_sub(closed)
            },
        ),
        (
            "sluice_connections_accepted_total",
            "Connections accepted to be served.",
            "counter",
            |s| s.accepted.load(Ordering::Relaxed),
        ),
        (
            "sluice_connections_closed_total",
            "Accepted connections since closed, by either side.",
            "counter",
            |s| s.closed.load(Ordering::Relaxed),
        ),
        (
            "sluice_connections_refused_total",
            "Connections closed at once: their shard held max_connections_per_shard.",
            "counter",
            |s| s.refused.load(Ordering::Relaxed),
        ),
        (
            "sluice_authentications_total",
            "SASL logins (re-authentications included), or on an SSL listener TLS handshakes, that succeeded.",
            "counter",
            |s| s.authenticated.load(Ordering::Relaxed),
        ),
        (
            "sluice_authentications_failed_total",
            "SASL logins or TLS handshakes that failed.",
            "counter",
            |s| s.authentications_failed.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, kind, value) in SERIES {
        super::header(out, name, help, kind);
        for (listener, stats) in listeners.iter() {
            let _ = writeln!(out, "{name}{{listener=\"{listener}\"}} {}", value(stats));
        }
    }
}
