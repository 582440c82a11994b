//! The benchmark as a user sees it: `tidings serve` (the release binary), the receiver and the
//! load generator are three separate processes on 127.0.0.1, and latency is read off the
//! receiver's clock. The receiver and the load generator are this same benchmark binary,
//! started again with `BENCH_ROLE=receiver` or `BENCH_ROLE=load`.
//!
//! Each event carries `sent_ns` (the wall clock, in ns, just before its post); the receiver
//! takes its own wall clock as each delivery arrives, so ingest→receipt latency is
//! `received - sent` on one machine's clock, with no process sharing an address space.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::receiver::TestReceiver;
use super::{App, agent, event};

/// Connections the load generator keeps open in the saturation scenarios.
const SATURATION_CONNS: usize = 64;
/// Connections sharing a paced load.
const PACED_CONNS: usize = 16;
const PACED_RATE: usize = 1_000;
const PACED_SECS: usize = 5;
/// Upper bound on waiting for every delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(180);
/// Linux reports process CPU time in clock ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SEC: f64 = 100.0;

#[path = "backlog.rs"]
pub mod backlog;
#[path = "poster.rs"]
mod poster;

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn env_usize(name: &str) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} must be set to a whole number"))
}

/// `name` as a whole number, or `default` when it is not set.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var_os(name).map_or(default, |_| env_usize(name))
}

/// Runs this process as a helper role if `BENCH_ROLE` says so; false when it is the benchmark.
pub fn run_role() -> bool {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("receiver") => receiver_role(),
        Ok("load") => load_role(),
        _ => return false,
    }
    true
}

/// The receiver: prints its port, then answers commands on stdin — `count` (deliveries so
/// far), `last_ns` (when the latest arrived) and `report` (latency figures as JSON) — until
/// stdin closes. `BENCH_PORT` binds that port; `BENCH_COUNT_ONLY` keeps no requests (no
/// `report`), for a backlog of a million.
fn receiver_role() {
    let recording = std::env::var_os("BENCH_COUNT_ONLY").is_none();
    let receiver = match std::env::var_os("BENCH_PORT") {
        Some(_) => TestReceiver::start_on_port(
            u16::try_from(env_usize("BENCH_PORT")).expect("BENCH_PORT is a port"),
            recording,
        ),
        None => TestReceiver::start_with(recording),
    };
    // Instants become wall-clock times through one pair read together: the tightest of many
    // brackets, since a busy machine may pause this process between two clock reads (a
    // millisecond's error there shifted every latency of a paced run).
    let (base_instant, base_wall) = (0..1_000)
        .map(|_| {
            let before = wall_ns();
            let instant = Instant::now();
            let after = wall_ns();
            (
                after.saturating_sub(before),
                instant,
                before.midpoint(after),
            )
        })
        .min_by_key(|(width, ..)| *width)
        .map(|(_, instant, wall)| (instant, wall))
        .expect("a thousand samples");
    println!("PORT {}", receiver.port());
    std::io::stdout().flush().expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let reply = match line.expect("stdin").trim() {
            "count" => receiver.count().to_string(),
            "last_ns" => receiver
                .arrivals()
                .last()
                .map_or(0, |at| {
                    base_wall + at.duration_since(base_instant).as_nanos()
                })
                .to_string(),
            "report" => {
                let mut seen = std::collections::HashSet::new();
                let mut latencies_ms = Vec::new();
                let (mut first, mut last, mut repeats) = (u128::MAX, 0u128, 0usize);
                for r in receiver.requests() {
                    let at = base_wall + r.at.duration_since(base_instant).as_nanos();
                    let body = r.body_json();
                    let sent = body["sent_ns"]
                        .as_str()
                        .and_then(|s| s.parse::<u128>().ok());
                    let key = (body["seq"].as_u64(), body["eventRule"]["id"].clone());
                    if !seen.insert(key) {
                        repeats += 1;
                        continue;
                    }
                    first = first.min(at);
                    last = last.max(at);
                    if let Some(sent) = sent {
                        #[allow(clippy::cast_precision_loss)]
                        latencies_ms.push(at.saturating_sub(sent) as f64 / 1e6);
                    }
                }
                latencies_ms.sort_by(f64::total_cmp);
                let pct = |per_mille: usize| {
                    latencies_ms
                        .get((latencies_ms.len().max(1) - 1) * per_mille / 1000)
                        .copied()
                        .unwrap_or(f64::NAN)
                };
                json!({
                    "deliveries": latencies_ms.len(), "repeats": repeats,
                    "first_ns": first.to_string(), "last_ns": last.to_string(),
                    "p50": pct(500), "p90": pct(900), "p99": pct(990),
                    "max": latencies_ms.last().copied().unwrap_or(f64::NAN),
                })
                .to_string()
            }
            other => format!("unknown command {other:?}"),
        };
        println!("{reply}");
        std::io::stdout().flush().expect("stdout");
    }
}

