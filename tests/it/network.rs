//! Network safety (SPEC §6): https-only and address checks at rule create/update in production,
//! the send-time checks (stored http:// URLs, names resolving to blocked addresses),
//! `network.allow`, TLS verification, redirects not followed, and development mode's loopback.
//! Only 127.0.0.1 is ever contacted: blocked addresses are exercised through validation and
//! through names that resolve to loopback.

use std::net::ToSocketAddrs;
use std::time::Duration;

use serde_json::{Value, json};
use tidings::config::{Config, Mode};

use crate::support::app::{Resp, TestApp, spawn_app, spawn_app_with, start, test_config};
use crate::support::receiver::{Reply, TestCa, TestReceiver};

const SETTLE: Duration = Duration::from_secs(30);
const ARRIVE: Duration = Duration::from_secs(15);

fn loopback_net() -> ipnet::IpNet {
    "127.0.0.0/8".parse().unwrap()
}

/// Production mode, optionally with `network.allow = ["127.0.0.0/8"]`.
fn production(allow_loopback: bool) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.mode = Mode::Production;
        c.network.allow = if allow_loopback {
            vec![loopback_net()]
        } else {
            Vec::new()
        };
    }
}

/// The test config on an existing data dir, adjusted.
fn config_for(data_dir: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = test_config(data_dir);
    adjust(&mut config);
    config
}

fn rule_body(url: &str, events: &[&str]) -> Value {
    json!({
        "name": "network rule",
        "trigger": {"type": "event", "events": events},
        "webhook": {"url": url},
    })
}

fn rules(app: &TestApp) -> Vec<Value> {
    let resp = app.get("/api/v1/rules");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().clone()
}

fn rule(app: &TestApp, id: &str) -> Value {
    let resp = app.get(&format!("/api/v1/rules/{id}"));
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body
}

/// Ingests one event of `event_type`, waits for its deliveries to settle and returns each
/// with its attempts.
fn ingest_and_settle(app: &TestApp, event_type: &str) -> Vec<Value> {
    let resp = app.ingest(&json!({"type": event_type, "data": {"n": 1}}));
    assert_eq!(resp.status, 202, "{}", resp.text);
    let event_id = resp.body["id"].as_str().unwrap().to_owned();
    app.wait_settled(&event_id, SETTLE)
        .iter()
        .map(|d| app.delivery(d["id"].as_str().unwrap()))
        .collect()
}

fn only(deliveries: Vec<Value>) -> Value {
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    deliveries.into_iter().next().unwrap()
}

fn attempts(delivery: &Value) -> &Vec<Value> {
    delivery["attempts"].as_array().unwrap()
}

fn assert_rejected_400(resp: &Resp, what: &str) {
    resp.assert_error(400);
    assert!(
        resp.body["error"].as_object().is_some_and(|e| e.len() == 2),
        "{what}: error object should have exactly code and message: {}",
        resp.text
    );
}

/// A host name other than `localhost`/`*.localhost` (so it passes create-time checks) that
/// resolves to loopback addresses only, such as the machine's own name in /etc/hosts.
fn name_resolving_to_loopback_only() -> Option<String> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    [hostname, "localhost.localdomain".to_owned()]
        .into_iter()
        .filter(|n| {
            let lower = n.to_ascii_lowercase();
            !n.is_empty() && lower != "localhost" && !lower.ends_with(".localhost")
        })
        .find(|n| {
            (n.as_str(), 443).to_socket_addrs().is_ok_and(|addrs| {
                let addrs: Vec<_> = addrs.collect();
                !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
            })
        })
}

