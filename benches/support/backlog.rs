//! n. A backlog (issue 11): `BENCH_BACKLOG` events (default 1,000,000) owed to a receiver
//! that is down (nothing listens on its port), then it comes back. It measures tidings' peak
//! memory while the deliveries are owed and while they drain, the drain rate from the
//! receiver's clock, and the admin UI's pages (signed in, over HTTP) at full backlog and
//! mid-drain. `BENCH_ONLY=backlog cargo bench --bench pipeline` runs it alone.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Role, env_or, wall_ns};
use crate::{App, agent};

const DEFAULT_BACKLOG: usize = 1_000_000;
const CONNS: usize = 64;
const PASSWORD: &str = "bench backlog password";
/// The drain is timed until this share of the backlog has arrived: the few deliveries tried
/// while the receiver was down wait for their retry, minutes later by the schedule.
const DRAINED_PER_MILLE: usize = 999;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1_800);
const PAGE_RUNS: usize = 5;
/// Posted, paced, from the receiver's return: ten seconds of a busy clinic's events.
const MEANWHILE_EVENTS: usize = 2_000;
const MEANWHILE_RATE: usize = 200;

/// The packaged systemd unit's `Environment=` lines, so that n runs `tidings serve` as the
/// unit does (its allocator settings decide the memory measured here) and cannot drift from it.
/// One unquoted assignment a line, as the unit writes them.
fn unit_environment() -> Vec<(String, String)> {
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/systemd/tidings.service"
    );
    let text = std::fs::read_to_string(unit).expect("the packaged systemd unit");
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Environment="))
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(!env.is_empty(), "the unit sets tidings' environment");
    env
}

/// The pages an office manager opens while a backlog waits.
fn pages() -> [&'static str; 6] {
    [
        "/",
        "/rules",
        "/deliveries",
        "/deliveries?status=retrying",
        "/deliveries?event_type=bench:*",
        "/audit",
    ]
}

