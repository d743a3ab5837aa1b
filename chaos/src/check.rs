//! The checker: reads every partition from the start and holds the read
//! log against the producer's history.
//!
//! Per partition it verifies:
//! - every acknowledged value is in the log exactly once, at the offset it
//!   was acknowledged with (else it is *lost*, or *misplaced* when found
//!   elsewhere); an acknowledgement without an offset (librdkafka reports
//!   -1001 for a batch a later answer proved written) needs its value
//!   present only;
//! - no value is in the log twice (*duplicated*);
//! - the values' seqs rise through the log and the acknowledged offsets
//!   rise with the seqs, that is in send order (each break is
//!   *reordered*); acknowledgement order is not checked, because
//!   librdkafka reports a retried batch after a later batch that went
//!   through;
//! - read offsets rise (offsets never go backwards);
//! - every value in the log is one this run sent (*foreign* otherwise).
//!
//! A value whose send failed or was never acknowledged may be there or
//! not; it is counted (`unacked_present`) and never a violation.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::workload::{parse_value, History, PartitionHistory};

/// The bound of reading everything back.
const READ_TIMEOUT: Duration = Duration::from_secs(180);
/// Records of history shown either side of a violation.
const WINDOW: i64 = 5;

/// What one partition's log holds: `(offset, value)` in log order.
pub type ReadLog = Vec<(i64, Vec<u8>)>;

/// Reads partitions `0..partitions` from the start up to their high
/// watermarks (taken first).
pub fn read_back(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<ReadLog>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "sluice-chaos-checker")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("log_level", "3")
        .create()?;
    let mut ends = Vec::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
        ends.push(high);
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut logs: Vec<ReadLog> = vec![Vec::new(); partitions as usize];
    let deadline = Instant::now() + READ_TIMEOUT;
    let done = |logs: &Vec<ReadLog>| {
        logs.iter()
            .zip(&ends)
            .all(|(l, &end)| l.last().map_or(end <= 0, |(o, _)| *o + 1 >= end))
    };
    while !done(&logs) {
        if Instant::now() >= deadline {
            let got: Vec<_> = logs.iter().map(|l| l.last().map(|(o, _)| *o)).collect();
            bail!("read back did not reach the high watermarks {ends:?} in {READ_TIMEOUT:?}; last offsets read {got:?}");
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                if m.offset() < ends[p] {
                    logs[p].push((m.offset(), m.payload().unwrap_or_default().to_vec()));
                }
            }
            Some(Err(e)) => eprintln!("read back: {e}"),
            None => {}
        }
    }
    Ok(logs)
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub acknowledged: u64,
    pub read_back: u64,
    pub lost: u64,
    pub misplaced: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub foreign: u64,
    pub failed_sends: u64,
    pub unacked_present: u64,
    /// Lost acknowledgements the scenario allows (a torn tail's cut
    /// batches); not violations.
    pub lost_allowed: u64,
    /// Acknowledgements without an offset (see `check_partition`).
    pub acked_offset_unknown: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub partition: i32,
    pub what: String,
    /// The acknowledgements and read records around it.
    pub window: String,
}

