//! The client: one stream driving a [`ClientSession`].
//!
//! [`Client`] is cheap to clone and may be shared between threads; requests
//! take turns on the connection. The calling thread does all the I/O: it
//! writes a request, then reads until its answer is in (the answers of
//! earlier requests on the way). Nothing runs in the background.
//!
//! **Flow control.** At most [`WINDOW`] bytes of requests are unanswered at
//! once, and a larger request is sent only when none is: before a write
//! that would pass it, the client reads answers. The server reads up to
//! [`crate::server::QUEUED_MAX`] bytes (more than the window) while it
//! cannot write an answer, so a long pipeline cannot deadlock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use simplerpc_core::{
    BorrowedFrame, ClientSession, Extensions, ObjId, OutFrame, RawRequest, RawValue, RemoteError,
    Request, RequestId, Response,
};

use crate::error::Error;
use crate::socket::Socket;
use crate::wire::{read_hello, write_frame, write_hello, FrameReader, ReadError};

/// The most bytes of requests in flight (see the module documentation).
pub const WINDOW: usize = 32 << 20;
/// Request frames from this size up are kept to build the next one in...
const RECYCLE_MIN: usize = 1 << 20;
/// ...up to this size.
const RECYCLE_MAX: usize = 256 << 20;
/// A client this long without traffic (no request begun, no answer read:
/// a request waiting for a long call is no idleness) lets the buffers it
/// kept for large frames go, when it makes the next request (it has no
/// thread of its own to do it meanwhile).
const IDLE_TRIM: Duration = Duration::from_secs(1);

/// How a client talks to its server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The largest message sent or accepted, in bytes; a larger request
    /// fails before it is built, a larger answer ends the connection with
    /// [`Error::TooLarge`]. Default 2 GiB.
    pub max_message_size: usize,
    /// The extensions offered. Default all.
    pub extensions: Extensions,
    /// How long a request may wait for its answer (`None`, the default: as
    /// long as it takes).
    pub timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_message_size: crate::DEFAULT_MAX_MESSAGE_SIZE,
            extensions: Extensions::ALL,
            timeout: None,
        }
    }
}

/// A connection to a stream server. Clones share it.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Mutex<Conn>,
    /// Ids dropped by proxies; moved into the session before each send, so
    /// a release never waits for a call in progress.
    releases: Mutex<Vec<ObjId>>,
    extensions: Extensions,
    waits: AtomicU64,
    max_message_size: usize,
}

struct Conn {
    stream: Box<dyn Socket>,
    reader: FrameReader,
    session: ClientSession,
    /// Why the connection can no longer be used.
    ended: Option<String>,
    /// The size of each request in flight, oldest first, and their sum.
    in_flight: VecDeque<usize>,
    in_flight_bytes: usize,
    timeout: Option<Duration>,
    interruptible: bool,
    /// A signal came while nobody could report it; the next wait does.
    interrupted: bool,
    /// The stream's read timeout as last set.
    read_timeout: Option<Duration>,
    /// When the last request began or the last answer came in.
    last_active: Instant,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("extensions", &self.shared.extensions)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Say hello on `stream` (offering `config.extensions`) and read the
    /// server's answer; the client then speaks what the server accepted.
    pub fn connect<S: Socket>(stream: S, config: &ClientConfig) -> Result<Client, Error> {
        if config.max_message_size == 0 {
            return Err(Error::Config("max_message_size must be above 0".into()));
        }
        let mut stream: Box<dyn Socket> = Box::new(stream);
        stream.set_read_timeout(config.timeout)?;
        stream.set_write_timeout(None)?;
        write_hello(&mut stream, &config.extensions.header_value())?;
        let answer = read_hello(&mut stream, "server").map_err(|e| match e {
            Error::Io(io) if crate::socket::is_retry(&io) => Error::Handshake(format!(
                "the server did not answer the hello within {:?}",
                config.timeout.unwrap_or_default()
            )),
            other => other,
        })?;
        let accepted = Extensions::parse(&answer).intersect(config.extensions);
        let mut session = ClientSession::new(accepted);
        session.set_max_frame(config.max_message_size);
        Ok(Client {
            shared: Arc::new(Shared {
                conn: Mutex::new(Conn {
                    stream,
                    reader: FrameReader::new(config.max_message_size),
                    session,
                    ended: None,
                    in_flight: VecDeque::new(),
                    in_flight_bytes: 0,
                    timeout: config.timeout,
                    interruptible: false,
                    interrupted: false,
                    read_timeout: config.timeout,
                    last_active: Instant::now(),
                }),
                releases: Mutex::new(Vec::new()),
                extensions: accepted,
                waits: AtomicU64::new(0),
                max_message_size: config.max_message_size,
            }),
        })
    }

