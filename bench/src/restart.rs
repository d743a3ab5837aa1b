//! `sluice-bench restart`: how long a broker that holds many partitions
//! takes to serve again after a clean shutdown, and the files and memory
//! it holds before and after (issue 14's many-partitions targets).
//!
//! It creates the topics, writes one record to every partition, stops the
//! broker with SIGTERM and starts it on the same data dir. Three moments
//! after the start are timed: the ready line, a Metadata answer that names
//! every partition with a leader, and one more record acknowledged on
//! every partition at the offset after the first, which is when every
//! partition serves. Then it stops the broker again and times that too: a
//! stop that finds every partition's files from the first, as most of a
//! broker's stops do.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::kafka::{self, TopicShape};
use crate::raw::{Connection, Frame, RequestShape};
use crate::report::Table;
use crate::spawn::{self, status_kib, Serve, SpawnedBroker};

/// Bounds on the shape, so a typo cannot fill the disk.
pub const TOPICS_MAX: u32 = 1_000;
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 10_000;
pub const PARTITIONS_MAX: u64 = 200_000;
/// How long a clean shutdown may take before the run fails: long, since
/// a close writes files for every partition, and creating 400,000 files
/// on a slow filesystem (bench/README.md) took over a minute.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);
/// How often Metadata is asked after the start.
const METADATA_POLL: Duration = Duration::from_millis(5);
/// Bytes of each record's value.
const VALUE_BYTES: usize = 100;
/// Produce requests (one per topic) each connection keeps unanswered.
const IN_FLIGHT: usize = 4;

/// What to create before the restart.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    pub topics: u32,
    pub partitions_per_topic: u32,
}

impl Shape {
    pub fn validate(&self) -> Result<()> {
        if !(1..=TOPICS_MAX).contains(&self.topics) {
            bail!("--topics must be 1..={TOPICS_MAX}");
        }
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&self.partitions_per_topic) {
            bail!("--partitions must be 1..={PARTITIONS_PER_TOPIC_MAX}");
        }
        if self.partitions() > PARTITIONS_MAX {
            bail!("--topics times --partitions must be at most {PARTITIONS_MAX}");
        }
        Ok(())
    }

    pub fn partitions(&self) -> u64 {
        u64::from(self.topics) * u64::from(self.partitions_per_topic)
    }
}

/// What a broker process holds, from /proc.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Held {
    pub open_files: u64,
    pub rss_mib: f64,
}

