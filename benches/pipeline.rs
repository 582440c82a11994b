//! The README's "Performance" benchmark: ingest throughput, end-to-end and fan-out delivery
//! throughput, ingest→receipt latency at a paced rate, and peak memory. Scenarios a–g run
//! tidings, the receiver and the load generator in this one process on 127.0.0.1 (release
//! profile); h–k (processes.rs) run them as three separate processes, the way a user sees it.
//! `cargo bench --bench pipeline`; `BENCH_EVENTS=N` changes the event count.
//! `BENCH_POSTGRES=postgres://…` (a server where the bench may create databases) runs the
//! `tidings serve` of h–k on PostgreSQL, a new database per scenario.
#![allow(clippy::cast_precision_loss)]

#[path = "support/processes.rs"]
mod processes;
#[path = "../tests/it/support/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use receiver::TestReceiver;
use serde_json::{Value, json};
use tidings::config::{Config, Mode};
use tidings::domain::access::Role;

/// Events per throughput scenario unless `BENCH_EVENTS` says otherwise.
const DEFAULT_EVENTS: usize = 20_000;
/// Concurrent clients posting events in the throughput scenarios, unless `BENCH_CLIENTS`
/// says otherwise. Every accepted event waits for its fsync, so throughput grows with the
/// number of concurrent posters (group commit puts them in one transaction).
const DEFAULT_CLIENTS: usize = 16;
/// Rules in the fan-out scenario.
const FAN_OUT: usize = 10;
/// Paced rate and duration of the latency scenario.
const PACED_RATE: usize = 1_000;
const PACED_SECS: usize = 5;
/// Clients sharing the paced load (so one slow answer does not hold up the schedule).
const PACED_CLIENTS: usize = 8;
/// Upper bound on any wait for deliveries to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// tidings on a fresh data dir with an admin key: in-process, or the release binary as a
/// child process (to measure its own memory).
struct App {
    handle: Option<tidings::AppHandle>,
    child: Option<std::process::Child>,
    base: String,
    key: String,
    dir: PathBuf,
    /// The PostgreSQL database it runs on; empty on the embedded store.
    store_url: String,
}

/// A new database on the `BENCH_POSTGRES` server, as a store URL; empty (the embedded
/// store) without it.
fn postgres_database() -> String {
    let Ok(admin) = std::env::var("BENCH_POSTGRES") else {
        return String::new();
    };
    let name = format!("tidings_bench_{:016x}", rand::random::<u64>());
    postgres::Client::connect(&admin, postgres::NoTls)
        .and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {name}")))
        .expect("BENCH_POSTGRES: create a database for the scenario");
    let mut url = url::Url::parse(&admin).expect("BENCH_POSTGRES is a URL");
    url.set_path(&name);
    url.to_string()
}

fn bench_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "tidings-bench-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

impl App {
    /// `tidings serve --dev` as a child process, its key made by `tidings key create`; on a
    /// new PostgreSQL database of its own with `BENCH_POSTGRES`.
    fn spawn() -> Self {
        Self::spawn_on(&postgres_database(), None, None, &[])
    }

    /// As `spawn`, with an admin `bench` who signs in to the UI with `password`, and `env`
    /// set for `tidings serve`.
    fn spawn_with_ui_user(password: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_on(&postgres_database(), None, Some(password), env)
    }

    /// Another node on this one's PostgreSQL database, with its master key.
    fn another_node(&self) -> Self {
        Self::spawn_on(
            &self.store_url,
            Some(&self.dir.join("master.key")),
            None,
            &[],
        )
    }

