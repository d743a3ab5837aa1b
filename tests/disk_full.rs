//! A full disk (issue 12): the broker answers KAFKA_STORAGE_ERROR and keeps
//! nothing of the refused write, goes on serving reads and other
//! connections, logs the full log dir a bounded number of times, takes
//! writes again at the next offsets once space returns, and a restart
//! (clean or kill -9, while full or after) reads back exactly what was
//! acknowledged. The data dir is a small tmpfs this test mounts (the suite
//! runs as root; without the right to mount, the test fails).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::raw::{str_bytes, topic_name, RawClient};
use common::*;
use kafka_protocol::messages::{offset_commit_request, offset_fetch_request};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetFetchRequest};

const KAFKA_STORAGE_ERROR: i16 = 56;
/// The data dir's filesystem: room for the broker's files and some batches.
const DISK_BYTES: u64 = 24 << 20;
/// What the filler leaves free: a few batches, so the last one that fits
/// nothing is cut mid-write.
const HEADROOM_BYTES: u64 = 64 << 10;
/// Bytes of each record value; one record per batch.
const VALUE_BYTES: usize = 20_000;
/// Produces tried while the disk fills, at most.
const FILLING_PRODUCES_MAX: usize = 64;
/// Produces refused in a row to check the log line stays bounded.
const REFUSED_PRODUCES: usize = 40;
/// The broker logs its full log dir at most once per this many seconds.
const FULL_LOG_LINE_INTERVAL_SECS: u64 = 10;
/// The log line the broker writes when its log dir is full.
const FULL_LOG_LINE: &str = "log dir is full";
/// ... and the one when writes go through again.
const WRITABLE_LOG_LINE: &str = "log dir writable again";
const TOPIC: &str = "full";
const PARTITIONS: i32 = 2;
const GROUP: &str = "full-group";

/// A tmpfs mounted for the test, unmounted however the test ends.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "the disk-full test mounts a tmpfs and needs root (CAP_SYS_ADMIN): mount {} failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Fills the filesystem up to `leave` free bytes with a file of its own.
    fn fill(&self, leave: u64) -> Filler {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 1 << 20];
        let chunks_max = DISK_BYTES / chunk.len() as u64 + 2;
        let mut full = false;
        for _ in 0..chunks_max {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                full = true;
                break;
            }
        }
        assert!(full, "a {DISK_BYTES} byte tmpfs filled up");
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(leave)).unwrap();
        Filler { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it (a broker being killed): detach it.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The file that holds the space; deleting it is "space returns".
struct Filler {
    path: PathBuf,
}

impl Filler {
    /// Takes whatever space is left, so no new page can be had: every
    /// write that needs one fails (a tiny one may still land in the last
    /// page of a segment file).
    fn top_up(&self) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .unwrap();
        let page = [0x5au8; 4096];
        for _ in 0..HEADROOM_BYTES / page.len() as u64 + 2 {
            if let Err(e) = file.write_all(&page) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "topping up: {e}");
                return;
            }
        }
        panic!("the filler took {HEADROOM_BYTES} more bytes and the disk is still not full");
    }

    fn remove(self) {
        std::fs::remove_file(&self.path).unwrap();
    }
}

/// A record value that says which batch it is in, so a batch out of place
/// shows in a byte comparison.
fn value(tag: u32) -> Vec<u8> {
    (0..VALUE_BYTES)
        .map(|i| (tag as usize * 31 + i) as u8)
        .collect()
}

/// One batch of one record: key `tag`, value [`value`]`(tag)`.
fn batch(tag: u32) -> Bytes {
    let (key, value) = (tag.to_be_bytes(), value(tag));
    let specs = [(Some(&key[..]), Some(&value[..]), now_ms(), &[][..])];
    sluice::record::build::build_batch(0, &specs)
}

/// What was acknowledged, per partition: (base offset, tag, batch bytes).
struct Acked {
    batches: BTreeMap<i32, Vec<(i64, u32, Bytes)>>,
    /// The partitionLeaderEpoch the log stamps: none (the client's -1) on
    /// a single node, the leader's epoch in a cluster.
    leader_epoch: i32,
}