/// Checks one partition. `allowed`: acknowledgements at these offsets may
/// be missing or overwritten (a torn tail cut them; later writes take
/// their offsets again).
pub fn check_partition(
    p: i32,
    h: &PartitionHistory,
    log: &ReadLog,
    allowed: &[std::ops::Range<i64>],
    counts: &mut Counts,
    violations: &mut Vec<Violation>,
) {
    counts.acknowledged += h.acks.len() as u64;
    counts.read_back += log.len() as u64;
    counts.failed_sends += h.failed.len() as u64;
    let mut at: BTreeMap<i64, u64> = BTreeMap::new();
    let mut places: HashMap<u64, Vec<i64>> = HashMap::new();
    let mut prev: Option<(i64, u64)> = None;
    for (offset, v) in log {
        let Some((vp, seq)) = parse_value(v).filter(|(vp, _)| *vp == p) else {
            counts.foreign += 1;
            let what = format!(
                "offset {offset}: a value this run never sent to partition {p}: {:?}",
                String::from_utf8_lossy(&v[..v.len().min(40)])
            );
            violations.push(window(p, &what, *offset, h, log));
            continue;
        };
        debug_assert_eq!(vp, p);
        if let Some((po, ps)) = prev {
            if *offset <= po {
                let what = format!("offsets go backwards in the log: {po} then {offset}");
                violations.push(window(p, &what, *offset, h, log));
            }
            if seq < ps {
                counts.reordered += 1;
                let what = format!(
                    "log order breaks send order: seq {ps} at {po}, then seq {seq} at {offset}"
                );
                violations.push(window(p, &what, *offset, h, log));
            }
        }
        prev = Some((*offset, seq));
        at.insert(*offset, seq);
        places.entry(seq).or_default().push(*offset);
    }
    for (seq, offs) in &places {
        if offs.len() > 1 {
            counts.duplicated += offs.len() as u64 - 1;
            let what = format!("seq {seq} is in the log {} times, at {offs:?}", offs.len());
            violations.push(window(p, &what, offs[1], h, log));
        }
    }
    let acked: std::collections::HashSet<u64> = h.acks.iter().map(|a| a.seq).collect();
    counts.unacked_present += places.keys().filter(|s| !acked.contains(s)).count() as u64;
    check_ack_order(p, h, log, allowed, counts, violations);
    let mut prev_ack: Option<i64> = None;
    for a in &h.acks {
        if a.offset < 0 {
            // librdkafka reports an idempotent batch delivered without its
            // offset (-1001) when a later batch's answer proves it was
            // written (its own request timed out). Only presence can be
            // checked; order is checked through the log's seqs above.
            counts.acked_offset_unknown += 1;
            if !places.contains_key(&a.seq) {
                counts.lost += 1;
                let what = format!(
                    "seq {} acknowledged (offset unknown) is not in the log",
                    a.seq
                );
                let near = prev_ack.unwrap_or(0);
                violations.push(window(p, &what, near, h, log));
            }
            continue;
        }
        prev_ack = Some(a.offset);
        if at.get(&a.offset) == Some(&a.seq) {
            continue;
        }
        if allowed.iter().any(|r| r.contains(&a.offset)) {
            counts.lost_allowed += 1;
            continue;
        }
        let what = match places.get(&a.seq) {
            Some(offs) => {
                counts.misplaced += 1;
                format!(
                    "seq {} acknowledged at offset {} but found at {offs:?}",
                    a.seq, a.offset
                )
            }
            None => {
                counts.lost += 1;
                format!(
                    "seq {} acknowledged at offset {} is lost (offset {} holds {:?})",
                    a.seq,
                    a.offset,
                    a.offset,
                    at.get(&a.offset)
                )
            }
        };
        violations.push(window(p, &what, a.offset, h, log));
    }
}

/// Acknowledged offsets must rise with the seqs: a later send written
/// before an earlier one is a reorder the broker confirmed. Offsets a
/// scenario allows to be retaken (an unclean election) are exempt.
fn check_ack_order(
    p: i32,
    h: &PartitionHistory,
    log: &ReadLog,
    allowed: &[std::ops::Range<i64>],
    counts: &mut Counts,
    violations: &mut Vec<Violation>,
) {
    let mut by_seq: Vec<(u64, i64)> = h
        .acks
        .iter()
        .filter(|a| a.offset >= 0)
        .map(|a| (a.seq, a.offset))
        .collect();
    by_seq.sort_unstable();
    for pair in by_seq.windows(2) {
        let ((ps, po), (seq, offset)) = (pair[0], pair[1]);
        let retaken = allowed.iter().any(|r| r.contains(&po));
        if offset <= po && !retaken {
            counts.reordered += 1;
            let what = format!(
                "acknowledged offsets break send order: seq {ps} at {po}, then seq {seq} at {offset}"
            );
            violations.push(window(p, &what, offset, h, log));
        }
    }
}

/// The history window around `offset`: acknowledgements and read records.
fn window(p: i32, what: &str, offset: i64, h: &PartitionHistory, log: &ReadLog) -> Violation {
    let range = offset - WINDOW..=offset + WINDOW;
    let mut s = String::new();
    s.push_str("  acknowledgements (seq -> offset @ ack time ms, send time ms):\n");
    for a in h.acks.iter().filter(|a| range.contains(&a.offset)) {
        let sent = h.sent_us.get(a.seq as usize).copied().unwrap_or(0);
        s.push_str(&format!(
            "    seq {} -> {} @ {:.1} ms (sent {:.1} ms)\n",
            a.seq,
            a.offset,
            a.at_us as f64 / 1000.0,
            sent as f64 / 1000.0
        ));
    }
    s.push_str("  read back (offset: value):\n");
    for (o, v) in log.iter().filter(|(o, _)| range.contains(o)) {
        let shown = String::from_utf8_lossy(&v[..v.len().min(24)]).into_owned();
        s.push_str(&format!("    {o}: {shown}\n"));
    }
    Violation {
        partition: p,
        what: what.to_string(),
        window: s,
    }
}

