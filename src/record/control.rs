//! Transaction markers: the control batches a transaction coordinator
//! writes to every partition of a transaction when it commits or aborts.
//!
//! A marker is a v2 batch with the control and transactional attributes,
//! the producer's id and epoch, no sequence, and one record whose key is
//! (version: i16 = 0, type: i16 = 0 abort / 1 commit) and whose value is
//! (version: i16 = 0, coordinator epoch: i32), as Kafka's EndTransactionMarker.

use bytes::Bytes;

use super::build::build_batch;
use super::*;

const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;
const MARKER_VERSION: i16 = 0;

/// What a marker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The marker batch ending producer `producer_id`'s transaction.
pub fn build_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    timestamp_ms: i64,
) -> Bytes {
    let kind = if marker.commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    let mut key = MARKER_VERSION.to_be_bytes().to_vec();
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = MARKER_VERSION.to_be_bytes().to_vec();
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let batch = build_batch(0, &[(Some(&key[..]), Some(&value[..]), timestamp_ms, &[])]);
    let mut out = batch.to_vec();
    let attributes = ATTR_CONTROL | ATTR_TRANSACTIONAL;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    out[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    out[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
        .copy_from_slice(&producer_epoch.to_be_bytes());
    recompute_crc(&mut out);
    Bytes::from(out)
}

/// The marker in a whole control batch; `None` if it holds no readable one
/// (an unknown control type is not a marker).
pub fn parse_marker(batch: &[u8]) -> Option<Marker> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.is_compressed() || batch.len() < header.total_len() {
        return None;
    }
    let section = &batch[BATCH_HEADER_LEN..header.total_len()];
    let record = Records::new(section, header.records_count).next()?.ok()?;
    let key = record.key?;
    if key.len() < 4 {
        return None;
    }
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        CONTROL_ABORT => false,
        CONTROL_COMMIT => true,
        _ => return None,
    };
    let coordinator_epoch = record
        .value
        .filter(|v| v.len() >= 6)
        .map_or(-1, |v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]));
    Some(Marker {
        commit,
        coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_validate() {
        for commit in [true, false] {
            let marker = Marker {
                commit,
                coordinator_epoch: 7,
            };
            let batch = build_marker(42, 3, marker, 1000);
            let header = BatchHeader::parse(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(header.base_sequence, -1);
            crate::record::validate_batches(&batch, 1 << 20).unwrap();
            assert_eq!(parse_marker(&batch), Some(marker));
        }
        let plain = build_batch(0, &[(Some(&b"k"[..]), None, 1, &[])]);
        assert_eq!(parse_marker(&plain), None);
    }
}
