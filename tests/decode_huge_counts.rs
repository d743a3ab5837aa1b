//! A request whose array count claims far more elements than its bytes hold
//! costs the broker's allocator address space, not memory. Found by the
//! `request_decode` fuzz target under the system allocator, where
//! kafka-protocol's `Vec::with_capacity(count)` asked for 9.6 GB and
//! libFuzzer stopped on it as out-of-memory.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

#[global_allocator]
static ALLOC: sluice::alloc::Allocator = sluice::alloc::Allocator;

/// Resident set size of this process, from /proc.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// DeleteGroups v1 whose 14-byte frame claims 0x12000400 group ids fails
/// to decode without committing memory.
#[test]
fn a_huge_array_count_fails_without_committing_memory() {
    let (key, version) = (ApiKey::DeleteGroups, 1);
    let mut buf = Bytes::from_static(&[
        0x00, 0x2a, 0x00, 0x01, // DeleteGroups v1
        0x24, 0x00, 0x00, 0x00, // correlation id
        0x00, 0x00, // client id ""
        0x12, 0x00, 0x04, 0x00, // groups_names: 301,990,912 of them
    ]);
    let before = rss_bytes();
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
    assert_eq!(header.request_api_key, key as i16);
    assert!(RequestKind::decode(key, &mut buf, version).is_err());
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "decoding committed {grown} bytes");
}
