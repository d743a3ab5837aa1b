//! What the quota tests share: AlterClientQuotas and DescribeClientQuotas
//! on the wire, and a raw produce that reports its throttle. Not a test
//! target of its own (no main.rs).

#![allow(dead_code)]

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
    ProduceResponse,
};

use crate::common::raw::{err, produce_request, str_bytes, RawClient};
use crate::common::*;

pub const INVALID_REQUEST: i16 = 42;
pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_ANY: i8 = 2;
/// The client id the raw client sends (`common::raw::request_frame`).
pub const RAW_CLIENT_ID: &str = "sluice-raw-test";

/// An entity as (type, name); `None` is the default entity.
pub type Entity<'a> = Vec<(&'a str, Option<&'a str>)>;
/// An op as (key, value, remove).
pub type Op<'a> = (&'a str, f64, bool);

pub fn entry(entity: &Entity<'_>, ops: &[Op<'_>]) -> EntryData {
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(t))
                        .with_entity_name(n.map(str_bytes))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v, remove)| {
                    OpData::default()
                        .with_key(str_bytes(k))
                        .with_value(*v)
                        .with_remove(*remove)
                })
                .collect(),
        )
}

/// AlterClientQuotas v1: each entry's error code, in request order.
pub fn alter(c: &mut RawClient, entries: Vec<EntryData>, validate_only: bool) -> Vec<i16> {
    let req = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    c.call(1, &req)
        .entries
        .iter()
        .map(|e| e.error_code)
        .collect()
}

/// A described entity and its values, sorted, for comparisons.
pub type Described = Vec<(Vec<(String, Option<String>)>, Vec<(String, f64)>)>;

pub fn describe_raw(
    c: &mut RawClient,
    version: i16,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> DescribeClientQuotasResponse {
    let req = DescribeClientQuotasRequest::default()
        .with_components(
            components
                .iter()
                .map(|(t, m, name)| {
                    ComponentData::default()
                        .with_entity_type(str_bytes(t))
                        .with_match_type(*m)
                        .with_match(name.map(str_bytes))
                })
                .collect(),
        )
        .with_strict(strict);
    c.call(version, &req)
}

pub fn describe(
    c: &mut RawClient,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Described {
    let resp = describe_raw(c, 1, components, strict);
    assert_eq!(resp.error_code, err::NONE, "{:?}", resp.error_message);
    let mut out: Described = resp
        .entries
        .expect("entries")
        .iter()
        .map(|e| {
            let mut entity: Vec<_> = e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            entity.sort();
            let mut values: Vec<_> = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (entity, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn owned(entity: &Entity<'_>) -> Vec<(String, Option<String>)> {
    let mut e: Vec<_> = entity
        .iter()
        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
        .collect();
    e.sort();
    e
}

/// Sends `batch` bytes to partition 0 of `topic` with Produce v9; the
/// response's throttle_time_ms.
pub fn produce_throttle(c: &mut RawClient, topic: &str, value_bytes: usize) -> i32 {
    let record = OwnedRecord {
        key: None,
        value: Some(vec![b'q'; value_bytes]),
        timestamp: now_ms(),
        headers: Vec::new(),
    };
    let batch = build_owned_batch(&[record]);
    let resp: ProduceResponse = c.call(9, &produce_request(topic, 1, vec![(0, batch)]));
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        err::NONE
    );
    resp.throttle_time_ms
}