#[test]
fn production_rejects_http_urls_on_create_put_and_patch_and_keeps_the_rule() {
    let app = spawn_app_with(production(false));

    let resp = app.post(
        "/api/v1/rules",
        &rule_body("http://crm.example/hooks", &["member:*"]),
    );
    assert_rejected_400(&resp, "create http://");
    assert!(
        resp.message().contains("https"),
        "message should point to https: {}",
        resp.message()
    );
    assert!(rules(&app).is_empty(), "a rejected rule was stored");

    // An https rule to a name that never resolves; no event is ever sent in this test.
    let created = app.create_rule("https://crm.example/hooks", &["member:*"]);
    let id = created["id"].as_str().unwrap();
    let before = rule(&app, id);
    assert_eq!(before["status"], "active", "{before:#}");

    let mut replacement = rule_body("http://crm.example/hooks", &["member:*"]);
    replacement["name"] = json!("renamed");
    let resp = app.send("PUT", &format!("/api/v1/rules/{id}"), &replacement);
    assert_rejected_400(&resp, "PUT http://");
    assert!(resp.message().contains("https"), "{}", resp.message());

    let resp = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"name": "renamed", "webhook": {"url": "http://crm.example/hooks"}}),
    );
    assert_rejected_400(&resp, "PATCH http://");
    assert!(resp.message().contains("https"), "{}", resp.message());

    assert_eq!(rule(&app, id), before, "a rejected update changed the rule");
    assert_eq!(rules(&app).len(), 1);
}

#[test]
fn production_rejects_literal_local_and_special_addresses_at_create_and_update() {
    let app = spawn_app_with(production(false));
    let existing = app.create_rule("https://crm.example/hooks", &["member:*"]);
    let id = existing["id"].as_str().unwrap();
    let before = rule(&app, id);

    // (URL, text the message must contain, whether it must mention network.allow)
    let cases: &[(&str, &str, bool)] = &[
        ("https://127.0.0.1/hook", "127.0.0.1", true),
        ("https://localhost/hook", "localhost", true),
        ("https://api.localhost/hook", "api.localhost", true),
        ("https://[::1]/hook", "::1", true),
        ("https://[::ffff:127.0.0.1]/hook", "127.0.0.1", true),
        ("https://10.0.0.5/hook", "10.0.0.5", true),
        ("https://192.168.1.10/hook", "192.168.1.10", true),
        (
            "https://169.254.169.254/latest/meta-data",
            "169.254.169.254",
            true,
        ),
        ("https://100.64.0.1/hook", "100.64.0.1", true),
        ("https://[fd00::1]/hook", "fd00::1", true),
        ("https://[fe80::1]/hook", "fe80::1", true),
        ("https://[64:ff9b::7f00:1]/hook", "64:ff9b::7f00:1", true),
        ("https://[2002:7f00:1::]/hook", "2002:7f00:1::", true),
        ("https://0.0.0.0/hook", "0.0.0.0", false),
        ("https://224.0.0.1/hook", "224.0.0.1", false),
        ("https://192.0.2.1/hook", "192.0.2.1", false),
        ("https://198.18.0.1/hook", "198.18.0.1", false),
    ];
    for &(url, named, mentions_allow) in cases {
        let resp = app.post("/api/v1/rules", &rule_body(url, &["member:*"]));
        assert_rejected_400(&resp, url);
        let message = resp.message();
        assert!(
            message.contains(named),
            "{url}: message should name {named}: {message}"
        );
        if mentions_allow {
            assert!(
                message.contains("network.allow"),
                "{url}: message should mention network.allow: {message}"
            );
        }

        let resp = app.send(
            "PATCH",
            &format!("/api/v1/rules/{id}"),
            &json!({"webhook": {"url": url}}),
        );
        assert_rejected_400(&resp, &format!("PATCH {url}"));
        assert!(
            resp.message().contains(named),
            "PATCH {url}: {}",
            resp.message()
        );

        let mut replacement = rule_body(url, &["member:*"]);
        replacement["name"] = json!("replaced");
        let resp = app.send("PUT", &format!("/api/v1/rules/{id}"), &replacement);
        assert_rejected_400(&resp, &format!("PUT {url}"));
    }

    let stored = rules(&app);
    assert_eq!(
        stored.len(),
        1,
        "only the valid rule is stored: {stored:#?}"
    );
    assert_eq!(rule(&app, id), before, "a rejected update changed the rule");
}

