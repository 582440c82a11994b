//! Admin UI page times with a big delivery log (issue 4: every page < 100 ms with 1,000,000
//! deliveries stored). Fills a fresh store with `BENCH_DELIVERIES` (default 1,000,000)
//! finished deliveries spread over the last 7 days, straight through the store's own writer
//! (the HTTP path would take an hour and measures nothing new here), signs in over HTTP and
//! times each page: `cargo bench --bench ui_pages`.
// One scenario, read top to bottom.
#![allow(clippy::cast_precision_loss, clippy::too_many_lines)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings::config::{Config, Mode};
use tidings::domain::access::Role;
use tidings::domain::delivery::{Delivery, DeliveryStatus};
use tidings::domain::event::{Event, EventType};
use tidings::domain::ids::{DeliveryId, EventId, RuleId};
use tidings::domain::user::UserRole;
use tidings::store::NewEvent;

const DEFAULT_DELIVERIES: usize = 1_000_000;
/// Writes in flight at once while filling: one group commit takes them all.
const FILL_BATCH: usize = 2_000;
const RUNS: usize = 20;
const PASSWORD: &str = "correct horse battery staple";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn main() {
    let n: usize = std::env::var("BENCH_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_DELIVERIES);
    let dir = std::env::temp_dir().join(format!("tidings-ui-bench-{}", std::process::id()));
    let mut config = Config::defaults();
    config.data_dir.clone_from(&dir);
    config.mode = Mode::Development;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = tidings::run_with_key(config, listener, None).expect("tidings starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    let ws = store.default_workspace().clone();
    let (key, secret) = tidings::app::keys::mint(&ws, "bench", Role::Admin);
    let audit = tidings::domain::audit::AuditEntry::new(
        &ws,
        tidings::domain::audit::Actor::Cli,
        "api_key.create",
        "api_key",
        key.id.as_str(),
    );
    store.insert_api_key(key, audit).unwrap();
    let http = agent();
    let mut rule_ids = Vec::new();
    for i in 0..10 {
        let resp = http
            .post(format!("{base}/api/v1/rules"))
            .header("Authorization", format!("Bearer {}", secret.expose()))
            .header("Content-Type", "application/json")
            .send(json!({"name": format!("rule {i}"), "trigger": {"type": "event", "events": ["member:*"]},
                "webhook": {"url": "http://127.0.0.1:9/hook"}}).to_string())
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&resp.into_body().read_to_string().unwrap()).unwrap();
        rule_ids.push(RuleId::parse(v["id"].as_str().unwrap()).unwrap());
    }

    // Fill: N events with one finished delivery each, oldest first, 1 % failed.
    let started = Instant::now();
    let now = tidings::domain::time::now_ms();
    let span = 7 * 24 * 3600 * 1000_i64;
    let event_type = EventType::parse("member:created").unwrap();
    let mut some_delivery = None;
    let runtime = actix_web::rt::System::new();
    for chunk in 0..n.div_ceil(FILL_BATCH) {
        let writes: Vec<_> = (chunk * FILL_BATCH..((chunk + 1) * FILL_BATCH).min(n))
            .map(|i| {
                let at = now - span + span * i64::try_from(i).unwrap() / i64::try_from(n).unwrap();
                let event = Event {
                    id: EventId::generate(at),
                    workspace_id: ws.clone(),
                    event_type: event_type.clone(),
                    occurred_at: at,
                    received_at: at,
                    data: serde_json::Map::new(),
                    test: false,
                    subject: None,
                    erased: false,
                };
                let delivery = Delivery {
                    id: DeliveryId::generate(at),
                    event_id: event.id.clone(),
                    rule_id: rule_ids[i % rule_ids.len()].clone(),
                    workspace_id: ws.clone(),
                    event_type: event_type.clone(),
                    status: if i % 100 == 7 {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Succeeded
                    },
                    test: false,
                    created_at: at,
                    updated_at: at,
                    attempts: 1,
                    attempts_left: 0,
                    next_attempt_at: None,
                    condition_error: None,
                    subject: None,
                    erased: false,
                    ordering_key: None,
                };
                some_delivery = Some(delivery.id.clone());
                let store = store.clone();
                async move {
                    store
                        .ingest(NewEvent {
                            event: event.into(),
                            deliveries: vec![delivery],
                            idempotency_key: None,
                            routine_slot: None,
                        })
                        .await
                        .unwrap();
                }
            })
            .collect();
        runtime.block_on(futures_util::future::join_all(writes));
        if chunk % 50 == 0 {
            eprintln!("  filled {} of {n}", (chunk + 1) * FILL_BATCH);
        }
    }
    eprintln!("filled {n} deliveries in {:.0?}", started.elapsed());

    // Sign in as an admin, over HTTP like a browser.
    tidings::app::users::new_user(&store, &ws, "bench", UserRole::Admin, PASSWORD, None, false)
        .unwrap();
    let login = http.get(format!("{base}/login")).call().unwrap();
    let form_cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            v.to_str()
                .ok()?
                .split(';')
                .next()?
                .strip_prefix("tidings_form=")
                .map(str::to_owned)
        })
        .unwrap();
    let signed_in = http
        .post(format!("{base}/login"))
        .header("Cookie", format!("tidings_form={form_cookie}"))
        .send_form([
            ("form_token", form_cookie.as_str()),
            ("next", "/"),
            ("username", "bench"),
            ("password", PASSWORD),
        ])
        .unwrap();
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            v.to_str()
                .ok()?
                .split(';')
                .next()?
                .strip_prefix("tidings_session=")
                .map(str::to_owned)
        })
        .expect("signed in");
    let rule = &rule_ids[0];
    let dlv = some_delivery.unwrap();
    let pages = [
        "/".to_owned(),
        "/rules".to_owned(),
        format!("/rules/{rule}"),
        "/deliveries".to_owned(),
        format!("/deliveries?rule_id={rule}"),
        "/deliveries?status=failed".to_owned(),
        "/deliveries?event_type=member:updated".to_owned(),
        // A family matching nothing: the most a page reads (5 store pages of 20,000 rows).
        "/deliveries?event_type=call:*".to_owned(),
        format!("/deliveries/{dlv}"),
        "/keys".to_owned(),
        "/users".to_owned(),
        "/audit".to_owned(),
        "/settings".to_owned(),
    ];
    println!("\nUI pages with {n} deliveries stored ({RUNS} requests each, sequential):");
    println!("| page | median | max |\n| --- | --- | --- |");
    for page in &pages {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            let resp = http
                .get(format!("{base}{page}"))
                .header("Cookie", format!("tidings_session={session}"))
                .call()
                .unwrap();
            let status = resp.status().as_u16();
            let _ = resp.into_body().read_to_string();
            times.push(t.elapsed());
            assert_eq!(status, 200, "{page}");
        }
        times.sort();
        println!(
            "| `{page}` | {:.1} ms | {:.1} ms |",
            times[RUNS / 2].as_secs_f64() * 1000.0,
            times[RUNS - 1].as_secs_f64() * 1000.0
        );
    }
    app.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