impl Acked {
    fn new(leader_epoch: i32) -> Acked {
        Acked {
            batches: BTreeMap::new(),
            leader_epoch,
        }
    }

    fn next_offset(&self, partition: i32) -> i64 {
        self.batches
            .get(&partition)
            .and_then(|b| b.last())
            .map_or(0, |(base, _, _)| base + 1)
    }

    fn push(&mut self, partition: i32, base: i64, tag: u32, batch: Bytes) {
        assert_eq!(
            base,
            self.next_offset(partition),
            "offsets follow what was acknowledged"
        );
        self.batches
            .entry(partition)
            .or_default()
            .push((base, tag, batch));
    }

    fn count(&self, partition: i32) -> usize {
        self.batches.get(&partition).map_or(0, Vec::len)
    }

    /// The log bytes the acknowledged batches make: each batch as sent,
    /// with the base offset and leader epoch the broker gave it (both
    /// outside the CRC).
    fn log_bytes(&self, partition: i32) -> Vec<u8> {
        let mut out = Vec::new();
        for (base, _, batch) in self.batches.get(&partition).into_iter().flatten() {
            let mut b = batch.to_vec();
            b[..8].copy_from_slice(&base.to_be_bytes());
            b[12..16].copy_from_slice(&self.leader_epoch.to_be_bytes());
            out.extend_from_slice(&b);
        }
        out
    }
}

/// Sum of the partition's `.log` file lengths on disk.
/// The whole batches in the partition's segment files: less than
/// [`log_file_bytes`] while the active segment runs past its batches (a
/// prefault's hole), which a refused write's cut takes away.
fn log_batch_bytes(broker: &Broker, partition: i32) -> u64 {
    broker
        .segment_files(TOPIC, partition)
        .iter()
        .map(|p| segment_batch_bytes(p).len() as u64)
        .sum()
}

fn log_file_bytes(broker: &Broker, partition: i32) -> u64 {
    broker
        .segment_files(TOPIC, partition)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Every batch byte of the partition, fetched from offset 0 on.
fn fetch_log_bytes(client: &mut RawClient, partition: i32, end: i64) -> Vec<u8> {
    const FETCHES_MAX: usize = 100;
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..FETCHES_MAX {
        if offset >= end {
            return out;
        }
        let response = client.fetch_one(TOPIC, partition, offset);
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch {TOPIC}/{partition} at {offset}");
        let records = p.records.clone().unwrap_or_default();
        assert!(
            !records.is_empty(),
            "fetch at {offset} below {end} is empty"
        );
        let mut at = 0;
        while at < records.len() {
            let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap());
            let total = 12 + len as usize;
            let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
            let last_delta = i32::from_be_bytes(records[at + 23..at + 27].try_into().unwrap());
            offset = base + i64::from(last_delta) + 1;
            at += total;
        }
        out.extend_from_slice(&records);
    }
    panic!("{FETCHES_MAX} fetches did not reach offset {end}");
}

/// Reads every partition back and compares it byte for byte with what
/// was acknowledged; ListOffsets agrees on both ends.
fn assert_log_is(broker: &Broker, acked: &Acked) {
    let mut client = RawClient::connect(&broker.bootstrap());
    for partition in 0..PARTITIONS {
        let end = acked.next_offset(partition);
        assert_eq!(client.log_end_offset(TOPIC, partition), end);
        assert_eq!(client.list_offset(TOPIC, partition, -2), 0);
        assert_eq!(
            fetch_log_bytes(&mut client, partition, end),
            acked.log_bytes(partition),
            "partition {partition} holds exactly the acknowledged batches"
        );
    }
}

fn commit(client: &mut RawClient, partition: i32, offset: i64) -> i16 {
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = topic_name(TOPIC);
    t.partitions = vec![p];
    let request = OffsetCommitRequest::default()
        .with_group_id(str_bytes(GROUP).into())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![t]);
    let response = client.call(8, &request);
    response.topics[0].partitions[0].error_code
}

