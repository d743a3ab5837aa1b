//! A produce-only client that speaks the Kafka protocol itself: its
//! requests are encoded once and sent again with a new correlation id, so
//! the client spends almost nothing per message and a two-core machine can
//! find the broker's ingest ceiling instead of librdkafka's.
//!
//! Each connection keeps `in_flight` requests outstanding (Kafka answers in
//! request order) and checks every partition's error code in the answers.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::datasets::SplitMix64;

/// Produce v7: batches of record format v2, non-flexible, which every
/// broker since Kafka 2.1 accepts.
const PRODUCE_VERSION: i16 = 7;
/// The correlation id sits after the size, api key and api version.
const CORRELATION_AT: usize = 4 + 2 + 2;
/// An answer larger than this is not a produce answer to our requests.
const RESPONSE_BYTES_MAX: usize = 16 << 20;
/// How long one answer may take before the connection is given up.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The broker's own wait for acks=all before it answers with a timeout.
const ACK_TIMEOUT_MS: i32 = 30_000;

/// A connection to `addr` for requests of our own: no Nagle delay, and
/// each read and write bounded by [`IO_TIMEOUT`].
pub fn connect(addr: &str) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// What one request writes: a batch of `records` values to each partition.
#[derive(Debug, Clone)]
pub struct RequestShape {
    pub topic: String,
    pub partitions: Vec<i32>,
    pub records: usize,
    pub value_bytes: usize,
    /// Kafka's acks: 1 or -1 (0 has no answer to count).
    pub acks: i16,
}

impl RequestShape {
    /// The values one request of this shape carries, in bytes.
    pub fn value_bytes_total(&self) -> u64 {
        (self.partitions.len() * self.records * self.value_bytes) as u64
    }
}

/// A request frame ready to send but for its correlation id.
pub struct Frame {
    bytes: Vec<u8>,
    /// Records it carries, over all partitions.
    pub records: u64,
    /// Record batch bytes it carries.
    pub batch_bytes: u64,
}

impl Frame {
    /// Encodes one request of `shape`, its values from `seed`.
    pub fn encode(shape: &RequestShape, seed: u64) -> Result<Frame> {
        assert!(shape.acks != 0, "acks=0 is never answered");
        let mut rng = SplitMix64::new(seed);
        let mut batch_bytes = 0u64;
        let mut data = Vec::with_capacity(shape.partitions.len());
        for &p in &shape.partitions {
            let batch = batch(shape, &mut rng)?;
            batch_bytes += batch.len() as u64;
            data.push(
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(batch)),
            );
        }
        let request = ProduceRequest::default()
            .with_acks(shape.acks)
            .with_timeout_ms(ACK_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(shape.topic.clone())))
                .with_partition_data(data)]);
        let bytes = request_frame(
            ApiKey::Produce,
            PRODUCE_VERSION,
            "sluice-bench-ingest",
            0,
            &request,
        )?;
        Ok(Frame {
            bytes,
            records: (shape.records * shape.partitions.len()) as u64,
            batch_bytes,
        })
    }
}

/// One request as it goes on the wire: its size, the header (the
/// correlation id at [`CORRELATION_AT`], for a resend to change) and the
/// body.
pub fn request_frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    client_id: &'static str,
    correlation: i32,
    request: &R,
) -> Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut body = BytesMut::new();
    header.encode(&mut body, key.request_header_version(version))?;
    request.encode(&mut body, version)?;
    let mut bytes = Vec::with_capacity(body.len() + 4);
    bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// One record batch of `shape.records` random values, uncompressed.
