//! A real HTTP/1.1 receiver for integration tests and benchmarks.
//!
//! It binds `127.0.0.1:0`, runs one accept thread plus one thread per
//! connection (std threads only), supports keep-alive, `Content-Length` and
//! chunked request bodies, and records every request exactly as it arrived
//! (header order and original name case kept). Replies are scripted with
//! [`TestReceiver::reply_sequence`] / [`TestReceiver::set_default`].
//!
//! The TLS variant uses rustls with the ring provider and a throwaway CA from
//! [`TestCa`]; the server certificate is valid for `localhost` and `127.0.0.1`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Longest request line / header line accepted (bytes, including CRLF).
const MAX_LINE: u64 = 64 * 1024;
/// Largest single chunk or Content-Length body accepted.
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Granularity of sleeps that must notice shutdown / client disconnects.
const SLICE: Duration = Duration::from_millis(20);
/// How long `Drop` waits for connection threads to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Throwaway CA
// ---------------------------------------------------------------------------

/// A throwaway CA (made by rcgen) plus a server certificate it issued for
/// `localhost` and `127.0.0.1`.
pub struct TestCa {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
    server_cert_pem: String,
    server_key_pem: String,
    /// Issues client certificates (`client_pems`).
    issuer: Issuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tidings throwaway test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server cert params");
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.use_authority_key_identifier_extension = true;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().expect("generate server key");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("issue server cert");

        Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server_cert: leaf_cert.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
            server_cert_pem: leaf_cert.pem(),
            server_key_pem: leaf_key.serialize_pem(),
            issuer,
        }
    }

    /// A TLS client certificate this CA issued (CN `common_name`), valid from 400 days ago
    /// until `valid_days` from now (negative: already expired), and its key, PEM encoded.
    pub fn client_pems(&self, common_name: &str, valid_days: i64) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(400);
        params.not_after = now + time::Duration::days(valid_days);
        let key = KeyPair::generate().expect("generate client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("issue client cert");
        (cert.pem(), key.serialize_pem())
    }

    /// A server config that refuses any client without a certificate this CA issued.
    fn mtls_server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("CA as a root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .expect("client verifier");
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server_cert.clone()],
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )
            .expect("server cert/key accepted by rustls");
        Arc::new(config)
    }

    /// The CA certificate, PEM encoded (trust anchor for clients).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CA certificate, DER encoded.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.to_vec()
    }

    /// The server certificate and its private key, PEM encoded (for a server under test).
    pub fn server_pems(&self) -> (String, String) {
        (self.server_cert_pem.clone(), self.server_key_pem.clone())
    }

    /// Writes the CA certificate as PEM to `path`.
    pub fn write_ca_pem(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem)
            .unwrap_or_else(|e| panic!("write CA PEM to {}: {e}", path.display()));
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server_cert.clone()],
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )
            .expect("server cert/key accepted by rustls");
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------
// Recorded requests and scripted replies
// ---------------------------------------------------------------------------

/// One request exactly as it arrived.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent (path plus query).
    pub path: String,
    /// Headers in arrival order, names in their original case.
    pub headers: Vec<(String, String)>,
    /// The body after removing chunked framing (if any).
    pub body: Vec<u8>,
    /// When the request (head and body) had been fully read.
    pub at: Instant,
}

