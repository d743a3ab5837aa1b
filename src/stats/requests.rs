//! Requests received, by API (Kafka's RequestsPerSec by request type).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::messages::ApiKey;

/// API keys counted by key; Kafka's reach 92.
const API_KEYS: usize = 128;

static BY_API: [AtomicU64; API_KEYS] = [const { AtomicU64::new(0) }; API_KEYS];
/// Keys past `API_KEYS`, and negative ones.
static OTHER: AtomicU64 = AtomicU64::new(0);

/// One request of API `key`, as its header gives it (counted before the
/// key is checked: one no API has is counted too).
pub fn count_request(key: i16) {
    let slot = usize::try_from(key).ok().and_then(|k| BY_API.get(k));
    slot.unwrap_or(&OTHER).fetch_add(1, Ordering::Relaxed);
}

pub(super) fn render(out: &mut String) {
    let name = "sluice_requests_total";
    super::header(
        out,
        name,
        "Requests received, by API (unanswerable ones included).",
        "counter",
    );
    let mut unknown = OTHER.load(Ordering::Relaxed);
    for (key, count) in BY_API.iter().enumerate() {
        let count = count.load(Ordering::Relaxed);
        match ApiKey::try_from(key as i16) {
            _ if count == 0 => {}
            Ok(api) => {
                let _ = writeln!(out, "{name}{{api=\"{api:?}\"}} {count}");
            }
            Err(()) => unknown += count,
        }
    }
    if unknown > 0 {
        let _ = writeln!(out, "{name}{{api=\"unknown\"}} {unknown}");
    }
}