#[test]
fn stored_http_rule_is_blocked_in_production_until_its_url_is_fixed() {
    let plain_receiver = TestReceiver::start();
    let dev = spawn_app();
    let created = dev.create_rule(&plain_receiver.url_localhost("/hook"), &["member:*"]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "active", "{created:#}");
    let data_dir = dev.stop();

    let app = start(config_for(&data_dir, production(true)));
    let shown = rule(&app, &id);
    assert_eq!(shown["status"], "webhook_url_blocked", "{shown:#}");
    assert!(
        shown["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("https")),
        "status_reason should say why: {shown:#}"
    );
    let listed = rules(&app);
    assert_eq!(listed[0]["status"], "webhook_url_blocked", "{listed:#?}");

    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "blocked", "{delivery:#}");
    let tries = attempts(&delivery);
    assert_eq!(
        tries.len(),
        1,
        "a blocked delivery is not retried: {delivery:#}"
    );
    assert_eq!(
        tries[0]["error_kind"], "webhook_url_blocked",
        "{delivery:#}"
    );
    assert!(tries[0]["status_code"].is_null(), "{delivery:#}");
    assert_eq!(plain_receiver.count(), 0, "the blocked URL was contacted");
    assert_eq!(
        plain_receiver.connections(),
        0,
        "the blocked URL was connected to"
    );

    // Fixing the URL (https, to an address network.allow admits) clears the status.
    let ca = TestCa::new();
    let fixed_receiver = TestReceiver::start_https(&ca);
    let resp = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"webhook": {"url": fixed_receiver.url("/hook"), "tls_verify": false}}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["status"], "active", "{}", resp.text);
    assert_eq!(rule(&app, &id)["status"], "active");

    let delivery = only(ingest_and_settle(&app, "member:updated"));
    assert_eq!(delivery["status"], "succeeded", "{delivery:#}");
    let got = fixed_receiver.wait_for(1, ARRIVE);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/hook");
    assert_eq!(plain_receiver.count(), 0);
}

#[test]
fn a_name_resolving_to_loopback_is_ssrf_blocked_at_send_time_in_production() {
    let Some(name) = name_resolving_to_loopback_only() else {
        eprintln!(
            "SKIP: no host name other than localhost resolves only to loopback here \
             (checked the hostname and localhost.localdomain); the stored-localhost case is \
             covered by stored_localhost_rule_is_blocked_in_production_without_contact"
        );
        return;
    };
    let ca = TestCa::new();
    let receiver = TestReceiver::start_https(&ca);
    let url = format!("https://{name}:{}/hook", receiver.port());

    let app = spawn_app_with(production(false));
    let created = app.create_rule_with(json!({
        "name": "resolves to loopback",
        "trigger": {"type": "event", "events": ["member:*"]},
        // With tls_verify off a missed check would deliver, and the receiver would see it.
        "webhook": {"url": url, "tls_verify": false},
    }));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["status"], "active",
        "a name cannot be judged before it is resolved: {created:#}"
    );

    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "blocked", "{delivery:#}");
    let tries = attempts(&delivery);
    assert_eq!(
        tries.len(),
        1,
        "an ssrf_blocked delivery is not retried: {delivery:#}"
    );
    assert_eq!(tries[0]["error_kind"], "ssrf_blocked", "{delivery:#}");
    let error = tries[0]["error"].as_str().unwrap_or_default();
    assert!(
        (error.contains("127.0.0.1") || error.contains("::1")) && error.contains("loopback"),
        "the error should name the resolved address and why: {error}"
    );
    assert!(error.contains("network.allow"), "{error}");
    assert_eq!(receiver.count(), 0, "a blocked address was contacted");
    assert_eq!(
        receiver.connections(),
        0,
        "a blocked address was connected to"
    );

    // The same stored rule delivers once network.allow admits what the name resolves to.
    let data_dir = app.stop();
    let app = start(config_for(&data_dir, production(true)));
    assert_eq!(rule(&app, &id)["status"], "active");
    let delivery = only(ingest_and_settle(&app, "member:updated"));
    assert_eq!(delivery["status"], "succeeded", "{delivery:#}");
    assert_eq!(receiver.wait_for(1, ARRIVE).len(), 1);
}

