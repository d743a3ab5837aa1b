//! One module per Kafka API, each declaring the versions it serves next to
//! its code. [`APIS`] is the single list ApiVersions is built from and that
//! dispatch checks, so advertised and served versions cannot drift apart.

pub(crate) mod access;
mod acls;
mod admin;
mod alter_replica_log_dirs;
pub mod api_versions;
mod broker_loggers;
mod client_quotas;
mod configs;
mod delegation_tokens;
mod delete_records;
mod describe_cluster;
mod describe_log_dirs;
mod describe_quorum;
mod describe_topic_partitions;
mod elect_leaders;
mod features;
pub(crate) mod fetch;
mod group;
mod group_configs;
mod leader_hint;
mod legacy;
mod list_config_resources;
pub use legacy::forward_frame as forward_legacy_frame;
pub use throttle::client_throttles;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod producer;
mod raft_voters;
mod reassignments;
mod sasl;
mod scram_credentials;
mod share;
mod telemetry;
mod throttle;
mod txn;
mod txn_verify;
mod unregister_broker;
mod write_txn_markers;

use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::services::Services;
use crate::storage::FileSlice;

/// Part of a response frame: bytes in memory, or a slice of a segment
/// file that the connection sends from the page cache.
#[derive(Clone)]
pub enum Piece {
    Bytes(Bytes),
    File(FileSlice),
}