/// Checks every partition; violations are capped at `max` (counts are not).
pub fn check_all(
    history: &History,
    logs: &[ReadLog],
    allowed: &BTreeMap<i32, Vec<std::ops::Range<i64>>>,
    max: usize,
) -> (Counts, Vec<Violation>) {
    let mut counts = Counts::default();
    let mut violations = Vec::new();
    for (p, (h, log)) in history.partitions.iter().zip(logs).enumerate() {
        let p = p as i32;
        check_partition(
            p,
            h,
            log,
            allowed.get(&p).map_or(&[][..], |v| &v[..]),
            &mut counts,
            &mut violations,
        );
    }
    violations.truncate(max);
    (counts, violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{value, Ack};

    fn history(acks: &[(u64, i64)]) -> PartitionHistory {
        PartitionHistory {
            sent_us: vec![0; 10],
            acks: acks
                .iter()
                .map(|&(seq, offset)| Ack {
                    seq,
                    offset,
                    at_us: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Checks partition 0 of `h` against `log`.
    fn check(
        h: &PartitionHistory,
        log: &ReadLog,
        allowed: &[std::ops::Range<i64>],
    ) -> (Counts, Vec<Violation>) {
        let (mut c, mut v) = (Counts::default(), Vec::new());
        check_partition(0, h, log, allowed, &mut c, &mut v);
        (c, v)
    }

    fn log(seqs: &[(i64, u64)]) -> ReadLog {
        seqs.iter().map(|&(o, s)| (o, value(0, s, 10))).collect()
    }

    /// A clean history has no violation.
    #[test]
    fn clean() {
        let (c, v) = check(
            &history(&[(0, 0), (1, 1)]),
            &log(&[(0, 0), (1, 1), (2, 2)]),
            &[],
        );
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((c.acknowledged, c.unacked_present), (2, 1));
    }

    /// An acknowledgement without an offset (librdkafka's -1001) only needs
    /// its value in the log once.
    #[test]
    fn acknowledged_without_an_offset() {
        let (c, v) = check(
            &history(&[(0, 0), (1, -1001), (2, -1001), (3, 3)]),
            &log(&[(0, 0), (1, 1), (2, 2), (3, 3)]),
            &[],
        );
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((c.acked_offset_unknown, c.lost), (2, 0));
        let (c, v) = check(&history(&[(0, 0), (1, -1001)]), &log(&[(0, 0)]), &[]);
        assert_eq!(c.lost, 1, "{v:?}");
    }

    /// librdkafka may report a retried batch after a later one; only the
    /// offsets' order against the seqs counts.
    #[test]
    fn acknowledgements_reported_out_of_send_order() {
        let (_, v) = check(
            &history(&[(0, 0), (2, 2), (1, 1), (3, 3)]),
            &log(&[(0, 0), (1, 1), (2, 2), (3, 3)]),
            &[],
        );
        assert!(v.is_empty(), "{v:?}");
        let (c, v) = check(
            &history(&[(0, 0), (1, 2), (2, 1)]),
            &log(&[(0, 0), (1, 2), (2, 1)]),
            &[],
        );
        assert_eq!((c.reordered, c.misplaced, c.lost), (2, 0, 0), "{v:?}");
    }

    /// Loss, duplication and reordering are each counted.
    #[test]
    fn violations() {
        let (c, v) = check(
            &history(&[(0, 0), (1, 1), (2, 2)]),
            &log(&[(0, 0), (1, 2), (2, 0)]),
            &[],
        );
        assert_eq!(
            (c.lost, c.duplicated, c.reordered, c.misplaced),
            (1, 1, 1, 1)
        );
        assert_eq!(v.len(), 4, "one violation each: {v:?}");
        let (c, v) = check(&history(&[(0, 0), (1, 1)]), &log(&[(0, 0)]), &[1..2, 7..9]);
        assert!(v.is_empty());
        assert_eq!(c.lost_allowed, 1);
    }
}
