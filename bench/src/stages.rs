//! Where the broker's time goes: its per-stage latency histograms, scraped
//! from a Sluice broker's `/metrics` at the edges of the measured window
//! and turned into percentiles of that window alone.
//!
//! A Prometheus histogram is cumulative counts under bucket bounds, so a
//! percentile is known only to within its bucket; like Prometheus'
//! `histogram_quantile`, it is interpolated linearly inside the bucket.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `/metrics` body read; far above what the broker renders.
const SCRAPE_BYTES_MAX: u64 = 4 << 20;

/// One histogram series: cumulative count at each upper bound (seconds;
/// the last is +Inf), in bound order.
type Buckets = Vec<(f64, u64)>;

/// Every histogram series of one scrape, by name with labels
/// (`sluice_request_seconds{api="produce"}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape(BTreeMap<String, Buckets>);

/// One stage over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    pub stage: String,
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The slowest observation's bucket, (above, at most]: quantiles this
    /// far out are bucket bounds, but whether any request took 250 ms
    /// says where a client's tail came from. `None` above the last bound.
    #[serde(default)]
    pub slowest_above_us: f64,
    #[serde(default)]
    pub slowest_at_most_us: Option<f64>,
}

/// GETs `/metrics` from `addr` (HOST:PORT) and keeps its histograms.
pub fn scrape(addr: &str) -> Result<Scrape> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    s.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.take(SCRAPE_BYTES_MAX).read_to_string(&mut text)?;
    let Some(body_at) = text.find("\r\n\r\n") else {
        bail!("no HTTP body from {addr}");
    };
    if !text.starts_with("HTTP/1.1 200") {
        bail!("{addr}: {}", text.lines().next().unwrap_or_default());
    }
    Ok(parse(&text[body_at + 4..]))
}

/// The `_bucket` lines of a Prometheus text exposition.
fn parse(body: &str) -> Scrape {
    let mut series: BTreeMap<String, Buckets> = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = key.split_once("_bucket{") else {
            continue;
        };
        let Ok(count) = value.trim().parse::<u64>() else {
            continue;
        };
        let labels = labels.trim_end_matches('}');
        let mut le = None;
        let mut rest = Vec::new();
        for label in labels.split(',') {
            match label.strip_prefix("le=") {
                Some(bound) => le = Some(bound.trim_matches('"').to_string()),
                None => rest.push(label),
            }
        }
        let Some(le) = le else { continue };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(b) => b,
                Err(_) => continue,
            }
        };
        let id = if rest.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", rest.join(","))
        };
        series.entry(id).or_default().push((bound, count));
    }
    for buckets in series.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Scrape(series)
}

/// Each stage's percentiles over what happened between two scrapes;
/// stages with no observations in between are left out.
pub fn window(before: &Scrape, after: &Scrape) -> Vec<StageLatency> {
    after
        .0
        .iter()
        .filter_map(|(stage, end)| {
            let start = before.0.get(stage);
            let delta: Buckets = end
                .iter()
                .map(|&(bound, count)| {
                    let earlier = start
                        .and_then(|s| s.iter().find(|(b, _)| *b == bound))
                        .map_or(0, |&(_, c)| c);
                    (bound, count.saturating_sub(earlier))
                })
                .collect();
            let count = delta.last().map_or(0, |&(_, c)| c);
            let (slowest_above, slowest_at_most) = slowest(&delta);
            (count > 0).then(|| StageLatency {
                stage: stage.clone(),
                count,
                p50_us: quantile(&delta, 0.50) * 1e6,
                p99_us: quantile(&delta, 0.99) * 1e6,
                p999_us: quantile(&delta, 0.999) * 1e6,
                slowest_above_us: slowest_above * 1e6,
                slowest_at_most_us: slowest_at_most.map(|s| s * 1e6),
            })
        })
        .collect()
}