/// The load generator: `BENCH_TOTAL` events to `BENCH_BASE` over `BENCH_CONNS` keep-alive
/// connections, paced at `BENCH_RATE` per second (0: as fast as they are answered). Prints
/// one JSON line: when the first was sent, how long sending took, and POST latencies. Every
/// event must get its 202, unless `BENCH_REFUSALS_OK` is set: then a 503 (the store's queue
/// full) is counted as refused, and the line says how many.
fn load_role() {
    let base = std::env::var("BENCH_BASE").expect("BENCH_BASE");
    let key = std::env::var("BENCH_KEY").expect("BENCH_KEY");
    let (total, conns, rate) = (
        env_usize("BENCH_TOTAL"),
        env_usize("BENCH_CONNS"),
        env_usize("BENCH_RATE"),
    );
    // Several bases (comma-separated: several nodes) share the connections in turn.
    let urls: Vec<String> = base
        .split(',')
        .map(|b| format!("{b}/api/v1/events"))
        .collect();
    let refusals_ok = std::env::var_os("BENCH_REFUSALS_OK").is_some();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let interval = (rate > 0).then(|| Duration::from_secs(1) / u32::try_from(rate).unwrap_or(1));
    let first_sent = wall_ns();
    let t0 = Instant::now();
    let mut post_ms: Vec<f64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..conns)
            .map(|c| {
                let (url, key, refused) = (&urls[c % urls.len()], &key, &refused);
                s.spawn(move || {
                    let mut poster = poster::Poster::connect(url, key);
                    let mut took = Vec::with_capacity(total / conns + 1);
                    for seq in (c..total).step_by(conns) {
                        if let Some(interval) = interval {
                            let due = t0 + interval * u32::try_from(seq).unwrap_or(u32::MAX);
                            // Pacing, not waiting for a condition: a late sender goes at once.
                            if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(ahead);
                            }
                        }
                        let mut body = event(seq);
                        body["data"]["sent_ns"] = Value::String(wall_ns().to_string());
                        let bytes = serde_json::to_vec(&body).expect("serialize");
                        let at = Instant::now();
                        let (status, text) = poster.post(&bytes);
                        if refusals_ok && status == 503 {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        } else {
                            assert_eq!(status, 202, "event {seq}: {text}");
                        }
                        took.push(at.elapsed().as_secs_f64() * 1000.0);
                    }
                    took
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("load worker"))
            .collect()
    });
    let sending = t0.elapsed();
    post_ms.sort_by(f64::total_cmp);
    let pct = |per_mille: usize| post_ms[(post_ms.len() - 1) * per_mille / 1000];
    println!(
        "{}",
        json!({"first_ns": first_sent.to_string(), "secs": sending.as_secs_f64(),
               "post_p50": pct(500), "post_p99": pct(990), "refused": refused.into_inner()})
    );
}