fn committed(client: &mut RawClient, partition: i32) -> i64 {
    let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
    t.name = topic_name(TOPIC);
    t.partition_indexes = vec![partition];
    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
    g.group_id = str_bytes(GROUP).into();
    g.topics = Some(vec![t]);
    let response = client.call(8, &OffsetFetchRequest::default().with_groups(vec![g]));
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0);
    let p = &group.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.committed_offset
}

/// Produces to `partition` until the disk refuses; every acknowledged
/// batch is recorded. Returns how many were acknowledged here.
fn produce_until_refused(client: &mut RawClient, broker: &Broker, acked: &mut Acked) -> usize {
    let partition = 0;
    let mut taken = 0;
    for tag in 0..FILLING_PRODUCES_MAX as u32 {
        let on_disk = log_batch_bytes(broker, partition);
        let tag = 1000 + tag;
        let sent = batch(tag);
        let (code, base) = client.produce_batch(TOPIC, partition, sent.clone());
        match code {
            0 => {
                acked.push(partition, base, tag, sent);
                taken += 1;
            }
            KAFKA_STORAGE_ERROR => {
                assert_eq!(
                    log_file_bytes(broker, partition),
                    on_disk,
                    "nothing of the refused batch stays in the segment file"
                );
                return taken;
            }
            other => panic!("produce while filling: error {other}"),
        }
    }
    panic!("{FILLING_PRODUCES_MAX} produces of {VALUE_BYTES} bytes fit in {HEADROOM_BYTES} bytes");
}

fn log_lines(broker: &Broker, line: &str) -> usize {
    std::fs::read_to_string(broker.stderr_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(line))
        .count()
}

/// Produces `n` batches to each partition with acknowledgement.
fn produce_acked(client: &mut RawClient, acked: &mut Acked, n: u32, tag_base: u32) {
    for partition in 0..PARTITIONS {
        for i in 0..n {
            let tag = tag_base + partition as u32 * 100 + i;
            let sent = batch(tag);
            let (code, base) = client.produce_batch(TOPIC, partition, sent.clone());
            assert_eq!(code, 0, "produce to {partition} with room on the disk");
            acked.push(partition, base, tag, sent);
        }
    }
}

