//! The Kafka v2 record batch format, parsed and validated without copying.
//!
//! `record` knows nothing about files or the network: it turns byte slices
//! into checked headers and back. The storage layer and the produce handler
//! both rely on [`validate_batches`] before any byte reaches the log.

mod batch;
pub mod build;
mod control;
mod error;
pub mod kv;
mod records;
mod validate;
mod varint;

pub use batch::*;
pub use control::{build_marker, parse_marker, Marker};
pub use error::RecordError;
pub use records::{first_offset_at_or_after_timestamp, Record, Records};
pub use validate::{validate_batches, BatchInfo, DeltaSpan, Validated};