/// A helper role, started as a child of this benchmark.
struct Role {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Role {
    fn start(role: &str, env: &[(&str, String)]) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this benchmark's path"))
            .env("BENCH_ROLE", role)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a benchmark role");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read a role's answer");
        line.trim().to_owned()
    }

    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("role stdin");
        writeln!(stdin, "{command}").expect("write a role command");
        stdin.flush().expect("flush");
        self.line()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of a process so far, in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SEC)
}

/// What one separate-process scenario measured.
pub struct Measured {
    pub deliveries_per_s: f64,
    pub ingest_per_s: f64,
    pub post_p50_ms: f64,
    pub post_p99_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cpu_us_per_delivery: f64,
    /// The receiver's and load generator's CPU per delivery: on one box, what the rest of
    /// the run takes from the same cores.
    pub others_cpu_us_per_delivery: f64,
    pub rss_mib: f64,
    pub repeats: usize,
}

/// One scenario: a fresh `tidings serve`, `rules` rules to a receiver process, `events`
/// events from a load process at `rate` per second (0: saturation) over `conns` connections.
pub fn scenario(label: &str, rules: usize, events: usize, rate: usize, conns: usize) -> Measured {
    on_nodes(label, 1, rules, events, rate, conns)
}

/// As `scenario`, on `nodes` `tidings serve` processes sharing one PostgreSQL database (more
/// than one needs `BENCH_POSTGRES`); the load generator's connections take the nodes in turn.
/// CPU is the nodes' sum, RSS the largest node's.
fn on_nodes(
    label: &str,
    nodes: usize,
    rules: usize,
    events: usize,
    rate: usize,
    conns: usize,
) -> Measured {
    let app = App::spawn();
    assert!(
        nodes == 1 || !app.store_url.is_empty(),
        "several nodes need BENCH_POSTGRES"
    );
    let others: Vec<App> = (1..nodes).map(|_| app.another_node()).collect();
    let pids: Vec<u32> = std::iter::once(&app)
        .chain(&others)
        .map(|a| a.child_pid().expect("tidings serve runs as a child"))
        .collect();
    let bases: Vec<&str> = std::iter::once(&app)
        .chain(&others)
        .map(|a| a.base.as_str())
        .collect();
    let cpu_now = || {
        pids.iter()
            .map(|&p| cpu_secs(p).unwrap_or(0.0))
            .sum::<f64>()
    };
    let mut receiver = Role::start("receiver", &[]);
    let port = receiver
        .line()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse::<u16>().ok())
        .expect("the receiver says its port");
    let setup = agent();
    for _ in 0..rules {
        app.rule(&setup, &format!("http://127.0.0.1:{port}/hook"), false);
    }
    let receiver_pid = receiver.child.id();
    let receiver_before = cpu_secs(receiver_pid).unwrap_or(f64::NAN);
    let cpu_before = cpu_now();
    let mut load = Role::start(
        "load",
        &[
            ("BENCH_BASE", bases.join(",")),
            ("BENCH_KEY", app.key.clone()),
            ("BENCH_TOTAL", events.to_string()),
            ("BENCH_CONNS", conns.to_string()),
            ("BENCH_RATE", rate.to_string()),
        ],
    );
    let sent: Value = serde_json::from_str(&load.line()).expect("the load generator's report");
    let expected = events * rules;
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let got: usize = receiver.ask("count").parse().expect("a count");
        if got >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {expected} deliveries arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_now() - cpu_before;
    // The load generator has finished (or is about to) and is not reaped until dropped.
    let helpers_cpu = cpu_secs(receiver_pid).unwrap_or(f64::NAN) - receiver_before
        + cpu_secs(load.child.id()).unwrap_or(f64::NAN);
    let report: Value = serde_json::from_str(&receiver.ask("report")).expect("the report");
    let ns = |v: &Value| v.as_str().and_then(|s| s.parse::<u128>().ok()).unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let span_s = ns(&report["last_ns"]).saturating_sub(ns(&sent["first_ns"])) as f64 / 1e9;
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let m = Measured {
        deliveries_per_s: expected as f64 / span_s,
        ingest_per_s: events as f64 / f(&sent["secs"]),
        post_p50_ms: f(&sent["post_p50"]),
        post_p99_ms: f(&sent["post_p99"]),
        p50_ms: f(&report["p50"]),
        p90_ms: f(&report["p90"]),
        p99_ms: f(&report["p99"]),
        max_ms: f(&report["max"]),
        cpu_us_per_delivery: cpu * 1e6 / expected as f64,
        others_cpu_us_per_delivery: helpers_cpu * 1e6 / expected as f64,
        rss_mib: std::iter::once(&app)
            .chain(&others)
            .filter_map(App::child_peak_rss_mib)
            .fold(f64::NAN, f64::max),
        repeats: report["repeats"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
    };
    print_line(label, (nodes, rules, events, rate, conns), &m);
    drop(load);
    m
}

