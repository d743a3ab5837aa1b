//! kcat, the command-line client operators reach for, as Debian ships it:
//! built on Debian's librdkafka (2.0), older than the one the other tests
//! link (the `rdkafka` crate's). `make test` installs it (`make kcat-deps`).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs kcat with `args`, `input` on its stdin; asserts it succeeded.
fn kcat(broker: &Broker, args: &[&str], input: &str) -> String {
    let mut child = Command::new("kcat")
        .arg("-b")
        .arg(broker.bootstrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed: run `make kcat-deps` (make test does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .expect("write kcat's stdin");
    let output: Output = child.wait_with_output().expect("kcat exits");
    assert!(
        output.status.success(),
        "kcat {args:?} failed: {}\n----- broker stderr -----\n{}",
        String::from_utf8_lossy(&output.stderr),
        broker.stderr_tail(30)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// kcat produces keyed lines with a header in each codec and reads them
/// back: every line once, with its key and header, each key in one
/// partition, offsets dense from 0; `-Q` finds offset 0 for time 0.
#[test]
fn kcat_produces_and_consumes_in_every_codec() {
    let broker = Broker::start(2);
    let count = 100;
    let input: String = (0..count).map(|i| format!("k{}:v{i}\n", i % 7)).collect();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("kcat-{codec}");
        create_topic(&broker.bootstrap(), &topic, 2, &[]);
        kcat(
            &broker,
            &["-P", "-t", &topic, "-K", ":", "-H", "via=kcat", "-z", codec],
            &input,
        );
        let out = kcat(
            &broker,
            &["-C", "-t", &topic, "-e", "-q", "-f", "%k|%s|%h|%p|%o\n"],
            "",
        );
        let mut values = Vec::new();
        let mut key_partition = BTreeMap::new();
        let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for line in out.lines() {
            let fields: Vec<&str> = line.split('|').collect();
            let [key, value, header, p, o] = fields[..] else {
                panic!("{codec}: {line}");
            };
            let n: usize = value[1..].parse().unwrap();
            assert_eq!(key, format!("k{}", n % 7), "{codec}: {line}");
            assert_eq!(header, "via=kcat", "{codec}: {line}");
            let p: i32 = p.parse().unwrap();
            assert_eq!(*key_partition.entry(key).or_insert(p), p, "{codec}: {key}");
            offsets.entry(p).or_default().push(o.parse().unwrap());
            values.push(n);
        }
        values.sort();
        assert_eq!(values, (0..count).collect::<Vec<_>>(), "{codec}");
        for (p, mut os) in offsets {
            os.sort();
            assert_eq!(os, (0..os.len() as i64).collect::<Vec<_>>(), "{codec} {p}");
        }
        let at_zero = kcat(&broker, &["-Q", "-t", &format!("{topic}:0:0")], "");
        assert!(at_zero.contains(" offset 0"), "{codec}: {at_zero}");
    }
}

/// kcat's balanced consumer (`-G`) reads a topic to its end and commits:
/// every message once, the group's offsets at the ends; `-L -J` lists the
/// topic's partitions with their leader.
#[test]
fn kcat_group_consumer_reads_and_commits() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "kcat-group";
    create_topic(&bs, topic, 3, &[]);
    let values: Vec<String> = (0..90).map(|i| format!("g{i:03}")).collect();
    let msgs: Vec<Msg> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Msg::value(v.as_str()).to(i as i32 % 3))
        .collect();
    produce(&producer_config(&bs), topic, &msgs);
    let out = kcat(
        &broker,
        &[
            "-G",
            "kcat-readers",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\n",
            topic,
        ],
        "",
    );
    let mut read: Vec<&str> = out.lines().collect();
    read.sort();
    assert_eq!(read, values.iter().map(String::as_str).collect::<Vec<_>>());
    let consumer: rdkafka::consumer::BaseConsumer = consumer_config(&bs)
        .set("group.id", "kcat-readers")
        .create()
        .expect("consumer");
    let committed = committed_offsets(&consumer, topic, 3);
    for p in 0..3 {
        let end = watermarks(&bs, topic, p).1;
        assert_eq!(
            committed.get(&p),
            Some(&end),
            "partition {p}: {committed:?}"
        );
    }
    let listing: serde_json::Value =
        serde_json::from_str(&kcat(&broker, &["-L", "-J", "-t", topic], "")).expect("JSON");
    let partitions = listing["topics"][0]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{listing}");
    assert!(partitions.iter().all(|p| p["leader"] == 0), "{listing}");
}
