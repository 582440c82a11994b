//! The load generator's client: one keep-alive HTTP/1.1 connection that writes each event's
//! request straight to the socket and reads back the status and body of its answer, as wrk
//! does. Through ureq the load generator spent about 140 µs of CPU an event (0.7 of this
//! box's two cores at 5,000 events/s), taken from the tidings beside it that it measures;
//! an EHR posting events runs on a box of its own. Only what tidings answers is understood:
//! a status line, headers with a `Content-Length`, and that many body bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Longest the poster waits for an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Poster {
    address: String,
    /// Everything of a request before its `Content-Length` value.
    head: String,
    connection: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Poster {
    /// A connection to `url` (`http://host:port/path`), posting with `key`.
    pub fn connect(url: &str, key: &str) -> Self {
        let url = url::Url::parse(url).expect("the load generator's URL");
        let host = url.host_str().expect("a host");
        let address = format!("{host}:{}", url.port_or_known_default().expect("a port"));
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: ",
            url.path()
        );
        Self {
            connection: open(&address),
            address,
            head,
            request: Vec::with_capacity(2048),
        }
    }

    /// Posts `body`; the answer's status and body. A connection the server closed while it
    /// was idle is opened again and the request sent on the new one (it was not read).
    pub fn post(&mut self, body: &[u8]) -> (u16, String) {
        self.request.clear();
        self.request.extend_from_slice(self.head.as_bytes());
        self.request
            .extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        self.request.extend_from_slice(body);
        if let Some(answer) = self.exchange() {
            return answer;
        }
        self.connection = open(&self.address);
        self.exchange()
            .expect("tidings answers on a new connection")
    }

    /// Writes the request and reads the answer; None if the connection was found closed
    /// before any of the answer came.
    fn exchange(&mut self) -> Option<(u16, String)> {
        if self.connection.get_mut().write_all(&self.request).is_err() {
            return None;
        }
        let mut line = String::new();
        if self.connection.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.connection.read_line(&mut line).expect("a header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a Content-Length");
            }
        }
        let mut body = vec![0; length];
        self.connection.read_exact(&mut body).expect("the body");
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn open(address: &str) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(address).expect("connect to tidings");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .expect("read timeout");
    BufReader::new(stream)
}
