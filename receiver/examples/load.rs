//! The bench's load generator (bench/receiver): simulated databases posting realistic reports
//! to a receiver, measuring the rate of 200 answers and their latency.
//!
//!   cargo run --release -p timescaledb_telemetry_receiver --example load -- \
//!       URL TEMPLATE.json DATABASES SECONDS RATE
//!
//! TEMPLATE.json is a real report (the bench takes one from the extension); each simulated
//! database sends it with its own db_uuid and a growing data_volume. RATE 0 is a closed loop
//! (64 clients, each posting as soon as its last answer came: the most the receiver
//! sustains); RATE > 0 is an open loop of that many reports per second, each timed from when
//! it was due (so a slow answer delays no measurement). Prints one line of figures.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};

const CLIENTS: usize = 64;
const MAX_IN_FLIGHT: usize = 2048;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, template, databases, seconds, rate] = args.as_slice() else {
        eprintln!("usage: load URL TEMPLATE.json DATABASES SECONDS RATE");
        std::process::exit(2);
    };
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(template).expect("template"))
            .expect("template is JSON");
    let databases: usize = databases.parse().unwrap();
    let seconds: u64 = seconds.parse().unwrap();
    let rate: u64 = rate.parse().unwrap();
    let uuids: Vec<String> = (0..databases).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let bodies = Arc::new(Body { template, uuids });
    let client = reqwest::Client::builder().pool_max_idle_per_host(MAX_IN_FLIGHT).build().unwrap();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    if rate == 0 {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (client, url, bodies, stats) =
                    (client.clone(), url.clone(), bodies.clone(), stats.clone());
                tokio::spawn(async move {
                    let mut n = c;
                    while Instant::now() < end {
                        let due = Instant::now();
                        let ok = post(&client, &url, bodies.make(n)).await;
                        stats.lock().await.record(ok, due.elapsed());
                        n += CLIENTS;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
    } else {
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let every = Duration::from_secs_f64(1.0 / rate as f64);
        let mut n = 0usize;
        let mut tasks = Vec::new();
        loop {
            let due = started + every * n as u32;
            if due >= end {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                stats.lock().await.dropped += 1;
                n += 1;
                continue;
            };
            let (client, url, body, stats) = (client.clone(), url.clone(), bodies.make(n), stats.clone());
            tasks.push(tokio::spawn(async move {
                let ok = post(&client, &url, body).await;
                stats.lock().await.record(ok, due.elapsed());
                drop(slot);
            }));
            n += 1;
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut s = stats.lock().await;
    s.latencies.sort();
    let pct = |p: f64| {
        s.latencies
            .get(((s.latencies.len() as f64 * p) as usize).min(s.latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    println!(
        "ok={} failed={} dropped={} seconds={elapsed:.1} rate={:.0} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} body_bytes={}",
        s.ok,
        s.failed,
        s.dropped,
        s.ok as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        s.latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN),
        bodies.make(0).len(),
    );
}

struct Body {
    template: serde_json::Value,
    uuids: Vec<String>,
}

impl Body {
    /// The n-th report: database n mod DATABASES, its data volume growing with each round.
    fn make(&self, n: usize) -> String {
        let mut report = self.template.clone();
        let db = n % self.uuids.len();
        let round = n / self.uuids.len();
        report["db_uuid"] = self.uuids[db].clone().into();
        report["data_volume"] = (1_000_000 * (db as u64 % 97 + 1) + 8192 * round as u64).to_string().into();
        report.to_string()
    }
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> bool {
    match client.post(url).header("Content-Type", "application/json").body(body).send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

#[derive(Default)]
struct Stats {
    ok: u64,
    failed: u64,
    dropped: u64,
    latencies: Vec<Duration>,
}

impl Stats {
    fn record(&mut self, ok: bool, latency: Duration) {
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        self.latencies.push(latency);
    }
}
