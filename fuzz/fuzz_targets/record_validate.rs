//! `record::validate_batches`, the produce path's first check of a
//! partition's records. The first input byte picks the batch size bound and
//! whether the harness repairs each batch's CRC-32C before validating, so
//! the fuzzer reaches the header and record checks behind the CRC.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::record::{
    recompute_crc, validate_batches, BatchHeader, Records, BATCH_HEADER_LEN, LOG_OVERHEAD,
};

/// Repair the CRC of every whole batch (bit 0 of the mode byte).
const MODE_FIX_CRC: u8 = 1;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & MODE_FIX_CRC != 0 {
        fix_crcs(&mut buf);
    }
    // 64 B .. 1 MiB: small bounds make TooLarge reachable.
    let max = 64u32 << (u32::from(mode >> 1) % 15);
    let records = Bytes::from(buf);
    let Ok(infos) = validate_batches(&records, max) else {
        return;
    };
    let mut pos = 0;
    for info in &infos {
        assert_eq!(info.offset, pos, "batches are contiguous");
        assert!(info.total_len >= BATCH_HEADER_LEN && info.total_len as u64 <= u64::from(max));
        let batch = &records[pos..pos + info.total_len];
        let header = BatchHeader::parse(batch).expect("a validated batch parses");
        assert_eq!(header.total_len(), info.total_len);
        assert!(info.records_count > 0);
        if !header.is_compressed() {
            // What validation promised: exactly recordsCount records.
            let section = &batch[BATCH_HEADER_LEN..];
            let mut records = Records::new(section, info.records_count);
            let mut n = 0;
            for record in records.by_ref() {
                record.expect("a validated batch's records parse");
                n += 1;
            }
            assert_eq!(n, info.records_count);
            assert_eq!(records.remaining(), 0, "nothing follows the last record");
        }
        pos += info.total_len;
    }
    assert_eq!(pos, records.len());
});

/// Recomputes the CRC of each batch that fits in `buf`, walking batch by
/// batch as validation does.
fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= BATCH_HEADER_LEN {
        let len = i32::from_be_bytes(buf[pos + 8..pos + 12].try_into().unwrap());
        let Some(total) = usize::try_from(len).ok().map(|l| l + LOG_OVERHEAD) else {
            return;
        };
        if total < BATCH_HEADER_LEN || total > buf.len() - pos {
            return;
        }
        recompute_crc(&mut buf[pos..pos + total]);
        pos += total;
    }
}
