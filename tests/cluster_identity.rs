//! A node's identity: the cluster id and node id stored in its data dir at
//! the first start, checked at every start, and what clients are told.

mod common;

use common::raw::RawClient;
use common::*;
use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest};

fn stored_cluster_id(broker: &Broker) -> String {
    let text = std::fs::read_to_string(broker.data_dir().join("meta.properties")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .expect("cluster.id")
        .to_string()
}

/// The first start stores a cluster id and the node id; Metadata and
/// DescribeCluster report them, and they survive a restart.
#[test]
fn identity_is_stored_reported_and_kept() {
    let mut broker = Broker::start_with(1, &["--node-id", "5"]);
    let cluster_id = stored_cluster_id(&broker);
    assert_eq!(cluster_id.len(), 22);
    for round in 0..2 {
        let mut client = RawClient::connect(&broker.bootstrap());
        let metadata = client.call(12, &MetadataRequest::default());
        assert_eq!(metadata.cluster_id.as_deref(), Some(cluster_id.as_str()));
        assert_eq!(metadata.controller_id.0, 5);
        assert_eq!(metadata.brokers[0].node_id.0, 5);
        let described = client.call(1, &DescribeClusterRequest::default().with_endpoint_type(1));
        assert_eq!(described.error_code, 0);
        assert_eq!(described.cluster_id.as_str(), cluster_id);
        assert_eq!(described.controller_id.0, 5);
        assert_eq!(described.brokers.len(), 1);
        assert_eq!(described.brokers[0].broker_id.0, 5);
        if round == 0 {
            broker.restart();
        }
    }
    assert_eq!(stored_cluster_id(&broker), cluster_id);
}

/// A data dir refuses a start as another node, or in another cluster, and
/// says which.
#[test]
fn a_data_dir_refuses_another_node_or_cluster() {
    let mut broker = Broker::start_with(1, &["--node-id", "1"]);
    broker.stop();
    let dir = broker.data_dir().to_path_buf();
    let wrong_node = refused_start(&dir, &["--node-id", "2"]);
    assert!(wrong_node.contains("belongs to node 1"), "{wrong_node}");
    let wrong_cluster = refused_start(&dir, &["--node-id", "1", "--cluster-id", "someone-else"]);
    assert!(
        wrong_cluster.contains("belongs to cluster"),
        "{wrong_cluster}"
    );
    // Still the same node afterwards.
    broker.start_again();
}

/// A voter list naming one node twice, or this node's controller address
/// under another id, is refused at start.
#[test]
fn bad_voter_lists_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let twice = refused_start(
        dir.path(),
        &[
            "--node-id",
            "1",
            "--controller-quorum-voters",
            "1@127.0.0.1:19001,1@127.0.0.1:19002,3@127.0.0.1:19003",
        ],
    );
    assert!(twice.contains("named twice"), "{twice}");
    let wrong_node = refused_start(
        dir.path(),
        &[
            "--node-id",
            "4",
            "--controller-listen",
            "127.0.0.1:19002",
            "--controller-quorum-voters",
            "1@127.0.0.1:19001,2@127.0.0.1:19002,3@127.0.0.1:19003",
        ],
    );
    assert!(wrong_node.contains("as node 2"), "{wrong_node}");
    assert!(
        !dir.path().join("meta.properties").exists(),
        "a refused start writes no identity"
    );
}

/// A one-voter list is a one-node cluster whose id comes from the list.
#[test]
fn a_single_voter_list_runs_a_one_node_cluster() {
    let broker = Broker::start_with(
        1,
        &[
            "--node-id",
            "1",
            "--controller-quorum-voters",
            "1@127.0.0.1:19093",
        ],
    );
    assert_eq!(
        stored_cluster_id(&broker),
        sluice::cluster::identity::cluster_id_for_voters("1@127.0.0.1:19093")
    );
    produce_values(&broker.bootstrap(), "one-voter", None, &["a".to_string()]);
}

/// A node started with another cluster's data dir (its voter list names
/// another cluster) refuses to start and says why.
#[test]
fn a_node_refuses_another_clusters_data_dir() {
    let port = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (a, b) = (port(0), port(1));
    let voters_a = format!("1@127.0.0.1:{a}");
    let mut broker = Broker::start_with(
        1,
        &["--node-id", "1", "--controller-quorum-voters", &voters_a],
    );
    broker.stop();
    let voters_b = format!("1@127.0.0.1:{b}");
    let refused = refused_start(
        broker.data_dir(),
        &["--node-id", "1", "--controller-quorum-voters", &voters_b],
    );
    assert!(refused.contains("belongs to cluster"), "{refused}");
}