impl Piece {
    pub fn len(&self) -> usize {
        match self {
            Piece::Bytes(b) => b.len(),
            Piece::File(f) => f.len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An API this broker serves, and the versions it serves.
#[derive(Clone, Copy, Debug)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

pub const APIS: &[ApiSpec] = &[
    produce::SPEC,
    fetch::SPEC,
    list_offsets::SPEC,
    metadata::SPEC,
    api_versions::SPEC,
    admin::CREATE_TOPICS,
    admin::DELETE_TOPICS,
    configs::DESCRIBE_CONFIGS,
    configs::ALTER_CONFIGS,
    admin::CREATE_PARTITIONS,
    configs::INCREMENTAL_ALTER_CONFIGS,
    list_config_resources::SPEC,
    group::FIND_COORDINATOR,
    group::JOIN_GROUP,
    group::SYNC_GROUP,
    group::HEARTBEAT,
    group::LEAVE_GROUP,
    group::OFFSET_COMMIT,
    group::OFFSET_FETCH,
    group::LIST_GROUPS,
    group::DESCRIBE_GROUPS,
    group::DELETE_GROUPS,
    group::OFFSET_DELETE,
    producer::INIT_PRODUCER_ID,
    producer::DESCRIBE_PRODUCERS,
    group::TXN_OFFSET_COMMIT,
    group::CONSUMER_GROUP_HEARTBEAT,
    group::CONSUMER_GROUP_DESCRIBE,
    describe_cluster::SPEC,
    describe_topic_partitions::SPEC,
    features::UPDATE_FEATURES,
    elect_leaders::SPEC,
    offset_for_leader_epoch::SPEC,
    delete_records::SPEC,
    describe_log_dirs::SPEC,
    alter_replica_log_dirs::SPEC,
    describe_quorum::SPEC,
    unregister_broker::SPEC,
    raft_voters::ADD,
    raft_voters::REMOVE,
    reassignments::ALTER,
    reassignments::LIST,
    write_txn_markers::SPEC,
    txn::ADD_PARTITIONS_TO_TXN,
    txn::ADD_OFFSETS_TO_TXN,
    txn::END_TXN,
    txn::DESCRIBE_TRANSACTIONS,
    txn::LIST_TRANSACTIONS,
    sasl::SASL_HANDSHAKE,
    sasl::SASL_AUTHENTICATE,
    scram_credentials::DESCRIBE,
    scram_credentials::ALTER,
    client_quotas::DESCRIBE,
    client_quotas::ALTER,
    acls::DESCRIBE,
    acls::CREATE,
    acls::DELETE,
    delegation_tokens::CREATE,
    delegation_tokens::RENEW,
    delegation_tokens::EXPIRE,
    delegation_tokens::DESCRIBE,
    group::SHARE_GROUP_HEARTBEAT,
    group::SHARE_GROUP_DESCRIBE,
    group::DESCRIBE_SHARE_GROUP_OFFSETS,
    group::ALTER_SHARE_GROUP_OFFSETS,
    group::DELETE_SHARE_GROUP_OFFSETS,
    share::SHARE_FETCH,
    share::SHARE_ACKNOWLEDGE,
    share::READ_SHARE_GROUP_STATE,
    share::WRITE_SHARE_GROUP_STATE,
    telemetry::GET_TELEMETRY_SUBSCRIPTIONS,
    telemetry::PUSH_TELEMETRY,
];

/// The spec of `key` if this broker serves it: ApiVersions advertises and
/// dispatch answers exactly these.
pub fn served(config: &crate::config::BrokerConfig, key: ApiKey) -> Option<&'static ApiSpec> {
    APIS.iter().find(|s| s.key == key && enabled(config, key))
}

/// Whether an API is on for this broker's config. The client telemetry
/// pair (KIP-714) needs a `/metrics` endpoint to show pushed metrics on,
/// as Kafka serves it only with a metrics reporter that takes them;
/// without one, clients are not led to collect metrics no one can read.
pub fn enabled(config: &crate::config::BrokerConfig, key: ApiKey) -> bool {
    match key {
        ApiKey::GetTelemetrySubscriptions | ApiKey::PushTelemetry => {
            config.metrics_listen.is_some()
        }
        _ => true,
    }
}

/// Why a frame got no answer and its connection must close.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("frame of {0} bytes is too short for a request header")]
    Truncated(usize),
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    /// Kafka 3.9 closed the connection too: its SocketServer's
    /// `parseRequestHeader` refuses a version the API does not enable with
    /// an InvalidRequestException, before any handler could answer; only
    /// ApiVersions gets an answer (see [`handle_frame`]). The log line names
    /// the client software so an operator can find what sent it.
    #[error("{key:?} version {version} is not served (client software: {client})")]
    UnsupportedVersion {
        key: ApiKey,
        version: i16,
        client: String,
    },
    #[error("cannot decode {key:?} v{version}: {reason}")]
    Decode {
        key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode the response: {0}")]
    Encode(String),
    /// A SASL listener's rule broken, or a v0 handshake's token refused.
    #[error("authentication: {0}")]
    Authentication(String),
}

/// The fixed start of every request: api key, version, correlation id.
const HEADER_PREFIX_LEN: usize = 8;

/// What a request's handlers know of the connection it came on.
#[derive(Debug, Default)]
pub struct Client {
    /// The peer's address as Kafka reports it (`/127.0.0.1`), for
    /// DescribeGroups' client_host; empty when unknown.
    pub host: String,
    /// The peer's address, for delaying repeated authentication failures.
    pub ip: Option<std::net::IpAddr>,
    /// The peer's port, which client metrics subscriptions may match.
    pub port: Option<u16>,
    /// The listener, SASL exchange and principal of this connection.
    pub session: crate::net::sasl::Session,
    /// Set when the response being written must be the connection's last
    /// (a failed SaslAuthenticate).
    pub close_after_response: std::cell::Cell<bool>,
    /// Name and version the client gave in ApiVersions v3+ (KIP-511), for
    /// log lines about what it sent and client metrics; empty until then.
    software: std::cell::RefCell<(String, String)>,
    /// The client quotas that apply to this connection, the handler time
    /// of its request and the throttle the request earned (issue 15).
    pub quota: crate::quota::ConnQuotas,
    /// Set by the connection for a produce it may pipeline: the handler
    /// takes it and signals once the batches are appended (see `Ordered`).
    pub ordering: std::cell::RefCell<Option<Ordered>>,
}

/// The point from which a connection may serve its next request while
/// this one finishes: a produce's appends done (its acks may take a
/// replication round trip), any other request's end. Requests after it
/// then append after it, and answers still go out in request order.
#[derive(Clone)]
pub struct Ordered(Rc<std::cell::Cell<Option<futures::channel::oneshot::Sender<()>>>>);

impl std::fmt::Debug for Ordered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ordered")
    }
}

impl Ordered {
    pub fn new() -> (Ordered, futures::channel::oneshot::Receiver<()>) {
        let (tx, rx) = futures::channel::oneshot::channel();
        (Ordered(Rc::new(std::cell::Cell::new(Some(tx)))), rx)
    }

