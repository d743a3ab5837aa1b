//! Connections to other brokers kept between calls, per broker: a service
//! that asks another broker something on a client's behalf (a transaction
//! verification, a share partition's state) does so at every such request,
//! and a connection per call would cost a handshake each time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::{ClientError, KafkaConnection, Security};

pub struct KeptConnections {
    idle: RefCell<HashMap<i32, Vec<KafkaConnection>>>,
    client_id: String,
    /// Largest answer accepted.
    response_max: u32,
    /// Bound on a connect and on each call.
    timeout: Duration,
    /// Idle connections kept per broker.
    idle_max: usize,
}

impl KeptConnections {
    pub fn new(
        client_id: String,
        response_max: u32,
        timeout: Duration,
        idle_max: usize,
    ) -> KeptConnections {
        KeptConnections {
            idle: RefCell::default(),
            client_id,
            response_max,
            timeout,
            idle_max,
        }
    }

    /// Calls broker `node` at `addr` on a kept connection (a kept one that
    /// died with its broker since is tried once more on a new one), or a
    /// new one; the connection is kept afterwards.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        security: &Arc<Security>,
        node: i32,
        addr: &str,
        (api, version): (ApiKey, i16),
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let kept = self.idle.borrow_mut().get_mut(&node).and_then(Vec::pop);
        let ask = |mut conn: KafkaConnection| async move {
            let response = conn.call(api, version, request, self.timeout).await?;
            Ok::<_, ClientError>((conn, response))
        };
        let (conn, response) = match kept {
            Some(conn) => match ask(conn).await {
                Ok(answered) => answered,
                Err(_) => ask(self.dial(security, addr).await?).await?,
            },
            None => ask(self.dial(security, addr).await?).await?,
        };
        let mut idle = self.idle.borrow_mut();
        let kept = idle.entry(node).or_default();
        if kept.len() < self.idle_max {
            kept.push(conn);
        }
        Ok(response)
    }

    async fn dial(
        &self,
        security: &Arc<Security>,
        addr: &str,
    ) -> Result<KafkaConnection, ClientError> {
        KafkaConnection::connect(
            addr,
            &self.client_id,
            self.response_max,
            self.timeout,
            security,
        )
        .await
    }
}