impl Recorded {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of headers named `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body parsed as JSON; panics with the body text if it is not JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body of {} {} is not JSON ({e}): {:?}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sleep this long before answering (the request is recorded first).
    pub delay: Duration,
}

impl Reply {
    #[must_use]
    pub fn status(code: u16) -> Self {
        Self {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header. `Content-Length` is added automatically unless
    /// given here; `Connection: close` makes the server close after replying.
    #[must_use]
    pub fn header(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    #[must_use]
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }

    #[must_use]
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    fn closes(&self) -> bool {
        self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

struct State {
    count: usize,
    requests: Vec<Recorded>,
    arrivals: Vec<Instant>,
    sequence: VecDeque<Arc<Reply>>,
    default: Arc<Reply>,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    live: HashMap<u64, TcpStream>,
}

struct Shared {
    recording: bool,
    state: Mutex<State>,
    arrived: Condvar,
    stop: AtomicBool,
    conns: Mutex<Conns>,
    conns_changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn register(&self, stream: TcpStream) -> u64 {
        let mut conns = lock(&self.conns);
        let id = conns.next_id;
        conns.next_id += 1;
        conns.live.insert(id, stream);
        id
    }

    fn deregister(&self, id: u64) {
        lock(&self.conns).live.remove(&id);
        self.conns_changed.notify_all();
    }
}

/// Removes a connection from the live set when its thread ends (even by panic).
struct ConnGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.shared.deregister(self.id);
    }
}

// ---------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------

/// A local HTTP(S) server that records requests and answers as told.
/// Dropping it stops accepting, closes open connections and lets all its
/// threads exit.
pub struct TestReceiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    scheme: &'static str,
    accept: Option<JoinHandle<()>>,
}

impl TestReceiver {
    /// Plain HTTP, recording every request.
    pub fn start() -> Self {
        Self::spawn(None, true)
    }

    /// HTTPS with a certificate issued by `ca`, recording every request.
    pub fn start_https(ca: &TestCa) -> Self {
        Self::spawn(Some(ca.server_config()), true)
    }

    /// HTTPS that requires a client certificate issued by `ca` (mTLS), recording every request.
    pub fn start_mtls(ca: &TestCa) -> Self {
        Self::spawn(Some(ca.mtls_server_config()), true)
    }

    /// Plain HTTP. With `recording == false` (benchmark mode) only the count
    /// and the receive instants are kept; bodies are read and discarded.
    pub fn start_with(recording: bool) -> Self {
        Self::spawn(None, recording)
    }

    /// As [`TestReceiver::start_with`], on a given port of 127.0.0.1 (a receiver that comes
    /// back where it was).
    pub fn start_on_port(port: u16, recording: bool) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the given port");
        Self::spawn_on(listener, None, recording)
    }

    /// HTTPS variant of [`TestReceiver::start_with`].
    pub fn start_https_with(ca: &TestCa, recording: bool) -> Self {
        Self::spawn(Some(ca.server_config()), recording)
    }

    fn spawn(tls: Option<Arc<ServerConfig>>, recording: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Self::spawn_on(listener, tls, recording)
    }

    fn spawn_on(listener: TcpListener, tls: Option<Arc<ServerConfig>>, recording: bool) -> Self {
        let addr = listener.local_addr().expect("local_addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            recording,
            state: Mutex::new(State {
                count: 0,
                requests: Vec::new(),
                arrivals: Vec::with_capacity(if recording { 64 } else { 16 * 1024 }),
                sequence: VecDeque::new(),
                default: Arc::new(Reply::status(200).body("ok")),
            }),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
            conns_changed: Condvar::new(),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("test-receiver-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &accept_shared, tls.as_ref()))
            .expect("spawn accept thread");
        Self {
            shared,
            addr,
            scheme,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http(s)://127.0.0.1:PORT/path` (a missing leading `/` is added).
    pub fn url(&self, path: &str) -> String {
        self.url_with_host("127.0.0.1", path)
    }

    /// Same as [`TestReceiver::url`] with host `localhost`.
    pub fn url_localhost(&self, path: &str) -> String {
        self.url_with_host("localhost", path)
    }

    fn url_with_host(&self, host: &str, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("{}://{host}:{}{slash}{path}", self.scheme, self.port())
    }

    /// Queues replies for the next requests, in order (appended to any still
    /// queued); afterwards the default reply is used again.
    pub fn reply_sequence(&self, replies: Vec<Reply>) {
        lock(&self.shared.state)
            .sequence
            .extend(replies.into_iter().map(Arc::new));
    }

    /// Replaces the default reply (initially 200 with body `ok`).
    pub fn set_default(&self, reply: Reply) {
        lock(&self.shared.state).default = Arc::new(reply);
    }

