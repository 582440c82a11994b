//! Network safety (SSRF defence): owns which destinations tidings may deliver webhooks to.
//!
//! Checked when a rule's URL is saved ([`AddressPolicy::check_url`]) and again at every
//! connection through ureq's resolver ([`VettingResolver`]), which is the check that counts.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::thread;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ArrayVec, DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::security::memo::Memo;

/// Why an address is not a public unicast destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    Private,
    SharedCgnat,
    LinkLocal,
    Unspecified,
    ThisNetwork,
    IetfProtocol,
    Multicast,
    Broadcast,
    Reserved,
    Documentation,
    Benchmarking,
    UniqueLocal,
    SiteLocal,
    Teredo,
}

impl AddressClass {
    /// Noun phrase used in error messages ("10.0.0.5 is <describe>").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private (RFC 1918) address",
            Self::SharedCgnat => "a shared carrier-grade NAT (RFC 6598, 100.64.0.0/10) address",
            Self::LinkLocal => "a link-local address",
            Self::Unspecified => "the unspecified address",
            Self::ThisNetwork => "a \"this network\" (0.0.0.0/8) address",
            Self::IetfProtocol => "an IETF protocol assignment (192.0.0.0/24) address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Reserved => "a reserved address",
            Self::Documentation => "a documentation-only address",
            Self::Benchmarking => "a benchmarking-only address",
            Self::UniqueLocal => "an IPv6 unique local (fc00::/7) address",
            Self::SiteLocal => "a deprecated IPv6 site-local (fec0::/10) address",
            Self::Teredo => "a Teredo tunnel (2001::/32) address",
        }
    }

    /// Whether a `network.allow` entry can admit an address of this class. Not the unspecified
    /// address: connecting to 0.0.0.0 or :: reaches this machine, so an entry written for a
    /// network (`0.0.0.0/0`, `::/64`) must not turn it into a way back to loopback.
    pub fn is_exemptable(self) -> bool {
        self != Self::Unspecified
    }

    /// The classes development mode allows: what a developer's machine, a docker host or a
    /// LAN test server uses. The rest are never real webhook receivers in any mode.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            Self::Loopback
                | Self::Private
                | Self::SharedCgnat
                | Self::LinkLocal
                | Self::UniqueLocal
        )
    }
}

/// Why an address is not a public unicast destination, or None if it is global.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    classify_detail(ip).map(|(class, _)| class)
}

