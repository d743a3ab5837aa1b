//! `sluice-bench run`: one workload against each target in turn.
//!
//! Per target: check the broker answers, create fresh topics, start
//! consumers, start producers on a shared clock, sample throughput once a
//! second, stop producing when the window ends, drain consumers (bounded by
//! the grace period), merge the per-thread histograms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::clients::{self, ConsumerJob, Pace, ProducerJob, Shared};
use crate::kafka;
use crate::payload::Clock;
use crate::report::TargetResult;
use crate::search::{Observation, RateSearch};
use crate::spawn::{self, Usage};
use crate::stages::{self, Scrape};
use crate::stats::{mib, Latency, Sample};
use crate::wakeup;
use crate::workload::{ConsumerMode, Workload, PRODUCER_RATE_MAX_MSGS, RUN_BYTES_PER_SEC_MAX};

/// Consumers get this long to connect before the first message is due.
const CONSUMER_HEAD_START: Duration = Duration::from_millis(500);
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// A fixed rate counts as sustained at 95 % of the target.
const SUSTAINED_FRACTION: f64 = 0.95;
/// Slack on top of the planned run before the watchdog kills everything.
const WATCHDOG_SLACK: Duration = Duration::from_secs(90);

/// Where one target's load goes.
pub struct TargetSpec<'a> {
    pub name: &'a str,
    pub bootstrap: &'a str,
    /// Whether the harness started this broker.
    pub spawned: bool,
    /// The broker processes (one, or a cluster's) that run on this machine,
    /// to read their CPU and memory from /proc; summed over all of them.
    pub broker_pids: Vec<u32>,
    /// A Sluice broker's `/metrics` (HOST:PORT), for its per-stage times.
    pub metrics: Option<String>,
}

/// Runs the workload against one target and returns its measurements.
pub fn run_target(t: &TargetSpec, w: &Workload, grace: Duration) -> Result<TargetResult> {
    kafka::check_reachable(t.name, t.bootstrap)?;
    let _watchdog = Watchdog::arm(
        Duration::from_secs(w.warmup_secs + w.duration_secs) + 2 * grace + WATCHDOG_SLACK,
        t.name,
    );
    let run_tag = run_tag();
    let topics: Vec<String> = (0..w.topics)
        .map(|i| format!("sluice-bench-{run_tag:08x}-{i}"))
        .collect();
    kafka::create_topics(t.bootstrap, &topics, w)
        .map_err(|e| anyhow!("target {}: {e:#}", t.name))?;

    let clock = Clock::new();
    let start_ns = clock.now_ns() + CONSUMER_HEAD_START.as_nanos() as u64;
    let window_start_ns = start_ns + w.warmup_secs * 1_000_000_000;
    let shared = Arc::new(Shared {
        clock,
        run_tag,
        window_start_ns,
        window_end_ns: window_start_ns + w.duration_secs * 1_000_000_000,
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        received: AtomicU64::new(0),
        producer_lag_ns: AtomicU64::new(0),
        stop_producing: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
        first_error: Mutex::new(None),
    });
    let progress = progress_bar(t.name, w);
    let mut search = Search::for_workload(w);
    let pace = match &search {
        None => Pace::Fixed(w.producer_rate as f64 / w.producers() as f64),
        Some(s) => Pace::Searched(s.per_producer.clone()),
    };
    let outcome = std::thread::scope(|sc| -> Result<Measured> {
        let s = &shared;
        let consumers: Vec<_> = consumer_jobs(w, &topics, run_tag)
            .into_iter()
            .map(|job| {
                let config = kafka::consumer_config(t.bootstrap, w, &job.group);
                sc.spawn(move || clients::consume(job, config, s))
            })
            .collect();
        let producers: Vec<_> = producer_jobs(w, &topics, &pace, start_ns, grace, run_tag)
            .into_iter()
            .map(|job| {
                let config = kafka::producer_config(
                    t.bootstrap,
                    w,
                    grace.max(Duration::from_secs(5)),
                    job.transactional_id.as_deref(),
                );
                sc.spawn(move || clients::produce(job, w, config, s))
            })
            .collect();
        let probe = sc.spawn(move || {
            wakeup::probe(
                &s.clock,
                s.window_start_ns,
                s.window_end_ns,
                &s.stop_producing,
            )
        });
        let sampled = sample(s, w, start_ns, t, search.as_mut(), &progress);
        s.stop_producing.store(true, Relaxed);
        let wakeup_delay = probe.join().expect("wake-up probe panicked");
        let mut publish = Latency::new();
        let mut errors = Vec::new();
        for p in producers {
            match p.join().expect("producer thread panicked") {
                Ok(h) => publish.merge(&h),
                Err(e) => errors.push(e),
            }
        }
        drain(s, w, grace, &progress);
        s.stop_consuming.store(true, Relaxed);
        let mut e2e = Latency::new();
        for c in consumers {
            match c.join().expect("consumer thread panicked") {
                Ok(h) => e2e.merge(&h),
                Err(e) => errors.push(e),
            }
        }
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        Ok(Measured {
            sampled,
            publish,
            e2e,
            wakeup_delay,
        })
    });
    progress.finish_and_clear();
    let m = outcome.map_err(|e| anyhow!("target {}: {e:#}", t.name))?;
    Ok(result(t, w, &shared, m))
}