fn batch(shape: &RequestShape, rng: &mut SplitMix64) -> Result<Bytes> {
    let records: Vec<Record> = (0..shape.records)
        .map(|i| {
            let mut value = vec![0u8; shape.value_bytes];
            rng.fill(&mut value);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch wherever offset minus
                // sequence changes; without a producer id brokers ignore
                // the sequence.
                sequence: i as i32,
                timestamp: 0,
                key: None,
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

/// One connection's pipeline of produce requests.
pub struct Connection {
    stream: TcpStream,
    in_flight: VecDeque<(i32, usize, Instant)>,
    next_correlation: i32,
    response: Vec<u8>,
}

/// An answered request.
pub struct Answer {
    /// Index of the frame it answered.
    pub frame: usize,
    pub sent: Instant,
    /// The lowest and highest base offset its partitions were given.
    pub base_offsets: (i64, i64),
}

impl Connection {
    pub fn open(addr: &str) -> Result<Connection> {
        let stream = connect(addr)?;
        Ok(Connection {
            stream,
            in_flight: VecDeque::new(),
            next_correlation: 0,
            response: Vec::new(),
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Sends `frames[index]` under the next correlation id.
    pub fn send(&mut self, frames: &mut [Frame], index: usize) -> Result<()> {
        let id = self.next_correlation;
        self.next_correlation = id.wrapping_add(1);
        let bytes = &mut frames[index].bytes;
        bytes[CORRELATION_AT..CORRELATION_AT + 4].copy_from_slice(&id.to_be_bytes());
        self.stream.write_all(bytes).context("sending a produce")?;
        self.in_flight.push_back((id, index, Instant::now()));
        Ok(())
    }

    /// Reads the oldest request's answer; any partition error fails it.
    pub fn receive(&mut self) -> Result<Answer> {
        let Some((id, frame, sent)) = self.in_flight.pop_front() else {
            bail!("no request in flight");
        };
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .context("reading a produce answer")?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_BYTES_MAX {
            bail!("produce answer of {size} bytes");
        }
        self.response.resize(size as usize, 0);
        self.stream
            .read_exact(&mut self.response)
            .context("reading a produce answer")?;
        let got = i32::from_be_bytes(self.response[..4].try_into().expect("4 bytes"));
        if got != id {
            bail!("answer to correlation id {got}, expected {id}");
        }
        // Produce v7 answers with response header v0: the id alone.
        let mut body = Bytes::copy_from_slice(&self.response[4..]);
        let answer = ProduceResponse::decode(&mut body, PRODUCE_VERSION)?;
        let mut base_offsets = (i64::MAX, i64::MIN);
        for t in &answer.responses {
            for p in &t.partition_responses {
                base_offsets = (
                    base_offsets.0.min(p.base_offset),
                    base_offsets.1.max(p.base_offset),
                );
                if p.error_code != 0 {
                    bail!(
                        "{} partition {}: error code {}",
                        t.name.0.as_str(),
                        p.index,
                        p.error_code
                    );
                }
            }
        }
        Ok(Answer {
            frame,
            sent,
            base_offsets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    /// A frame is a size-prefixed Produce whose batches decode to the
    /// values asked for.
    #[test]
    fn frames_decode_as_produce_requests() {
        let shape = RequestShape {
            topic: "t".into(),
            partitions: vec![0, 3],
            records: 4,
            value_bytes: 100,
            acks: -1,
        };
        let f = Frame::encode(&shape, 7).unwrap();
        assert_eq!(f.records, 8);
        let size = i32::from_be_bytes(f.bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(size + 4, f.bytes.len());
        let mut body = Bytes::copy_from_slice(&f.bytes[4..]);
        let header = RequestHeader::decode(
            &mut body,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )
        .unwrap();
        assert_eq!(header.request_api_version, PRODUCE_VERSION);
        let request = ProduceRequest::decode(&mut body, PRODUCE_VERSION).unwrap();
        assert_eq!(request.acks, -1);
        let data = &request.topic_data[0].partition_data;
        assert_eq!(data.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 3]);
        let mut records = data[1].records.clone().unwrap();
        let set = RecordBatchDecoder::decode(&mut records).unwrap();
        assert_eq!(set.records.len(), 4);
        assert!(records.is_empty(), "one batch per partition");
        assert!(set
            .records
            .iter()
            .all(|r| r.value.as_ref().unwrap().len() == 100));
    }
}
