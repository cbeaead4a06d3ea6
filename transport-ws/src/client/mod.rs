//! The client: one WebSocket connection driving a [`ClientSession`].
//!
//! [`Client`] is cheap to clone and may be shared between threads; requests
//! take turns on the connection. Its low-level calls ([`Client::request`],
//! [`Client::pipeline`], [`Client::release`]) carry protocol values as they
//! are; the proxy layer ([`crate::proxy`]) builds on them.
//!
//! A background thread answers the server's pings while the client is idle
//! (a stock server drops a connection whose pongs stop); during a call the
//! calling thread answers them as it waits for the response.
//!
//! The parts: `handshake` (connecting, the upgrade request, a refused
//! token), `conn` (the locked connection state and how it ends),
//! `exchange` (writing requests and reading their responses) and
//! `keepalive` (the idle thread).

mod conn;
mod exchange;
mod handshake;
mod keepalive;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use simplerpc_core::{
    ClientSession, Extensions, ObjId, RawRequest, RawValue, RemoteError, Request, RequestId,
    Response, SessionStats,
};

use crate::config::{ClientConfig, Liveness};
use crate::error::Error;
use conn::Conn;
use keepalive::Keepalive;

/// Socket timeout while a write cannot progress: the client then reads
/// responses meanwhile, so pipelining large requests cannot deadlock.
const POLL: Duration = Duration::from_millis(10);