/// Like [`classify`], but also names the IPv4 address embedded in an IPv6 one when that is
/// what got it blocked, so messages and the allow list can refer to the address that matters.
fn classify_detail(ip: IpAddr) -> Option<(AddressClass, Option<Ipv4Addr>)> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|class| (class, None)),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass as C;
    let [a, b, c, _] = ip.octets();
    // Order matters where ranges nest: 0.0.0.0 inside 0/8, 255.255.255.255 inside 240/4.
    let class = match (a, b, c) {
        _ if ip.is_unspecified() => C::Unspecified,
        (0, _, _) => C::ThisNetwork,
        (127, _, _) => C::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => C::Private,
        (100, 64..=127, _) => C::SharedCgnat,
        (169, 254, _) => C::LinkLocal,
        (192, 0, 0) => C::IetfProtocol,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => C::Documentation,
        (198, 18..=19, _) => C::Benchmarking,
        (224..=239, _, _) => C::Multicast,
        _ if ip.is_broadcast() => C::Broadcast,
        (240..=255, _, _) => C::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<(AddressClass, Option<Ipv4Addr>)> {
    use AddressClass as C;
    let bits = ip.to_bits();
    let seg = ip.segments();
    let o = ip.octets();
    // The low 32 bits, where most IPv4-in-IPv6 forms put the IPv4 address.
    let low32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // An IPv4 address smuggled inside IPv6 reaches that IPv4 host, so it gets the IPv4 rules.
    let embedded = |v4: Ipv4Addr| classify_v4(v4).map(|class| (class, Some(v4)));
    let plain = |class: AddressClass| Some((class, None));

    if bits == 0 {
        return plain(C::Unspecified);
    }
    if bits == 1 {
        return plain(C::Loopback);
    }
    // IPv4-mapped ::ffff:a.b.c.d and deprecated IPv4-compatible ::a.b.c.d.
    if bits >> 32 == 0xffff || bits >> 32 == 0 {
        return embedded(low32);
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return embedded(low32);
    }
    // Local-use NAT64 64:ff9b:1::/48 (RFC 8215). The operator chooses where the IPv4 sits;
    // only the /96 layout (bits 48..96 zero) is unambiguous, so anything else is refused
    // rather than guessed, since a wrong guess would let a private IPv4 through.
    if bits >> 80 == 0x0064_ff9b_0001 {
        return if seg[3] == 0 && seg[4] == 0 && seg[5] == 0 {
            embedded(low32)
        } else {
            plain(C::Reserved)
        };
    }
    // The rest of ::/8 is IETF-reserved; it includes SIIT's ::ffff:0:a.b.c.d, which a
    // translator would turn into IPv4, so refuse it all.
    if seg[0] < 0x0100 {
        return plain(C::Reserved);
    }
    // Discard-only 100::/64 (RFC 6666).
    if bits >> 64 == 0x0100_0000_0000_0000 {
        return plain(C::Reserved);
    }
    // Teredo hides an obfuscated IPv4 and a relay; blocking it outright is simpler and safer.
    if seg[0] == 0x2001 && seg[1] == 0 {
        return plain(C::Teredo);
    }
    // IPv6 benchmarking 2001:2::/48 (RFC 5180).
    if seg[0] == 0x2001 && seg[1] == 0x0002 && seg[2] == 0 {
        return plain(C::Benchmarking);
    }
    // Documentation 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
    if (seg[0] == 0x2001 && seg[1] == 0x0db8) || (seg[0] == 0x3fff && seg[1] < 0x1000) {
        return plain(C::Documentation);
    }
    if seg[0] & 0xfe00 == 0xfc00 {
        return plain(C::UniqueLocal);
    }
    if seg[0] & 0xffc0 == 0xfe80 {
        return plain(C::LinkLocal);
    }
    if seg[0] & 0xffc0 == 0xfec0 {
        return plain(C::SiteLocal);
    }
    if seg[0] & 0xff00 == 0xff00 {
        return plain(C::Multicast);
    }
    // 6to4 2002:AABB:CCDD::/48 routes to IPv4 AA.BB.CC.DD through a relay.
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(o[2], o[3], o[4], o[5]);
        if let Some(found) = embedded(v4) {
            return Some(found);
        }
    }
    // ISATAP interface ids ::0:5efe:a.b.c.d / ::200:5efe:a.b.c.d can sit under any prefix,
    // including a 6to4 one, so this is checked after (and in addition to) the prefix.
    if (seg[4] == 0 || seg[4] == 0x0200) && seg[5] == 0x5efe {
        return embedded(low32);
    }
    None
}

/// The address a connection to `ip` actually reaches, which allow entries are matched against:
/// the IPv4 address an IPv4-mapped, -compatible, NAT64, 6to4 or ISATAP address carries (the
/// one the block list judged it by), else `ip` itself. Matching the IPv6 spelling instead would
/// let an IPv6 entry such as `::/64` admit `::ffff:127.0.0.1`, which is IPv4 loopback; and an
/// admin who allowed 10.20.0.0/24 meant those hosts however they are spelled.
fn reached(ip: IpAddr, embedded: Option<Ipv4Addr>) -> IpAddr {
    embedded.map_or(ip, IpAddr::V4)
}

/// What tidings may connect to: global addresses, plus local ones in development mode,
/// plus whatever the admin listed in `network.allow`.
#[derive(Debug, Clone)]
pub struct AddressPolicy {
    development: bool,
    allow: Vec<ipnet::IpNet>,
    /// `check_url_text`'s answers: the policy does not change while the server runs, so
    /// neither does the answer for a URL.
    checked: Arc<Memo<Result<(), UrlProblem>>>,
}

/// More distinct webhook URLs than an appliance's rules have; past it the memo starts again.
const MAX_CHECKED_URLS: usize = 4096;

impl AddressPolicy {
    pub fn new(development: bool, allow: Vec<ipnet::IpNet>) -> Self {
        Self {
            development,
            allow,
            checked: Arc::new(Memo::new(MAX_CHECKED_URLS)),
        }
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    /// Ok if tidings may connect to this address under the policy.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), BlockedAddress> {
        let Some((class, embedded)) = classify_detail(ip) else {
            return Ok(());
        };
        if self.development && class.is_local() {
            return Ok(());
        }
        if class.is_exemptable() && self.allows(reached(ip, embedded)) {
            return Ok(());
        }
        Err(BlockedAddress { ip, class })
    }