/// One scenario's result line: what ran (nodes, rules, events, rate, connections), then `m`.
fn print_line(label: &str, ran: (usize, usize, usize, usize, usize), m: &Measured) {
    let (nodes, rules, events, rate, conns) = ran;
    println!(
        "{label}: {nodes} node(s), {events} events × {rules} rule(s) at {} over {conns} connections: \
         {:.0} deliveries/s, ingest {:.0} events/s (POST p50 {:.1} ms, p99 {:.1} ms), \
         ingest→receipt p50 {:.1} ms · p90 {:.1} · p99 {:.1} · max {:.1}, \
         tidings CPU {:.0} µs/delivery (receiver + load {:.0}), peak RSS {:.0} MiB, {} repeats",
        if rate == 0 {
            "saturation".to_owned()
        } else {
            format!("{rate}/s")
        },
        m.deliveries_per_s,
        m.ingest_per_s,
        m.post_p50_ms,
        m.post_p99_ms,
        m.p50_ms,
        m.p90_ms,
        m.p99_ms,
        m.max_ms,
        m.cpu_us_per_delivery,
        m.others_cpu_us_per_delivery,
        m.rss_mib,
        m.repeats,
    );
}

/// Whether scenario `letter` runs: all of them unless `BENCH_SCENARIOS` lists some (e.g.
/// `BENCH_SCENARIOS=ij`, to profile one without waiting for the others).
fn wanted(letter: char) -> bool {
    std::env::var("BENCH_SCENARIOS").map_or(true, |only| only.contains(letter))
}

/// The separate-process scenarios, h–k, and with `BENCH_POSTGRES` l–m on two nodes.
pub fn all(events: usize) {
    let fan_out = 10;
    if wanted('h') {
        scenario(
            "h. end-to-end, 1 rule, saturation",
            1,
            events,
            0,
            SATURATION_CONNS,
        );
    }
    if wanted('i') {
        scenario(
            "i. end-to-end, 10 rules, saturation",
            fan_out,
            (events / fan_out).max(1),
            0,
            SATURATION_CONNS,
        );
    }
    let paced = PACED_RATE * PACED_SECS;
    if wanted('j') {
        scenario("j. latency, 1 rule", 1, paced, PACED_RATE, PACED_CONNS);
    }
    if wanted('k') {
        scenario(
            "k. latency, 10 rules",
            fan_out,
            paced,
            PACED_RATE,
            PACED_CONNS,
        );
    }
    // l–m: h and j again on two nodes sharing the database (issue 10: no slower than one).
    if std::env::var_os("BENCH_POSTGRES").is_none() {
        return;
    }
    if wanted('l') {
        on_nodes(
            "l. end-to-end, 1 rule, saturation, two nodes",
            2,
            1,
            events,
            0,
            SATURATION_CONNS,
        );
    }
    if wanted('m') {
        on_nodes(
            "m. latency, 1 rule, two nodes",
            2,
            1,
            paced,
            PACED_RATE,
            PACED_CONNS,
        );
    }
}
