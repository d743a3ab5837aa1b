//! Error codes answered on the data path, per partition (Kafka's
//! ErrorsPerSec for Produce and Fetch, which counts each partition's
//! error): NOT_LEADER_OR_FOLLOWER storms, refused batches, fenced
//! producers show up here before a client's logs.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::ResponseError;

/// The APIs whose partition errors are counted.
#[derive(Clone, Copy, Debug)]
pub enum CountedApi {
    Produce,
    Fetch,
}

const APIS: [(CountedApi, &str); 2] = [
    (CountedApi::Produce, "Produce"),
    (CountedApi::Fetch, "Fetch"),
];

/// Codes -1 (UNKNOWN_SERVER_ERROR) to 158; Kafka's reach 133.
const CODES: usize = 160;

type Counts = [AtomicU64; CODES];

static ERRORS: [Counts; 2] = [const { [const { AtomicU64::new(0) }; CODES] }; 2];
/// Codes past `CODES`: none Kafka defines today.
static BEYOND: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// One partition answered `code` (0 is not counted).
pub fn count_error(api: CountedApi, code: i16) {
    if code == 0 {
        return;
    }
    let slot = usize::try_from(i32::from(code) + 1)
        .ok()
        .and_then(|i| ERRORS[api as usize].get(i));
    slot.unwrap_or(&BEYOND[api as usize])
        .fetch_add(1, Ordering::Relaxed);
}

/// Kafka's name of an error: `NotLeaderOrFollower` as NOT_LEADER_OR_FOLLOWER.
fn kafka_name(error: ResponseError) -> String {
    let mut name = String::new();
    for (i, c) in format!("{error:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

pub(super) fn render(out: &mut String) {
    let name = "sluice_request_errors_total";
    super::header(
        out,
        name,
        "Partitions answered with an error, by API and error (Kafka's ErrorsPerSec).",
        "counter",
    );
    for (api, label) in APIS {
        for (i, count) in ERRORS[api as usize].iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let code = i as i16 - 1;
            let error = ResponseError::try_from_code(code)
                .map_or_else(|| format!("CODE_{code}"), kafka_name);
            let _ = writeln!(out, "{name}{{api=\"{label}\",error=\"{error}\"}} {count}");
        }
        let beyond = BEYOND[api as usize].load(Ordering::Relaxed);
        if beyond > 0 {
            let _ = writeln!(out, "{name}{{api=\"{label}\",error=\"UNKNOWN\"}} {beyond}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(
            kafka_name(ResponseError::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(
            kafka_name(ResponseError::UnknownServerError),
            "UNKNOWN_SERVER_ERROR"
        );
        assert_eq!(
            kafka_name(ResponseError::KafkaStorageError),
            "KAFKA_STORAGE_ERROR"
        );
    }

    #[test]
    fn each_code_is_counted_under_its_api() {
        count_error(CountedApi::Fetch, ResponseError::OffsetOutOfRange.code());
        count_error(CountedApi::Fetch, -1);
        count_error(CountedApi::Fetch, 0);
        count_error(CountedApi::Fetch, i16::MAX);
        let mut out = String::new();
        render(&mut out);
        for line in [
            "sluice_request_errors_total{api=\"Fetch\",error=\"OFFSET_OUT_OF_RANGE\"} ",
            "sluice_request_errors_total{api=\"Fetch\",error=\"UNKNOWN_SERVER_ERROR\"} ",
            "sluice_request_errors_total{api=\"Fetch\",error=\"UNKNOWN\"} ",
        ] {
            assert!(out.lines().any(|l| l.starts_with(line)), "{line} in\n{out}");
        }
        assert!(!out.contains("error=\"NONE\""), "{out}");
    }
}