    /// `tidings serve --dev` as a child process on `store_url` (empty: the embedded store in
    /// a data dir of its own), with the master key copied from `master_key` if given, and a
    /// UI admin `bench` with `ui_password` if given (made by `tidings user add`).
    fn spawn_on(
        store_url: &str,
        master_key: Option<&std::path::Path>,
        ui_password: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = bench_dir();
        if let Some(key) = master_key {
            std::fs::create_dir_all(&dir).expect("make the node's data dir");
            std::fs::copy(key, dir.join("master.key")).expect("copy the master key");
        }
        let bin = env!("CARGO_BIN_EXE_tidings");
        if let Some(password) = ui_password {
            add_ui_admin(bin, store_url, &dir, password);
        }
        let out = std::process::Command::new(bin)
            .env("TIDINGS_STORE_URL", store_url)
            .args([
                "key",
                "create",
                "--role",
                "admin",
                "--name",
                "bench",
                "--data-dir",
            ])
            .arg(&dir)
            .output()
            .expect("run tidings key create");
        assert!(out.status.success(), "key create failed: {out:?}");
        let key = String::from_utf8(out.stdout)
            .expect("utf-8 key")
            .trim()
            .to_owned();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(bin)
            .env("TIDINGS_STORE_URL", store_url)
            .envs(env.iter().copied())
            .args([
                "serve",
                "--dev",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn tidings serve");
        let base = format!("http://127.0.0.1:{port}");
        let agent = agent();
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(format!("{base}/healthz")).call().is_err() {
            assert!(Instant::now() < deadline, "tidings serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            handle: None,
            child: Some(child),
            base,
            key,
            dir,
            store_url: store_url.to_owned(),
        }
    }

    /// The `tidings serve` child's process id.
    fn child_pid(&self) -> Option<u32> {
        Some(self.child.as_ref()?.id())
    }

    /// Peak RSS of the child process, in MiB.
    fn child_peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        vm_hwm_mib(&format!("/proc/{pid}/status"))
    }

    fn start() -> Self {
        let dir = bench_dir();
        let mut config = Config::defaults();
        config.data_dir.clone_from(&dir);
        config.mode = Mode::Development;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let handle = tidings::run_with_key(config, listener, None).expect("tidings starts");
        let workspace = handle.store().default_workspace().clone();
        let (record, key) = tidings::app::keys::mint(&workspace, "bench", Role::Admin);
        let audit = tidings::domain::audit::AuditEntry::new(
            &workspace,
            tidings::domain::audit::Actor::Cli,
            "api_key.create",
            "api_key",
            record.id.as_str(),
        );
        handle
            .store()
            .insert_api_key(record, audit)
            .expect("store the bench key");
        Self {
            base: format!("http://127.0.0.1:{}", handle.port()),
            key: key.expose().to_owned(),
            handle: Some(handle),
            child: None,
            dir,
            store_url: String::new(),
        }
    }

    /// A rule for `bench:*` to `url`; with `power`, it also has a CEL condition (which every
    /// bench event passes) and a JSON body template, to measure what they cost.
    fn rule(&self, agent: &ureq::Agent, url: &str, power: bool) {
        // BENCH_MAX_CONCURRENCY sets each rule's max_concurrency (default: the rule default, 8).
        let mut body = json!({
            "name": "bench",
            "trigger": {"type": "event", "events": ["bench:*"]},
            "webhook": {"url": url},
        });
        if power {
            body["condition"] = json!(
                r#"data.dataRecord.fields.priority == "high" && "vip" in data.member.labels"#
            );
            body["webhook"]["payload_format"] = json!("template");
            body["webhook"]["body_template"] = json!(
                r#"{"seq": {{ seq|tojson }}, "text": {{ ("Form from " ~ member.name)|tojson }}, "fields": {{ dataRecord.fields|tojson }}}"#
            );
        }
        // BENCH_ORDERING_KEY gives each rule an ordering key (SPEC §15), e.g. `data.seq % 100`
        // for a hundred keys, to measure what ordering costs.
        if let Ok(key) = std::env::var("BENCH_ORDERING_KEY") {
            body["ordering_key"] = json!(key);
        }
        if let Some(n) = std::env::var("BENCH_MAX_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        {
            body["max_concurrency"] = json!(n);
        }
        let (status, text) = post(
            agent,
            &format!("{}/api/v1/rules", self.base),
            &self.key,
            &body,
        );
        assert_eq!(status, 201, "rule not created: {text}");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `tidings user add --username bench --role admin`, the password on standard input.
fn add_ui_admin(bin: &str, store_url: &str, dir: &std::path::Path, password: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(bin)
        .env("TIDINGS_STORE_URL", store_url)
        .args([
            "user",
            "add",
            "--username",
            "bench",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run tidings user add");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    assert!(child.wait().expect("user add").success(), "user add failed");
}

/// A keep-alive HTTP client.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn post(agent: &ureq::Agent, url: &str, key: &str, body: &Value) -> (u16, String) {
    let bytes = serde_json::to_vec(body).expect("serialize");
    let resp = agent
        .post(url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(&bytes[..])
        .expect("tidings answers");
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (status, text)
}

/// A realistic small event (a form submission) carrying its sequence number.
fn event(seq: usize) -> Value {
    json!({
        "type": "bench:created",
        "data": {
            "seq": seq,
            "dataType": {"slug": "contact_form"},
            "member": {"id": 123, "name": "John Doe", "email": "john@example.org", "labels": ["vip"]},
            "dataRecord": {"id": 4567, "fields": {"priority": "high", "message": "Please call me back tomorrow morning."}},
        }
    })
}

/// Posts events 0..n from `clients` threads as fast as they are answered; returns the time
/// taken. Every answer must be 202.
fn blast(app: &App, n: usize, clients: usize) -> Duration {
    let url = format!("{}/api/v1/events", app.base);
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (url, key) = (&url, &app.key);
            s.spawn(move || {
                let agent = agent();
                for seq in (c..n).step_by(clients) {
                    let (status, text) = post(&agent, url, key, &event(seq));
                    assert_eq!(status, 202, "event {seq}: {text}");
                }
            });
        }
    });
    started.elapsed()
}

fn per_sec(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

fn clients() -> usize {
    std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CLIENTS)
}

fn events_override() -> usize {
    match std::env::var("BENCH_EVENTS") {
        Ok(v) => {
            v.trim().parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                panic!("BENCH_EVENTS must be a positive whole number, not {v:?}")
            })
        }
        Err(_) => DEFAULT_EVENTS,
    }
}

/// a. Ingest only: no rules, so each request is auth, validation and a durable write.
fn ingest_throughput(n: usize) -> f64 {
    let app = App::start();
    let clients = clients();
    let took = blast(&app, n, clients);
    let rate = per_sec(n, took);
    println!(
        "a. ingest, no rules, {clients} clients: {n} events in {took:.2?} = {rate:.0} events/s"
    );
    rate
}

/// b./c. `rules` rules to one count-only receiver: from the first post until the receiver
/// has every delivery.
fn delivery_throughput(label: &str, events: usize, rules: usize) -> f64 {
    run_deliveries(&App::start(), label, events, rules, false)
}

/// g. The one-rule run with a condition and a body template on the rule.
fn power_throughput(events: usize) -> f64 {
    run_deliveries(
        &App::start(),
        "g. end-to-end, 1 rule with a CEL condition and a body template",
        events,
        1,
        true,
    )
}

/// f. The one-rule run against `tidings serve` as its own process: its throughput without
/// sharing an address space, and its own peak memory.
fn separate_process(events: usize) -> (f64, Option<f64>) {
    let app = App::spawn();
    let rate = run_deliveries(
        &app,
        "f. end-to-end, 1 rule, tidings as its own process",
        events,
        1,
        false,
    );
    let rss = app.child_peak_rss_mib();
    if let Some(mib) = rss {
        println!("   tidings serve peak RSS (VmHWM) {mib:.0} MiB");
    }
    (rate, rss)
}

fn run_deliveries(app: &App, label: &str, events: usize, rules: usize, power: bool) -> f64 {
    let receiver = TestReceiver::start_with(false);
    let setup = agent();
    for _ in 0..rules {
        app.rule(&setup, &receiver.url("/hook"), power);
    }
    let expected = events * rules;
    let started = Instant::now();
    let ingest = blast(app, events, clients());
    receiver.wait_for(expected, DELIVERY_TIMEOUT);
    let took = started.elapsed();
    let rate = per_sec(expected, took);
    println!(
        "{label}: {events} events × {rules} rule(s) = {expected} deliveries in {took:.2?} \
         (ingest done after {ingest:.2?}) = {rate:.0} deliveries/s"
    );
    rate
}

/// d. Ingest→receipt latency at a paced rate, one rule, recording receiver: each body's
/// `seq` (flat payload, top level) is matched to the instant just before its post.
fn paced_latency() -> (f64, f64, f64, f64) {
    let app = App::start();
    let receiver = TestReceiver::start();
    app.rule(&agent(), &receiver.url("/hook"), false);
    let total = PACED_RATE * PACED_SECS;
    let interval = Duration::from_secs(1) / u32::try_from(PACED_RATE).expect("rate fits u32");
    let url = format!("{}/api/v1/events", app.base);
    let t0 = Instant::now() + Duration::from_millis(50);
    let mut send_times: Vec<Option<Instant>> = vec![None; total];
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..PACED_CLIENTS)
            .map(|c| {
                let (url, key) = (&url, &app.key);
                s.spawn(move || {
                    let agent = agent();
                    let mut mine = Vec::with_capacity(total / PACED_CLIENTS + 1);
                    for seq in (c..total).step_by(PACED_CLIENTS) {
                        let due = t0 + interval * u32::try_from(seq).expect("seq fits u32");
                        // Pacing, not waiting for a condition: a late client sends at once.
                        if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(ahead);
                        }
                        let at = Instant::now();
                        let (status, text) = post(&agent, url, key, &event(seq));
                        assert_eq!(status, 202, "event {seq}: {text}");
                        mine.push((seq, at));
                    }
                    mine
                })
            })
            .collect();
        for c in clients {
            for (seq, at) in c.join().expect("paced client") {
                send_times[seq] = Some(at);
            }
        }
    });
    let sending = t0.elapsed();
    let requests = receiver.wait_for(total, DELIVERY_TIMEOUT);
    let mut latencies: Vec<f64> = Vec::with_capacity(total);
    let mut arrived = vec![false; total];
    for r in &requests {
        let seq = usize::try_from(r.body_json()["seq"].as_u64().expect("seq in the payload"))
            .expect("seq fits usize");
        if std::mem::replace(&mut arrived[seq], true) {
            continue; // a repeat (at-least-once); the first arrival counts
        }
        let at = send_times[seq].expect("every seq was sent");
        latencies.push(r.at.saturating_duration_since(at).as_secs_f64() * 1000.0);
    }
    assert_eq!(latencies.len(), total, "every event arrives");
    latencies.sort_by(f64::total_cmp);
    // Nearest rank, rounded down, in thousandths.
    let pct = |per_mille: usize| latencies[(latencies.len() - 1) * per_mille / 1000];
    let (p50, p99, max) = (pct(500), pct(990), latencies[latencies.len() - 1]);
    let achieved = per_sec(total, sending);
    println!(
        "d. latency, 1 rule, paced {PACED_RATE}/s for {PACED_SECS} s (achieved {achieved:.0}/s): \
         p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {total} events"
    );
    (p50, p99, max, achieved)
}

