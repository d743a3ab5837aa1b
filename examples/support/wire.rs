//! Raw Kafka requests for the benchmarks that drive a broker without a
//! client library (`fetch_bench`, `wide_fetch`), and the broker process's
//! CPU time they report against.

// Each benchmark includes this file with `#[path]` and uses a part of it.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

/// `req` as a size-prefixed request frame.
pub fn frame<R: Request>(
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    req: &R,
) -> Vec<u8> {
    let key = ApiKey::try_from(R::KEY).expect("a known key");
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)))
        .encode(&mut body, key.request_header_version(version))
        .expect("encode header");
    req.encode(&mut body, version).expect("encode request");
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out
}

/// Reads one response frame (without its size) into `buf`.
pub fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("read response size");
    buf.resize(i32::from_be_bytes(size) as usize, 0);
    s.read_exact(buf).expect("read response");
}

/// utime + stime of a live process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line, 12 and 13 after the name.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}