/// What the threads and the sampler produced.
struct Measured {
    sampled: Sampled,
    publish: Latency,
    e2e: Latency,
    /// How late a sleeping thread of this machine woke (the floor).
    wakeup_delay: Latency,
}

/// Counters at the window's edges and the per-second series.
struct Sampled {
    acked: (u64, u64),
    received: (u64, u64),
    cpu: Option<(Usage, Usage)>,
    /// The broker's stage histograms at the window's edges.
    stages: Option<(Scrape, Scrape)>,
    series: Vec<Sample>,
}

fn result(t: &TargetSpec, w: &Workload, s: &Shared, m: Measured) -> TargetResult {
    let secs = w.duration_secs as f64;
    let publish_rate = (m.sampled.acked.1 - m.sampled.acked.0) as f64 / secs;
    let consume_rate = (m.sampled.received.1 - m.sampled.received.0) as f64 / secs;
    let bytes = w.message_size as f64;
    let peak_rss = spawn::read_usage_sum(&t.broker_pids).map(|u| u.peak_rss_mb);
    TargetResult {
        name: t.name.to_string(),
        bootstrap: t.bootstrap.to_string(),
        spawned: t.spawned,
        target_rate_msgs: w.producer_rate,
        rate_sustained: (w.producer_rate > 0)
            .then_some(publish_rate >= SUSTAINED_FRACTION * w.producer_rate as f64),
        publish_rate_msgs: publish_rate,
        publish_rate_mb: mib(publish_rate * bytes),
        consume_rate_msgs: consume_rate,
        consume_rate_mb: mib(consume_rate * bytes),
        messages_sent: s.acked.load(Relaxed),
        messages_received: s.received.load(Relaxed),
        messages_failed: s.failed.load(Relaxed),
        publish_latency_us: m.publish.percentiles(),
        e2e_latency_us: m.e2e.percentiles(),
        wakeup_delay_us: m.wakeup_delay.percentiles(),
        broker: m.sampled.cpu.map(|(a, b)| Usage {
            cpu_seconds: b.cpu_seconds - a.cpu_seconds,
            peak_rss_mb: peak_rss.unwrap_or(b.peak_rss_mb),
        }),
        first_error: s.first_error.lock().unwrap().clone(),
        broker_stages: m
            .sampled
            .stages
            .map(|(before, after)| stages::window(&before, &after))
            .unwrap_or_default(),
        throughput: m.sampled.series,
        publish_latency_curve: m.publish.curve(),
        e2e_latency_curve: m.e2e.curve(),
    }
}

/// The max-rate search and the rate it hands the producers.
struct Search {
    controller: RateSearch,
    producers: f64,
    /// Per-producer rate, f64 bits, read by every producer thread.
    per_producer: Arc<AtomicU64>,
    /// Backlog (acked - received) and producer lag (s) at the last tick.
    backlog: f64,
    producer_lag: f64,
}

impl Search {
    /// A search when the workload asks for the maximum rate (`producer_rate = 0`).
    fn for_workload(w: &Workload) -> Option<Search> {
        if w.producer_rate != 0 {
            return None;
        }
        let producers = w.producers() as f64;
        let max = (PRODUCER_RATE_MAX_MSGS as f64 * producers)
            .min(RUN_BYTES_PER_SEC_MAX as f64 / w.message_size as f64);
        let start = crate::search::START_BYTES_PER_SEC / w.message_size as f64;
        let controller = RateSearch::new(start, 1.0, max.max(1.0));
        let per_producer = Arc::new(AtomicU64::new((controller.rate() / producers).to_bits()));
        Some(Search {
            controller,
            producers,
            per_producer,
            backlog: 0.0,
            producer_lag: 0.0,
        })
    }

    fn asked(&self) -> f64 {
        self.controller.rate()
    }

    /// Feeds one second's counts to the controller and publishes its rate.
    fn tick(&mut self, sample: &Sample, s: &Shared, has_consumers: bool) {
        let backlog = s
            .acked
            .load(Relaxed)
            .saturating_sub(s.received.load(Relaxed)) as f64;
        let producer_lag = s.producer_lag_ns.load(Relaxed) as f64 / 1e9;
        let rate = self.controller.observe(Observation {
            published: sample.publish_msgs,
            consumed: sample.consume_msgs,
            producer_lag,
            producer_lag_before: self.producer_lag,
            backlog,
            backlog_before: self.backlog,
            has_consumers,
        });
        (self.backlog, self.producer_lag) = (backlog, producer_lag);
        self.per_producer
            .store((rate / self.producers).to_bits(), Relaxed);
    }
}