    /// All recorded requests so far (empty in benchmark mode).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.state).requests.clone()
    }

    /// Number of complete requests received.
    pub fn count(&self) -> usize {
        lock(&self.shared.state).count
    }

    /// Number of TCP connections accepted so far (to check connection reuse).
    pub fn connections(&self) -> usize {
        usize::try_from(lock(&self.shared.conns).next_id).unwrap_or(usize::MAX)
    }

    /// Number of connections currently open (their threads still running).
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).live.len()
    }

    /// Receive instants of all requests, in arrival order (both modes).
    pub fn arrivals(&self) -> Vec<Instant> {
        lock(&self.shared.state).arrivals.clone()
    }

    /// Waits until at least `n` requests have arrived and returns the recorded
    /// ones (empty in benchmark mode). Panics on timeout, saying how many came.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.shared.state);
        while state.count < n {
            let now = Instant::now();
            if now >= deadline {
                let seen: Vec<String> = state
                    .requests
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                panic!(
                    "TestReceiver on port {}: expected {n} request(s) within {timeout:?}, \
                     only {} arrived {seen:?}",
                    self.port(),
                    state.count
                );
            }
            state = self
                .shared
                .arrived
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.requests.clone()
    }

    /// Asserts that no further request arrives within `d` (beyond the count
    /// at the time of the call); returns that count. Panics as soon as one
    /// arrives.
    pub fn expect_quiet(&self, d: Duration) -> usize {
        let deadline = Instant::now() + d;
        let mut state = lock(&self.shared.state);
        let before = state.count;
        loop {
            if state.count != before {
                let extra: Vec<String> = state
                    .requests
                    .iter()
                    .skip(before)
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                panic!(
                    "TestReceiver on port {}: expected no request for {d:?}, but {} more \
                     arrived (count {before} -> {}) {extra:?}",
                    self.port(),
                    state.count - before,
                    state.count
                );
            }
            let now = Instant::now();
            if now >= deadline {
                return before;
            }
            state = self
                .shared
                .arrived
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept thread so it sees the flag; join it only if the
        // wake-up connection got through (otherwise it is left detached).
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(handle) = self.accept.take()
            && woke
        {
            let _ = handle.join();
        }
        // No new connections can be registered now: close the open ones,
        // which ends blocked reads/writes, then wait for their threads.
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut conns = lock(&self.shared.conns);
        for stream in conns.live.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        while !conns.live.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            conns = self
                .shared
                .conns_changed
                .wait_timeout(conns, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, tls: Option<&Arc<ServerConfig>>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else {
            // e.g. EMFILE: back off briefly instead of spinning.
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = shared.register(handle);
        let conn_shared = Arc::clone(shared);
        let tls = tls.cloned();
        let spawned = thread::Builder::new()
            .name("test-receiver-conn".to_owned())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _guard = ConnGuard {
                    shared: &conn_shared,
                    id,
                };
                match tls {
                    None => serve(stream, &conn_shared),
                    Some(config) => {
                        if let Ok(conn) = ServerConnection::new(config) {
                            serve(StreamOwned::new(conn, stream), &conn_shared);
                        }
                    }
                }
            });
        if spawned.is_err() {
            shared.deregister(id);
        }
    }
}

// ---------------------------------------------------------------------------
// Per-connection HTTP/1.1 handling
// ---------------------------------------------------------------------------

