//! The thin layer over glommio: starting pinned shards, the cross-shard
//! mesh, timers and work that must not block the reactor. The rest of the
//! broker goes through here, so glommio's quirks stay in one place.

mod file_write;
pub mod writable;

use std::future::Future;
use std::time::Duration;

use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender};
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};

pub use file_write::write_at;
pub use glommio::net::{TcpListener, TcpStream};
pub use glommio::timer::sleep;
pub use glommio::{spawn_local, yield_if_needed};

/// What a shard receives at start: its index and its ends of the mesh.
///
/// The mesh is one bounded SPSC channel per ordered pair of shards. (glommio's
/// own `MeshBuilder` shares an `Rc` between threads, so it is not used.)
pub struct ShardSeat<M: Send + 'static> {
    pub id: usize,
    pub count: usize,
    /// `senders[j]` reaches shard j; `None` at our own index.
    senders: Vec<Option<SharedSender<Stamped<M>>>>,
    /// `(j, receiver)` for messages from shard j.
    receivers: Vec<(usize, SharedReceiver<Stamped<M>>)>,
}

/// A message with the time it was sent, so the receiver can tell how long
/// the hop took (`sluice_mesh_hop_seconds`).
pub struct Stamped<M> {
    sent: std::time::Instant,
    msg: M,
}

/// This shard's connected ends of the mesh.
pub struct Mesh<M: Send + 'static> {
    senders: Vec<Option<ConnectedSender<Stamped<M>>>>,
}

impl<M: Send + 'static> Mesh<M> {
    /// Sends to shard `to`; waits while its channel is full. Fails only
    /// when that shard has stopped.
    pub async fn send_to(&self, to: usize, msg: M) -> Result<(), ()> {
        let stamped = Stamped {
            sent: std::time::Instant::now(),
            msg,
        };
        match self.senders.get(to) {
            Some(Some(sender)) => sender.send(stamped).await.map_err(|_| ()),
            _ => panic!("no mesh channel to shard {to}"),
        }
    }
}

/// This shard's end of one peer's channel.
pub struct MeshReceiver<M: Send + 'static>(ConnectedReceiver<Stamped<M>>);

impl<M: Send + 'static> MeshReceiver<M> {
    /// The next message; `None` once the peer has stopped.
    pub async fn recv(&self) -> Option<M> {
        let stamped = self.0.recv().await?;
        crate::stats::MESH_HOP.observe(stamped.sent.elapsed());
        Some(stamped.msg)
    }
}

impl<M: Send + 'static> ShardSeat<M> {
    /// Connects this shard's channel ends inside its executor. A connect
    /// waits for the other end, so all of ours are awaited together.
    pub async fn join(self) -> (Mesh<M>, Vec<(usize, MeshReceiver<M>)>) {
        use futures::future::join_all;
        let senders = join_all(self.senders.into_iter().map(|s| async move {
            match s {
                Some(s) => Some(s.connect().await),
                None => None,
            }
        }));
        let receivers = join_all(
            self.receivers
                .into_iter()
                .map(|(from, r)| async move { (from, MeshReceiver(r.connect().await)) }),
        );
        // glommio notices a peer's connect only when its reactor runs; an
        // executor that parked before the peer connected can sleep through
        // it (tens of seconds under load). A 1 ms timer keeps the reactor
        // turning until every end is connected.
        let connected = std::pin::pin!(futures::future::join(senders, receivers));
        let ticker = std::pin::pin!(async {
            loop {
                sleep(Duration::from_millis(1)).await;
            }
        });
        let (senders, receivers) = match futures::future::select(connected, ticker).await {
            futures::future::Either::Left((ends, _)) => ends,
            futures::future::Either::Right(_) => unreachable!("the ticker never ends"),
        };
        (Mesh { senders }, receivers)
    }
}

/// One mesh for messages of type `M`: every shard's seat in it, in shard
/// order. Each kind of cross-core message (the shard's, each service's) gets
/// its own mesh, so no layer has to name the messages of the layers above.
pub fn mesh<M: Send + 'static>(count: usize, capacity: usize) -> Vec<ShardSeat<M>> {
    let mut seats: Vec<ShardSeat<M>> = (0..count)
        .map(|id| ShardSeat {
            id,
            count,
            senders: (0..count).map(|_| None).collect(),
            receivers: Vec::new(),
        })
        .collect();
    for from in 0..count {
        for to in 0..count {
            if from != to {
                let (s, r) = shared_channel::new_bounded(capacity);
                seats[from].senders[to] = Some(s);
                seats[to].receivers.push((from, r));
            }
        }
    }
    seats
}