impl Held {
    fn read(pid: u32) -> Result<Held> {
        let open_files = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .context("listing /proc/PID/fd")?
            .count() as u64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib = status_kib(&status, "VmRSS:").context("no VmRSS in /proc/PID/status")?;
        Ok(Held {
            open_files,
            rss_mib: rss_kib as f64 / 1024.0,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RestartResult {
    pub shape: Shape,
    pub partitions: u64,
    /// The broker's open-file limit (soft), as it ran.
    pub open_files_limit: Option<u64>,
    /// CreateTopics until Metadata shows every partition led.
    pub create_secs: f64,
    /// Once every partition holds a record, before the stop.
    pub before: Held,
    /// SIGTERM to exit.
    pub stop_secs: f64,
    /// From the start: the ready line.
    pub ready_secs: f64,
    /// From the start: Metadata names every partition with a leader.
    pub listed_secs: f64,
    /// From the start: a record acknowledged on every partition, each at
    /// the offset after the one written before the stop.
    pub served_secs: f64,
    /// At the ready line.
    pub at_ready: Held,
    /// Once every partition has served.
    pub after: Held,
    /// The restarted broker's peak RSS (VmHWM).
    pub peak_rss_mib: f64,
    /// SIGTERM to exit for the restarted broker, after its second record
    /// in every partition: a stop that finds each partition's files from
    /// the first one (a broker's usual stop, one of many).
    pub second_stop_secs: f64,
    /// The nice level the broker ran at (`--nice`).
    pub broker_nice: Option<i32>,
    /// The filesystem its data dir was on (`data_fs`).
    pub broker_data_fs: Option<String>,
}

impl RestartResult {
    pub fn table(&self) -> Table {
        let held = |h: &Held| format!("{} files, {:.0} MiB", h.open_files, h.rss_mib);
        let mut rows = vec![
            ("partitions".to_string(), self.partitions.to_string()),
            (
                "open-file limit".into(),
                self.open_files_limit.map_or("-".into(), |l| l.to_string()),
            ),
            ("create s".into(), format!("{:.2}", self.create_secs)),
            ("before the stop".into(), held(&self.before)),
            ("clean stop s".into(), format!("{:.2}", self.stop_secs)),
            (
                "start to ready line s".into(),
                format!("{:.2}", self.ready_secs),
            ),
            (
                "start to Metadata of all s".into(),
                format!("{:.2}", self.listed_secs),
            ),
            (
                "start to every partition written s".into(),
                format!("{:.2}", self.served_secs),
            ),
            ("at the ready line".into(), held(&self.at_ready)),
            ("after every partition served".into(), held(&self.after)),
            (
                "peak RSS after the start MiB".into(),
                format!("{:.0}", self.peak_rss_mib),
            ),
            (
                "second clean stop s".into(),
                format!("{:.2}", self.second_stop_secs),
            ),
        ];
        if let Some(n) = self.broker_nice {
            rows.push(("broker nice".into(), n.to_string()));
        }
        if let Some(fs) = &self.broker_data_fs {
            rows.push(("data dir filesystem".into(), fs.clone()));
        }
        Table {
            header: vec!["restart".into(), String::new()],
            rows: rows.into_iter().map(|(k, v)| vec![k, v]).collect(),
        }
    }
}

/// Starts `serve`, fills it with `shape`'s partitions and restarts it;
/// the broker's logs go to `log_dir`.
pub fn run(serve: Serve, shape: Shape, log_dir: &Path) -> Result<RestartResult> {
    shape.validate()?;
    let broker_nice = serve.nice;
    let mut broker = SpawnedBroker::serve(serve, &log_dir.join("broker-sluice.log"))?;
    let topics: Vec<String> = (0..shape.topics).map(|i| format!("restart-{i}")).collect();
    let creating = Instant::now();
    let topic_shape = TopicShape {
        partitions: shape.partitions_per_topic,
        replication_factor: 1,
        min_insync_replicas: None,
    };
    kafka::create_topics_shaped(&broker.addr, &topics, &topic_shape)?;
    let create_secs = creating.elapsed().as_secs_f64();
    write_every_partition(&broker.addr, &topics, shape.partitions_per_topic, 0)
        .context("writing every partition before the stop")?;
    let before = Held::read(broker.pid())?;

    let restarted = broker.restart(STOP_TIMEOUT, &log_dir.join("broker-sluice-restarted.log"))?;
    let pid = broker.pid();
    let at_ready = Held::read(pid)?;
    kafka::wait_for_partitions(
        &broker.addr,
        &topics,
        shape.partitions_per_topic,
        1,
        METADATA_POLL,
    )?;
    // From the ready line, so reading what the broker holds counts too.
    let listed = restarted.ready.elapsed();
    write_every_partition(&broker.addr, &topics, shape.partitions_per_topic, 1)
        .context("writing every partition after the restart")?;
    let served = restarted.ready.elapsed();
    let after = Held::read(pid)?;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let peak_rss_mib = spawn::read_usage(pid)?.peak_rss_mb;
    let second_stop_secs = broker.stop_timed(STOP_TIMEOUT)?.as_secs_f64();
    Ok(RestartResult {
        shape,
        partitions: shape.partitions(),
        open_files_limit: open_files_soft_limit(&limits),
        create_secs,
        before,
        stop_secs: restarted.stop.as_secs_f64(),
        ready_secs: restarted.start.as_secs_f64(),
        listed_secs: (restarted.start + listed).as_secs_f64(),
        served_secs: (restarted.start + served).as_secs_f64(),
        at_ready,
        after,
        peak_rss_mib,
        second_stop_secs,
        broker_nice,
        broker_data_fs: crate::data_fs::of_spawned(),
    })
}

/// One record to every partition, a request per topic, each answer
/// checked: no error, and every base offset `offset`.
fn write_every_partition(
    addr: &str,
    topics: &[String],
    partitions: u32,
    offset: i64,
) -> Result<()> {
    let mut frames = topics
        .iter()
        .map(|topic| {
            let shape = RequestShape {
                topic: topic.clone(),
                partitions: (0..partitions as i32).collect(),
                records: 1,
                value_bytes: VALUE_BYTES,
                acks: -1,
            };
            Frame::encode(&shape, u64::from(partitions))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut conn = Connection::open(addr)?;
    let mut next = 0;
    let mut answered = 0;
    while answered < frames.len() {
        while next < frames.len() && conn.in_flight() < IN_FLIGHT {
            conn.send(&mut frames, next)?;
            next += 1;
        }
        let answer = conn.receive()?;
        if answer.base_offsets != (offset, offset) {
            bail!(
                "{}: base offsets {:?}, expected {offset} on every partition",
                topics[answer.frame],
                answer.base_offsets
            );
        }
        answered += 1;
    }
    Ok(())
}

/// The soft limit of `Max open files` in /proc/PID/limits.
fn open_files_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            4096                 65536                files     \n";
        assert_eq!(open_files_soft_limit(limits), Some(4096));
    }

    #[test]
    fn shapes_are_bounded() {
        let ok = Shape {
            topics: 10,
            partitions_per_topic: 1_000,
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.partitions(), 10_000);
        for bad in [(0, 1), (1, 0), (TOPICS_MAX + 1, 1), (1_000, 1_000)] {
            let shape = Shape {
                topics: bad.0,
                partitions_per_topic: bad.1,
            };
            assert!(shape.validate().is_err(), "{bad:?}");
        }
    }
}
