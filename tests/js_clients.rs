//! kafkajs (2.x) against real brokers. `make test` installs it under
//! `target/js` (`make js-deps`).

mod common;

use std::process::Command;

use common::clients::{client_follows_a_new_leader, node_modules, script};

/// kafkajs re-routes to a new leader: with the partition leader of a
/// replicated topic killed between two halves of its sends, every message
/// it saw acknowledged is read back once, in order, through a group.
#[test]
fn kafkajs_follows_a_new_leader() {
    let mut node = Command::new("node");
    node.arg(script("kafkajs_failover.js"))
        .env("NODE_PATH", node_modules());
    client_follows_a_new_leader(node, "kjs-failover");
}
