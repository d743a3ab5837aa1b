//! The through-the-broker half of `sluice-bench compression`: the same
//! fixed-rate workload once per codec against each target, so the in-memory
//! ratios can be read next to what each codec costs end to end.
//!
//! The workload is built here rather than read from a file so every codec
//! row differs from the others in `compression` only.

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::report::{Table, TargetResult};
use crate::run::{self, TargetSpec};

use crate::workload::{Acks, Compression, ConsumerMode, KeyDistribution, PayloadKind, Workload};

/// Every codec a Kafka producer can ask for, uncompressed first as the
/// reference.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
/// The workload's shape: small enough for any laptop broker, with enough
/// partitions that batching looks like a real producer's.
const PARTITIONS: u32 = 8;
const MESSAGE_BYTES: usize = 1024;
const BATCH_BYTES: u32 = 1024 * 1024;
/// A few milliseconds of linger lets batches fill, which is where
/// compression pays off.
const LINGER_MS: u32 = 5;
/// Flush and drain allowance after each codec's window.
pub const GRACE: Duration = Duration::from_secs(10);
/// Command-line defaults: a short run per codec at a rate any broker on a
/// laptop sustains, so rows differ by codec cost, not by saturation.
pub const DEFAULT_SECS: u64 = 5;
pub const DEFAULT_WARMUP_SECS: u64 = 2;
pub const DEFAULT_RATE: u64 = 20_000;
/// Bounds on the command-line settings, so a typo cannot start an hour-long
/// run per codec.
pub const SECS_MAX: u64 = 3600;
pub const WARMUP_SECS_MAX: u64 = 600;

/// The per-codec run length and rate, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub secs: u64,
    pub warmup_secs: u64,
    /// Messages per second; fixed so latency is measured from intended send
    /// times.
    pub rate: u64,
}

impl Settings {
    /// Checks the flags and that every codec's workload validates, before
    /// anything is started.
    pub fn new(secs: u64, warmup_secs: u64, rate: u64) -> Result<Settings> {
        anyhow::ensure!(
            (1..=SECS_MAX).contains(&secs),
            "--broker-secs must be 1..={SECS_MAX}"
        );
        anyhow::ensure!(
            warmup_secs <= WARMUP_SECS_MAX,
            "--broker-warmup must be 0..={WARMUP_SECS_MAX}"
        );
        anyhow::ensure!(
            rate > 0,
            "--broker-rate must be positive (a fixed rate keeps latency honest)"
        );
        let s = Settings {
            secs,
            warmup_secs,
            rate,
        };
        for codec in CODECS {
            workload(codec, &s).context("--broker-rate")?;
        }
        Ok(s)
    }
}

/// One target and codec through the broker: the codec, then the target's
/// measurements exactly as `result.json` holds them (`name` is the target;
/// MB = 2^20 bytes of uncompressed message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerCodecRow {
    pub codec: Compression,
    #[serde(flatten)]
    pub result: TargetResult,
}

/// The workload for one codec, validated.
pub fn workload(codec: Compression, s: &Settings) -> Result<Workload> {
    let w = Workload {
        name: format!("compression-{}", codec.as_str()),
        topics: 1,
        partitions_per_topic: PARTITIONS,
        message_size: MESSAGE_BYTES,
        producers_per_topic: 1,
        consumers_per_topic: 1,
        producer_rate: s.rate,
        key_distribution: KeyDistribution::None,
        compression: codec,
        acks: Acks::All,
        batch_size: BATCH_BYTES,
        linger_ms: LINGER_MS,
        warmup_secs: s.warmup_secs,
        duration_secs: s.secs,
        consumer_mode: ConsumerMode::Assign,
        // Log-like text: random bytes would make every codec look useless.
        payload: PayloadKind::Text,
        idempotence: false,
        messages_per_transaction: 0,
        replication_factor: 1,
        min_insync_replicas: None,
        producer_config: Default::default(),
        consumer_config: Default::default(),
    };
    w.validate()?;
    Ok(w)
}

/// Every codec in turn against one target (fresh topics each time).
pub fn run_codecs(t: &TargetSpec, s: &Settings) -> Result<Vec<BrokerCodecRow>> {
    let mut rows = Vec::with_capacity(CODECS.len());
    for codec in CODECS {
        let w = workload(codec, s)?;
        eprintln!(
            "producing and consuming with {} on {}...",
            codec.as_str(),
            t.name
        );
        let r =
            run::run_target(t, &w, GRACE).with_context(|| format!("codec {}", codec.as_str()))?;
        rows.push(BrokerCodecRow { codec, result: r });
    }
    Ok(rows)
}

