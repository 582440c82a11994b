//! Unit tests of the address policy, the URL checks and the vetting resolver.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use AddressClass as C;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn production() -> AddressPolicy {
    AddressPolicy::new(false, Vec::new())
}

fn development() -> AddressPolicy {
    AddressPolicy::new(true, Vec::new())
}

#[test]
fn classifies_every_blocked_ipv4_range() {
    let cases = [
        ("127.0.0.1", C::Loopback),
        ("127.255.255.254", C::Loopback),
        ("10.0.0.1", C::Private),
        ("10.255.255.255", C::Private),
        ("172.16.0.1", C::Private),
        ("172.31.255.255", C::Private),
        ("192.168.1.1", C::Private),
        ("100.64.0.1", C::SharedCgnat),
        ("100.127.255.255", C::SharedCgnat),
        ("169.254.169.254", C::LinkLocal),
        ("0.0.0.0", C::Unspecified),
        ("0.1.2.3", C::ThisNetwork),
        ("192.0.0.8", C::IetfProtocol),
        ("224.0.0.1", C::Multicast),
        ("239.255.255.250", C::Multicast),
        ("255.255.255.255", C::Broadcast),
        ("240.0.0.1", C::Reserved),
        ("255.255.255.254", C::Reserved),
        ("192.0.2.1", C::Documentation),
        ("198.51.100.7", C::Documentation),
        ("203.0.113.9", C::Documentation),
        ("198.18.0.1", C::Benchmarking),
        ("198.19.255.255", C::Benchmarking),
    ];
    for (addr, class) in cases {
        assert_eq!(classify(ip(addr)), Some(class), "{addr}");
        assert_eq!(
            production().check_ip(ip(addr)),
            Err(BlockedAddress {
                ip: ip(addr),
                class
            }),
            "{addr}"
        );
    }
}

#[test]
fn range_edges_are_public() {
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "192.0.1.255",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
    ] {
        assert_eq!(classify(ip(addr)), None, "{addr}");
        assert_eq!(production().check_ip(ip(addr)), Ok(()), "{addr}");
    }
}

#[test]
fn classifies_every_blocked_ipv6_range() {
    let cases = [
        ("::1", C::Loopback),
        ("::", C::Unspecified),
        ("fc00::1", C::UniqueLocal),
        ("fd12:3456::1", C::UniqueLocal),
        ("fe80::1", C::LinkLocal),
        ("febf::1", C::LinkLocal),
        ("fec0::1", C::SiteLocal),
        ("ff02::1", C::Multicast),
        ("ff0e::1", C::Multicast),
        ("2001:db8::1", C::Documentation),
        ("3fff::1", C::Documentation),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", C::Teredo),
        ("2001:2::1", C::Benchmarking),
        ("100::1", C::Reserved),
        ("::ffff:0:808:808", C::Reserved),
        ("64:ff9b::1:0:0:808:808", C::Reserved),
    ];
    for (addr, class) in cases {
        assert_eq!(classify(ip(addr)), Some(class), "{addr}");
        assert!(production().check_ip(ip(addr)).is_err(), "{addr}");
    }
}

#[test]
fn embedded_ipv4_gets_the_ipv4_rules() {
    // Each form with a blocked and a public embedded address.
    let cases = [
        // IPv4-mapped
        ("::ffff:127.0.0.1", Some(C::Loopback)),
        ("::ffff:10.0.0.1", Some(C::Private)),
        ("::ffff:8.8.8.8", None),
        // IPv4-compatible
        ("::127.0.0.1", Some(C::Loopback)),
        ("::169.254.169.254", Some(C::LinkLocal)),
        ("::8.8.8.8", None),
        // NAT64 well-known and local-use (/96 layout)
        ("64:ff9b::10.0.0.1", Some(C::Private)),
        ("64:ff9b::8.8.8.8", None),
        ("64:ff9b:1::192.168.0.1", Some(C::Private)),
        ("64:ff9b:1::8.8.8.8", None),
        ("64:ff9b:1:abcd::8.8.8.8", Some(C::Reserved)),
        // 6to4: embedded address in bits 16..48
        ("2002:7f00:1::", Some(C::Loopback)),
        ("2002:a9fe:a9fe::1", Some(C::LinkLocal)),
        ("2002:808:808::1", None),
        // ISATAP, both interface-id variants, under a public prefix
        ("2606:4700::5efe:10.1.2.3", Some(C::Private)),
        ("2606:4700::200:5efe:127.0.0.1", Some(C::Loopback)),
        ("2606:4700::5efe:8.8.8.8", None),
        ("2606:4700::200:5efe:1.1.1.1", None),
        // ISATAP under 6to4: both embedded addresses are checked
        ("2002:808:808::200:5efe:10.0.0.1", Some(C::Private)),
        ("2002:a00:1::200:5efe:8.8.8.8", Some(C::Private)),
    ];
    for (addr, class) in cases {
        assert_eq!(classify(ip(addr)), class, "{addr}");
        assert_eq!(
            production().check_ip(ip(addr)).is_ok(),
            class.is_none(),
            "{addr}"
        );
    }
}