/// Peak resident set size of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    vm_hwm_mib("/proc/self/status")
}

fn vm_hwm_mib(path: &str) -> Option<f64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    // The separate-process scenarios start this binary again as their receiver and load.
    if processes::run_role() {
        return;
    }
    let n = events_override();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "tidings pipeline benchmark: {n} events per throughput run, {cores} cores, data dir in {}",
        std::env::temp_dir().display()
    );
    let wall = Instant::now();

    // BENCH_ONLY=e2e runs just the one-rule end-to-end scenario (for profiling);
    // BENCH_ONLY=power runs just that scenario and g, the same with a condition and template.
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("e2e") => {
            delivery_throughput("b. end-to-end, 1 rule", n, 1);
            return;
        }
        Ok("power") => {
            delivery_throughput("b. end-to-end, 1 rule", n, 1);
            power_throughput(n);
            return;
        }
        // BENCH_ONLY=processes: just h–k, the separate-process scenarios.
        Ok("processes") => {
            processes::all(n);
            return;
        }
        // BENCH_ONLY=backlog: just n, a million deliveries owed to a receiver that was down.
        Ok("backlog") => {
            processes::backlog::backlog();
            return;
        }
        _ => {}
    }
    let ingest = ingest_throughput(n);
    let e2e = delivery_throughput("b. end-to-end, 1 rule", n, 1);
    let fan_out = delivery_throughput(
        &format!("c. fan-out, {FAN_OUT} rules"),
        (n / FAN_OUT).max(1),
        FAN_OUT,
    );
    let power = power_throughput(n);
    let (p50, p99, max, achieved) = paced_latency();
    let (separate, tidings_rss) = separate_process(n);
    processes::all(n);
    let rss = peak_rss_mib();
    match rss {
        Some(mib) => println!(
            "e. peak RSS (VmHWM) {mib:.0} MiB — one process: tidings plus the receiver and the load generator"
        ),
        None => println!("e. peak RSS: /proc/self/status not readable"),
    }
    println!("total {:.1?}\n", wall.elapsed());

    println!("| scenario ({cores} cores, loopback, release build, default settings) | result |");
    println!("| --- | --- |");
    println!(
        "| ingest, no rules, {} keep-alive clients, {n} events | {ingest:.0} events/s |",
        clients()
    );
    println!("| end-to-end, 1 rule (max_concurrency 8), {n} events | {e2e:.0} deliveries/s |");
    println!(
        "| fan-out, {FAN_OUT} rules, {} events | {fan_out:.0} deliveries/s |",
        (n / FAN_OUT).max(1)
    );
    println!(
        "| end-to-end, 1 rule with a CEL condition and a body template, {n} events | {power:.0} deliveries/s |"
    );
    println!(
        "| latency ingest→receipt, 1 rule, {achieved:.0} events/s for {PACED_SECS} s | p50 {p50:.1} ms · p99 {p99:.1} ms · max {max:.1} ms |"
    );
    if let Some(mib) = rss {
        println!(
            "| peak RSS (VmHWM; includes the in-process receiver and load generator) | {mib:.0} MiB |"
        );
    }
    println!(
        "| end-to-end, 1 rule, `tidings serve` as its own process, {n} events | {separate:.0} deliveries/s |"
    );
    if let Some(mib) = tidings_rss {
        println!("| peak RSS of that `tidings serve` process | {mib:.0} MiB |");
    }
}