    /// Whether an entry of `network.allow` covers `target`, an address as [`reached`] gives it.
    fn allows(&self, target: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&target))
    }

    /// `check_url` of the URL written as `text` (one that does not parse has no host),
    /// remembered: every attempt asks it of its rule's URL again, and parsing the URL each
    /// time was 2 – 3 % of the delivery workers' time.
    pub fn check_url_text(&self, text: &str) -> Result<(), UrlProblem> {
        let Ok(answer) = self.checked.get_or_try::<Infallible>(text, || {
            Ok(match url::Url::parse(text) {
                Ok(url) => self.check_url(&url),
                Err(_) => Err(UrlProblem::MissingHost),
            })
        });
        answer
    }

    /// The create/update-time check of a parsed URL. Does not resolve DNS: names are vetted
    /// again at every connection by [`VettingResolver`], which is what actually protects.
    pub fn check_url(&self, url: &url::Url) -> Result<(), UrlProblem> {
        match url.scheme() {
            "https" => {}
            "http" if self.development => {}
            "http" => return Err(UrlProblem::InsecureScheme),
            other => return Err(UrlProblem::UnsupportedScheme(other.to_owned())),
        }
        let host = match url.host() {
            None | Some(url::Host::Domain("")) => return Err(UrlProblem::MissingHost),
            Some(host) => host,
        };
        // Credentials in URLs end up in logs and rule listings; secret_headers are encrypted.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlProblem::Credentials);
        }
        match host {
            url::Host::Domain(name) => {
                if !self.development && is_localhost_name(name) {
                    return Err(UrlProblem::LocalName(name.to_owned()));
                }
                Ok(())
            }
            url::Host::Ipv4(v4) => self
                .check_ip(IpAddr::V4(v4))
                .map_err(UrlProblem::BlockedAddress),
            url::Host::Ipv6(v6) => self
                .check_ip(IpAddr::V6(v6))
                .map_err(UrlProblem::BlockedAddress),
        }
    }
}

/// `localhost` and `*.localhost` always mean this machine (RFC 6761), whatever DNS says.
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// An address the policy refuses, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedAddress {
    pub ip: IpAddr,
    pub class: AddressClass,
}

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let embedded = classify_detail(self.ip).and_then(|(_, v4)| v4);
        write!(f, "{} is {}", self.ip, self.class.describe())?;
        if let Some(v4) = embedded {
            write!(f, " (it carries the IPv4 address {v4})")?;
        }
        if self.class.is_local() {
            // Name the exact setting and a ready-to-paste value: a bare "blocked" sends admins
            // hunting (the complaint Svix users had). The value admits this one host, as the
            // allow list matches it (its IPv4 address, if it carries one): a wider guess such
            // as ::/64 for ::1 would admit more than the admin looked at.
            write!(
                f,
                "; in production tidings only delivers to public addresses. To allow this \
                 on-premises destination add it to network.allow in the config, e.g. \
                 network.allow = [\"{}\"] (a shorter prefix admits its whole network)",
                ipnet::IpNet::from(reached(self.ip, embedded))
            )
        } else if self.class.is_exemptable() {
            write!(
                f,
                ", which is not a usable webhook destination; tidings only delivers to public \
                 unicast addresses (networks listed in network.allow in the config are exempt)"
            )
        } else {
            write!(
                f,
                ", which is not a usable webhook destination: connecting to it reaches this \
                 machine, so network.allow cannot admit it"
            )
        }
    }
}

impl std::error::Error for BlockedAddress {}

/// Why a rule's URL was refused at create/update time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    UnsupportedScheme(String),
    InsecureScheme,
    MissingHost,
    Credentials,
    LocalName(String),
    BlockedAddress(BlockedAddress),
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedScheme(scheme) => write!(
                f,
                "unsupported URL scheme \"{scheme}\": webhook URLs must use https:// \
                 (http:// is allowed only in development mode)"
            ),
            Self::InsecureScheme => f.write_str(
                "http:// URLs are not allowed in production: PHI must be encrypted in transit \
                 (HIPAA 45 CFR 164.312(e)(2)(ii)), so use https://. http:// is only allowed in \
                 development mode (mode = \"development\" in the config)",
            ),
            Self::MissingHost => f.write_str(
                "the URL has no host; webhook URLs need one, e.g. https://ehr.example.com/hooks",
            ),
            Self::Credentials => f.write_str(
                "the URL contains a username or password; URLs are logged and shown in rule \
                 listings, so put credentials in secret_headers instead, such as an \
                 Authorization header",
            ),
            Self::LocalName(name) => write!(
                f,
                "\"{name}\" always means this machine; in production tidings only delivers to \
                 public addresses. Use development mode (mode = \"development\" in the config) \
                 for local testing, or for an on-premises destination use its IP address and \
                 add its network to network.allow in the config"
            ),
            Self::BlockedAddress(blocked) => blocked.fmt(f),
        }
    }
}