/// Ticks once a second from the producers' start to the window's end.
fn sample(
    s: &Shared,
    w: &Workload,
    start_ns: u64,
    target: &TargetSpec,
    mut search: Option<&mut Search>,
    pb: &ProgressBar,
) -> Sampled {
    let usage = || spawn::read_usage_sum(&target.broker_pids);
    let scrape = || {
        let addr = target.metrics.as_deref()?;
        stages::scrape(addr)
            .map_err(|e| eprintln!("sluice-bench: no stage times: scraping {addr}: {e:#}"))
            .ok()
    };
    let ticks = w.warmup_secs + w.duration_secs;
    let mut out = Sampled {
        acked: (0, 0),
        received: (0, 0),
        cpu: None,
        stages: None,
        series: Vec::with_capacity(ticks as usize),
    };
    let mut cpu_start = usage();
    let mut stages_start = scrape();
    let (mut last_acked, mut last_received) = (0u64, 0u64);
    for tick in 1..=ticks {
        s.clock
            .sleep_until(start_ns + tick * SAMPLE_INTERVAL.as_nanos() as u64);
        let (acked, received) = (s.acked.load(Relaxed), s.received.load(Relaxed));
        let sample = Sample {
            t: tick as f64,
            publish_msgs: (acked - last_acked) as f64,
            consume_msgs: (received - last_received) as f64,
            asked_msgs: search
                .as_deref()
                .map_or(w.producer_rate as f64, Search::asked),
        };
        (last_acked, last_received) = (acked, received);
        out.series.push(sample);
        if let Some(search) = search.as_deref_mut() {
            search.tick(&sample, s, w.consumers_per_topic > 0);
        }
        if tick == w.warmup_secs {
            out.acked.0 = acked;
            out.received.0 = received;
            cpu_start = usage();
            stages_start = scrape();
        }
        let phase = if tick <= w.warmup_secs {
            "warm-up"
        } else {
            "measure"
        };
        pb.set_position(tick);
        pb.set_message(format!(
            "{phase}  asked {:.0}  pub {:.0} msg/s  cons {:.0} msg/s",
            sample.asked_msgs, sample.publish_msgs, sample.consume_msgs
        ));
    }
    out.acked.1 = last_acked;
    out.received.1 = last_received;
    out.cpu = cpu_start.zip(usage());
    out.stages = stages_start.zip(scrape());
    out
}

/// Waits (at most `grace`) for consumers to catch up with every ack.
fn drain(s: &Shared, w: &Workload, grace: Duration, pb: &ProgressBar) {
    if w.consumers_per_topic == 0 {
        return;
    }
    pb.set_message("draining consumers");
    let deadline = std::time::Instant::now() + grace;
    while s.received.load(Relaxed) < s.acked.load(Relaxed) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn producer_jobs(
    w: &Workload,
    topics: &[String],
    pace: &Pace,
    start_ns: u64,
    grace: Duration,
    run_tag: u32,
) -> Vec<ProducerJob> {
    let transactional = w.producer_mode().messages_per_transaction().is_some();
    let mut jobs = Vec::new();
    for topic in topics {
        for _ in 0..w.producers_per_topic {
            let index = jobs.len();
            jobs.push(ProducerJob {
                topic: topic.clone(),
                partitions: w.partitions_per_topic,
                pace: pace.clone(),
                start_ns,
                seed: index as u64 + 1,
                flush_timeout: grace,
                transactional_id: transactional.then(|| kafka::transactional_id(run_tag, index)),
            });
        }
    }
    jobs
}

fn consumer_jobs(w: &Workload, topics: &[String], run_tag: u32) -> Vec<ConsumerJob> {
    let mut jobs = Vec::new();
    for topic in topics {
        for i in 0..w.consumers_per_topic {
            jobs.push(ConsumerJob {
                topic: topic.clone(),
                partitions: clients::share_partitions(
                    w.partitions_per_topic,
                    w.consumers_per_topic,
                    i,
                ),
                group: match w.consumer_mode {
                    ConsumerMode::Assign => "sluice-bench-assign-only".into(),
                    ConsumerMode::Group | ConsumerMode::Share => {
                        format!("sluice-bench-{run_tag:08x}-{topic}")
                    }
                },
                mode: w.consumer_mode,
            });
        }
    }
    jobs
}

pub fn run_tag() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    crate::datasets::SplitMix64::new(nanos ^ std::process::id() as u64).next_u64() as u32
}

fn progress_bar(name: &str, w: &Workload) -> ProgressBar {
    let pb = ProgressBar::new(w.warmup_secs + w.duration_secs);
    pb.set_style(
        ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos:>3}/{len}s {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix(name.to_string());
    pb
}

/// Kills the spawned broker and exits if a run overstays its bound, so a
/// wedged client library can never hang a script.
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(limit: Duration, name: &str) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let name = name.to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "error: target {name}: run exceeded its {}s bound; aborting",
                    limit.as_secs()
                );
                let pid = spawn::SPAWNED_PID.load(Relaxed);
                if pid > 0 {
                    // SAFETY: kill(2) has no memory-safety preconditions; the
                    // pid is our unreaped child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                std::process::exit(3);
            }
        });
        Watchdog { _disarm: tx }
    }
}