trait Transport: Read + Write {
    fn tcp(&self) -> &TcpStream;
    /// Polite close (TLS `close_notify`); errors are irrelevant here.
    fn finish(&mut self) {}
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for StreamOwned<ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    fn finish(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

/// Buffers reused across all requests of one connection.
struct Conn<S: Transport> {
    reader: BufReader<S>,
    line: Vec<u8>,
    body: Vec<u8>,
    out: Vec<u8>,
}

fn serve<S: Transport>(stream: S, shared: &Shared) {
    let mut conn = Conn {
        reader: BufReader::with_capacity(16 * 1024, stream),
        line: Vec::with_capacity(256),
        body: Vec::new(),
        out: Vec::with_capacity(512),
    };
    while !shared.stopping() {
        match conn.handle_one(shared) {
            Ok(true) => {}
            Ok(false) => {
                conn.reader.get_mut().finish();
                break;
            }
            Err(_) => break,
        }
    }
}

enum Head {
    Ok,
    Eof,
    Bad(u16),
}

/// Framing-relevant facts about one request head.
#[allow(clippy::struct_excessive_bools)]
struct Meta {
    is_head: bool,
    http10: bool,
    keep_alive: bool,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one line (up to and including `\n`) into `line`.
/// Returns `Ok(None)` on clean EOF before any byte.
fn read_line<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> io::Result<Option<usize>> {
    line.clear();
    let n = reader.by_ref().take(MAX_LINE).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(invalid("line too long"));
        }
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(n))
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_u64(s: &[u8], radix: u32) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?;
    if s.is_empty() || s.starts_with('+') {
        return None;
    }
    u64::from_str_radix(s, radix).ok()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl<S: Transport> Conn<S> {
    /// Handles one request; `Ok(true)` means keep the connection open.
    fn handle_one(&mut self, shared: &Shared) -> io::Result<bool> {
        let recording = shared.recording;
        let mut method = String::new();
        let mut path = String::new();
        let mut headers = Vec::new();
        let mut meta = Meta {
            is_head: false,
            http10: false,
            keep_alive: true,
            content_length: None,
            chunked: false,
            expect_continue: false,
        };
        let head = self.read_head(recording, &mut method, &mut path, &mut headers, &mut meta);
        match head {
            Ok(Head::Ok) => {}
            Ok(Head::Eof) => return Ok(false),
            Ok(Head::Bad(status)) => {
                self.write_error(status)?;
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.write_error(400)?;
                return Ok(false);
            }
            Err(e) => return Err(e),
        }

        self.body.clear();
        let has_body = meta.chunked || meta.content_length.is_some_and(|n| n > 0);
        if meta.expect_continue && has_body && !meta.http10 {
            let stream = self.reader.get_mut();
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            stream.flush()?;
        }
        let body_read = if meta.chunked {
            self.read_chunked(recording)
        } else if let Some(n) = meta.content_length {
            self.read_exact_body(n, recording)
        } else {
            Ok(())
        };
        if let Err(e) = body_read {
            if e.kind() == io::ErrorKind::InvalidData {
                self.write_error(400)?;
                return Ok(false);
            }
            return Err(e);
        }

        let reply = {
            let mut state = lock(&shared.state);
            // Taken under the lock so arrival order and `at` order agree.
            let at = Instant::now();
            state.count += 1;
            state.arrivals.push(at);
            if recording {
                state.requests.push(Recorded {
                    method,
                    path,
                    headers,
                    body: std::mem::take(&mut self.body),
                    at,
                });
            }
            state
                .sequence
                .pop_front()
                .unwrap_or_else(|| Arc::clone(&state.default))
        };
        shared.arrived.notify_all();

        if !reply.delay.is_zero() && !self.wait_delay(reply.delay, shared) {
            return Ok(false);
        }
        let keep_alive = meta.keep_alive && !reply.closes() && !shared.stopping();
        self.write_reply(&reply, &meta, keep_alive)?;
        Ok(keep_alive)
    }

    fn read_head(
        &mut self,
        recording: bool,
        method: &mut String,
        path: &mut String,
        headers: &mut Vec<(String, String)>,
        meta: &mut Meta,
    ) -> io::Result<Head> {
        // Request line; tolerate empty lines before it (RFC 9112 §2.2).
        let request_line = loop {
            if read_line(&mut self.reader, &mut self.line)?.is_none() {
                return Ok(Head::Eof);
            }
            let l = trim_crlf(&self.line);
            if !l.is_empty() {
                break l;
            }
        };
        let mut parts = request_line.split(|&b| b == b' ');
        let (Some(m), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(Head::Bad(400));
        };
        if m.is_empty() || target.is_empty() {
            return Ok(Head::Bad(400));
        }
        match version {
            b"HTTP/1.1" => {}
            b"HTTP/1.0" => {
                meta.http10 = true;
                meta.keep_alive = false;
            }
            _ => return Ok(Head::Bad(505)),
        }
        meta.is_head = m == b"HEAD";
        if recording {
            *method = lossy(m);
            *path = lossy(target);
        }

        loop {
            if read_line(&mut self.reader, &mut self.line)?.is_none() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = trim_crlf(&self.line);
            if l.is_empty() {
                break;
            }
            let Some(colon) = l.iter().position(|&b| b == b':') else {
                return Ok(Head::Bad(400));
            };
            let name = &l[..colon];
            let value = trim_ows(&l[colon + 1..]);
            if name.is_empty() || name.ends_with(b" ") || name.ends_with(b"\t") {
                return Ok(Head::Bad(400));
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                let Some(n) = parse_u64(value, 10).filter(|&n| n <= MAX_BODY) else {
                    return Ok(Head::Bad(400));
                };
                if meta.content_length.is_some_and(|old| old != n) {
                    return Ok(Head::Bad(400));
                }
                meta.content_length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value.rsplit(|&b| b == b',').next().map(trim_ows);
                if last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")) {
                    meta.chunked = true;
                } else {
                    return Ok(Head::Bad(501));
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in value.split(|&b| b == b',').map(trim_ows) {
                    if token.eq_ignore_ascii_case(b"close") {
                        meta.keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && meta.http10 {
                        meta.keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"expect") {
                meta.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
            }
            if recording {
                headers.push((lossy(name), lossy(value)));
            }
        }
        Ok(Head::Ok)
    }

    /// Reads exactly `n` body bytes, keeping them only when recording.
    fn read_exact_body(&mut self, n: u64, keep: bool) -> io::Result<()> {
        let mut limited = self.reader.by_ref().take(n);
        let got = if keep {
            limited.read_to_end(&mut self.body)? as u64
        } else {
            io::copy(&mut limited, &mut io::sink())?
        };
        if got == n {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }

    /// Decodes a chunked body (chunk extensions and trailers are dropped).
    fn read_chunked(&mut self, keep: bool) -> io::Result<()> {
        let mut total = 0u64;
        loop {
            if read_line(&mut self.reader, &mut self.line)?.is_none() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = trim_crlf(&self.line);
            let size_part = l.split(|&b| b == b';').next().map_or(&[][..], trim_ows);
            let size = parse_u64(size_part, 16).ok_or_else(|| invalid("bad chunk size"))?;
            total = total.saturating_add(size);
            if total > MAX_BODY {
                return Err(invalid("chunked body too large"));
            }
            if size == 0 {
                break;
            }
            self.read_exact_body(size, keep)?;
            if read_line(&mut self.reader, &mut self.line)?.is_none()
                || !trim_crlf(&self.line).is_empty()
            {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
        // Trailer section up to the empty line.
        loop {
            if read_line(&mut self.reader, &mut self.line)?.is_none() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if trim_crlf(&self.line).is_empty() {
                return Ok(());
            }
        }
    }

    /// Sleeps for `d`; returns false if the receiver is shutting down or the
    /// client closed the connection meanwhile.
    fn wait_delay(&mut self, d: Duration, shared: &Shared) -> bool {
        let deadline = Instant::now() + d;
        let tcp = self.reader.get_ref().tcp();
        // Once the peer has sent more bytes (e.g. a TLS close_notify) peek
        // cannot tell anything more, so fall back to plain sleeping.
        let mut can_peek = true;
        loop {
            if shared.stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let slice = SLICE.min(deadline - now);
            if can_peek && tcp.set_read_timeout(Some(slice)).is_ok() {
                match tcp.peek(&mut [0u8; 1]) {
                    Ok(0) => return false,
                    Ok(_) => can_peek = false,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => return false,
                }
            } else {
                thread::sleep(slice);
            }
        }
        tcp.set_read_timeout(None).is_ok()
    }

    fn write_reply(&mut self, reply: &Reply, meta: &Meta, keep_alive: bool) -> io::Result<()> {
        let out = &mut self.out;
        out.clear();
        write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            reply.status,
            reason(reply.status)
        )?;
        let mut has_length = false;
        let mut has_connection = false;
        for (k, v) in &reply.headers {
            has_length |= k.eq_ignore_ascii_case("content-length");
            has_connection |= k.eq_ignore_ascii_case("connection");
            write!(out, "{k}: {v}\r\n")?;
        }
        let bodiless = reply.status < 200 || reply.status == 204 || reply.status == 304;
        if !has_length && !bodiless {
            write!(out, "Content-Length: {}\r\n", reply.body.len())?;
        }
        if !has_connection {
            if !keep_alive {
                out.extend_from_slice(b"Connection: close\r\n");
            } else if meta.http10 {
                out.extend_from_slice(b"Connection: keep-alive\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
        if !meta.is_head && !bodiless {
            out.extend_from_slice(&reply.body);
        }
        let stream = self.reader.get_mut();
        stream.write_all(&self.out)?;
        stream.flush()
    }

    fn write_error(&mut self, status: u16) -> io::Result<()> {
        let meta = Meta {
            is_head: false,
            http10: false,
            keep_alive: false,
            content_length: None,
            chunked: false,
            expect_continue: false,
        };
        let reply = Reply::status(status).body(reason(status));
        self.write_reply(&reply, &meta, false)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}