/// Running shards; `join` waits for all of them to finish.
pub struct Shards {
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl Shards {
    pub fn join(self) -> std::io::Result<()> {
        let mut failed = None;
        for (id, handle) in self.handles.into_iter().enumerate() {
            if let Err(e) = handle.join() {
                failed.get_or_insert(std::io::Error::other(format!("shard {id} failed: {e}")));
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// How each shard's executor is built.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecutorSettings {
    /// glommio's io_uring buffer memory per executor.
    pub io_memory_bytes: usize,
    /// How long an idle executor polls before it parks (zero: at once).
    pub spin_before_park: Duration,
    /// Log a task queue that runs this long past its budget (zero: off).
    pub stall_warning: Duration,
}

/// A shard that held its thread `over` past a task queue's budget is
/// logged with where it was: glommio samples the backtrace with a signal
/// while the queue still runs, and its default `stall` logs it through the
/// `log` crate, which the tracing subscriber takes in (its type is not
/// public, so it cannot be overridden here).
#[derive(Debug)]
struct StallWarning {
    over: Duration,
}

impl glommio::StallDetectionHandler for StallWarning {
    fn threshold(&self, _queue: glommio::TaskQueueHandle, _budget: Duration) -> Option<Duration> {
        Some(self.over)
    }
}

/// Starts one executor per element of `seats`, shard i pinned to the i-th
/// allowed CPU, each running `body` with its seats (its ends of the meshes,
/// see [`mesh`]).
pub fn start_shards<S, F, Fut>(
    seats: Vec<S>,
    settings: &ExecutorSettings,
    body: F,
) -> std::io::Result<Shards>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    assert!(!seats.is_empty());
    let cpus = allowed_cpus();
    let mut handles = Vec::with_capacity(seats.len());
    for (id, seat) in seats.into_iter().enumerate() {
        let cpu = cpus[id % cpus.len()];
        let body = body.clone();
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{id}"))
            .io_memory(settings.io_memory_bytes);
        if !settings.spin_before_park.is_zero() {
            builder = builder.spin_before_park(settings.spin_before_park);
        }
        if !settings.stall_warning.is_zero() {
            builder = builder.detect_stalls(Some(Box::new(StallWarning {
                over: settings.stall_warning,
            })));
        }
        let handle = builder
            .spawn(move || async move {
                body(seat).await;
            })
            .map_err(|e| std::io::Error::other(format!("starting shard {id}: {e}")))?;
        handles.push(handle);
    }
    Ok(Shards { handles })
}

/// Machines with at most this many allowed CPUs get one shard by default.
/// There a second shard has no core of its own: it shares with the kernel's
/// network stack and any co-located client, and every cross-shard message
/// or park is an inter-processor interrupt (glommio's `membarrier`), a VM
/// exit on a VM. On a 2-vCPU VM (2026-12-02, 60 s of 50k msg/s over 100
/// partitions, three runs each) one shard used 19-21 CPU s where two used
/// 41-45, with no worse tail; at the maximum rate the two reached the same
/// throughput.
pub const SMALL_MACHINE_CPUS: usize = 2;

/// Shards when none are configured: one per allowed CPU, or one on a
/// machine of [`SMALL_MACHINE_CPUS`] or fewer.
pub fn default_shards() -> usize {
    let cpus = allowed_cpus().len();
    if cpus <= SMALL_MACHINE_CPUS {
        1
    } else {
        cpus
    }
}

/// CPUs this process may run on (respects taskset/cgroups).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for this thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let cpus: Vec<usize> = if ok == 0 {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: i is below CPU_SETSIZE, the size of the set.
            .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    } else {
        cpus
    }
}

/// Runs blocking work (fsync, directory removal) on glommio's helper thread
/// so the reactor keeps serving.
pub async fn blocking<R, F>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(f).await
}

/// Resolves with `None` if `fut` does not finish within `limit`.
pub async fn timeout<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    use futures::future::{select, Either};
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(sleep(limit));
    match select(fut, timer).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

thread_local! {
    /// This shard's task queue for request serving (see `spawn_serving`).
    static SERVING: std::cell::Cell<Option<glommio::TaskQueueHandle>> =
        const { std::cell::Cell::new(None) };
}

/// Spawns request-serving work (a connection) in a task queue whose latency
/// matters: while it has work, the shard polls for I/O at least every
/// `quota`, so a flat-out producer cannot hold back other sockets' readiness
/// for glommio's default 100 ms. (Setting the executor-wide preempt timer
/// that low instead stalls start-up under load: the first poll of the main
/// task can be preempted before it runs.)
pub fn spawn_serving<T: 'static>(
    quota: Duration,
    fut: impl Future<Output = T> + 'static,
) -> glommio::Task<T> {
    let queue = SERVING.with(|q| {
        *q.get().get_or_insert_with(|| {
            glommio::executor().create_task_queue(
                glommio::Shares::default(),
                glommio::Latency::Matters(quota),
                "serving",
            )
        })
    });
    glommio::spawn_local_into(fut, queue).expect("the serving queue exists on this executor")
}

/// Runs `fut` to completion on a one-off executor on this thread (unit
/// tests of shard-local code).
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    glommio::LocalExecutor::default().run(fut)
}

/// Lets every other runnable task on this shard go first, once.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Milliseconds since the Unix epoch, Kafka's timestamp unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod invariant_tests {
    /// ARCHITECTURE's invariant: nothing outside `runtime` names glommio.
    #[test]
    fn only_runtime_names_glommio() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut dirs = vec![src.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path != src.join("runtime") {
                        dirs.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.contains(concat!("glommio", "::")) {
                        offenders.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "glommio named outside runtime/: {offenders:?}"
        );
    }
}
