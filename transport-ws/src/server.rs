//! The server: a listener, an accept loop and one pair of threads per client.
//!
//! [`Server::bind`] listens; [`Server::serve`] runs the accept loop on the
//! calling thread, [`Server::spawn`] on a thread of its own. Every accepted
//! connection gets a thread (see [`crate::connection`]), with a stack of
//! [`ServerConfig::stack_size`], owning that client's
//! [`ServerSession`](simplerpc_core::ServerSession) and executor, made by the
//! factory given to [`Server::bind`]. A [`ShutdownHandle`] stops it all.
//!
//! At most [`ServerConfig::max_connections`] connections are served at once:
//! the accept loop counts them before it starts a thread, and answers one
//! more with `HTTP 503` itself, without waiting for anything (the refused
//! socket is kept open, unread, for [`LINGER`], so the client reads the
//! answer instead of a reset).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use simplerpc_core::{Executor, Extensions, ServerSession};
use tungstenite::protocol::WebSocketConfig;

use crate::config::{host_port, websocket_config, Liveness, ServerConfig};
use crate::connection;
use crate::error::Error;
use crate::token;

/// What the executor factory learns about the client it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The extensions negotiated with it.
    pub extensions: Extensions,
}

/// Makes one executor per client.
pub(crate) type Factory = Arc<dyn Fn(&ClientInfo) -> Box<dyn Executor> + Send + Sync>;

/// How long a refused connection is kept open after its `HTTP 503`.
const LINGER: Duration = Duration::from_secs(2);
/// The most refused connections kept open at once; older ones are closed.
const LINGER_MAX: usize = 64;

/// What every connection of one server shares.
pub(crate) struct Context {
    pub(crate) token: String,
    pub(crate) extensions: Extensions,
    pub(crate) ws_config: WebSocketConfig,
    pub(crate) liveness: Liveness,
    pub(crate) factory: Factory,
    pub(crate) control: Arc<Control>,
    /// The TLS setup when the server speaks `wss://` only.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// [`ServerConfig::handshake_timeout`].
    pub(crate) handshake_timeout: Duration,
    /// [`ServerConfig::max_objects`].
    max_objects: usize,
    /// [`ServerConfig::max_connections`].
    max_connections: usize,
    /// [`ServerConfig::stack_size`].
    stack_size: usize,
}

impl Context {
    /// A client's session over `executor`, with this server's limits.
    pub(crate) fn session<E: Executor>(
        &self,
        executor: E,
        extensions: Extensions,
    ) -> ServerSession<E> {
        ServerSession::new(executor, extensions).with_max_objects(self.max_objects)
    }
}

/// The stop flag and the serving state, shared with [`ShutdownHandle`]s.
pub(crate) struct Control {
    stop: AtomicBool,
    wake: SocketAddr,
    phase: Mutex<Phase>,
    changed: Condvar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Serving,
    Stopped,
}

impl Control {
    /// Whether a shutdown was asked for.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
        self.changed.notify_all();
    }
}

