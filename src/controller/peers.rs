//! The quorum's outgoing side: openraft's network (one connection per
//! target, voter or learner, redialed with a bounded backoff) and the
//! forwarding of proposals and heartbeats to the active controller (a
//! small pool of idle connections per peer).
//!
//! A dead peer costs its replication stream one dial at a time, at most
//! every `RECONNECT_BACKOFF_MAX` for a voter and `LEARNER_BACKOFF_MAX` for
//! a learner; each stream is its own task in openraft and a learner is in
//! no quorum, so commits never wait for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::driver::Core;
use super::network::{connect, read_frame, within, write_frame, FrameError};
use super::rpc::{Request, Response};
use super::tls::Stream;
use super::types::TypeConfig;

/// First and largest wait between redials of an unreachable peer.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Largest wait between redials of an unreachable learner: a broker-only
/// node may be gone for good (decommissioned) and nothing waits for it, so
/// dials (and openraft's log lines about them) stay rare. A learner that
/// comes back does not wait it out (see `learner`: its join rebuilds the
/// streams).
pub const LEARNER_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Idle forwarding connections kept per peer.
pub const FORWARD_IDLE_MAX: usize = 4;

/// Makes openraft's per-target clients.
pub struct Network {
    pub core: Arc<Core>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    /// `node` is the membership's entry: openraft makes a new client when
    /// the membership changes, so a learner's new address is picked up.
    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let target = target as i32;
        let given = self.core.address_given(target, Some(&node.addr));
        let addr = given.unwrap_or_else(|| node.addr.clone());
        PeerClient {
            core: self.core.clone(),
            target,
            addr,
            stream: None,
            dial: None,
        }
    }
}

type Dial = tokio::task::JoinHandle<Result<Stream, FrameError>>;

/// openraft's client for one peer; openraft calls it one RPC at a time.
pub struct PeerClient {
    core: Arc<Core>,
    target: i32,
    /// HOST:PORT of the peer's controller listener.
    addr: String,
    stream: Option<Stream>,
    /// A dial under way, in a task of its own: openraft bounds each
    /// AppendEntries by a heartbeat interval, which would otherwise cut a
    /// slow dial short and start another at once. So there is at most one
    /// dial per peer, each bounded by `CONNECT_TIMEOUT` + `HELLO_TIMEOUT`.
    dial: Option<Dial>,
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        if let Some(dial) = self.dial.take() {
            dial.abort();
        }
    }
}

type RpcError<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

