//! A ureq transport layer that sends a request's head and body in one write, and keeps the
//! socket's timeouts steady.
//!
//! ureq writes the head and then the body, each with its own `write` on the socket: for a
//! webhook of a kilobyte that is two system calls and two TCP segments where one would do,
//! and the receiver wakes twice. This layer holds what ureq hands it to transmit and lets it
//! go when ureq turns to read the answer (or when the buffer is half full), so a small
//! request leaves in one write. With TLS it sits above rustls, so the request is also one
//! TLS record.
//!
//! ureq also passes each read and write the time left of the request's deadline, which is
//! new every call, so the TCP layer resets the socket's timeout with a system call before
//! every read and write. Above a second, this layer rounds the time left down to a whole
//! step of 10 ms: consecutive calls then ask for the same timeout and the socket keeps it.
//! A request may time out up to one step early; it never gets longer than its deadline.

use std::time::Duration;

use ureq::Error;
use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Below this much time left the timeout is passed on exactly.
const ROUND_ABOVE: Duration = Duration::from_secs(1);
/// The step the time left is rounded down to.
const ROUND_STEP_MS: u128 = 10;

/// Wraps whatever the chain before it connected (TCP, or TLS over TCP) in `OneWrite`.
#[derive(Debug, Default)]
pub struct OneWriteConnector;

impl<In: Transport> Connector<In> for OneWriteConnector {
    type Out = OneWrite<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(|inner| OneWrite {
            inner,
            held: Vec::new(),
        }))
    }
}

/// The transport. `held` is what ureq asked to transmit that has not gone out yet; it is
/// copied aside because ureq writes the next part from the start of the same buffer.
#[derive(Debug)]
pub struct OneWrite<T> {
    inner: T,
    held: Vec<u8>,
}

impl<T: Transport> OneWrite<T> {
    /// Sends what is held, in pieces of the inner output buffer's size.
    fn release(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        let mut sent = 0;
        while sent < self.held.len() {
            let output = self.inner.buffers().output();
            let piece = output.len().min(self.held.len() - sent);
            output[..piece].copy_from_slice(&self.held[sent..sent + piece]);
            sent += piece;
            self.inner.transmit_output(piece, steady(timeout))?;
        }
        let capacity = self.inner.buffers().output().len();
        self.held.clear();
        // A large body grew the holding space; a pooled connection need not keep it.
        if self.held.capacity() > capacity {
            self.held = Vec::new();
        }
        Ok(())
    }
}

impl<T: Transport> Transport for OneWrite<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let output = self.inner.buffers().output();
        let capacity = output.len();
        if self.held.is_empty() && amount * 2 >= capacity {
            return self.inner.transmit_output(amount, steady(timeout));
        }
        self.held.extend_from_slice(&output[..amount]);
        if self.held.len() * 2 >= capacity {
            self.release(timeout)?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.release(timeout)?;
        self.inner.maybe_await_input(steady(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.release(timeout)?;
        self.inner.await_input(steady(timeout))
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// The time left, rounded down to a whole step once it is over `ROUND_ABOVE`.
fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let UreqDuration::Exact(left) = timeout.after
        && left > ROUND_ABOVE
    {
        let steps = left.as_millis() / ROUND_STEP_MS;
        let millis = u64::try_from(steps * ROUND_STEP_MS).unwrap_or(u64::MAX);
        timeout.after = UreqDuration::from_millis(millis);
    }
    timeout
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ureq::Agent;
    use ureq::unversioned::resolver::DefaultResolver;
    use ureq::unversioned::transport::{Connector, TcpConnector};

    use super::*;

    /// Counts the writes that reach the real TCP transport under `OneWrite`.
    #[derive(Debug)]
    struct CountWrites(Arc<AtomicUsize>);

    #[derive(Debug)]
    struct Counted<T> {
        inner: T,
        writes: Arc<AtomicUsize>,
    }

    impl<In: Transport> Connector<In> for CountWrites {
        type Out = Counted<In>;

        fn connect(
            &self,
            _details: &ConnectionDetails,
            chained: Option<In>,
        ) -> Result<Option<Self::Out>, Error> {
            Ok(chained.map(|inner| Counted {
                inner,
                writes: Arc::clone(&self.0),
            }))
        }
    }

    impl<T: Transport> Transport for Counted<T> {
        fn buffers(&mut self) -> &mut dyn Buffers {
            self.inner.buffers()
        }
        fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.inner.transmit_output(amount, timeout)
        }
        fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
            self.inner.await_input(timeout)
        }
        fn is_open(&mut self) -> bool {
            self.inner.is_open()
        }
    }

    /// A keep-alive HTTP server on 127.0.0.1 that answers each request with the length and a
    /// checksum of the body it received, for `requests` requests on one connection.
    fn echo_lengths(requests: usize) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            for _ in 0..requests {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
                let answer = format!("{length} {sum}");
                write!(
                    writer,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
            }
        });
        (url, server)
    }

    fn counting_agent(writes: &Arc<AtomicUsize>) -> Agent {
        let connector =
            ().chain(TcpConnector::default())
                .chain(CountWrites(Arc::clone(writes)))
                .chain(OneWriteConnector);
        let config = Agent::config_builder()
            .input_buffer_size(32 * 1024)
            .output_buffer_size(32 * 1024)
            .build();
        Agent::with_parts(config, connector, DefaultResolver::default())
    }

    fn post(agent: &Agent, url: &str, body: &[u8]) -> String {
        agent
            .post(url)
            .config()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .send(body)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    #[test]
    fn a_small_request_leaves_in_one_write_and_a_large_one_arrives_whole() {
        let (url, server) = echo_lengths(3);
        let writes = Arc::new(AtomicUsize::new(0));
        let agent = counting_agent(&writes);

        let small = vec![7u8; 1_000];
        assert_eq!(post(&agent, &url, &small), "1000 7000");
        assert_eq!(
            writes.load(Ordering::SeqCst),
            1,
            "head and body in one write"
        );

        // Larger than the buffer: sent in pieces, all of it, in order.
        let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sum: u64 = large.iter().map(|b| u64::from(*b)).sum();
        assert_eq!(post(&agent, &url, &large), format!("100000 {sum}"));

        // The pooled connection is left clean for the next request.
        writes.store(0, Ordering::SeqCst);
        assert_eq!(post(&agent, &url, b"{}"), "2 248");
        assert_eq!(writes.load(Ordering::SeqCst), 1);
        server.join().unwrap();
    }

    #[test]
    fn time_left_is_rounded_down_above_a_second_and_kept_exact_below() {
        let exact = |d| NextTimeout {
            after: UreqDuration::Exact(d),
            ..NextTimeout::default()
        };
        let rounded = steady(exact(Duration::from_micros(29_987_654)));
        assert_eq!(*rounded.after, Duration::from_millis(29_980));
        let short = Duration::from_micros(987_654);
        assert_eq!(*steady(exact(short)).after, short);
        let never = NextTimeout::default();
        assert_eq!(steady(never), never);
    }
}
