//! Codec and recompression throughput on one core, on a 1 MB batch of
//! JSON log lines.
//!
//! `make bench-codecs` (or `cargo run --release --example codec_bench`)

use std::time::{Duration, Instant};

use sluice::compression::*;
use sluice::record::build::{build_batch, RecordSpec};
use sluice::record::BATCH_HEADER_LEN;

/// A ~1 MB batch of JSON-like log lines: compresses about as well as real
/// application records (3-6x).
fn log_batch() -> bytes::Bytes {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let levels = ["INFO", "WARN", "DEBUG", "ERROR"];
    let paths = [
        "/api/v1/orders",
        "/api/v1/users",
        "/healthz",
        "/api/v2/search",
    ];
    let values: Vec<Vec<u8>> = (0..4_000)
        .map(|i| {
            let r = next();
            format!(
                r#"{{"ts":{},"level":"{}","path":"{}","status":{},"latency_us":{},"user":"u{:08x}","req":"{:016x}","msg":"request {} served"}}"#,
                1_700_000_000_000u64 + i,
                levels[(r % 4) as usize],
                paths[(r >> 8) as usize % 4],
                200 + (r >> 16) % 5 * 100,
                (r >> 24) % 100_000,
                (r >> 32) as u32,
                next(),
                i
            )
            .into_bytes()
        })
        .collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|v| (None, Some(&v[..]), 1_700_000_000_000, &[][..]))
        .collect();
    build_batch(0, &specs)
}

/// MB/s of `bytes` per call of `f`, over at least `min_time`.
fn rate(bytes: usize, min_time: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < min_time {
        f();
        n += 1;
    }
    (bytes as f64 * n as f64) / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let batch = log_batch();
    let section = &batch[BATCH_HEADER_LEN..];
    let raw = section.len();
    let max = DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT;
    let t = Duration::from_millis(700);
    println!("records section: {raw} bytes, 4000 records");
    println!(
        "{:<10} {:>6} {:>8} {:>12} {:>12} {:>12}",
        "codec", "level", "ratio", "compress", "decompress", "validate"
    );
    let cases = [
        (Codec::Gzip, Some(1)),
        (Codec::Gzip, Some(6)),
        (Codec::Snappy, None),
        (Codec::Lz4, None),
        (Codec::Zstd, Some(1)),
        (Codec::Zstd, Some(3)),
        (Codec::Zstd, Some(9)),
    ];
    for (codec, level) in cases {
        let mut out = Vec::new();
        compress(codec, section, level, &mut out);
        let ratio = raw as f64 / out.len() as f64;
        let c = rate(raw, t, || {
            let mut o = Vec::new();
            compress(codec, section, level, &mut o);
            std::hint::black_box(o);
        });
        let d = rate(raw, t, || {
            std::hint::black_box(decompress(codec, &out, max).unwrap());
        });
        let compressed_batch = recompress_batch(&batch, codec, level, max).unwrap();
        let v = rate(raw, t, || {
            std::hint::black_box(validate_compressed(&compressed_batch, max).unwrap());
        });
        println!(
            "{:<10} {:>6} {:>8.2} {:>9.0} MB/s {:>7.0} MB/s {:>7.0} MB/s",
            codec.to_string(),
            level.map_or("-".into(), |l| l.to_string()),
            ratio,
            c,
            d,
            v
        );
    }
    println!("recompression (MB/s of uncompressed records in, one core):");
    let pairs = [
        (Codec::None, Codec::Lz4, None),
        (Codec::None, Codec::Zstd, Some(1)),
        (Codec::Snappy, Codec::Lz4, None),
        (Codec::Gzip, Codec::Lz4, None),
        (Codec::Zstd, Codec::Lz4, None),
        (Codec::Lz4, Codec::Zstd, Some(1)),
        (Codec::Snappy, Codec::Zstd, Some(1)),
        (Codec::Gzip, Codec::Zstd, Some(1)),
        (Codec::Lz4, Codec::Zstd, Some(3)),
        (Codec::Lz4, Codec::None, None),
        (Codec::Zstd, Codec::Gzip, Some(6)),
    ];
    for (from, to, level) in pairs {
        let source = recompress_batch(&batch, from, None, max).unwrap();
        let r = rate(raw, t, || {
            std::hint::black_box(recompress_batch(&source, to, level, max).unwrap());
        });
        println!(
            "  {from:>6} -> {to:<6} level {:>2}: {r:>6.0} MB/s",
            level.map_or("-".into(), |l| l.to_string())
        );
    }
}