/// Writes past the space the data dir has, reads on, gets room back,
/// restarts: nothing refused is kept, nothing acknowledged is lost.
#[test]
fn a_full_disk_refuses_writes_serves_reads_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&root.path().join("data"), DISK_BYTES);
    // The broker's stderr goes next to the data dir, off the full disk.
    let metrics = ["--metrics-listen", "127.0.0.1:0"];
    let mut broker = Broker::start_in(&disk.dir, 2, &metrics);
    // Small segments: some refusals come from a roll (its indexes and
    // producer snapshot) rather than from the batch's own write.
    create_topic(
        &broker.bootstrap(),
        TOPIC,
        PARTITIONS,
        &[("segment.bytes", "50000")],
    );
    let mut client = RawClient::connect(&broker.bootstrap());
    let mut acked = Acked::new(-1);
    produce_acked(&mut client, &mut acked, 3, 0);
    assert_eq!(commit(&mut client, 0, 2), 0);

    let filled_at = std::time::Instant::now();
    let filler = disk.fill(HEADROOM_BYTES);
    let taken = produce_until_refused(&mut client, &broker, &mut acked);
    assert!(taken < FILLING_PRODUCES_MAX);
    filler.top_up();
    // Refused again and again: the log stays as it was, and the full log
    // dir is logged a bounded number of times.
    assert!(
        log_lines(&broker, FULL_LOG_LINE) >= 1,
        "the full log dir is logged"
    );
    for partition in 0..PARTITIONS {
        for i in 0..REFUSED_PRODUCES as u32 / 2 {
            let on_disk = log_batch_bytes(&broker, partition);
            let (code, _) = client.produce_batch(TOPIC, partition, batch(2000 + i));
            assert_eq!(code, KAFKA_STORAGE_ERROR);
            assert_eq!(log_file_bytes(&broker, partition), on_disk);
        }
    }
    // One line per interval at most (and one more for a slow machine
    // crossing an interval's edge), whatever the rate of refusals.
    let lines = log_lines(&broker, FULL_LOG_LINE);
    let allowed = 2 + (filled_at.elapsed().as_secs() / FULL_LOG_LINE_INTERVAL_SECS) as usize;
    assert!(
        lines <= allowed,
        "{lines} lines say the log dir is full after {REFUSED_PRODUCES} refusals"
    );
    assert!(broker.metric("sluice_storage_write_errors_total") >= REFUSED_PRODUCES as u64);
    // A librdkafka producer that does not retry hears the same.
    let mut config = producer_config(&broker.bootstrap());
    config
        .set("retries", "0")
        .set("message.timeout.ms", "10000");
    let (producer, context) = collecting_producer(&config);
    let refused_value = value(9999);
    let record = rdkafka::producer::BaseRecord::with_opaque_to(TOPIC, 0usize)
        .partition(1)
        .payload(&refused_value[..]);
    send_retrying(&producer, record);
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();
    let failed = context.failed.lock().unwrap().clone();
    assert_eq!(failed.len(), 1, "the record was refused");
    assert_eq!(
        failed[0].1.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::KafkaStorageError)
    );
    // Reads go on, on this connection and new ones, raw and librdkafka.
    assert_log_is(&broker, &acked);
    assert_eq!(committed(&mut client, 0), 2);
    let consumed = consume_all(
        &broker.bootstrap(),
        TOPIC,
        PARTITIONS,
        acked.count(0) + acked.count(1),
        Duration::from_secs(60),
    );
    for m in &consumed {
        use rdkafka::message::Message;
        let (_, tag, _) = &acked.batches[&m.partition()][m.offset() as usize];
        assert_eq!(
            m.key(),
            Some(&tag.to_be_bytes()[..]),
            "the record at its offset"
        );
        assert_eq!(m.payload(), Some(&value(*tag)[..]));
    }
    // The single-node broker writes no metadata log (it has none).
    assert!(!disk.dir.join("__cluster_metadata").exists());

    // Space returns: writes go on at the next offsets, commits too.
    filler.remove();
    produce_acked(&mut client, &mut acked, 2, 3000);
    assert_eq!(commit(&mut client, 0, 5), 0);
    assert_log_is(&broker, &acked);
    assert_eq!(log_lines(&broker, WRITABLE_LOG_LINE), 1);

    // A clean restart, then a crash: every acknowledged batch comes back.
    broker.restart();
    assert_log_is(&broker, &acked);
    assert_eq!(
        committed(&mut RawClient::connect(&broker.bootstrap()), 0),
        5
    );
    broker.kill9();
    broker.start_again();
    assert_log_is(&broker, &acked);
    broker.stop();
}