/// A bound server, not yet accepting.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    url: String,
    ctx: Arc<Context>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Listen on `config.host:config.port` (a name with several addresses
    /// binds the first, IPv4 before IPv6). `factory` makes the executor of
    /// each client, on that client's worker thread (so the executor itself
    /// need not be `Send`); it gets the client's [`ClientInfo`]. A limit
    /// that cannot work (zero connections, a stack under
    /// [`MIN_STACK_SIZE`](crate::config::MIN_STACK_SIZE)) is an
    /// [`Error::Config`].
    pub fn bind<F, E>(config: ServerConfig, factory: F) -> Result<Server, Error>
    where
        F: Fn(&ClientInfo) -> E + Send + Sync + 'static,
        E: Executor + 'static,
    {
        config.check()?;
        let token = match config.token {
            Some(t) if t.is_empty() => {
                return Err(Error::Config(
                    "the token is empty; pass None to generate one".into(),
                ))
            }
            Some(t) => t,
            None => token::generate().map_err(|e| Error::Token(e.to_string()))?,
        };
        let host = config.host.trim_start_matches('[').trim_end_matches(']');
        let addr = host_port(host, config.port);
        let tls = match (&config.certfile, &config.keyfile) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
            _ => None,
        };
        let listener = listen(host, config.port).map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        // Percent-encoded: a token of the user's may hold '&', '#' or spaces.
        let url = format!(
            "{}://{}{}",
            if tls.is_some() { "wss" } else { "ws" },
            host_port(host, local_addr.port()),
            token::request_target(&token)
        );
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            wake: wake_addr(local_addr),
            phase: Mutex::new(Phase::Idle),
            changed: Condvar::new(),
        });
        let factory: Factory =
            Arc::new(move |info: &ClientInfo| Box::new(factory(info)) as Box<dyn Executor>);
        let ctx = Arc::new(Context {
            token,
            extensions: config.extensions,
            ws_config: websocket_config(config.max_message_size),
            liveness: Liveness {
                ping_interval: config.ping_interval,
                dead_after: config.dead_after,
            },
            factory,
            control,
            tls,
            handshake_timeout: config.handshake_timeout,
            max_objects: config.max_objects,
            max_connections: config.max_connections,
            stack_size: config.stack_size,
        });
        Ok(Server {
            listener,
            local_addr,
            url,
            ctx,
        })
    }

    /// The address the server listens on (with the port picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token clients must present.
    pub fn token(&self) -> &str {
        &self.ctx.token
    }

    /// The URL a client connects to, token included (`ws://host:port/?token=...`,
    /// `wss://` when the server speaks TLS).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the server speaks TLS (`wss://`) only.
    pub fn is_tls(&self) -> bool {
        self.ctx.tls.is_some()
    }

    /// A handle that stops this server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            control: self.ctx.control.clone(),
        }
    }

    /// Accept clients on this thread until a [`ShutdownHandle`] stops the
    /// server; returns once every connection has ended.
    pub fn serve(self) -> Result<(), Error> {
        {
            let mut phase = self
                .ctx
                .control
                .phase
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *phase == Phase::Stopped || self.ctx.control.stopping() {
                *phase = Phase::Stopped;
                return Ok(());
            }
            *phase = Phase::Serving;
        }
        self.accept_loop();
        Ok(())
    }

    /// Accept clients on a thread of its own.
    pub fn spawn(self) -> Result<RunningServer, Error> {
        let handle = self.shutdown_handle();
        let local_addr = self.local_addr;
        let token = self.ctx.token.clone();
        let url = self.url.clone();
        // Serving from here on, so a shutdown right after spawn waits for the
        // accept loop (and the listener's release).
        self.ctx.control.set_phase(Phase::Serving);
        let control = self.ctx.control.clone();
        let thread = thread::Builder::new()
            .name("simplerpc-accept".into())
            .spawn(move || self.accept_loop())
            .inspect_err(|_| control.set_phase(Phase::Stopped))?;
        Ok(RunningServer {
            local_addr,
            token,
            url,
            handle,
            thread: Some(thread),
        })
    }

    fn accept_loop(self) {
        // However this ends, waiters in `shutdown` must wake.
        struct Stopped(Arc<Control>);
        impl Drop for Stopped {
            fn drop(&mut self) {
                self.0.set_phase(Phase::Stopped);
            }
        }
        let _stopped = Stopped(self.ctx.control.clone());

        log::info!(
            "simplerpc server listening on {}://{}",
            if self.ctx.tls.is_some() { "wss" } else { "ws" },
            self.local_addr
        );
        let mut connections: Vec<JoinHandle<()>> = Vec::new();
        let mut refused: VecDeque<(TcpStream, Instant)> = VecDeque::new();
        loop {
            let accepted = self.listener.accept();
            if self.ctx.control.stopping() {
                break;
            }
            linger(&mut refused);
            match accepted {
                Ok((stream, peer)) => {
                    // Counted before a thread is spent on it.
                    reap(&mut connections);
                    if connections.len() >= self.ctx.max_connections {
                        log::warn!(
                            "client {peer}: refused with HTTP 503, {} connections are open \
                             (max_connections)",
                            connections.len()
                        );
                        refuse_busy(&stream, self.ctx.max_connections);
                        if refused.len() >= LINGER_MAX {
                            if let Some((s, _)) = refused.pop_front() {
                                close_refused(s);
                            }
                        }
                        refused.push_back((stream, Instant::now()));
                        continue;
                    }
                    let ctx = self.ctx.clone();
                    let spawned = thread::Builder::new()
                        .name(format!("simplerpc-io-{peer}"))
                        .stack_size(self.ctx.stack_size)
                        .spawn(move || connection::run(stream, peer, &ctx));
                    match spawned {
                        Ok(h) => connections.push(h),
                        Err(e) => log::error!("cannot start a thread for client {peer}: {e}"),
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    log::warn!("accepting a connection failed: {e}");
                    thread::sleep(Duration::from_millis(50));
                }
            }
            reap(&mut connections);
        }
        let Server {
            listener,
            local_addr,
            ..
        } = self;
        drop(listener);
        refused.into_iter().for_each(|(s, _)| close_refused(s));
        log::info!(
            "simplerpc server on {local_addr} stopping: ending {} connection(s)",
            connections.len()
        );
        for h in connections {
            if h.join().is_err() {
                log::error!("a connection thread panicked");
            }
        }
        log::info!("simplerpc server on {local_addr} stopped");
    }
}

