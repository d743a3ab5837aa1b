//! Latency histograms (microseconds) and throughput samples.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies above an hour are recorded as an hour; none should get close.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// A microsecond latency histogram. Each thread records into its own and the
/// run merges them at the end.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        Latency(
            Histogram::new_with_max(LATENCY_US_MAX, SIGNIFICANT_DIGITS)
                .expect("static histogram bounds are valid"),
        )
    }

    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.min(LATENCY_US_MAX));
    }

    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds always merge");
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn percentiles(&self) -> Percentiles {
        let h = &self.0;
        let q = |p: f64| h.value_at_quantile(p);
        Percentiles {
            count: h.len(),
            mean: if h.is_empty() { 0.0 } else { h.mean() },
            p50: q(0.50),
            p75: q(0.75),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max(),
        }
    }

    /// Points of the HDR percentile curve: (percentile in %, latency µs), with
    /// ten points per decade of `1 / (1 - p)` up to 99.999 %.
    pub fn curve(&self) -> Vec<(f64, u64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        (0..=50)
            .map(|i| {
                let p = 1.0 - 10f64.powf(-(i as f64) / 10.0);
                (p * 100.0, self.0.value_at_quantile(p))
            })
            .collect()
    }
}

/// The latency summary written to result.json; all values in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Percentiles {
    #[cfg(test)]
    pub fn is_ordered(&self) -> bool {
        let v = [
            self.p50, self.p75, self.p95, self.p99, self.p999, self.p9999, self.max,
        ];
        v.windows(2).all(|w| w[0] <= w[1])
    }
}

/// Throughput in one second of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the producers started (warm-up included).
    pub t: f64,
    pub publish_msgs: f64,
    pub consume_msgs: f64,
    /// The rate asked of the producers in this second (msg/s): the fixed
    /// rate, or where the max-rate search stood.
    #[serde(default)]
    pub asked_msgs: f64,
}

/// Bytes per second as MiB per second (the unit OMB calls MB/s).
pub fn mib(bytes_per_sec: f64) -> f64 {
    bytes_per_sec / (1024.0 * 1024.0)
}

/// Bytes as GiB.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_equals_recording_into_one() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        let mut all = Latency::new();
        for v in 1..=1000u64 {
            let h = if v % 3 == 0 { &mut a } else { &mut b };
            h.record(v * 10);
            all.record(v * 10);
        }
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        assert_eq!(a.percentiles(), all.percentiles());
    }

    #[test]
    fn percentiles_are_ordered_and_close() {
        let mut h = Latency::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p = h.percentiles();
        assert!(p.is_ordered(), "{p:?}");
        // Three significant digits: within 0.1 %.
        assert!((p.p50 as f64 - 50_000.0).abs() < 50.0, "{}", p.p50);
        assert!((p.p99 as f64 - 99_000.0).abs() < 100.0, "{}", p.p99);
        assert!(p.max >= 100_000 && p.max < 100_100);
    }

    #[test]
    fn huge_values_saturate_instead_of_failing() {
        let mut h = Latency::new();
        h.record(u64::MAX);
        assert!(h.percentiles().max >= LATENCY_US_MAX);
    }

    #[test]
    fn empty_histogram_has_zero_summary_and_no_curve() {
        let h = Latency::new();
        assert_eq!(h.percentiles(), Percentiles::default());
        assert!(h.curve().is_empty());
    }

    #[test]
    fn curve_is_monotonic_and_reaches_five_nines() {
        let mut h = Latency::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let c = h.curve();
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!((c.last().unwrap().0 - 99.999).abs() < 1e-6);
    }
}