impl std::error::Error for UrlProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BlockedAddress(blocked) => Some(blocked),
            _ => None,
        }
    }
}

/// ureq resolver that resolves once, vets every address and returns only vetted ones, so ureq
/// connects to exactly the checked address (no second lookup, DNS rebinding cannot slip through).
///
/// ureq calls it for every connection, redirects included. It does not see the target when an
/// HTTP(S)/SOCKS5 proxy is configured (the proxy resolves it), so agents using it must be built
/// with `proxy(None)`; ureq otherwise picks a proxy up from the environment.
#[derive(Debug, Clone)]
pub struct VettingResolver {
    policy: Arc<AddressPolicy>,
    /// How names become addresses: [`lookup`], or in tests a fixed answer, so a name that
    /// resolves to any address can be tried without a DNS server.
    lookup: Lookup,
}

type Lookup = fn(String, NextTimeout) -> Result<Vec<SocketAddr>, ureq::Error>;

impl VettingResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy, lookup }
    }
}

impl Resolver for VettingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ureq::Error::BadUri(format!(
                "{uri} is missing scheme or host"
            )));
        };
        // Reuse ureq's helper so default ports (http, https, proxies) match DefaultResolver.
        let Some(host_port) = DefaultResolver::host_and_port(scheme, authority) else {
            return Err(ureq::Error::BadUri(format!("unknown scheme: {scheme}")));
        };

        // A literal IP (e.g. in a rule saved before the policy changed) skips DNS but not the
        // check below.
        let candidates = match host_port.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => (self.lookup)(host_port, timeout)?,
        };

        let mut vetted = self.empty();
        let capacity = capacity_of(&vetted);
        let mut first_blocked = None;
        for addr in config.ip_family().keep_wanted(candidates.into_iter()) {
            match self.policy.check_ip(addr.ip()) {
                // ArrayVec::push panics when full; ureq also keeps only the first few.
                Ok(()) if vetted.len() < capacity => vetted.push(addr),
                Ok(()) => {}
                Err(blocked) => {
                    first_blocked.get_or_insert(blocked);
                }
            }
        }

        if !vetted.is_empty() {
            return Ok(vetted);
        }
        // ureq passes a resolver error through to RequestBuilder::send unchanged, so the
        // BlockedAddress inside stays reachable for blocked_by_policy.
        Err(first_blocked.map_or(ureq::Error::HostNotFound, |blocked| {
            ureq::Error::Io(io::Error::other(blocked))
        }))
    }
}

fn capacity_of<T, const N: usize>(_: &ArrayVec<T, N>) -> usize {
    N
}

/// DNS lookup honouring ureq's timeout the way `DefaultResolver` does: a blocking lookup when
/// there is no deadline, otherwise one on a helper thread abandoned when time runs out
/// (getaddrinfo cannot be cancelled).
fn lookup(host_port: String, timeout: NextTimeout) -> Result<Vec<SocketAddr>, ureq::Error> {
    let answer = if timeout.after.is_not_happening() {
        host_port.to_socket_addrs()
    } else {
        let (tx, rx) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("tidings-dns".into())
            .spawn(move || tx.send(host_port.to_socket_addrs()).ok())
            .map_err(ureq::Error::Io)?;
        match rx.recv_timeout(*timeout.after) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(ureq::Error::Timeout(timeout.reason));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ureq::Error::Io(io::Error::other(
                    "DNS lookup thread stopped without an answer",
                )));
            }
        }
    };
    // A failed lookup and an empty answer both mean the name does not resolve; reporting
    // them alike keeps "no such host" distinct from "blocked by policy".
    match answer {
        Ok(addrs) => Ok(addrs.collect()),
        Err(_) => Err(ureq::Error::HostNotFound),
    }
}

/// If a ureq error came from [`VettingResolver`] blocking every address, the blocked address.
pub fn blocked_by_policy(err: &ureq::Error) -> Option<&BlockedAddress> {
    match err {
        ureq::Error::Io(io_err) => io_err.get_ref()?.downcast_ref::<BlockedAddress>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