/// A broker killed while its disk is full, and started again still full,
/// serves what it had and refuses writes; once space returns it takes
/// them, and a clean restart while full loses nothing either.
#[test]
fn a_broker_restarted_on_a_full_disk_serves_reads() {
    let root = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&root.path().join("data"), DISK_BYTES);
    let mut broker = Broker::start_in(&disk.dir, 1, &[]);
    create_topic(&broker.bootstrap(), TOPIC, PARTITIONS, &[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let mut acked = Acked::new(-1);
    produce_acked(&mut client, &mut acked, 2, 0);
    let filler = disk.fill(HEADROOM_BYTES);
    produce_until_refused(&mut client, &broker, &mut acked);
    filler.top_up();

    broker.kill9();
    broker.start_again();
    assert_log_is(&broker, &acked);
    let mut client = RawClient::connect(&broker.bootstrap());
    let (code, _) = client.produce_batch(TOPIC, 1, batch(4000));
    assert_eq!(code, KAFKA_STORAGE_ERROR);
    broker.restart();
    assert_log_is(&broker, &acked);

    filler.remove();
    let mut client = RawClient::connect(&broker.bootstrap());
    produce_acked(&mut client, &mut acked, 1, 5000);
    broker.kill9();
    broker.start_again();
    assert_log_is(&broker, &acked);
    broker.stop();
}

/// Waits (bounded) until the restarted node leads every partition again:
/// in a cluster it serves once registered, and leads once the image says so.
fn wait_led(broker: &Broker) {
    const POLLS_MAX: usize = 600;
    let mut client = RawClient::connect(&broker.bootstrap());
    for partition in 0..PARTITIONS {
        let led = (0..POLLS_MAX).any(|_| {
            let response = client.call(7, &common::raw::list_offsets_request(TOPIC, partition, -1));
            let led = response.topics[0].partitions[0].error_code == 0;
            if !led {
                std::thread::sleep(Duration::from_millis(100));
            }
            led
        });
        assert!(led, "{TOPIC}/{partition} not led after {POLLS_MAX} polls");
    }
}

/// Bytes of the metadata log directory's files.
fn metadata_log_bytes(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir.join("__cluster_metadata"))
        .expect("a cluster node keeps a metadata log")
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// A one-voter cluster node on a full disk: produces and broker heartbeats
/// write nothing to the metadata log, so it serves on; a metadata write it
/// cannot make (a producer id block for InitProducerId) halts it with the
/// controller's exit status, as Kafka halts on a metadata log it cannot
/// write; started again with space, it has everything acknowledged.
#[test]
fn a_cluster_node_on_a_full_disk_halts_only_for_a_metadata_write() {
    const CONTROLLER_DIED_EXIT_CODE: i32 = 70;
    const HEARTBEAT_MS: u64 = 100;
    const HEARTBEATS_WHILE_FULL: u64 = 20;
    let root = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&root.path().join("data"), DISK_BYTES);
    let voters = format!("1@127.0.0.1:{}", common::cluster::free_port());
    let heartbeat = HEARTBEAT_MS.to_string();
    let args = [
        "--node-id",
        "1",
        "--controller-quorum-voters",
        &voters,
        "--broker-heartbeat-interval-ms",
        &heartbeat,
    ];
    let mut broker = Broker::start_in(&disk.dir, 1, &args);
    create_topic(&broker.bootstrap(), TOPIC, PARTITIONS, &[]);
    wait_led(&broker);
    let mut client = RawClient::connect(&broker.bootstrap());
    // The first leader of a new partition has epoch 0, stamped on appends.
    let mut acked = Acked::new(0);
    produce_acked(&mut client, &mut acked, 2, 0);

    let metadata_before = metadata_log_bytes(&disk.dir);
    let filler = disk.fill(HEADROOM_BYTES);
    produce_until_refused(&mut client, &broker, &mut acked);
    filler.top_up();
    for i in 0..HEARTBEATS_WHILE_FULL as u32 {
        let (code, _) = client.produce_batch(TOPIC, 1, batch(4000 + i));
        assert_eq!(code, KAFKA_STORAGE_ERROR);
        std::thread::sleep(Duration::from_millis(HEARTBEAT_MS));
    }
    assert_eq!(
        metadata_log_bytes(&disk.dir),
        metadata_before,
        "produces and heartbeats write no metadata"
    );
    assert_log_is(&broker, &acked);

    let init = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    if let Ok(response) = client.try_call(4, &init) {
        assert_ne!(
            response.error_code, 0,
            "no producer id without a metadata write"
        );
    }
    let status = broker
        .wait_exit(Duration::from_secs(60))
        .expect("the node halts once its metadata log cannot be written");
    assert_eq!(status.code(), Some(CONTROLLER_DIED_EXIT_CODE));
    assert!(log_lines(&broker, "the metadata quorum stopped on a fatal error") >= 1);

    filler.remove();
    broker.start_again();
    wait_led(&broker);
    assert_log_is(&broker, &acked);
    broker.stop();
}
