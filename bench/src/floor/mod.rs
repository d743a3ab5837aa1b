//! The floor: a Kafka-API broker that does the least a broker can. It keeps
//! each partition's newest batches in memory, writes nothing to disk (with
//! `--log-dir`, only an append per produced partition: `disk`) and answers
//! every request the moment it has read it (a fetch waits only for its
//! `min_bytes`, woken by the next append).
//!
//! It is the latency floor of a run: the same clients, workload and machine
//! against a broker with no storage, no replication and no checks, so a
//! broker's latency can be read as a ratio against what the clients and the
//! machine cost on their own. It serves plain and idempotent producers and
//! `assign()` consumers; groups and transactions are not its business.
//!
//! One thread per connection, blocking I/O: the clients of a run hold a
//! handful of connections, and a connection answers in request order anyway.

mod answers;
mod disk;
mod store;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use answers::Answers;
use disk::Disk;

/// The line `sluice-bench` waits for, as for a spawned Sluice.
pub use crate::spawn::READY_PREFIX;

/// Connections beyond this are closed at once.
const CONNECTIONS_MAX: usize = 1024;
/// A request frame larger than this closes its connection, as Sluice's
/// `socket_request_max_bytes` does.
const FRAME_BYTES_MAX: usize = 100 << 20;

/// Serves on `listen` until the process is killed; with `log_dir`, every
/// produced partition's bytes are also written to a file there (`disk`).
pub fn serve(listen: SocketAddr, log_dir: Option<PathBuf>) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    let answers = Arc::new(Answers::new(local, log_dir.map(Disk::new)));
    let open = Arc::new(AtomicUsize::new(0));
    println!("{READY_PREFIX}{local}");
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("floor: accept: {e}");
                continue;
            }
        };
        if open.fetch_add(1, Relaxed) >= CONNECTIONS_MAX {
            open.fetch_sub(1, Relaxed);
            eprintln!("floor: more than {CONNECTIONS_MAX} connections; closing the newest");
            continue;
        }
        let (answers, open) = (answers.clone(), open.clone());
        std::thread::spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(e) = serve_connection(stream, &answers) {
                eprintln!("floor: connection {peer:?} closed: {e:#}");
            }
            open.fetch_sub(1, Relaxed);
        });
    }
    Ok(())
}

/// Reads requests and writes their answers, in order, until the client
/// closes the connection or sends a frame it cannot parse.
fn serve_connection(mut stream: TcpStream, answers: &Answers) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut out = BytesMut::new();
    while let Some(frame) = read_frame(&mut stream)? {
        out.clear();
        if answer(frame, answers, &mut out)? {
            stream.write_all(&out)?;
        }
    }
    Ok(())
}

/// `None` at a clean end of stream.
fn read_frame(stream: &mut TcpStream) -> Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    let Some(size) = usize::try_from(size)
        .ok()
        .filter(|s| (4..=FRAME_BYTES_MAX).contains(s))
    else {
        bail!("request frame of {size} bytes");
    };
    let mut frame = vec![0u8; size];
    stream.read_exact(&mut frame)?;
    Ok(Some(frame.into()))
}

/// Decodes one request and encodes its answer, size first, into `out`;
/// false when the request has no answer (acks=0).
fn answer(mut frame: Bytes, answers: &Answers, out: &mut BytesMut) -> Result<bool> {
    let key = (&frame[..]).get_i16();
    let version = (&frame[2..]).get_i16();
    let Ok(api) = ApiKey::try_from(key) else {
        bail!("unknown api key {key}");
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .with_context(|| format!("{api:?} v{version} header"))?;
    let (response, version) = if api == ApiKey::ApiVersions {
        answers.api_versions(version)
    } else {
        if !answers::supports(api, version) {
            bail!("{api:?} v{version} is not served");
        }
        let request = RequestKind::decode(api, &mut frame, version)
            .with_context(|| format!("{api:?} v{version}"))?;
        match answers.answer(request) {
            Some(r) => (r, version),
            None => return Ok(false),
        }
    };
    out.extend_from_slice(&[0; 4]);
    let mut response_header = ResponseHeader::default();
    response_header.correlation_id = header.correlation_id;
    response_header.encode(out, api.response_header_version(version))?;
    response.encode(out, version)?;
    let size = i32::try_from(out.len() - 4).context("answer over 2 GiB")?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(true)
}