/// Listen on the first address `host` resolves to, IPv4 addresses first: a
/// `localhost` that also names `::1` still takes clients of `127.0.0.1`.
fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(SocketAddr::is_ipv6);
    TcpListener::bind(&addrs[..])
}

/// Answer a connection over `max_connections` with `HTTP 503` and end our
/// half of it, without waiting: a fresh socket's send buffer takes the few
/// hundred bytes at once, and if it did not, the client would only miss why.
fn refuse_busy(stream: &TcpStream, max: usize) {
    let body = format!(
        "the server is at its limit of {max} connections (max_connections); \
         try again when a client has disconnected, or start the server with a larger max_connections\n"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Retry-After: 1\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.set_nonblocking(true);
    let mut s = stream;
    let _ = s.write(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Close the refused connections kept open for [`LINGER`].
fn linger(refused: &mut VecDeque<(TcpStream, Instant)>) {
    while refused
        .front()
        .is_some_and(|(_, since)| since.elapsed() >= LINGER)
    {
        if let Some((s, _)) = refused.pop_front() {
            close_refused(s);
        }
    }
}

/// Read what a refused client sent (the socket is non-blocking), so that
/// closing it sends no reset, and close it.
fn close_refused(mut stream: TcpStream) {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Join the connection threads that have ended.
fn reap(connections: &mut Vec<JoinHandle<()>>) {
    let mut i = 0;
    while i < connections.len() {
        if connections[i].is_finished() {
            if connections.swap_remove(i).join().is_err() {
                log::error!("a connection thread panicked");
            }
        } else {
            i += 1;
        }
    }
}

/// Where to connect to wake the accept loop: the listening address, with a
/// wildcard replaced by loopback.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Stops a server from any thread. Cloneable.
#[derive(Clone)]
pub struct ShutdownHandle {
    control: Arc<Control>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("stopping", &self.control.stopping())
            .finish()
    }
}

impl ShutdownHandle {
    /// Ask the server to stop and return at once: it stops accepting, closes
    /// every connection (close code 1001) and releases every session.
    /// Safe to call from an executor or a connection thread.
    pub fn signal(&self) {
        if self.control.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        let serving = *self
            .control
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            == Phase::Serving;
        if !serving {
            // `serve` sees the flag before it accepts anything.
            return;
        }
        // Wake the accept loop blocked in `accept`.
        if let Err(e) = TcpStream::connect_timeout(&self.control.wake, Duration::from_secs(2)) {
            log::warn!(
                "could not wake the accept loop at {}: {e}; it stops at the next connection",
                self.control.wake
            );
        }
    }

    /// Stop the server and wait until the accept loop has ended and every
    /// connection thread has been joined (so every executor was released and
    /// the port is free). Calls still running in executors are waited for.
    /// Do not call it from a thread of the server itself (an executor): use
    /// [`ShutdownHandle::signal`] there.
    pub fn shutdown(&self) {
        self.signal();
        let mut phase = self
            .control
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *phase == Phase::Serving {
            phase = self
                .control
                .changed
                .wait(phase)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether a shutdown was asked for.
    pub fn is_stopping(&self) -> bool {
        self.control.stopping()
    }
}

/// A server accepting on its own thread. Dropping it shuts the server down.
pub struct RunningServer {
    local_addr: SocketAddr,
    token: String,
    url: String,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token clients must present.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The URL a client connects to, token included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A handle that stops this server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Stop the server and wait for it, as [`ShutdownHandle::shutdown`].
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Wait until the server stops (through a [`ShutdownHandle`]).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the accept thread panicked");
            }
        }
    }

    fn stop_and_join(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the accept thread panicked");
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