// openraft's RPCError is large, and openraft's trait returns it unboxed.
#[allow(clippy::result_large_err)]
impl PeerClient {
    /// Sends one request and reads its response within `ttl`. A failed
    /// dial is Unreachable (openraft backs off); a failure mid-call drops
    /// the connection so the next call redials.
    ///
    /// openraft bounds each call with a timeout of its own and drops this
    /// future when it fires, possibly between the request and its
    /// response. The connection is therefore out of `self` for the whole
    /// exchange and put back only after a full one: a call cut short
    /// closes it, and the next call can never read the answer to an
    /// earlier request as its own (which once made a leader take a
    /// learner's log for longer than it was).
    async fn call<E: std::error::Error>(
        &mut self,
        request: Request,
        ttl: Duration,
    ) -> Result<Response, RPCError<u64, BasicNode, RaftError<u64, E>>> {
        if self.stream.is_none() {
            let dial = self.dial.get_or_insert_with(|| {
                let (core, target, addr) = (self.core.clone(), self.target, self.addr.clone());
                tokio::spawn(async move { connect(&core, target, &addr).await })
            });
            // If openraft's timeout drops this future here, the dial goes
            // on and the next call waits for the same one.
            let dialed = dial.await;
            self.dial = None;
            let stream = match dialed {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
                Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            };
            self.stream = Some(stream);
        }
        exchange_in(&mut self.stream, &request, ttl)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    fn remote<T, E: std::error::Error>(
        &self,
        result: Result<T, RaftError<u64, E>>,
    ) -> Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target as u64, e)))
    }

    fn unexpected<E: std::error::Error>(&mut self) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        self.stream = None;
        let e = std::io::Error::other("response does not match the request");
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError> {
        match self
            .call(Request::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            Response::AppendEntries(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        match self
            .call(Request::InstallSnapshot(rpc), option.hard_ttl())
            .await?
        {
            Response::InstallSnapshot(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcError> {
        // Asked of the voter's directory once the log holds it, so a node
        // whose log was lost cannot give it (`directories`).
        let request = match self.core.voter_directory(self.target) {
            Some(voter_directory_id) => Request::VoteAs {
                vote: rpc,
                voter_directory_id,
            },
            None => Request::Vote(rpc),
        };
        match self.call(request, option.hard_ttl()).await? {
            Response::Vote(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }

    fn backoff(&self) -> Backoff {
        let max = if self.core.is_voter_now(self.target) {
            RECONNECT_BACKOFF_MAX
        } else {
            LEARNER_BACKOFF_MAX
        };
        let doubling = (0..).map(move |i: u32| {
            RECONNECT_BACKOFF_MIN
                .saturating_mul(1 << i.min(16))
                .min(max)
        });
        Backoff::new(doubling)
    }
}

/// One exchange on the connection in `slot`, which is out of the slot
/// until the exchange is complete: one cut short (an error, or the future
/// dropped) leaves the slot empty, and the connection closed.
async fn exchange_in(
    slot: &mut Option<Stream>,
    request: &Request,
    ttl: Duration,
) -> Result<Response, FrameError> {
    let mut stream = slot.take().expect("the caller connects first");
    let response = exchange(&mut stream, request, ttl).await?;
    *slot = Some(stream);
    Ok(response)
}

/// One request and its response on `stream`, within `ttl`.
async fn exchange(
    stream: &mut Stream,
    request: &Request,
    ttl: Duration,
) -> Result<Response, FrameError> {
    within(ttl, async {
        write_frame(stream, request).await?;
        read_frame::<Response>(stream).await
    })
    .await
}

/// Connections for forwarding to the active controller, per peer.
#[derive(Default)]
pub struct Forwarder {
    idle: Mutex<BTreeMap<i32, Vec<Stream>>>,
}

impl Forwarder {
    /// One request to `target` within `ttl`, on a pooled connection or a
    /// new one. A connection is pooled again only after a full exchange.
    pub async fn call(
        &self,
        core: &Core,
        target: i32,
        request: &Request,
        ttl: Duration,
    ) -> Result<Response, FrameError> {
        let pooled = self
            .idle
            .lock()
            .expect("the pool lock is never poisoned")
            .get_mut(&target)
            .and_then(Vec::pop);
        let mut stream = match pooled {
            Some(s) => s,
            None => {
                let addr = core.address_of(target).ok_or_else(|| {
                    FrameError::Refused(format!("node {target} is not in the quorum"))
                })?;
                within(ttl, connect(core, target, &addr)).await?
            }
        };
        let response = exchange(&mut stream, request, ttl).await?;
        let mut idle = self.idle.lock().expect("the pool lock is never poisoned");
        let kept = idle.entry(target).or_default();
        if kept.len() < FORWARD_IDLE_MAX {
            kept.push(stream);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::ControllerError;
    use tokio::net::TcpListener;

    fn proposal_answer(index: u64) -> Response {
        Response::AddLearner(Err(ControllerError::Unavailable(index.to_string())))
    }

    fn answer_index(response: Response) -> String {
        match response {
            Response::AddLearner(Err(ControllerError::Unavailable(index))) => index,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A peer that answers each request in order, the first one late.
    async fn slow_first_peer(listener: TcpListener, late: Duration) {
        let (mut stream, _) = listener.accept().await.unwrap();
        for index in 0.. {
            if read_frame::<Request>(&mut stream).await.is_err() {
                return;
            }
            if index == 0 {
                tokio::time::sleep(late).await;
            }
            if write_frame(&mut stream, &proposal_answer(index))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    fn request() -> Request {
        Request::AddLearner {
            id: 4,
            addr: "127.0.0.1:1".into(),
        }
    }

    #[tokio::test]
    async fn a_call_cut_short_leaves_no_connection_to_read_its_answer_from() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(slow_first_peer(listener, Duration::from_millis(200)));
        let mut slot = Some(Stream::from(
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        ));

        // openraft's own timeout drops the call while the answer is due.
        let ttl = Duration::from_secs(5);
        let cut = tokio::time::timeout(
            Duration::from_millis(20),
            exchange_in(&mut slot, &request(), ttl),
        )
        .await;
        assert!(cut.is_err(), "the first answer comes late");
        assert!(slot.is_none(), "the connection went with the call");
        peer.await.unwrap();

        // A full exchange keeps its connection for the next one.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(slow_first_peer(listener, Duration::ZERO));
        let mut slot = Some(Stream::from(
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        ));
        for index in 0..3 {
            let answer = exchange_in(&mut slot, &request(), ttl).await.unwrap();
            assert_eq!(answer_index(answer), index.to_string());
        }
        drop(slot);
        peer.await.unwrap();
    }
}
