//! loadgen: steady traffic through the gateway so that Hopline has traces to show.
//!
//! A mix of writes (new users, new orders) and reads (a user, a user's orders, an
//! order), at a fixed rate, with faults injected on purpose: orders for users that do
//! not exist (404 from user-service over gRPC), orders that take the slow path
//! (`SLOW-*` SKUs), orders whose confirmation e-mail fails (`FAIL-EMAIL`), and
//! orders of a bundle whose parts are read one query at a time (`BUNDLE-12`, an
//! N+1).
//! Prints progress every 5 seconds and a summary at the end (or on Ctrl-C).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Steady traffic through the Hopline demo's gateway, with injected faults"
)]
struct Args {
    /// The gateway's base URL
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Requests per second
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 5.0)]
    rate: f64,
    /// How long to run, in seconds (0: until Ctrl-C)
    #[arg(long, env = "LOADGEN_DURATION", default_value_t = 0)]
    duration: u64,
    /// Share of reads among requests (0 to 1)
    #[arg(long, env = "LOADGEN_READ_RATIO", default_value_t = 0.5)]
    read_ratio: f64,
    /// Share of orders for users that do not exist
    #[arg(long, default_value_t = 0.1)]
    unknown_user_ratio: f64,
    /// Share of orders that take the slow path
    #[arg(long, default_value_t = 0.05)]
    slow_ratio: f64,
    /// Share of orders whose confirmation e-mail fails
    #[arg(long, default_value_t = 0.05)]
    failing_email_ratio: f64,
    /// Share of orders with a 12-part bundle, whose parts order-service reads one
    /// query at a time (an N+1, about 100 ms)
    #[arg(long, visible_alias = "n-plus-one", default_value_t = 0.05)]
    n_plus_one_ratio: f64,
}

/// xorshift64*: enough randomness for a traffic mix, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Default)]
struct Stats {
    outcomes: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
    users: Vec<i64>,
    orders: Vec<i64>,
}

impl Stats {
    fn line(&self) -> String {
        let total: u64 = self.outcomes.values().sum();
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!("{total} requests ({})", parts.join(", "))
    }
}

enum Request {
    CreateUser(u64),
    CreateOrder { user_id: i64, items: Value },
    GetUser(i64),
    UserOrders(i64),
    GetOrder(i64),
}

fn plan(args: &Args, rng: &mut Rng, stats: &Stats, run: u64, n: u64) -> (&'static str, Request) {
    if stats.users.is_empty() || (!rng.chance(args.read_ratio) && rng.chance(0.2)) {
        return ("create user", Request::CreateUser(run * 1_000_000 + n));
    }
    if rng.chance(args.read_ratio) {
        let user = stats.users[rng.below(stats.users.len())];
        return match rng.below(3) {
            0 => ("get user", Request::GetUser(user)),
            1 => ("user orders", Request::UserOrders(user)),
            _ if !stats.orders.is_empty() => (
                "get order",
                Request::GetOrder(stats.orders[rng.below(stats.orders.len())]),
            ),
            _ => ("get user", Request::GetUser(user)),
        };
    }
    let unknown = rng.chance(args.unknown_user_ratio);
    let user_id = if unknown {
        900_000_000 + rng.below(1000) as i64
    } else {
        stats.users[rng.below(stats.users.len())]
    };
    let sku = if rng.chance(args.slow_ratio) {
        "SLOW-CRATE".to_string()
    } else if rng.chance(args.failing_email_ratio) {
        "FAIL-EMAIL".to_string()
    } else if rng.chance(args.n_plus_one_ratio) {
        "BUNDLE-12".to_string()
    } else {
        format!("SKU-{}", rng.below(50))
    };
    let items = json!([
        { "sku": sku, "quantity": 1 + rng.below(3), "price": (1 + rng.below(9000)) as f64 / 100.0 },
        { "sku": format!("SKU-{}", rng.below(50)), "quantity": 1, "price": 4.99 },
    ]);
    let label = if unknown {
        "order (unknown user)"
    } else {
        "create order"
    };
    (label, Request::CreateOrder { user_id, items })
}