#[test]
fn allow_list_admits_only_listed_networks() {
    let policy = AddressPolicy::new(false, vec![net("10.20.0.0/24")]);
    assert_eq!(policy.check_ip(ip("10.20.0.5")), Ok(()));
    assert_eq!(policy.check_ip(ip("::ffff:10.20.0.5")), Ok(()));
    assert_eq!(
        policy.check_ip(ip("10.20.1.5")),
        Err(BlockedAddress {
            ip: ip("10.20.1.5"),
            class: C::Private
        })
    );
    assert!(policy.check_ip(ip("127.0.0.1")).is_err());
}

#[test]
fn allow_entries_match_the_ipv4_address_an_ipv6_one_carries() {
    // ::/64 is what earlier versions suggested for ::1: it must not reach IPv4 loopback or
    // the metadata address through any IPv4-in-IPv6 spelling.
    let v6_loopback_net = AddressPolicy::new(false, vec![net("::/64")]);
    assert_eq!(v6_loopback_net.check_ip(ip("::1")), Ok(()));
    let all_v6 = AddressPolicy::new(false, vec![net("::/0")]);
    assert_eq!(all_v6.check_ip(ip("fd00::1")), Ok(()));
    for policy in [&v6_loopback_net, &all_v6] {
        for (addr, class) in [
            ("::ffff:127.0.0.1", C::Loopback),
            ("::ffff:169.254.169.254", C::LinkLocal),
            ("::127.0.0.1", C::Loopback),
            ("::ffff:10.0.0.1", C::Private),
        ] {
            assert_eq!(
                policy.check_ip(ip(addr)),
                Err(BlockedAddress {
                    ip: ip(addr),
                    class
                }),
                "{addr} under {policy:?}"
            );
        }
    }
    for addr in [
        "64:ff9b::127.0.0.1",
        "2002:7f00:1::",
        "2606:4700::5efe:127.0.0.1",
    ] {
        assert!(all_v6.check_ip(ip(addr)).is_err(), "{addr}");
    }

    // IPv4 entries admit their hosts however they are spelled, as before.
    let v4_loopback_net = AddressPolicy::new(false, vec![net("127.0.0.0/8")]);
    for addr in [
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "64:ff9b::127.0.0.1",
        "2002:7f00:1::",
    ] {
        assert_eq!(v4_loopback_net.check_ip(ip(addr)), Ok(()), "{addr}");
    }
    assert!(v4_loopback_net.check_ip(ip("::1")).is_err());

    // The unspecified address reaches this machine: no entry admits it.
    let everything = AddressPolicy::new(false, vec![net("0.0.0.0/0"), net("::/0")]);
    for addr in ["0.0.0.0", "::", "::ffff:0.0.0.0"] {
        assert_eq!(
            everything.check_ip(ip(addr)).map_err(|b| b.class),
            Err(C::Unspecified),
            "{addr}"
        );
    }
    assert_eq!(everything.check_ip(ip("127.0.0.1")), Ok(()));
}

#[test]
fn development_allows_only_local_classes() {
    let dev = development();
    assert!(dev.is_development());
    assert!(!production().is_development());
    for addr in [
        "127.0.0.1",
        "::1",
        "192.168.1.1",
        "10.0.0.1",
        "100.64.0.1",
        "169.254.1.1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
    ] {
        assert_eq!(dev.check_ip(ip(addr)), Ok(()), "{addr}");
    }
    for addr in [
        "0.0.0.0",
        "224.0.0.1",
        "192.0.2.1",
        "255.255.255.255",
        "240.0.0.1",
        "198.18.0.1",
        "::",
        "ff02::1",
        "fec0::1",
        "2001::1",
    ] {
        assert!(dev.check_ip(ip(addr)).is_err(), "{addr}");
    }
}