#[test]
fn stored_localhost_rule_is_blocked_in_production_without_contact() {
    let ca = TestCa::new();
    let receiver = TestReceiver::start_https(&ca);
    let dev = spawn_app();
    let created = dev.create_rule_with(json!({
        "name": "localhost over https",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url_localhost("/hook"), "tls_verify": false},
    }));
    let id = created["id"].as_str().unwrap().to_owned();
    let data_dir = dev.stop();

    let app = start(config_for(&data_dir, production(false)));
    let shown = rule(&app, &id);
    assert_eq!(shown["status"], "webhook_url_blocked", "{shown:#}");

    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "blocked", "{delivery:#}");
    let tries = attempts(&delivery);
    assert_eq!(
        tries.len(),
        1,
        "a blocked delivery is not retried: {delivery:#}"
    );
    let kind = tries[0]["error_kind"].as_str().unwrap_or_default();
    assert!(
        matches!(kind, "webhook_url_blocked" | "ssrf_blocked"),
        "{delivery:#}"
    );
    let error = tries[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("localhost"),
        "the error should name the host: {error}"
    );
    assert_eq!(receiver.count(), 0, "a blocked URL was contacted");
    assert_eq!(receiver.connections(), 0, "a blocked URL was connected to");
}

#[test]
fn a_stored_literal_address_is_blocked_without_contact_once_network_allow_drops_it() {
    let ca = TestCa::new();
    let receiver = TestReceiver::start_https(&ca);
    let app = spawn_app_with(production(true));
    let created = app.create_rule_with(json!({
        "name": "on-prem, later disallowed",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url("/hook"), "tls_verify": false},
    }));
    let id = created["id"].as_str().unwrap().to_owned();
    let data_dir = app.stop();

    let app = start(config_for(&data_dir, production(false)));
    let shown = rule(&app, &id);
    assert_eq!(shown["status"], "webhook_url_blocked", "{shown:#}");
    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "blocked", "{delivery:#}");
    let tries = attempts(&delivery);
    assert_eq!(
        tries.len(),
        1,
        "a blocked delivery is not retried: {delivery:#}"
    );
    let kind = tries[0]["error_kind"].as_str().unwrap_or_default();
    assert!(
        matches!(kind, "webhook_url_blocked" | "ssrf_blocked"),
        "{delivery:#}"
    );
    let error = tries[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("127.0.0.1") && error.contains("network.allow"),
        "the error should name the address and the setting: {error}"
    );
    assert_eq!(receiver.count(), 0, "a blocked address was contacted");
    assert_eq!(
        receiver.connections(),
        0,
        "a blocked address was connected to"
    );
}

#[test]
fn network_allow_admits_an_on_premises_https_destination() {
    let ca = TestCa::new();
    let receiver = TestReceiver::start_https(&ca);
    let app = spawn_app_with(production(true));
    let created = app.create_rule_with(json!({
        "name": "on-prem EHR",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url("/fhir"), "tls_verify": false},
    }));
    assert_eq!(created["status"], "active", "{created:#}");

    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "succeeded", "{delivery:#}");
    let tries = attempts(&delivery);
    assert_eq!(tries.len(), 1, "{delivery:#}");
    assert_eq!(tries[0]["status_code"], 200, "{delivery:#}");
    let got = receiver.wait_for(1, ARRIVE);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/fhir");

    // HTTPS is still required for an allowed network.
    let resp = app.post(
        "/api/v1/rules",
        &rule_body(
            &format!("http://127.0.0.1:{}/fhir", receiver.port()),
            &["member:*"],
        ),
    );
    assert_rejected_400(&resp, "http:// to an allowed network");
    assert!(resp.message().contains("https"), "{}", resp.message());
}

/// Production with `network.allow = ["::/64"]`, what earlier versions suggested for `::1`.
fn production_allowing_v6_loopback_net(c: &mut Config) {
    c.mode = Mode::Production;
    c.network.allow = vec!["::/64".parse().unwrap()];
}

