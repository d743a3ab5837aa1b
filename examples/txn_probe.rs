//! Times librdkafka transactions against a running broker (a probe, not a
//! benchmark): `cargo run --example txn_probe -- HOST:PORT N_TXNS MSGS_PER_TXN`.
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bs, txns, per) = (
        &args[1],
        args[2].parse::<usize>().unwrap(),
        args[3].parse::<usize>().unwrap(),
    );
    let debug = std::env::var("RDKAFKA_DEBUG").unwrap_or_default();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bs)
        .set("transactional.id", "probe")
        .set("linger.ms", "1");
    if let Ok(b) = std::env::var("BACKOFF") {
        c.set("retry.backoff.ms", &b);
    }
    if !debug.is_empty() {
        c.set("debug", &debug);
    }
    let p: BaseProducer = c.create().unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    let start = Instant::now();
    for t in 0..txns {
        let t0 = Instant::now();
        p.begin_transaction().unwrap();
        for i in 0..per {
            let v = format!("{t}-{i}");
            p.send(BaseRecord::<str, str>::to("probe").payload(&v))
                .unwrap();
        }
        let t1 = Instant::now();
        p.commit_transaction(Duration::from_secs(30)).unwrap();
        eprintln!("txn {t}: send {:?} commit {:?}", t1 - t0, t1.elapsed());
    }
    eprintln!("{} txns in {:?}", txns, start.elapsed());
}