#[test]
fn check_url_cases() {
    let prod = production();
    let dev = development();
    let allowing = AddressPolicy::new(false, vec![net("10.20.0.0/24")]);
    let url = |s: &str| url::Url::parse(s).unwrap();
    let blocked = |s: &str, class| {
        Err(UrlProblem::BlockedAddress(BlockedAddress {
            ip: ip(s),
            class,
        }))
    };
    let v6_loopback_net = AddressPolicy::new(false, vec![net("::/64")]);
    let cases: [(&AddressPolicy, &str, Result<(), UrlProblem>); 18] = [
        (
            &prod,
            "http://example.com/hook",
            Err(UrlProblem::InsecureScheme),
        ),
        (&dev, "http://example.com/hook", Ok(())),
        (&dev, "http://localhost:8080/hook", Ok(())),
        (&dev, "http://host.docker.internal/hook", Ok(())),
        (
            &prod,
            "ftp://example.com/",
            Err(UrlProblem::UnsupportedScheme("ftp".into())),
        ),
        (
            &dev,
            "ftp://example.com/",
            Err(UrlProblem::UnsupportedScheme("ftp".into())),
        ),
        (
            &prod,
            "https://user:pw@example.com/",
            Err(UrlProblem::Credentials),
        ),
        (
            &prod,
            "https://127.0.0.1/",
            blocked("127.0.0.1", C::Loopback),
        ),
        (&prod, "https://[::1]/", blocked("::1", C::Loopback)),
        (
            &prod,
            "https://LOCALHOST./",
            Err(UrlProblem::LocalName("localhost.".into())),
        ),
        (
            &prod,
            "https://api.localhost/",
            Err(UrlProblem::LocalName("api.localhost".into())),
        ),
        (&allowing, "https://10.20.0.5/fhir", Ok(())),
        (
            &allowing,
            "https://10.20.1.5/fhir",
            blocked("10.20.1.5", C::Private),
        ),
        (&prod, "https://8.8.8.8/", Ok(())),
        (&prod, "https://example.com/", Ok(())),
        (&v6_loopback_net, "https://[::1]:8443/", Ok(())),
        (
            &v6_loopback_net,
            "https://[::ffff:127.0.0.1]:8443/",
            blocked("::ffff:127.0.0.1", C::Loopback),
        ),
        (
            &v6_loopback_net,
            "https://[::ffff:169.254.169.254]/",
            blocked("::ffff:169.254.169.254", C::LinkLocal),
        ),
    ];
    for (policy, input, expected) in cases {
        assert_eq!(policy.check_url(&url(input)), expected, "{input}");
        // The remembered answer is the same, asked once or twice, and each policy has its own.
        assert_eq!(policy.check_url_text(input), expected, "{input}");
        assert_eq!(policy.check_url_text(input), expected, "{input} again");
    }
    assert_eq!(
        prod.check_url_text("https://"),
        Err(UrlProblem::MissingHost),
        "a URL that does not parse"
    );
    // Plain usernames count too, and dev mode still refuses non-local literals.
    assert_eq!(
        prod.check_url(&url("https://token@example.com/")),
        Err(UrlProblem::Credentials)
    );
    assert_eq!(
        dev.check_url(&url("http://0.0.0.0/")),
        blocked("0.0.0.0", C::Unspecified)
    );
    assert_eq!(
        prod.check_url(&url("mailto:ops@example.com")),
        Err(UrlProblem::UnsupportedScheme("mailto".into()))
    );
}