    /// The extensions the server accepted.
    pub fn extensions(&self) -> Extensions {
        self.shared.extensions
    }

    /// Whether requests may be pipelined on promises (the server accepted
    /// the `promise` extension).
    pub fn promises(&self) -> bool {
        self.shared.extensions.promises()
    }

    /// The largest message this client sends or accepts, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.shared.max_message_size
    }

    /// How many times this client waited for answers: its round trips.
    pub fn round_trips(&self) -> u64 {
        self.shared.waits.load(Ordering::Relaxed)
    }

    fn count_wait(&self) {
        self.shared.waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Send one request and wait for its response. A remote exception comes
    /// back as [`Response::Error`]; `Err` means the exchange itself failed.
    pub fn request(&self, request: &Request) -> Result<Response, Error> {
        self.request_raw(request).map(|(r, _)| r)
    }

    /// As [`Client::request`], and also the bytes of the response's value
    /// as the received frame holds them.
    pub fn request_raw(&self, request: &Request) -> Result<(Response, Option<RawValue>), Error> {
        let id = self.send(request)?;
        self.wait(id)
    }

    /// Send a `call` or `getitem` whose arguments (or key) the caller holds
    /// as msgpack, and wait for its answer.
    pub fn request_raw_fields(
        &self,
        request: &RawRequest<'_>,
    ) -> Result<(Response, Option<RawValue>), Error> {
        let id = self.send_raw(request)?;
        self.wait(id)
    }

    /// Send `request` and return its id without waiting; [`Client::wait`]
    /// takes its answer later.
    pub fn send(&self, request: &Request) -> Result<RequestId, Error> {
        let mut conn = self.begin()?;
        let (id, frame) = conn.session.send_frame(request)?;
        conn.write(frame)?;
        Ok(id)
    }

    /// [`Client::send`] for a request whose arguments (or key) the caller
    /// holds as msgpack (checked, then copied once into the frame; in
    /// [`Raw::Parts`], a part that is a whole large bin payload is not
    /// copied but written from where it lies, before this returns).
    ///
    /// [`Raw::Parts`]: simplerpc_core::Raw::Parts
    pub fn send_raw(&self, request: &RawRequest<'_>) -> Result<RequestId, Error> {
        let mut conn = self.begin()?;
        let (id, frame) = conn
            .session
            .send_raw_frame(request)
            .map_err(Error::InvalidRequest)?;
        conn.write_borrowed(frame)?;
        Ok(id)
    }

    /// Send `request` without waiting and return the promise of the object
    /// it will return (see the WebSocket client's `send_pipelined`).
    pub fn send_pipelined(&self, request: &Request) -> Result<ObjId, Error> {
        let mut conn = self.begin()?;
        let (_, promise, frame) = conn.session.send_pipelined_frame(request)?;
        conn.write(frame)?;
        Ok(promise)
    }

    /// [`Client::send_pipelined`] for a request whose arguments (or key)
    /// the caller holds as msgpack.
    pub fn send_raw_pipelined(&self, request: &RawRequest<'_>) -> Result<ObjId, Error> {
        let mut conn = self.begin()?;
        let (_, promise, frame) = conn.session.send_raw_pipelined_frame(request)?;
        conn.write_borrowed(frame)?;
        Ok(promise)
    }

    /// Wait for the answer of request `id` (from [`Client::send`]), reading
    /// the answers of earlier requests on the way.
    pub fn wait(&self, id: RequestId) -> Result<(Response, Option<RawValue>), Error> {
        let mut conn = self.lock();
        // An answer already read can be taken even from a closed connection.
        if let Some(answer) = conn.session.take(id) {
            return Ok(answer?);
        }
        if let Some(why) = &conn.ended {
            return Err(Error::Closed(why.clone()));
        }
        if conn.interruptible && std::mem::take(&mut conn.interrupted) {
            return Err(Error::Interrupted);
        }
        self.count_wait();
        conn.wait(id)
    }

    /// Send every request, then read every response: one round trip for
    /// all. Responses come back in request order.
    pub fn pipeline(&self, requests: &[Request]) -> Result<Vec<Response>, Error> {
        let mut ids = Vec::with_capacity(requests.len());
        for r in requests {
            ids.push(self.send(r)?);
        }
        ids.into_iter()
            .map(|id| self.wait(id).map(|(r, _)| r))
            .collect()
    }

    /// The oldest error of a pipelined request that no wait has reported
    /// yet, with the id of that request.
    pub fn take_failure(&self) -> Option<(RequestId, RemoteError)> {
        self.lock().session.take_failure()
    }

    /// Give up on request `id`: its answer is dropped when it comes, and an
    /// object it returns is released. No I/O.
    pub fn abandon(&self, id: RequestId) {
        self.lock().session.abandon(id);
    }

    /// Let a signal end a wait with [`Error::Interrupted`], the request
    /// still in flight (for hosts that run signal handlers between calls,
    /// such as Python). The default retries.
    pub fn set_interruptible(&self, on: bool) {
        self.lock().interruptible = on;
    }

    /// Change how long a request may wait for its response (`None`: no
    /// limit). One that runs out of time fails with [`Error::Timeout`] and
    /// ends the connection.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.lock().timeout = timeout;
    }

    /// The object `id` is no longer used: free it on the server with the
    /// next request (no round trip of its own).
    pub fn release(&self, id: ObjId) {
        if self.shared.extensions.release() || id.as_promise().is_some() {
            self.shared
                .releases
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(id);
        }
    }

    /// Close the connection (the server then frees every object of this
    /// client). Later requests, from any clone, fail with [`Error::Closed`].
    pub fn close(&self) {
        let mut conn = self.lock();
        if conn.ended.is_none() {
            conn.ended = Some("closed by this client".into());
        }
        let _ = conn.stream.shutdown_both();
    }

    /// Whether the connection is known to be closed (never waits).
    pub fn is_closed(&self) -> bool {
        match self.shared.conn.try_lock() {
            Ok(conn) => conn.ended.is_some(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().ended.is_some(),
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        self.shared
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lock the connection for a request: check it is usable, move queued releases in.
    fn begin(&self) -> Result<MutexGuard<'_, Conn>, Error> {
        let mut conn = self.lock();
        if let Some(why) = &conn.ended {
            return Err(Error::Closed(why.clone()));
        }
        let released = std::mem::take(
            &mut *self
                .shared
                .releases
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for id in released {
            conn.session.release(id);
        }
        if conn.last_active.elapsed() >= IDLE_TRIM {
            conn.reader.trim();
            conn.session.trim();
        }
        conn.last_active = Instant::now();
        Ok(conn)
    }
}

impl Conn {
    /// Mark the connection ended (unless it already is) and shut it down.
    fn end(&mut self, why: String) -> Error {
        let _ = self.stream.shutdown_both();
        Error::Closed(self.ended.get_or_insert(why).clone())
    }

    /// Write one request frame, after reading answers if the window is full.
    fn write(&mut self, frame: OutFrame) -> Result<(), Error> {
        self.write_parts(&frame.parts())?;
        self.recycle(frame.into_buffer());
        Ok(())
    }

    /// [`Conn::write`] for a frame whose large parts the caller lends
    /// (msgpack a host packed in parts): they are written, or the write
    /// failed and the connection is ended, before this returns.
    fn write_borrowed(&mut self, frame: BorrowedFrame<'_>) -> Result<(), Error> {
        self.write_parts(&frame.parts())?;
        self.recycle(frame.into_buffer());
        Ok(())
    }

    /// Keep a written frame's buffer for the next large request.
    fn recycle(&mut self, frame: Vec<u8>) {
        if (RECYCLE_MIN..=RECYCLE_MAX).contains(&frame.capacity()) {
            self.session.recycle(frame);
        }
    }

    /// Write one frame given as its parts in order (see [`Conn::write`]).
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        while self.in_flight_bytes > 0 && self.in_flight_bytes + len > WINDOW {
            if let Err(e) = self.read_one(None) {
                if matches!(e, Error::Interrupted) {
                    self.interrupted = true;
                    continue;
                }
                return Err(e);
            }
        }
        if let Err(e) = write_frame(&mut self.stream, parts, |_| Ok(())) {
            return Err(self.end(format!("cannot send a request: {e}")));
        }
        self.in_flight.push_back(len);
        self.in_flight_bytes += len;
        Ok(())
    }

    /// Read until request `id` is answered, within the timeout if any.
    fn wait(&mut self, id: RequestId) -> Result<(Response, Option<RawValue>), Error> {
        // A timeout past what an Instant can hold (Duration::MAX) is none.
        let deadline = self
            .timeout
            .and_then(|t| Some((Instant::now().checked_add(t)?, t)));
        while !self.session.is_answered(id) {
            if let Some((deadline, limit)) = deadline {
                if Instant::now() >= deadline {
                    self.end(format!("a request got no answer within {limit:?}"));
                    return Err(Error::Timeout(limit));
                }
            }
            self.read_one(deadline.map(|d| d.0))?;
        }
        Ok(self.session.take(id).ok_or(Error::NoAnswer(id.0))??)
    }

    /// Read one answer, blocking until `deadline` (`None`: for good).
    fn read_one(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let timeout = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        if timeout != self.read_timeout {
            if let Err(e) = self.stream.set_read_timeout(timeout) {
                return Err(self.end(format!("socket error: {e}")));
            }
            self.read_timeout = timeout;
        }
        self.read_one_raw()
    }

    fn read_one_raw(&mut self) -> Result<(), Error> {
        match self.reader.read(&mut self.stream) {
            Ok(frame) => {
                self.last_active = Instant::now();
                let len = self.in_flight.pop_front().unwrap_or(0);
                self.in_flight_bytes -= len;
                if let Err(e) = self.session.receive(frame) {
                    self.end(format!("the server broke the protocol: {e}"));
                    return Err(Error::Protocol(e));
                }
                Ok(())
            }
            Err(ReadError::Retry(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                if self.interruptible {
                    Err(Error::Interrupted)
                } else {
                    Ok(())
                }
            }
            Err(ReadError::Retry(_)) => Ok(()),
            Err(ReadError::Eof { mid_frame }) => Err(self.end(if mid_frame {
                "the server closed the stream in the middle of an answer".into()
            } else {
                "the server closed the stream".into()
            })),
            Err(ReadError::Refused(e)) => {
                self.end(e.to_string());
                Err(e)
            }
            Err(ReadError::Io(e)) => Err(self.end(format!("cannot read an answer: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    use ndarray::Array1;
    use simplerpc_core::{ObjId, Value};
    use simplerpc_registry::{Array, Module, Registry};

    fn object(client: &Client, request: Request) -> ObjId {
        match client.request(&request).unwrap() {
            Response::Object(id) => id,
            other => panic!("expected an object, got {other:?}"),
        }
    }

    fn call(client: &Client, f: ObjId, arg: usize) -> ObjId {
        object(
            client,
            Request::Call {
                path: String::new(),
                obj_id: Some(f),
                args: vec![Value::from(arg)],
                kwargs: vec![],
            },
        )
    }

    #[test]
    fn a_long_call_is_no_idleness_the_buffers_kept_stay() {
        let registry = Arc::new(
            Registry::new().module(
                Module::new("sim")
                    .function("ramp", |n: usize| {
                        Array(Array1::<f64>::from_iter((0..n).map(|i| i as f64)))
                    })
                    .function("nap", |ms: usize| {
                        std::thread::sleep(Duration::from_millis(ms as u64));
                        ms
                    }),
            ),
        );
        let (a, b) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            crate::serve(b, registry.executor(), &crate::ServerConfig::default())
        });
        let client = Client::connect(a, &ClientConfig::default()).unwrap();
        let sim = object(
            &client,
            Request::ImportModule {
                module: "sim".into(),
            },
        );
        let attr = |name: &str| {
            object(
                &client,
                Request::GetAttr {
                    path: String::new(),
                    obj_id: Some(sim),
                    attr: name.into(),
                },
            )
        };
        let (ramp, nap) = (attr("ramp"), attr("nap"));
        // A 24 MiB answer, read into a buffer that comes back to the pool
        // once the value is dropped.
        let big = call(&client, ramp, 3 << 20);
        drop(
            client
                .request(&Request::Materialize { obj_id: big })
                .unwrap(),
        );
        assert_eq!(client.lock().reader.kept(), 1);
        // A call that runs past IDLE_TRIM: the client waited, it did not
        // idle, so the next request keeps the buffer for the next answer.
        call(&client, nap, IDLE_TRIM.as_millis() as usize + 300);
        call(&client, ramp, 1);
        assert_eq!(client.lock().reader.kept(), 1, "trimmed after a long call");
        client.close();
        server.join().unwrap().unwrap();
    }
}