/// The bucket (seconds) of the slowest observation in cumulative
/// `buckets`: (its lower bound, its upper bound or `None` if unbounded).
fn slowest(buckets: &Buckets) -> (f64, Option<f64>) {
    let total = buckets.last().map_or(0, |&(_, c)| c);
    let mut lower = 0.0;
    for &(bound, count) in buckets {
        if count == total {
            return (lower, bound.is_finite().then_some(bound));
        }
        lower = bound;
    }
    (lower, None)
}

/// The `q` quantile (seconds) of cumulative buckets, interpolated inside
/// its bucket; in the unbounded last bucket, its lower bound.
fn quantile(buckets: &Buckets, q: f64) -> f64 {
    let total = buckets.last().map_or(0, |&(_, c)| c);
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return lower;
            }
            let inside = (count - below) as f64;
            let fraction = if inside > 0.0 {
                (rank - below as f64) / inside
            } else {
                1.0
            };
            return lower + (bound - lower) * fraction;
        }
        (lower, below) = (bound, count);
    }
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# TYPE x_seconds histogram\n\
        x_seconds_bucket{le=\"0.001\"} 10\n\
        x_seconds_bucket{le=\"0.002\"} 10\n\
        x_seconds_bucket{le=\"+Inf\"} 10\n\
        x_seconds_sum 0.005\nx_seconds_count 10\n\
        r_seconds_bucket{api=\"fetch\",le=\"0.001\"} 0\n\
        r_seconds_bucket{api=\"fetch\",le=\"+Inf\"} 0\n\
        sluice_requests_total 7\n";
    const AFTER: &str = "x_seconds_bucket{le=\"0.001\"} 60\n\
        x_seconds_bucket{le=\"0.002\"} 109\n\
        x_seconds_bucket{le=\"+Inf\"} 110\n\
        r_seconds_bucket{api=\"fetch\",le=\"0.001\"} 0\n\
        r_seconds_bucket{api=\"fetch\",le=\"+Inf\"} 0\n";

    #[test]
    fn window_counts_only_what_happened_in_between() {
        let stages = window(&parse(BEFORE), &parse(AFTER));
        assert_eq!(stages.len(), 1, "{stages:?}");
        let x = &stages[0];
        assert_eq!((x.stage.as_str(), x.count), ("x_seconds", 100));
        // 50 of the 100 under 1 ms: the median is that bucket's top.
        assert!((x.p50_us - 1000.0).abs() < 1e-6, "{x:?}");
        // Rank 99 lies inside (1 ms, 2 ms], 49 of its 49.
        assert!((x.p99_us - 2000.0).abs() < 1e-6, "{x:?}");
        // Rank 99.9 lies in +Inf: reported as its lower bound.
        assert!((x.p999_us - 2000.0).abs() < 1e-6, "{x:?}");
        // One of the 100 took over 2 ms, with no bound above.
        assert_eq!((x.slowest_above_us, x.slowest_at_most_us), (2000.0, None));
    }

    #[test]
    fn the_slowest_bucket_is_the_first_holding_every_observation() {
        let b = vec![(0.001, 3), (0.002, 7), (0.005, 7), (f64::INFINITY, 7)];
        assert_eq!(slowest(&b), (0.001, Some(0.002)));
        let all_fast = vec![(0.001, 4), (f64::INFINITY, 4)];
        assert_eq!(slowest(&all_fast), (0.0, Some(0.001)));
    }

    #[test]
    fn labels_other_than_le_name_the_series() {
        let s = parse(BEFORE);
        assert!(s.0.contains_key("r_seconds{api=\"fetch\"}"), "{s:?}");
        assert!(!s.0.contains_key("sluice_requests_total"));
    }

    #[test]
    fn quantiles_interpolate_inside_a_bucket() {
        let b = vec![(0.001, 0), (0.003, 100), (f64::INFINITY, 100)];
        assert!((quantile(&b, 0.5) - 0.002).abs() < 1e-12);
    }
}
