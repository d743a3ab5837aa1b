//! Kafka compatibility of config changes: IncrementalAlterConfigs
//! APPEND/SUBTRACT on list configs.

mod common;

use std::collections::BTreeMap;

use common::raw::{err, str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    incremental_alter_configs_request, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

/// Kafka's ConfigResource.Type values.
const TOPIC: i8 = 2;
/// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
/// Kafka's AlterConfigOp.OpType values.
const OP_SET: i8 = 0;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// Kafka error codes not in `raw::err`.
const INVALID_REQUEST: i16 = 42;

/// A topic's configs as DescribeConfigs v4 answers them: name -> (value, source).
fn describe(c: &mut RawClient, topic: &str) -> BTreeMap<String, (Option<String>, i8)> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(None)]);
    let resp = c.call(4, &req);
    assert_eq!(resp.results.len(), 1);
    let result = &resp.results[0];
    assert_eq!(result.error_code, err::NONE, "describing {topic}");
    result
        .configs
        .iter()
        .map(|e| {
            let value = e.value.as_ref().map(|v| v.to_string());
            (e.name.to_string(), (value, e.config_source))
        })
        .collect()
}

/// The topic's explicitly set configs (source TOPIC).
fn topic_set(c: &mut RawClient, topic: &str) -> BTreeMap<String, String> {
    describe(c, topic)
        .into_iter()
        .filter(|(_, (_, source))| *source == SOURCE_TOPIC)
        .map(|(k, (v, _))| (k, v.expect("a set config has a value")))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sends IncrementalAlterConfigs v1 for one topic with (key, op, value)
/// operations; returns its (error, message).
fn incremental(
    c: &mut RawClient,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(str_bytes(k))
                            .with_config_operation(*op)
                            .with_value(v.map(str_bytes))
                    })
                    .collect(),
            ),
    ]);
    let resp = c.call(1, &req);
    assert_eq!(resp.responses.len(), 1);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// `topic`'s cleanup.policy as DescribeConfigs reports it.
fn cleanup_policy(c: &mut RawClient, topic: &str) -> String {
    describe(c, topic)["cleanup.policy"]
        .0
        .clone()
        .expect("cleanup.policy has a value")
}

/// APPEND and SUBTRACT edit cleanup.policy as a list, starting from the
/// default; the last policy out leaves the empty list, which compacts
/// nothing (keyless records are taken again).
#[test]
fn incremental_append_and_subtract_edit_cleanup_policy() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "policy", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let key = "cleanup.policy";
    let steps = [
        (OP_APPEND, "compact", "delete,compact"),
        (OP_APPEND, "compact", "delete,compact"),
        (OP_SUBTRACT, "delete", "compact"),
        (OP_SUBTRACT, "delete", "compact"),
        (OP_APPEND, "delete,compact", "compact,delete"),
        (OP_SUBTRACT, "compact,delete", ""),
    ];
    for (op, value, expected) in steps {
        let (code, message) = incremental(&mut c, "policy", &[(key, op, Some(value))]);
        assert_eq!(code, err::NONE, "op {op} {value}: {message:?}");
        assert_eq!(
            cleanup_policy(&mut c, "policy"),
            expected,
            "op {op} {value}"
        );
    }
    let ts = now_ms();
    let keyless = sluice::record::build::build_batch(0, &[(None, Some(b"v".as_slice()), ts, &[])]);
    assert_eq!(c.produce_batch("policy", 0, keyless), (err::NONE, 0));
}

/// APPEND and SUBTRACT are refused on non-list and unknown configs, with
/// values a list cannot hold, and without a value; nothing changes.
#[test]
fn incremental_append_and_subtract_refusals() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "list-refusals", 1, &[("retention.ms", "1000")]);
    let mut c = RawClient::connect(&bs);
    let refused = [
        (("retention.ms", OP_APPEND, Some("5")), err::INVALID_CONFIG),
        (
            ("retention.ms", OP_SUBTRACT, Some("1000")),
            err::INVALID_CONFIG,
        ),
        (
            ("no.such.config", OP_APPEND, Some("x")),
            err::INVALID_CONFIG,
        ),
        (
            ("cleanup.policy", OP_APPEND, Some("archive")),
            err::INVALID_CONFIG,
        ),
        (("cleanup.policy", OP_APPEND, None), INVALID_REQUEST),
        (("cleanup.policy", 9, Some("compact")), INVALID_REQUEST),
    ];
    for (op, expected) in refused {
        let (code, message) = incremental(&mut c, "list-refusals", &[op]);
        assert_eq!(code, expected, "{op:?}: {message:?}");
        assert!(message.is_some(), "{op:?} says why");
    }
    let twice = [
        ("cleanup.policy", OP_APPEND, Some("compact")),
        ("cleanup.policy", OP_SET, Some("delete")),
    ];
    assert_eq!(
        incremental(&mut c, "list-refusals", &twice).0,
        INVALID_REQUEST
    );
    assert_eq!(
        topic_set(&mut c, "list-refusals"),
        owned(&[("retention.ms", "1000")])
    );
}
