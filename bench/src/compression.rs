//! `sluice-bench compression`: what each codec buys on realistic data, and how
//! much more it buys when a whole batch is compressed instead of each message.
//!
//! Batches are the messages concatenated with a 4-byte length prefix each, a
//! stand-in for Kafka's record framing inside a compressed batch. Speeds are
//! raw (uncompressed) bytes per second on one core. The through-the-broker
//! rows are made by `codec_runs` and only carried in [`CompressionResult`].

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use crate::codec_runs::BrokerCodecRow;
use crate::datasets;
use crate::report::Table;
use crate::stats::mib;

pub const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
/// Messages per built-in dataset: four batches at the largest batch size.
pub const DATASET_MESSAGES: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "codec", content = "level")]
pub enum Codec {
    None,
    Gzip(u32),
    Snappy,
    Lz4,
    Zstd(i32),
}

impl Codec {
    pub const ALL: [Codec; 10] = [
        Codec::None,
        Codec::Gzip(1),
        Codec::Gzip(6),
        Codec::Gzip(9),
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd(1),
        Codec::Zstd(3),
        Codec::Zstd(9),
        Codec::Zstd(19),
    ];

    pub fn label(self) -> String {
        match self {
            Codec::None => "none".into(),
            Codec::Gzip(l) => format!("gzip-{l}"),
            Codec::Snappy => "snappy".into(),
            Codec::Lz4 => "lz4".into(),
            Codec::Zstd(l) => format!("zstd-{l}"),
        }
    }

    pub fn compress(self, input: &[u8]) -> Result<Vec<u8>> {
        Ok(match self {
            Codec::None => input.to_vec(),
            Codec::Gzip(level) => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                e.write_all(input)?;
                e.finish()?
            }
            Codec::Snappy => snap::raw::Encoder::new().compress_vec(input)?,
            Codec::Lz4 => {
                // The LZ4 frame format, as Kafka uses.
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(input)?;
                e.finish()?
            }
            Codec::Zstd(level) => zstd::bulk::compress(input, level)?,
        })
    }

    pub fn decompress(self, input: &[u8], raw_len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(raw_len);
        match self {
            Codec::None => out.extend_from_slice(input),
            Codec::Gzip(_) => {
                flate2::read::GzDecoder::new(input).read_to_end(&mut out)?;
            }
            Codec::Snappy => out = snap::raw::Decoder::new().decompress_vec(input)?,
            Codec::Lz4 => {
                lz4_flex::frame::FrameDecoder::new(input).read_to_end(&mut out)?;
            }
            Codec::Zstd(_) => out = zstd::bulk::decompress(input, raw_len)?,
        }
        Ok(out)
    }
}

/// A named list of messages.
pub struct Dataset {
    pub name: String,
    pub messages: Vec<Vec<u8>>,
}