/// A connection to a simplerpc (or stock simplerpyc) server. Clones share it.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Mutex<Conn>,
    /// Ids dropped by proxies; moved into the session before each send, so a
    /// proxy's drop never waits for a call in progress.
    releases: Mutex<Vec<ObjId>>,
    extensions: Extensions,
    addr: String,
    keepalive: Keepalive,
    /// The expression (path trail) of each pipelined request whose proxy
    /// lives, to name it when its error is reported at a later wait.
    exprs: Mutex<std::collections::HashMap<u64, String>>,
    /// How many waits had to read from the socket: round trips, for tests.
    waits: std::sync::atomic::AtomicU64,
    /// The message limit (see [`ClientConfig::max_message_size`]).
    max_message_size: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.shared.addr)
            .field("extensions", &self.shared.extensions)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to `ws://host:port/?token=TOKEN`, offering `config.extensions`.
    /// A server that answers no extension header (a stock `simplerpyc`
    /// server) gets exactly the reference protocol. A wrong token is
    /// [`Error::Unauthorized`]; nothing listening there is [`Error::Connect`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use simplerpc_registry::{Module, Registry};
    /// use simplerpc_ws::{Client, ClientConfig, Error, Server, ServerConfig};
    ///
    /// // A server on a free port of 127.0.0.1, with a fresh token.
    /// # let registry = Arc::new(Registry::new().module(Module::new("demo").function("one", || 1)));
    /// let server = Server::bind(
    ///     ServerConfig { host: "127.0.0.1".into(), port: 0, ..ServerConfig::default() },
    ///     move |_| registry.executor(),
    /// )?
    /// .spawn()?;
    /// let port = server.local_addr().port();
    ///
    /// let client = Client::connect(&ClientConfig::new("127.0.0.1", port, server.token()))?;
    /// assert!(client.promises(), "our server pipelines");
    /// let one: i64 = client.module("demo")?.getattr("one")?.call(())?.materialize_as()?;
    /// assert_eq!(one, 1);
    ///
    /// // The wrong token is refused before the upgrade.
    /// let refused = Client::connect(&ClientConfig::new("127.0.0.1", port, "not-the-token"));
    /// assert!(matches!(refused, Err(Error::Unauthorized { .. })));
    /// # drop(client);
    /// # server.shutdown();
    /// # Ok::<(), simplerpc_ws::Error>(())
    /// ```
    ///
    /// A process started by the server's launcher finds the address and
    /// token in the environment: [`Client::connect_env`].
    pub fn connect(config: &ClientConfig) -> Result<Client, Error> {
        let addr = config.addr();
        let token = config
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::MissingToken { addr: addr.clone() })?;
        let (wire, accepted) = handshake::connect(config, &addr, token)?;
        let mut session = ClientSession::new(accepted);
        // A request the server would refuse for its size is refused here,
        // before it is built (servers default to the same limit).
        session.set_max_frame(config.max_message_size);
        let (keepalive, stop) = Keepalive::new();
        // A stock server runs calls on its event loop and cannot answer
        // pings meanwhile: its silence says nothing.
        let liveness = Liveness {
            ping_interval: config.ping_interval,
            dead_after: config.dead_after.filter(|_| accepted != Extensions::NONE),
        };
        let shared = Arc::new(Shared {
            conn: Mutex::new(Conn::new(
                wire,
                session,
                addr.clone(),
                config.timeout,
                liveness,
            )),
            releases: Mutex::new(Vec::new()),
            extensions: accepted,
            addr,
            keepalive,
            exprs: Mutex::new(std::collections::HashMap::new()),
            waits: std::sync::atomic::AtomicU64::new(0),
            max_message_size: config.max_message_size,
        });
        keepalive::start(Arc::downgrade(&shared), stop)?;
        Ok(Client { shared })
    }

    /// Connect with [`ClientConfig::from_env`].
    pub fn connect_env() -> Result<Client, Error> {
        Client::connect(&ClientConfig::from_env()?)
    }

    /// The extensions the server accepted ([`Extensions::NONE`] against a stock server).
    pub fn extensions(&self) -> Extensions {
        self.shared.extensions
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Send one request and wait for its response. A remote exception comes
    /// back as [`Response::Error`]; `Err` means the exchange itself failed.
    pub fn request(&self, request: &Request) -> Result<Response, Error> {
        self.request_raw(request).map(|(r, _)| r)
    }

    /// As [`Client::request`], and also the bytes of the response's value
    /// (or namespace) as the received frame holds them, shared with the
    /// frame rather than copied out of it: for callers that pass the msgpack
    /// on (the C ABI) instead of using the decoded value.
    pub fn request_raw(&self, request: &Request) -> Result<(Response, Option<RawValue>), Error> {
        let mut conn = self.begin()?;
        let (id, frame) = conn.session.send_frame(request)?;
        conn.write_frame(frame)?;
        self.count_wait();
        Ok(conn.wait(id)??)
    }

    /// Send a `call` or `getitem` whose arguments (or key) the caller holds
    /// as msgpack: checked once and copied once into the frame, never decoded
    /// and encoded again; in [`Raw::Parts`], a part that is a whole large
    /// bin payload (an array's data) is not copied at all but written from
    /// where it lies, before this returns. Answers as
    /// [`Client::request_raw`]. Bytes that are not the msgpack the request
    /// needs fail with [`Error::InvalidRequest`] before anything is sent.
    ///
    /// [`Raw::Parts`]: simplerpc_core::Raw::Parts
    pub fn request_raw_fields(
        &self,
        request: &RawRequest<'_>,
    ) -> Result<(Response, Option<RawValue>), Error> {
        let mut conn = self.begin()?;
        let (id, frame) = conn
            .session
            .send_raw_frame(request)
            .map_err(Error::InvalidRequest)?;
        conn.write_borrowed(frame)?;
        self.count_wait();
        Ok(conn.wait(id)??)
    }

    /// The server session's counters (the `stats` extension): how many
    /// objects this connection holds on the server, how many requests it
    /// has made. Costs one round trip; the releases of proxies dropped
    /// before it ride on it and are counted already. Against a stock
    /// simplerpyc server, which has no such request, it fails with
    /// [`Error::Encode`] and sends nothing.
    pub fn stats(&self) -> Result<SessionStats, Error> {
        SessionStats::from_response(self.request(&Request::Stats)?).map_err(Error::Remote)
    }

    /// How many objects this connection holds on the server: drop a proxy,
    /// and the next request (this one included) frees its object, so the
    /// count goes down. See [`Client::stats`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use simplerpc_registry::{Module, Registry};
    /// # use simplerpc_ws::{Client, ClientConfig, Server, ServerConfig};
    /// # let registry = Arc::new(Registry::new().module(
    /// #     Module::new("operator").function("add", |a: i64, b: i64| a + b),
    /// # ));
    /// # let server = Server::bind(
    /// #     ServerConfig { host: "127.0.0.1".into(), port: 0, ..ServerConfig::default() },
    /// #     move |_| registry.executor(),
    /// # )?
    /// # .spawn()?;
    /// # let client = Client::connect(&ClientConfig::new("127.0.0.1", server.local_addr().port(), server.token()))?;
    /// let operator = client.module("operator")?;
    /// let add = operator.getattr("add")?;
    /// let sum = add.call((2, 5))?;
    /// assert_eq!(sum.materialize_as::<i64>()?, 7);
    /// assert_eq!(client.live_objects()?, 3); // operator, operator.add, the sum
    /// drop((add, sum));
    /// assert_eq!(client.live_objects()?, 1); // the releases rode on this request
    /// # server.shutdown();
    /// # Ok::<(), simplerpc_ws::Error>(())
    /// ```
    pub fn live_objects(&self) -> Result<u64, Error> {
        self.stats().map(|s| s.live_objects)
    }

    /// Whether requests may be pipelined on promises: the server accepted
    /// the `promise` extension.
    pub fn promises(&self) -> bool {
        self.shared.extensions.promises()
    }

    /// Send `request` without waiting for its answer, and return the
    /// promise of the object it will return: later requests may name it as
    /// their object or pass it as an argument, and it is released like any
    /// id ([`Client::release`]). Its error, if it fails, comes back from the
    /// first wait for a request built on it, or from
    /// [`Client::take_failure`]. Fails with [`Error::Protocol`] when the
    /// server did not accept promises ([`Client::promises`]).
    pub fn send_pipelined(&self, request: &Request) -> Result<ObjId, Error> {
        let mut conn = self.begin()?;
        let (_, promise, frame) = conn.session.send_pipelined_frame(request)?;
        conn.write_frame(frame)?;
        Ok(promise)
    }

    /// [`Client::send_pipelined`] for a request whose arguments (or key) the
    /// caller holds as msgpack (see [`Client::request_raw_fields`]).
    pub fn send_raw_pipelined(&self, request: &RawRequest<'_>) -> Result<ObjId, Error> {
        let mut conn = self.begin()?;
        let (_, promise, frame) = conn.session.send_raw_pipelined_frame(request)?;
        conn.write_borrowed(frame)?;
        Ok(promise)
    }

    /// Send `request` and return its id without waiting; [`Client::wait`]
    /// takes its answer later. Requests sent meanwhile share the round trip.
    pub fn send(&self, request: &Request) -> Result<RequestId, Error> {
        let mut conn = self.begin()?;
        let (id, frame) = conn.session.send_frame(request)?;
        conn.write_frame(frame)?;
        Ok(id)
    }

    /// [`Client::send`] for a request whose arguments (or key) the caller
    /// holds as msgpack.
    pub fn send_raw(&self, request: &RawRequest<'_>) -> Result<RequestId, Error> {
        let mut conn = self.begin()?;
        let (id, frame) = conn
            .session
            .send_raw_frame(request)
            .map_err(Error::InvalidRequest)?;
        conn.write_borrowed(frame)?;
        Ok(id)
    }

    /// Wait for the answer of request `id` (from [`Client::send`]), reading
    /// the answers of earlier requests on the way.
    pub fn wait(&self, id: RequestId) -> Result<(Response, Option<RawValue>), Error> {
        let mut conn = self.lock();
        // An answer already read can be taken even from a closed connection.
        if let Some(answer) = conn.session.take(id) {
            return Ok(answer?);
        }
        if let Some(e) = conn.pending.take() {
            return Err(e);
        }
        if let Some(ended) = &conn.ended {
            return Err(ended.error(&conn.addr));
        }
        self.count_wait();
        Ok(conn.wait(id)??)
    }

    /// The oldest error of a pipelined request that no wait has reported
    /// yet, with the id of that request: raise it, so that no error is lost.
    pub fn take_failure(&self) -> Option<(RequestId, RemoteError)> {
        self.lock().session.take_failure()
    }

    /// How many times this client waited for answers from the server (each
    /// request it waited for, each [`Client::wait`] that had to read, each
    /// [`Client::pipeline`]): its round trips, for tests and benchmarks.
    pub fn round_trips(&self) -> u64 {
        self.shared.waits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_wait(&self) {
        self.shared
            .waits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Remember the expression a pipelined request came from.
    pub(crate) fn note_expr(&self, promise: ObjId, expr: &str) {
        if let Some(n) = promise.as_promise() {
            self.shared
                .exprs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(n, expr.to_owned());
        }
    }

    /// Forget it (its proxy is gone); returns it.
    pub(crate) fn forget_expr(&self, request: u64) -> Option<String> {
        self.shared
            .exprs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request)
    }

    /// The expression of a pipelined request, if its proxy lives.
    pub(crate) fn expr_of(&self, request: u64) -> Option<String> {
        self.shared
            .exprs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&request)
            .cloned()
    }

    /// The largest message this client sends or accepts, in bytes
    /// ([`ClientConfig::max_message_size`]).
    pub fn max_message_size(&self) -> usize {
        self.shared.max_message_size
    }

    /// Give up on request `id` (from [`Client::send`], or one whose wait
    /// was interrupted): its answer is dropped when it comes, and an object
    /// it returns is released. It does no I/O (it waits only for a request
    /// another thread is making on this connection).
    pub fn abandon(&self, id: RequestId) {
        self.lock().session.abandon(id);
    }

    /// Let a signal end a wait: a wait that a signal interrupts fails with
    /// [`Error::Interrupted`], the request still in flight, instead of going
    /// on (for hosts that run signal handlers between calls, such as
    /// Python). The default retries, as a Rust program expects.
    pub fn set_interruptible(&self, on: bool) {
        self.lock().interruptible = on;
    }

    /// Change how long a silent server waits before it is pinged, and after
    /// how long of silence (pings unanswered) it counts as dead (`None`:
    /// never); see [`ClientConfig::dead_after`]. Not applied to a stock
    /// simplerpyc server, which cannot answer pings during a call.
    pub fn set_liveness(&self, ping_interval: Duration, dead_after: Option<Duration>) {
        let stock = self.shared.extensions == Extensions::NONE;
        let mut conn = self.lock();
        conn.liveness = Liveness {
            ping_interval,
            dead_after: dead_after.filter(|_| !stock),
        };
    }

    /// Change how long a request may wait for its response (`None`: no limit).
    /// A request that runs out of time fails with [`Error::Timeout`] and ends
    /// the connection, since its late answer could no longer be paired.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.lock().timeout = timeout;
    }

    /// Send every request, then read every response: one round trip for all.
    /// Responses come back in request order. This is the raw level: every
    /// object id an answer holds is the caller's to release
    /// ([`Client::release`], or hold it as a [`Proxy`](crate::Proxy) with
    /// [`Client::proxy`]); the proxy layer pipelines chains and releases by
    /// itself (see [`crate::Proxy`]).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use simplerpc_registry::{Module, Registry};
    /// # use simplerpc_ws::{Server, ServerConfig};
    /// use simplerpc_ws::{Client, ClientConfig, Request, Response};
    ///
    /// # let registry = Arc::new(Registry::new().module(Module::new("demo")).module(Module::new("sim")));
    /// # let server = Server::bind(
    /// #     ServerConfig { host: "127.0.0.1".into(), port: 0, ..ServerConfig::default() },
    /// #     move |_| registry.executor(),
    /// # )?
    /// # .spawn()?;
    /// # let client = Client::connect(&ClientConfig::new("127.0.0.1", server.local_addr().port(), server.token()))?;
    /// let responses = client.pipeline(&[
    ///     Request::ImportModule { module: "demo".into() },
    ///     Request::ImportModule { module: "sim".into() },
    /// ])?;
    /// assert_eq!(client.round_trips(), 1);
    /// let proxies: Vec<_> = responses
    ///     .into_iter()
    ///     .map(|r| match r {
    ///         Response::Object(id) => client.proxy(id, "pipelined"), // released on drop
    ///         other => panic!("{other:?}"),
    ///     })
    ///     .collect();
    /// assert_eq!(client.live_objects()?, 2);
    /// drop(proxies);
    /// assert_eq!(client.live_objects()?, 0);
    /// # server.shutdown();
    /// # Ok::<(), simplerpc_ws::Error>(())
    /// ```
    pub fn pipeline(&self, requests: &[Request]) -> Result<Vec<Response>, Error> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.begin()?;
        let mut frames = Vec::with_capacity(requests.len());
        let mut unencodable = None;
        for r in requests {
            match conn.session.send_frame(r) {
                Ok((id, frame)) => frames.push((id, frame)),
                Err(e) => {
                    unencodable = Some(e);
                    break;
                }
            }
        }
        // The requests before the bad one are already counted in flight:
        // send them, so responses stay paired, then report the bad one.
        let mut ids = Vec::with_capacity(frames.len());
        for (id, frame) in frames {
            conn.write_frame(frame)?;
            ids.push(id);
        }
        let mut responses = Vec::with_capacity(ids.len());
        self.count_wait();
        for id in ids {
            responses.push(conn.wait(id)?.map(|(r, _)| r).map_err(Error::Protocol));
        }
        if let Some(e) = unencodable {
            return Err(Error::Encode(e));
        }
        responses.into_iter().collect()
    }

    /// The object `id` is no longer used: free it on the server with the next
    /// request (no round trip of its own). Does nothing against a server
    /// without the `release` extension, which frees objects at disconnect.
    pub fn release(&self, id: ObjId) {
        // A promise goes to the session whatever was negotiated: it keeps
        // what it knows of the promise until then.
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
        self.lock().close();
        self.shared.keepalive.stop();
    }

    /// Whether the connection is known to be closed (never waits: while a
    /// request is in progress the connection counts as open).
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
        if let Some(e) = conn.pending.take() {
            return Err(e);
        }
        if let Some(ended) = &conn.ended {
            return Err(ended.error(&conn.addr));
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
        Ok(conn)
    }
}