pub fn backlog() {
    let events = env_or("BENCH_BACKLOG", DEFAULT_BACKLOG);
    let unit_env = unit_environment();
    let env: Vec<(&str, &str)> = unit_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = App::spawn_with_ui_user(PASSWORD, &env);
    let pid = app.child_pid().expect("tidings serve runs as a child");
    // A free port, left closed until the receiver comes back.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let http = agent();
    app.rule(&http, &format!("http://127.0.0.1:{port}/hook"), false);

    let started = Instant::now();
    let mut load = Role::start(
        "load",
        &[
            ("BENCH_BASE", app.base.clone()),
            ("BENCH_KEY", app.key.clone()),
            ("BENCH_TOTAL", events.to_string()),
            ("BENCH_CONNS", CONNS.to_string()),
            ("BENCH_RATE", "0".to_owned()),
        ],
    );
    let sent: Value = serde_json::from_str(&load.line()).expect("the load generator's report");
    drop(load);
    let owed_rss = peak_rss(pid);
    println!(
        "n. backlog: {events} events accepted in {:.0} s ({:.0} events/s, POST p99 {:.1} ms) \
         with the receiver down; peak RSS {owed_rss:.0} MiB",
        started.elapsed().as_secs_f64(),
        events as f64 / sent["secs"].as_f64().unwrap_or(f64::NAN),
        sent["post_p99"].as_f64().unwrap_or(f64::NAN),
    );
    let browser = ui_agent();
    let session = sign_in(&browser, &app.base);
    print_pages(&browser, &app.base, &session, "with the backlog owed");

    let back_ns = wall_ns();
    let mut receiver = Role::start(
        "receiver",
        &[
            ("BENCH_PORT", port.to_string()),
            ("BENCH_COUNT_ONLY", "1".to_owned()),
        ],
    );
    assert_eq!(receiver.line(), format!("PORT {port}"));
    // The clinic keeps posting while the backlog drains: are those events still accepted?
    let mut meanwhile = Role::start(
        "load",
        &[
            ("BENCH_BASE", app.base.clone()),
            ("BENCH_KEY", app.key.clone()),
            ("BENCH_TOTAL", MEANWHILE_EVENTS.to_string()),
            ("BENCH_CONNS", "4".to_owned()),
            ("BENCH_RATE", MEANWHILE_RATE.to_string()),
            ("BENCH_REFUSALS_OK", "1".to_owned()),
        ],
    );
    let target = events * DRAINED_PER_MILLE / 1000;
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut mid_drain_done = false;
    loop {
        let got: usize = receiver.ask("count").parse().expect("a count");
        if got >= target {
            break;
        }
        if !mid_drain_done && got >= events / 2 {
            print_pages(&browser, &app.base, &session, "mid-drain");
            mid_drain_done = true;
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {events} deliveries arrived"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let last_ns: u128 = receiver.ask("last_ns").parse().expect("a time");
    let posted: Value = serde_json::from_str(&meanwhile.line()).expect("the poster's report");
    println!(
        "n. posted during the drain: {MEANWHILE_EVENTS} events at {MEANWHILE_RATE}/s, {} \
         refused (503), POST p50 {:.1} ms, p99 {:.1} ms",
        posted["refused"],
        posted["post_p50"].as_f64().unwrap_or(f64::NAN),
        posted["post_p99"].as_f64().unwrap_or(f64::NAN),
    );
    let drain_s = last_ns.saturating_sub(back_ns) as f64 / 1e9;
    println!(
        "n. backlog drained: {target} deliveries ({DRAINED_PER_MILLE}‰) in {drain_s:.0} s from \
         the receiver's return = {:.0} deliveries/s; peak RSS over all {:.0} MiB",
        target as f64 / drain_s,
        peak_rss(pid)
    );
}

fn peak_rss(pid: u32) -> f64 {
    crate::vm_hwm_mib(&format!("/proc/{pid}/status")).unwrap_or(f64::NAN)
}

/// A client that, like a browser's first look, does not follow redirects: the session
/// cookie comes on the sign-in's 303.
fn ui_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// The value of cookie `name` among an answer's `Set-Cookie` headers.
fn cookie(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers().get_all("set-cookie").iter().find_map(|v| {
        v.to_str()
            .ok()?
            .split(';')
            .next()?
            .strip_prefix(name)?
            .strip_prefix('=')
            .map(str::to_owned)
    })
}

/// Signs in as the bench's admin, as a browser does; the session cookie.
fn sign_in(http: &ureq::Agent, base: &str) -> String {
    let login = http
        .get(format!("{base}/login"))
        .call()
        .expect("GET /login");
    let form = cookie(&login, "tidings_form").expect("the sign-in form's cookie");
    let signed_in = http
        .post(format!("{base}/login"))
        .header("Cookie", format!("tidings_form={form}"))
        .send_form([
            ("form_token", form.as_str()),
            ("next", "/"),
            ("username", "bench"),
            ("password", PASSWORD),
        ])
        .expect("POST /login");
    cookie(&signed_in, "tidings_session").expect("signed in")
}

/// Each page's median and slowest time over `PAGE_RUNS` sequential requests.
fn print_pages(http: &ureq::Agent, base: &str, session: &str, when: &str) {
    let timed: Vec<String> = pages()
        .iter()
        .map(|page| {
            let mut times: Vec<f64> = (0..PAGE_RUNS)
                .map(|_| {
                    let t = Instant::now();
                    let resp = http
                        .get(format!("{base}{page}"))
                        .header("Cookie", format!("tidings_session={session}"))
                        .call()
                        .expect("a page");
                    assert_eq!(resp.status().as_u16(), 200, "{page}");
                    let _ = resp.into_body().read_to_string();
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            format!(
                "`{page}` {:.1} ms (max {:.1})",
                times[PAGE_RUNS / 2],
                times[PAGE_RUNS - 1]
            )
        })
        .collect();
    println!("n. UI pages {when}: {}", timed.join(", "));
}