#[test]
fn an_ipv6_allow_entry_does_not_admit_ipv4_loopback_or_metadata_through_mapped_addresses() {
    let ca = TestCa::new();
    let receiver = TestReceiver::start_https(&ca);
    let mapped_loopback = format!("https://[::ffff:127.0.0.1]:{}/hook", receiver.port());

    // Saving: refused, naming the IPv4 address reached and the narrowest entry for it.
    let app = spawn_app_with(production_allowing_v6_loopback_net);
    let cases = [
        (mapped_loopback.as_str(), "127.0.0.1/32"),
        (
            "https://[::ffff:169.254.169.254]/latest/meta-data",
            "169.254.169.254/32",
        ),
    ];
    for (url, suggested) in cases {
        let resp = app.post("/api/v1/rules", &rule_body(url, &["member:*"]));
        assert_rejected_400(&resp, url);
        let message = resp.message();
        assert!(
            message.contains("network.allow") && message.contains(suggested),
            "{url}: the message should suggest {suggested}: {message}"
        );
    }
    assert!(rules(&app).is_empty(), "a refused rule was stored");
    drop(app);

    // Sending: a rule stored in development is not sent, and nothing reaches the listener.
    let dev = spawn_app();
    let created = dev.create_rule_with(json!({
        "name": "mapped loopback",
        "trigger": {"type": "event", "events": ["member:*"]},
        // With tls_verify off a missed check would deliver, and the receiver would see it.
        "webhook": {"url": mapped_loopback, "tls_verify": false},
    }));
    assert_eq!(created["status"], "active", "{created:#}");
    let data_dir = dev.stop();
    let app = start(config_for(&data_dir, production_allowing_v6_loopback_net));
    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "blocked", "{delivery:#}");
    let error = attempts(&delivery)[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("127.0.0.1"), "{error}");
    assert_eq!(receiver.count(), 0, "a blocked address was contacted");
    assert_eq!(
        receiver.connections(),
        0,
        "a blocked address was connected to"
    );
}

#[test]
fn a_certificate_from_an_unknown_ca_fails_with_tls_and_is_retried_then_failed() {
    let ca = TestCa::new();
    let receiver = TestReceiver::start_https(&ca);
    let app = spawn_app_with(|c| {
        production(true)(c);
        c.retry.max_attempts = 2;
    });
    // tls_verify defaults to true; the test CA is not trusted by the platform.
    let created = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    assert_eq!(created["webhook"]["tls_verify"], true, "{created:#}");

    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "failed", "{delivery:#}");
    let tries = attempts(&delivery);
    assert_eq!(
        tries.len(),
        2,
        "retried up to retry.max_attempts: {delivery:#}"
    );
    for attempt in tries {
        assert_eq!(attempt["error_kind"], "tls", "{delivery:#}");
        assert!(attempt["status_code"].is_null(), "{delivery:#}");
        assert!(!attempt["error"].as_str().unwrap_or_default().is_empty());
    }
    assert_eq!(
        receiver.count(),
        0,
        "no request may pass an unverified handshake"
    );
}

#[test]
fn redirects_are_not_followed() {
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(302).header("Location", receiver.url("/elsewhere")));
    let app = spawn_app_with(|c| c.retry.max_attempts = 2);
    app.create_rule(&receiver.url("/hook"), &["member:*"]);

    let delivery = only(ingest_and_settle(&app, "member:created"));
    assert_eq!(delivery["status"], "failed", "{delivery:#}");
    let tries = attempts(&delivery);
    assert_eq!(tries.len(), 2, "{delivery:#}");
    for attempt in tries {
        assert_eq!(attempt["status_code"], 302, "{delivery:#}");
        assert_eq!(attempt["error_kind"], "http_status", "{delivery:#}");
    }
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "exactly one request per attempt: {got:#?}");
    assert!(
        got.iter().all(|r| r.path == "/hook"),
        "the redirect target was requested: {got:#?}"
    );
}

#[test]
fn development_mode_delivers_to_http_loopback_receivers() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let by_ip = app.create_rule(&receiver.url("/by-ip"), &["member:*"]);
    let by_name = app.create_rule(&receiver.url_localhost("/by-name"), &["member:*"]);
    assert_eq!(by_ip["status"], "active", "{by_ip:#}");
    assert_eq!(by_name["status"], "active", "{by_name:#}");

    let deliveries = ingest_and_settle(&app, "member:created");
    assert_eq!(deliveries.len(), 2, "{deliveries:#?}");
    for d in &deliveries {
        assert_eq!(d["status"], "succeeded", "{d:#}");
    }
    let got = receiver.wait_for(2, ARRIVE);
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/by-ip", "/by-name"]);
}