pub fn builtin_datasets(messages: usize) -> Vec<Dataset> {
    let d = |name: &str, messages| Dataset {
        name: name.into(),
        messages,
    };
    vec![
        d("json_events", datasets::json_events(messages, 1)),
        d("log_lines", datasets::log_lines(messages, 2)),
        d("repetitive_text", datasets::repetitive_text(messages, 3)),
        d("random_bytes", datasets::random_bytes(messages, 4)),
    ]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub dataset: String,
    #[serde(flatten)]
    pub codec: Codec,
    pub codec_label: String,
    pub batch_messages: usize,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    /// raw / compressed.
    pub ratio: f64,
    pub compress_mb_s: f64,
    pub decompress_mb_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressionResult {
    pub harness_version: String,
    /// Each speed is measured for at least this long.
    pub min_secs: f64,
    pub rows: Vec<Row>,
    /// How the results were made, and what was not measured.
    pub notes: Vec<String>,
    /// Produce/consume through a broker per codec (`--spawn`, `--target`);
    /// empty when no broker was given.
    #[serde(default)]
    pub broker_runs: Vec<BrokerCodecRow>,
}

/// Messages framed and grouped `batch` at a time.
fn batches(messages: &[Vec<u8>], batch: usize) -> Vec<Vec<u8>> {
    messages
        .chunks(batch)
        .map(|chunk| {
            let mut b = Vec::with_capacity(chunk.iter().map(|m| m.len() + 4).sum());
            for m in chunk {
                b.extend_from_slice(&(m.len() as u32).to_le_bytes());
                b.extend_from_slice(m);
            }
            b
        })
        .collect()
}

/// Runs `f` over all inputs repeatedly for at least `min`; returns passes/s.
fn passes_per_sec(min: Duration, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    let mut passes = 0u64;
    while passes == 0 || start.elapsed() < min {
        f()?;
        passes += 1;
    }
    Ok(passes as f64 / start.elapsed().as_secs_f64())
}

pub fn measure_one(d: &Dataset, codec: Codec, batch: usize, min: Duration) -> Result<Row> {
    let inputs = batches(&d.messages, batch);
    let raw: u64 = inputs.iter().map(|b| b.len() as u64).sum();
    let compressed: Vec<Vec<u8>> = inputs
        .iter()
        .map(|b| codec.compress(b))
        .collect::<Result<_>>()?;
    for (c, b) in compressed.iter().zip(&inputs) {
        ensure!(
            &codec.decompress(c, b.len())? == b,
            "{} round trip failed",
            codec.label()
        );
    }
    let packed: u64 = compressed.iter().map(|c| c.len() as u64).sum();
    let cps = passes_per_sec(min, || {
        for b in &inputs {
            std::hint::black_box(codec.compress(b)?);
        }
        Ok(())
    })?;
    let dps = passes_per_sec(min, || {
        for (c, b) in compressed.iter().zip(&inputs) {
            std::hint::black_box(codec.decompress(c, b.len())?);
        }
        Ok(())
    })?;
    Ok(Row {
        dataset: d.name.clone(),
        codec,
        codec_label: codec.label(),
        batch_messages: batch,
        raw_bytes: raw,
        compressed_bytes: packed,
        ratio: raw as f64 / packed.max(1) as f64,
        compress_mb_s: mib(cps * raw as f64),
        decompress_mb_s: mib(dps * raw as f64),
    })
}

/// Every codec at every batch size on every dataset; `tick` after each row.
pub fn study(
    sets: &[Dataset],
    min: Duration,
    mut tick: impl FnMut(&Row),
) -> Result<CompressionResult> {
    let mut rows = Vec::new();
    for d in sets {
        for codec in Codec::ALL {
            for batch in BATCH_SIZES {
                let row = measure_one(d, codec, batch, min)?;
                tick(&row);
                rows.push(row);
            }
        }
    }
    Ok(CompressionResult {
        harness_version: env!("CARGO_PKG_VERSION").into(),
        min_secs: min.as_secs_f64(),
        rows,
        notes: Vec::new(),
        broker_runs: Vec::new(),
    })
}

/// Rows per dataset and codec: ratio per batch size, then speeds at the
/// largest batch.
pub fn table(r: &CompressionResult) -> Table {
    let mut header = vec!["dataset".to_string(), "codec".to_string()];
    header.extend(BATCH_SIZES.iter().map(|b| format!("ratio@{b}")));
    header.push(format!("comp MB/s@{}", BATCH_SIZES[3]));
    header.push(format!("decomp MB/s@{}", BATCH_SIZES[3]));
    let mut rows = Vec::new();
    for group in r.rows.chunks(BATCH_SIZES.len()) {
        let mut row = vec![group[0].dataset.clone(), group[0].codec_label.clone()];
        row.extend(group.iter().map(|x| format!("{:.2}", x.ratio)));
        let last = group.last().expect("chunks are non-empty");
        row.push(speed(last.compress_mb_s));
        row.push(speed(last.decompress_mb_s));
        rows.push(row);
    }
    Table { header, rows }
}

/// Slow codecs keep a decimal so they do not read as zero.
fn speed(mb_s: f64) -> String {
    if mb_s < 10.0 {
        format!("{mb_s:.1}")
    } else {
        format!("{mb_s:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data = datasets::json_events(50, 1).concat();
        for codec in Codec::ALL {
            let c = codec.compress(&data).unwrap();
            assert_eq!(
                codec.decompress(&c, data.len()).unwrap(),
                data,
                "{}",
                codec.label()
            );
        }
    }

    #[test]
    fn whole_batches_compress_better_than_single_messages() {
        let d = Dataset {
            name: "json".into(),
            messages: datasets::json_events(200, 1),
        };
        let one = measure_one(&d, Codec::Zstd(3), 1, Duration::ZERO).unwrap();
        let hundred = measure_one(&d, Codec::Zstd(3), 100, Duration::ZERO).unwrap();
        assert_eq!(one.raw_bytes, hundred.raw_bytes);
        assert!(
            hundred.ratio > 1.5 * one.ratio,
            "{} vs {}",
            hundred.ratio,
            one.ratio
        );
        let random = Dataset {
            name: "random".into(),
            messages: datasets::random_bytes(20, 1),
        };
        assert!(
            measure_one(&random, Codec::Lz4, 10, Duration::ZERO)
                .unwrap()
                .ratio
                < 1.01
        );
    }

    #[test]
    fn study_table_has_a_row_per_dataset_and_codec() {
        let sets = vec![Dataset {
            name: "logs".into(),
            messages: datasets::log_lines(20, 1),
        }];
        let mut ticks = 0;
        let r = study(&sets, Duration::ZERO, |_| ticks += 1).unwrap();
        assert_eq!(ticks, Codec::ALL.len() * BATCH_SIZES.len());
        let t = table(&r);
        assert_eq!(t.rows.len(), Codec::ALL.len());
        assert_eq!(t.rows[0][1], "none");
        assert_eq!(t.rows[0][2], "1.00");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["rows"][4]["codec"], "gzip");
        assert_eq!(json["rows"][4]["level"], 1);
        // Results written before broker runs existed still load.
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("broker_runs");
        let back: CompressionResult = serde_json::from_value(old).unwrap();
        assert_eq!(back, r);
    }
}