#[test]
fn messages_name_the_address_and_the_setting() {
    let blocked = BlockedAddress {
        ip: ip("10.0.0.5"),
        class: C::Private,
    };
    assert_eq!(
        blocked.to_string(),
        "10.0.0.5 is a private (RFC 1918) address; in production tidings only delivers to \
         public addresses. To allow this on-premises destination add it to network.allow \
         in the config, e.g. network.allow = [\"10.0.0.5/32\"] (a shorter prefix admits \
         its whole network)"
    );
    // The suggestion is the one host, as the allow list matches it, and pasting it in
    // admits exactly that address.
    let suggested = |b: &BlockedAddress| -> ipnet::IpNet {
        let text = b.to_string();
        let start = text.find("[\"").unwrap() + 2;
        let end = start + text[start..].find('"').unwrap();
        text[start..end].parse().unwrap()
    };
    let mapped = BlockedAddress {
        ip: ip("::ffff:192.168.7.9"),
        class: C::Private,
    };
    assert!(mapped.to_string().contains("IPv4 address 192.168.7.9"));
    assert_eq!(suggested(&mapped), net("192.168.7.9/32"));
    let v6 = BlockedAddress {
        ip: ip("fd00:1:2:3::9"),
        class: C::UniqueLocal,
    };
    assert_eq!(suggested(&v6), net("fd00:1:2:3::9/128"));
    for addr in [
        "::1",
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "10.20.0.5",
        "fe80::1",
    ] {
        let blocked = production().check_ip(ip(addr)).unwrap_err();
        let policy = AddressPolicy::new(false, vec![suggested(&blocked)]);
        assert_eq!(policy.check_ip(ip(addr)), Ok(()), "{addr}");
    }
    let suggested_for_v6_loopback = suggested(&production().check_ip(ip("::1")).unwrap_err());
    assert_eq!(suggested_for_v6_loopback, net("::1/128"));
    let policy = AddressPolicy::new(false, vec![suggested_for_v6_loopback]);
    assert!(policy.check_ip(ip("::2")).is_err());
    let unspecified = production().check_ip(ip("::")).unwrap_err().to_string();
    assert!(
        unspecified.contains("reaches this machine") && !unspecified.contains("exempt"),
        "{unspecified}"
    );
    let multicast = BlockedAddress {
        ip: ip("224.0.0.1"),
        class: C::Multicast,
    };
    assert!(
        multicast
            .to_string()
            .starts_with("224.0.0.1 is a multicast address, which")
    );

    let insecure = UrlProblem::InsecureScheme.to_string();
    assert!(insecure.contains("45 CFR 164.312(e)(2)(ii)") && insecure.contains("development mode"));
    assert!(
        UrlProblem::Credentials
            .to_string()
            .contains("secret_headers")
    );
    let wrapped = UrlProblem::BlockedAddress(blocked.clone());
    assert_eq!(wrapped.to_string(), blocked.to_string());
    assert!(std::error::Error::source(&wrapped).is_some());
}

fn resolve(
    policy: AddressPolicy,
    uri: &str,
    config: &Config,
) -> Result<ResolvedSocketAddrs, ureq::Error> {
    VettingResolver::new(Arc::new(policy)).resolve(
        &uri.parse().unwrap(),
        config,
        NextTimeout::default(),
    )
}

#[test]
fn resolver_vets_literal_hosts() {
    let config = Config::default();
    let ok = resolve(production(), "https://8.8.8.8/", &config).unwrap();
    assert_eq!(&ok[..], &["8.8.8.8:443".parse::<SocketAddr>().unwrap()]);
    let ok = resolve(
        production(),
        "https://[2606:4700:4700::1111]:8443/",
        &config,
    )
    .unwrap();
    assert_eq!(ok[0].port(), 8443);

    let err = resolve(production(), "http://10.0.0.5/", &config).unwrap_err();
    assert_eq!(
        blocked_by_policy(&err),
        Some(&BlockedAddress {
            ip: ip("10.0.0.5"),
            class: C::Private
        })
    );
    let err = resolve(production(), "https://[::ffff:127.0.0.1]/", &config).unwrap_err();
    assert_eq!(blocked_by_policy(&err).map(|b| b.class), Some(C::Loopback));

    // Filtered out by the configured IP family: nothing to connect to, not "blocked".
    let v6_only = Config::builder()
        .ip_family(ureq::config::IpFamily::Ipv6Only)
        .build();
    let err = resolve(production(), "https://8.8.8.8/", &v6_only).unwrap_err();
    assert!(matches!(err, ureq::Error::HostNotFound), "{err:?}");
    assert!(blocked_by_policy(&err).is_none());
}

#[test]
fn resolver_reports_unknown_names_as_not_found() {
    // .invalid never resolves (RFC 6761). The deadline bounds a machine with unreachable
    // DNS servers, and exercises the timed lookup path.
    let timeout = NextTimeout {
        after: ureq::unversioned::transport::time::Duration::from_secs(20),
        reason: ureq::Timeout::Resolve,
        ..NextTimeout::default()
    };
    let err = VettingResolver::new(Arc::new(production()))
        .resolve(
            &"https://no-such-host.invalid/".parse().unwrap(),
            &Config::default(),
            timeout,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            ureq::Error::HostNotFound | ureq::Error::Timeout(ureq::Timeout::Resolve)
        ),
        "{err:?}"
    );
    assert!(blocked_by_policy(&err).is_none());
}