async fn send(
    client: &reqwest::Client,
    gateway: &str,
    request: &Request,
) -> Result<(u16, Value), String> {
    let builder = match request {
        Request::CreateUser(n) => client.post(format!("{gateway}/api/users")).json(
            &json!({ "name": format!("User {n}"), "email": format!("user-{n}@example.com") }),
        ),
        Request::CreateOrder { user_id, items } => client
            .post(format!("{gateway}/api/orders"))
            .json(&json!({ "userId": user_id, "items": items })),
        Request::GetUser(id) => client.get(format!("{gateway}/api/users/{id}")),
        Request::UserOrders(id) => client.get(format!("{gateway}/api/orders?userId={id}")),
        Request::GetOrder(id) => client.get(format!("{gateway}/api/orders/{id}")),
    };
    let response = builder
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rate.is_nan() || args.rate <= 0.0 {
        anyhow::bail!("--rate must be positive, got {}", args.rate);
    }
    let gateway = args.gateway.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    let run = seed % 1_000_000;
    let mut rng = Rng(seed);
    let started = Instant::now();
    let deadline = (args.duration > 0).then(|| started + Duration::from_secs(args.duration));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    println!(
        "loadgen: {} req/s to {gateway} for {}, reads {:.0}%, faults: unknown users {:.0}%, slow {:.0}%, failing e-mail {:.0}%, N+1 {:.0}%",
        args.rate,
        if args.duration == 0 { "ever (Ctrl-C stops)".to_string() } else { format!("{}s", args.duration) },
        args.read_ratio * 100.0,
        args.unknown_user_ratio * 100.0,
        args.slow_ratio * 100.0,
        args.failing_email_ratio * 100.0,
        args.n_plus_one_ratio * 100.0,
    );
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = progress.tick() => {
                let line = stats.lock().map(|s| s.line()).unwrap_or_default();
                println!("loadgen: {:>5.0}s {line}", started.elapsed().as_secs_f64());
            }
            _ = tick.tick() => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                n += 1;
                let (label, request) = {
                    let stats = stats.lock().map_err(|_| anyhow::anyhow!("stats lock poisoned"))?;
                    plan(&args, &mut rng, &stats, run, n)
                };
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    if let Ok(mut s) = stats.lock() { *s.outcomes.entry("skipped (64 in flight)".into()).or_default() += 1; }
                    continue;
                };
                let (client, gateway, stats) = (client.clone(), gateway.clone(), Arc::clone(&stats));
                tokio::spawn(async move {
                    let begun = Instant::now();
                    let result = send(&client, &gateway, &request).await;
                    let elapsed = begun.elapsed();
                    drop(permit);
                    let Ok(mut stats) = stats.lock() else { return };
                    stats.latencies.push(elapsed);
                    let outcome = match result {
                        Ok((status, body)) => {
                            if status == 201 {
                                if let Some(id) = body.get("id").and_then(Value::as_i64) {
                                    match request {
                                        Request::CreateUser(_) => stats.users.push(id),
                                        Request::CreateOrder { .. } => stats.orders.push(id),
                                        _ => {}
                                    }
                                }
                            }
                            format!("{label} {status}")
                        }
                        Err(_) => format!("{label} failed"),
                    };
                    *stats.outcomes.entry(outcome).or_default() += 1;
                });
            }
        }
    }
    // Let in-flight requests finish.
    let _ = limit.acquire_many(64).await;
    let mut stats = stats
        .lock()
        .map_err(|_| anyhow::anyhow!("stats lock poisoned"))?;
    stats.latencies.sort();
    println!(
        "loadgen: done after {:.0}s: {}",
        started.elapsed().as_secs_f64(),
        stats.line()
    );
    println!(
        "loadgen: latency p50 {:?}, p99 {:?}; {} users and {} orders created",
        percentile(&stats.latencies, 0.5),
        percentile(&stats.latencies, 0.99),
        stats.users.len(),
        stats.orders.len()
    );
    Ok(())
}

/// Ctrl-C or SIGTERM: stop sending and print the summary.
async fn stop_signal() {
    #[cfg(unix)]
    if let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