/// A row per target and codec.
pub fn table(rows: &[BrokerCodecRow]) -> Table {
    let header = [
        "target",
        "codec",
        "pub msg/s",
        "pub MB/s",
        "cons MB/s",
        "e2e p50 ms",
        "e2e p99 ms",
        "e2e p99.9 ms",
        "broker CPU s",
    ];
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    let rows = rows
        .iter()
        .map(|BrokerCodecRow { codec, result: r }| {
            vec![
                r.name.clone(),
                codec.as_str().to_string(),
                format!("{:.0}", r.publish_rate_msgs),
                format!("{:.1}", r.publish_rate_mb),
                format!("{:.1}", r.consume_rate_mb),
                ms(r.e2e_latency_us.p50),
                ms(r.e2e_latency_us.p99),
                ms(r.e2e_latency_us.p999),
                r.broker
                    .map_or("-".into(), |u| format!("{:.2}", u.cpu_seconds)),
            ]
        })
        .collect();
    Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// The line for `notes`: how the broker rows were made, or how to get them.
pub fn note(s: Option<&Settings>) -> String {
    match s {
        None => "Through-the-broker produce/consume per codec was not measured: pass --spawn \
                 or --target NAME=HOST:PORT."
            .into(),
        Some(s) => format!(
            "Broker rows: 1 topic x {PARTITIONS} partitions, {MESSAGE_BYTES}-byte log-text \
             messages at {} msg/s, acks=all, batch.size {BATCH_BYTES}, linger.ms {LINGER_MS}, \
             1 producer and 1 consumer; {} s warm-up then {} s measured per codec. MB/s are \
             of uncompressed messages; latency is from each message's intended send time.",
            s.rate, s.warmup_secs, s.secs
        ),
    }
}

/// Rows a reader should not take at face value.
pub fn warnings(rows: &[BrokerCodecRow]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            let what = format!("{} {}", r.result.name, r.codec.as_str());
            crate::report::target_warnings(&what, &r.result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Percentiles;

    fn sample_row() -> BrokerCodecRow {
        let p = Percentiles {
            p50: 1_500,
            p99: 12_345,
            p999: 20_000,
            max: 30_000,
            ..Percentiles::default()
        };
        let mut result = crate::report::tests::sample_target("sluice", 19.9984);
        result.publish_rate_mb = 19.53;
        result.consume_rate_mb = 19.52;
        result.messages_sent = 100_000;
        result.messages_received = 100_000;
        result.publish_latency_us = p;
        result.e2e_latency_us = p;
        result.broker = Some(crate::spawn::Usage {
            cpu_seconds: 1.234,
            peak_rss_mb: 10.0,
        });
        BrokerCodecRow {
            codec: Compression::Zstd,
            result,
        }
    }

    #[test]
    fn table_has_a_formatted_row_per_run() {
        let mut spawned = sample_row();
        let mut remote = sample_row();
        remote.result.name = "kafka".into();
        remote.result.broker = None;
        spawned.codec = Compression::Gzip;
        let t = table(&[spawned, remote]);
        assert_eq!(t.header.len(), 9);
        assert_eq!(t.header[5], "e2e p50 ms");
        assert_eq!(
            t.rows[0],
            vec!["sluice", "gzip", "19998", "19.5", "19.5", "1.50", "12.35", "20.00", "1.23"]
        );
        assert_eq!(t.rows[1][0], "kafka");
        assert_eq!(t.rows[1][8], "-");
        assert!(t.terminal().lines().all(|l| !l.ends_with(' ')));
        assert_eq!(t.markdown().lines().count(), 4);
    }

    #[test]
    fn every_codec_gets_the_same_valid_workload_but_its_codec() {
        let s = Settings::new(5, 2, 20_000).unwrap();
        let ws: Vec<Workload> = CODECS.iter().map(|&c| workload(c, &s).unwrap()).collect();
        for (w, c) in ws.iter().zip(CODECS) {
            assert_eq!(w.compression, c);
            assert_eq!(w.payload, PayloadKind::Text);
            assert_eq!((w.partitions_per_topic, w.message_size), (8, 1024));
            assert_eq!(
                (w.warmup_secs, w.duration_secs, w.producer_rate),
                (2, 5, 20_000)
            );
            let same = Workload {
                name: ws[0].name.clone(),
                compression: Compression::None,
                ..w.clone()
            };
            assert_eq!(same, ws[0]);
        }
    }

    #[test]
    fn bad_settings_are_rejected_with_the_flag_name() {
        for (secs, warmup, rate, flag) in [
            (0, 2, 1000, "--broker-secs"),
            (SECS_MAX + 1, 2, 1000, "--broker-secs"),
            (5, WARMUP_SECS_MAX + 1, 1000, "--broker-warmup"),
            (5, 2, 0, "--broker-rate"),
            (5, 2, u64::MAX, "--broker-rate"),
        ] {
            let err = format!("{:#}", Settings::new(secs, warmup, rate).unwrap_err());
            assert!(err.contains(flag), "{err}");
        }
    }

    #[test]
    fn rows_serialize_with_codec_names_and_warn_on_loss() {
        let mut r = sample_row();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["codec"], "zstd");
        assert_eq!(v["e2e_latency_us"]["p99"], 12_345);
        assert!(warnings(&[r.clone()]).is_empty());
        r.result.messages_received = 10;
        r.result.rate_sustained = Some(false);
        let w = warnings(&[r]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[1].contains("received 10 of 100000"), "{w:?}");
    }
}