#[test]
fn resolver_refuses_a_mapped_loopback_literal_under_an_ipv6_allow_entry() {
    let policy = || AddressPolicy::new(false, vec![net("::/64")]);
    let config = Config::default();
    for uri in [
        "https://[::ffff:127.0.0.1]:8443/",
        "https://[::ffff:169.254.169.254]/",
    ] {
        let err = resolve(policy(), uri, &config).unwrap_err();
        assert!(blocked_by_policy(&err).is_some(), "{uri}: {err:?}");
    }
    let ok = resolve(policy(), "https://[::1]:8443/", &config).unwrap();
    assert_eq!(&ok[..], &["[::1]:8443".parse::<SocketAddr>().unwrap()]);
}

/// A DNS answer of `::ffff:127.0.0.1` for any name, on the port asked for.
#[allow(clippy::needless_pass_by_value, clippy::unnecessary_wraps)] // a `Lookup`
fn resolves_to_mapped_loopback(
    host_port: String,
    _: NextTimeout,
) -> Result<Vec<SocketAddr>, ureq::Error> {
    let port = host_port.rsplit(':').next().unwrap().parse().unwrap();
    Ok(vec![SocketAddr::new(ip("::ffff:127.0.0.1"), port)])
}

#[test]
fn a_name_resolving_to_mapped_loopback_is_not_connected_to_under_an_ipv6_allow_entry() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://mapped.example:{port}/");
    let agent_resolving = |allow: &str| {
        let resolver = VettingResolver {
            policy: Arc::new(AddressPolicy::new(false, vec![net(allow)])),
            lookup: resolves_to_mapped_loopback,
        };
        ureq::Agent::with_parts(
            ureq::Agent::config_builder()
                .proxy(None)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
            ureq::unversioned::transport::DefaultConnector::default(),
            resolver,
        )
    };

    let err = agent_resolving("::/64").get(&url).call().unwrap_err();
    let blocked = blocked_by_policy(&err).unwrap_or_else(|| panic!("not a policy block: {err:?}"));
    assert_eq!(blocked.ip, ip("::ffff:127.0.0.1"));
    assert_eq!(blocked.class, C::Loopback);
    // A connection, even one closed at once, would wait in the backlog to be accepted.
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "the loopback listener got a connection"
    );

    // The same answer under an entry that does cover 127.0.0.1 connects: the test above
    // would have seen a connection.
    let server = serve_once(listener);
    let response = agent_resolving("127.0.0.0/8").get(&url).call().unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.join().unwrap(), "server did not answer the request");
}

#[test]
fn resolver_drops_blocked_addresses_and_keeps_vetted_ones() {
    // Allowing only IPv4 loopback: whatever localhost resolves to, only 127/8 survives.
    let policy = AddressPolicy::new(false, vec![net("127.0.0.0/8")]);
    let addrs = resolve(policy, "http://localhost:8080/", &Config::default()).unwrap();
    assert!(!addrs.is_empty());
    for addr in &addrs {
        assert!(
            matches!(addr.ip(), IpAddr::V4(v4) if v4.is_loopback()),
            "{addr}"
        );
        assert_eq!(addr.port(), 8080);
    }
}

/// Answers one HTTP request on `listener`, giving up after a deadline so a test that never
/// connects cannot hang.
fn serve_once(listener: TcpListener) -> thread::JoinHandle<bool> {
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return false,
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_ok()
    })
}

fn agent(policy: AddressPolicy) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        // An inherited HTTP(S)_PROXY would bypass the resolver for the target.
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        VettingResolver::new(Arc::new(policy)),
    )
}

#[test]
fn agent_connects_only_to_vetted_addresses() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(listener);
    let url = format!("http://localhost:{port}/");

    // The error must come out of send() unchanged for blocked_by_policy to see it.
    let err = agent(production()).get(&url).call().unwrap_err();
    let blocked = blocked_by_policy(&err).unwrap_or_else(|| panic!("not a policy block: {err:?}"));
    assert!(blocked.ip.is_loopback(), "{blocked:?}");
    assert_eq!(blocked.class, C::Loopback);

    let response = agent(development()).get(&url).call().unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.join().unwrap(), "server did not answer the request");
}