    /// The first call tells the connection; later ones do nothing.
    pub fn signal(&self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Longest client software name, and version, kept (KIP-511 allows any
/// length; a log line and a metric label need no more).
const CLIENT_SOFTWARE_MAX: usize = 128;

impl Client {
    pub fn new(peer: Option<std::net::SocketAddr>) -> Client {
        Client {
            host: peer.map(|a| format!("/{}", a.ip())).unwrap_or_default(),
            ip: peer.map(|a| a.ip()),
            port: peer.map(|a| a.port()),
            ..Default::default()
        }
    }

    /// A connection accepted on `listener`.
    pub fn on_listener(
        peer: Option<std::net::SocketAddr>,
        listener: std::sync::Arc<crate::net::sasl::ListenerInfo>,
    ) -> Client {
        Client {
            session: crate::net::sasl::Session::new(listener),
            ..Client::new(peer)
        }
    }

    /// The client software as ApiVersions named it, or "unknown".
    pub fn software(&self) -> String {
        let s = self.software.borrow();
        if s.0.is_empty() {
            "unknown".into()
        } else {
            format!("{} {}", s.0, s.1)
        }
    }

    /// The client software's name and version as ApiVersions gave them
    /// (empty if it did not).
    pub fn software_parts(&self) -> (String, String) {
        self.software.borrow().clone()
    }

    fn remember_software(&self, request: &kafka_protocol::messages::ApiVersionsRequest) {
        if request.client_software_name.is_empty() {
            return;
        }
        let cut = |s: &str| s[..s.floor_char_boundary(CLIENT_SOFTWARE_MAX)].to_string();
        *self.software.borrow_mut() = (
            cut(request.client_software_name.as_str()),
            cut(request.client_software_version.as_str()),
        );
    }
}

/// Answers one request frame: the response frame as pieces (size prefix
/// included), `None` when the request wants no response (acks=0), or an
/// error after which the connection closes.
pub async fn handle_frame(
    services: &Rc<Services>,
    client: &Client,
    frame: Bytes,
) -> Result<Option<Vec<Piece>>, RequestError> {
    if client.session.expects_raw_token() {
        return sasl::raw_token(&services.shard, client, frame)
            .await
            .map(Some);
    }
    if frame.len() < HEADER_PREFIX_LEN {
        return Err(RequestError::Truncated(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    crate::stats::count_request(api_key);
    if let crate::net::sasl::Gate::Close(why) =
        client.session.gate(api_key, std::time::Instant::now())
    {
        return Err(RequestError::Authentication(why.into()));
    }
    let mut prefix = &frame[..HEADER_PREFIX_LEN];
    let raw_key = prefix.get_i16();
    let version = prefix.get_i16();
    let correlation_id = prefix.get_i32();
    let key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApi(raw_key))?;
    tracing::trace!(?key, version, correlation_id, "request");
    let served = served(&services.shard.config, key).filter(|s| (s.min..=s.max).contains(&version));
    if served.is_none() {
        if key == ApiKey::ApiVersions {
            // Kafka answers a too-new ApiVersions with v0 and its own range
            // (`RequestContext.parseRequest` reads it as v0), so the client
            // can retry with a version both sides know.
            tracing::debug!(
                version,
                client = %client.software(),
                "ApiVersions version not served: answered UNSUPPORTED_VERSION"
            );
            let response = api_versions::unsupported_version();
            return encode(key, 0, correlation_id, response).map(Some);
        }
        return Err(RequestError::UnsupportedVersion {
            key,
            version,
            client: client.software(),
        });
    }
    if legacy::forwarded_version(key, version).is_some() {
        return legacy::serve(services, client, key, version, frame).await;
    }
    dispatch(
        services,
        client,
        key,
        version,
        correlation_id,
        frame,
        legacy::Carried::default(),
    )
    .await
}

/// Serves a request frame of a version the handlers decode.
async fn dispatch(
    services: &Rc<Services>,
    client: &Client,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    frame: Bytes,
    carried: legacy::Carried,
) -> Result<Option<Vec<Piece>>, RequestError> {
    // The data-path handlers need only the shard.
    let shard = &services.shard;
    // What this request may do (one branch when there is no authorizer).
    let access = &access::Access::of(shard, client);
    let mut buf = frame;
    let header = decode::<RequestHeader>(&mut buf, key, key.request_header_version(version))?;
    let out = Reply {
        key,
        version,
        correlation_id,
    };
    // Decodes this request's body; a failure closes the connection.
    macro_rules! body {
        () => {
            decode(&mut buf, key, version)?
        };
    }
    if key == ApiKey::WriteTxnMarkers {
        // Inter-broker: exempt from the request quota, as in Kafka.
        client.quota.exempt();
    }
    let mut answered = match key {
        ApiKey::ApiVersions => {
            let request = body!();
            client.remember_software(&request);
            out.encoded(api_versions::handle(shard, &header, request))
        }
        ApiKey::Metadata => {
            out.encoded(metadata::handle(shard, access, &header, client, body!()).await)
        }
        ApiKey::Produce => {
            let request = body!();
            let bytes = throttle::produce_bytes(&request);
            let appended = client.ordering.take().map(|o| move || o.signal());
            let response =
                produce::handle(shard, &services.txns, access, &header, request, appended).await;
            let throttle_ms = throttle::produce(shard, client, &header, bytes);
            match response {
                Some(mut response) => {
                    response.throttle_time_ms = throttle_ms;
                    out.encoded(response)
                }
                None => Ok(None), // acks=0: throttled by muting alone
            }
        }
        ApiKey::Fetch => {
            let sessions = &services.fetch_sessions;
            let request: kafka_protocol::messages::FetchRequest = body!();
            let follower = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
            if follower {
                // Replication is exempt from client quotas, as in Kafka.
                client.quota.exempt();
            }
            // With no quota configured (or a follower), nothing to charge.
            let charge = (!follower && client.quota.active())
                .then_some(|bytes| throttle::fetch(shard, client, &header, bytes));
            let body = fetch::handle(shard, access, sessions, &header, request, charge).await;
            out.pieces(body)
        }
        ApiKey::ListOffsets => {
            out.encoded(list_offsets::handle(shard, access, &header, body!()).await)
        }
        ApiKey::CreateTopics => {
            out.encoded(admin::create_topics(shard, access, client, &header, body!()).await)
        }
        ApiKey::DeleteTopics => {
            out.encoded(admin::delete_topics(shard, access, client, &header, body!()).await)
        }
        ApiKey::CreatePartitions => {
            out.encoded(admin::create_partitions(shard, access, client, &header, body!()).await)
        }
        ApiKey::DescribeConfigs => out.encoded(configs::describe(shard, access, &header, body!())),
        ApiKey::AlterConfigs => out.encoded(configs::alter(shard, access, &header, body!()).await),
        ApiKey::IncrementalAlterConfigs => {
            out.encoded(configs::incremental_alter(shard, access, &header, body!()).await)
        }
        ApiKey::InitProducerId => {
            out.encoded(producer::init_producer_id(services, access, &header, body!()).await)
        }
        ApiKey::DescribeCluster => out.encoded(describe_cluster::handle(
            shard,
            access,
            &header,
            client,
            body!(),
        )),
        ApiKey::DescribeTopicPartitions => {
            out.encoded(describe_topic_partitions::handle(shard, access, body!()))
        }
        ApiKey::AlterReplicaLogDirs => {
            out.encoded(alter_replica_log_dirs::handle(shard, access, body!()))
        }
        ApiKey::ListConfigResources => out.encoded(list_config_resources::handle(
            shard,
            access,
            version,
            body!(),
        )),
        ApiKey::UpdateFeatures => out.encoded(features::update(shard, access, &header, body!())),
        ApiKey::GetTelemetrySubscriptions => {
            out.encoded(telemetry::subscriptions(services, client, &header, body!()))
        }
        ApiKey::PushTelemetry => out.encoded(telemetry::push(services, client, &header, body!())),
        ApiKey::SaslHandshake => out.encoded(sasl::handshake(shard, &header, client, body!())),
        ApiKey::SaslAuthenticate => {
            let (response, close) = sasl::authenticate(shard, client, body!()).await;
            client.close_after_response.set(close);
            out.encoded(response)
        }
        ApiKey::DescribeUserScramCredentials => {
            out.encoded(scram_credentials::describe(shard, access, &header, body!()))
        }
        ApiKey::AlterUserScramCredentials => {
            out.encoded(scram_credentials::alter(shard, access, &header, body!()).await)
        }
        ApiKey::DescribeAcls => out.encoded(acls::describe(shard, access, &header, body!())),
        ApiKey::CreateAcls => out.encoded(acls::create(shard, access, &header, body!()).await),
        ApiKey::DeleteAcls => out.encoded(acls::delete(shard, access, &header, body!()).await),
        ApiKey::ElectLeaders => {
            out.encoded(elect_leaders::handle(shard, access, &header, body!()).await)
        }
        ApiKey::DescribeClientQuotas => {
            out.encoded(client_quotas::describe(shard, access, &header, body!()))
        }
        ApiKey::AlterClientQuotas => {
            out.encoded(client_quotas::alter(shard, access, &header, body!()).await)
        }
        ApiKey::WriteTxnMarkers => {
            out.encoded(write_txn_markers::handle(shard, access, &header, body!()).await)
        }
        ApiKey::OffsetForLeaderEpoch => {
            out.encoded(offset_for_leader_epoch::handle(shard, access, &header, body!()).await)
        }
        ApiKey::AlterPartitionReassignments => {
            out.encoded(reassignments::alter(shard, access, &header, body!()).await)
        }
        ApiKey::ListPartitionReassignments => {
            out.encoded(reassignments::list(shard, access, &header, body!()))
        }
        ApiKey::UnregisterBroker => {
            out.encoded(unregister_broker::handle(shard, access, &header, body!()).await)
        }
        ApiKey::AddRaftVoter => out.encoded(raft_voters::add(shard, access, body!()).await),
        ApiKey::RemoveRaftVoter => out.encoded(raft_voters::remove(shard, access, body!()).await),
        ApiKey::CreateDelegationToken => {
            out.encoded(delegation_tokens::create(shard, client, access, &header, body!()).await)
        }
        ApiKey::RenewDelegationToken => {
            out.encoded(delegation_tokens::renew(shard, client, body!()).await)
        }
        ApiKey::ExpireDelegationToken => {
            out.encoded(delegation_tokens::expire(shard, client, body!()).await)
        }
        ApiKey::DescribeDelegationToken => out.encoded(delegation_tokens::describe(
            shard,
            client,
            access,
            &header,
            body!(),
        )),
        ApiKey::DescribeQuorum => {
            out.encoded(describe_quorum::handle(shard, access, &header, body!()).await)
        }
        ApiKey::DescribeLogDirs => {
            out.encoded(describe_log_dirs::handle(shard, access, &header, body!()).await)
        }
        ApiKey::DeleteRecords => {
            out.encoded(delete_records::handle(shard, access, &header, body!()).await)
        }
        ApiKey::DescribeProducers => {
            out.encoded(producer::describe_producers(shard, access, &header, body!()).await)
        }
        ApiKey::ShareFetch => {
            let mut body = share::fetch(&services.shares, access, body!()).await;
            if client.quota.active() {
                let bytes = body.iter().map(|p| p.len() as u64).sum();
                let ms = throttle::share_fetch(shard, client, &header, bytes);
                if ms > 0 {
                    fetch::set_throttle(&mut body, i32::try_from(ms).unwrap_or(i32::MAX));
                }
            }
            out.pieces(body)
        }
        ApiKey::ShareAcknowledge => {
            out.encoded(share::acknowledge(&services.shares, access, body!()).await)
        }
        ApiKey::ReadShareGroupState => {
            out.encoded(share::state::read(&services.groups, access, body!()).await)
        }
        ApiKey::WriteShareGroupState => {
            out.encoded(share::state::write(&services.groups, access, body!()).await)
        }
        key if group::serves(key) => {
            group::handle(services, access, &header, client, &out, &mut buf, carried).await
        }
        key if txn::serves(key) => txn::handle(services, access, &header, &out, &mut buf).await,
        // Not in APIS, so the version check above already refused it.
        _ => Err(RequestError::UnsupportedVersion {
            key,
            version,
            client: client.software(),
        }),
    };
    if !client.quota.request_charged() {
        // The response is built: its throttle_time_ms reports this
        // request's throttle, and the connection is muted for it.
        let ms = throttle::request(shard, client, &header);
        if let (true, Ok(Some(frame))) = (ms > 0, &mut answered) {
            // The larger of this and a controller mutation throttle.
            throttle::report(key, version, frame, client.quota.throttle_so_far());
        }
    }
    answered
}

/// Decodes one message from untrusted bytes. A panic in the decoder must
/// cost this connection, not the shard.
fn decode<T: Decodable>(buf: &mut Bytes, key: ApiKey, version: i16) -> Result<T, RequestError> {
    let fail = |reason: String| RequestError::Decode {
        key,
        version,
        reason,
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::decode(buf, version)))
        .map_err(|_| fail("decoder panicked".into()))?
        .map_err(|e| fail(e.to_string()))
}

/// Where a response goes: the request's API, version and correlation id.
pub(crate) struct Reply {
    pub(crate) key: ApiKey,
    pub(crate) version: i16,
    correlation_id: i32,
}

impl Reply {
    pub(crate) fn encoded<R: Encodable>(
        &self,
        response: R,
    ) -> Result<Option<Vec<Piece>>, RequestError> {
        encode(self.key, self.version, self.correlation_id, response).map(Some)
    }

    fn pieces(&self, body: Vec<Piece>) -> Result<Option<Vec<Piece>>, RequestError> {
        frame_pieces(self.key, self.version, self.correlation_id, body).map(Some)
    }
}

/// A whole response frame from an encodable body, in one buffer.
fn encode<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: R,
) -> Result<Vec<Piece>, RequestError> {
    let mut buf = head(key, version, correlation_id)?;
    response
        .encode(&mut buf, version)
        .map_err(|e| RequestError::Encode(e.to_string()))?;
    let size = frame_size(buf.len() - 4)?;
    buf[..4].copy_from_slice(&size);
    Ok(vec![Piece::Bytes(buf.freeze())])
}

/// A size placeholder and the response header.
fn head(key: ApiKey, version: i16, correlation_id: i32) -> Result<BytesMut, RequestError> {
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let mut head = BytesMut::with_capacity(256);
    head.extend_from_slice(&[0; 4]);
    header
        .encode(&mut head, key.response_header_version(version))
        .map_err(|e| RequestError::Encode(e.to_string()))?;
    Ok(head)
}

fn frame_size(size: usize) -> Result<[u8; 4], RequestError> {
    i32::try_from(size)
        .map(i32::to_be_bytes)
        .map_err(|_| RequestError::Encode(format!("response of {size} bytes")))
}

/// Puts the size prefix and response header in front of a body.
fn frame_pieces(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: Vec<Piece>,
) -> Result<Vec<Piece>, RequestError> {
    let mut head = head(key, version, correlation_id)?;
    let size = frame_size(head.len() - 4 + body.iter().map(Piece::len).sum::<usize>())?;
    head[..4].copy_from_slice(&size);
    let mut pieces = Vec::with_capacity(body.len() + 1);
    pieces.push(Piece::Bytes(head.freeze()));
    pieces.extend(body);
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's API table is the user's view of APIS: same rows, same ranges.
    #[test]
    fn readme_table_matches_apis() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Supported Kafka APIs")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Supported Kafka APIs section");
        let rows: Vec<&str> = section
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| API") && !l.starts_with("| ---"))
            .collect();
        for api in APIS {
            let row = format!("| {:?} | {}-{} |", api.key, api.min, api.max);
            assert!(rows.contains(&row.as_str()), "README lacks {row}");
        }
        assert_eq!(
            rows.len(),
            APIS.len(),
            "README lists APIs that are not served: {rows:?}"
        );
    }

    /// Every served version is one the codec decodes, or one the version
    /// bridge takes to the oldest the codec decodes.
    #[test]
    fn every_listed_version_is_one_the_codec_or_the_bridge_knows() {
        for api in APIS {
            let known = api.key.valid_versions();
            assert!(api.max <= known.max, "{:?}", api.key);
            assert!(api.min <= api.max);
            for v in api.min..known.min.min(api.max + 1) {
                assert_eq!(
                    legacy::forwarded_version(api.key, v),
                    Some(known.min),
                    "{:?} v{v}",
                    api.key
                );
            }
        }
    }
}
