//! One client's connection on the server: the connection thread, which
//! runs requests itself, and a standby thread that keeps the connection
//! alive while a call runs long.
//!
//! The socket sits behind a mutex and one thread at a time does the I/O
//! (the framing is ours, see [`crate::wire`]).
//!
//! The connection thread owns the client's [`ServerSession`] (and through
//! it the executor). It reads a request, runs it and writes the response
//! itself: a short call crosses no thread boundary, which on a machine
//! where each wakeup of another thread costs tens of microseconds is most
//! of a small call's latency. While it runs a call it does not hold the
//! socket.
//!
//! The standby thread sleeps. When a call has run longer than
//! [`TAKEOVER_AFTER`] it takes the socket until the call returns: it answers
//! pings (a stock client drops a connection whose pongs stop) and queues the
//! requests the client pipelines meanwhile, which the connection thread runs
//! next, in order. So a 70-second call still keeps its connection.
//!
//! Reads have a timeout ([`IDLE_READ`]) so that a shutdown is noticed;
//! writes have one too ([`WRITE_TIMEOUT`]): a small response the client is
//! not reading yet stays queued while the thread goes on reading. A large
//! one goes straight to the socket from the response's own buffer, and the
//! thread waits until the client has read it, so a client must read while
//! it writes (ours does, and so does the stock one).
//!
//! **Backpressure and memory.** A client that stops reading stops being
//! read: once [`PENDING_MAX`] bytes of responses wait for it, or a large
//! response is being written, the connection reads no further request, so
//! TCP pushes back on the client. The standby thread queues at most
//! [`QUEUED_MAX`] bytes of requests. A connection's memory is therefore
//! bounded by about `max_message_size` (the message being read) +
//! [`QUEUED_MAX`] + one message + [`PENDING_MAX`] + the response being
//! written, plus the client's objects.
//!
//! **Liveness.** A client that negotiated our extensions answers pings even
//! while idle; one silent for `ping_interval` is pinged, one silent for
//! `dead_after` (pings unanswered, or a response it does not read) is
//! dropped and its session and objects freed. A stock client answers pings
//! only during its calls, so for it only a write that makes no progress for
//! `dead_after` ends the connection.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use simplerpc_core::{Executor, Extensions, OutFrame, ServerSession};

use crate::config::Liveness;
use crate::handshake;
use crate::server::{ClientInfo, Context, Control};
use crate::spin::Spin;
use crate::tls::Stream;
use crate::wire::{close_code, Incoming, Reader, Wire, WireError};

/// Socket read timeout while nothing is buffered: how soon a shutdown is noticed.
const IDLE_READ: Duration = Duration::from_millis(150);
/// Socket read timeout while a response waits to be flushed, and of the
/// standby thread between looks at the running call.
const BUSY_READ: Duration = Duration::from_millis(5);
/// A call that runs longer than this gets the standby thread on the socket.
const TAKEOVER_AFTER: Duration = Duration::from_millis(100);
/// Socket write timeout: a write that cannot progress this long yields to reading.
const WRITE_TIMEOUT: Duration = Duration::from_millis(50);
/// Responses queued for a client that does not read them: past this, no
/// further request is read until they are written.
pub(crate) const PENDING_MAX: usize = 1 << 20;
/// Requests the standby thread queues while a call runs: past this it stops
/// reading until the connection thread has taken them.
pub(crate) const QUEUED_MAX: usize = 64 << 20;
/// How often a server that is not reading a client (backpressure) tells it
/// that it lives: often enough for a client that gives up after a second.
const HEARTBEAT: Duration = Duration::from_millis(250);
/// A connection idle this long lets the buffers it kept for large messages
/// go, so memory goes back to the system after a transfer.
const IDLE_TRIM: Duration = Duration::from_secs(1);

/// Why the connection ended, for the log.
type Ended = String;

/// Serve one accepted TCP connection until it ends; joins its standby thread.
pub(crate) fn run(stream: TcpStream, peer: SocketAddr, ctx: &Context) {
    let Some((wire, extensions)) = handshake::accept(stream, peer, ctx) else {
        return;
    };
    if let Err(e) = wire.stream().set_write_timeout(Some(WRITE_TIMEOUT)) {
        log::warn!("client {peer}: cannot configure the socket: {e}");
        return;
    }
    log::info!(
        "client {peer} connected (extensions: {})",
        describe(extensions)
    );
    let shared = Arc::new(Shared {
        socket: Mutex::new(Socket {
            wire,
            control: ctx.control.clone(),
            liveness: ctx.liveness,
            // Our clients answer pings while idle; a stock one only in a call.
            answers_idle: extensions != Extensions::NONE,
            last_ping: None,
        }),
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    });
    let standby = {
        let shared = shared.clone();
        let control = ctx.control.clone();
        thread::Builder::new()
            .name(format!("simplerpc-standby-{peer}"))
            .spawn(move || standby(&shared, &control))
    };
    let standby = match standby {
        Ok(t) => t,
        Err(e) => {
            log::error!("client {peer}: cannot start a thread: {e}");
            shared
                .socket()
                .close(close_code::ERROR, "the server cannot serve more clients");
            return;
        }
    };
    let info = ClientInfo { peer, extensions };
    let (reason, served) = match catch_unwind(AssertUnwindSafe(|| (ctx.factory)(&info))) {
        Ok(executor) => serve(&shared, ctx, ctx.session(executor, extensions)),
        Err(_) => {
            shared
                .socket()
                .close(close_code::ERROR, "internal server error");
            ("the executor factory panicked".into(), 0)
        }
    };
    shared.state().quit = true;
    shared.wake.notify_all();
    if standby.join().is_err() {
        log::error!("client {peer}: its standby thread panicked");
    }
    log::info!("client {peer} disconnected after {served} request(s): {reason}");
}

fn describe(ext: simplerpc_core::Extensions) -> String {
    let names = ext.header_value();
    if names.is_empty() {
        "none, reference protocol".into()
    } else {
        names
    }
}

/// What the two threads of a connection share.
struct Shared {
    socket: Mutex<Socket>,
    state: Mutex<State>,
    /// Wakes the standby thread when the connection thread is done.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// The call that is running: its number and when it started.
    running: Option<(u64, Instant)>,
    /// How many calls have started.
    calls: u64,
    /// Requests the standby thread read while a call ran, oldest first.
    queued: VecDeque<Bytes>,
    /// Their bytes.
    queued_bytes: usize,
    /// The standby thread saw the connection end.
    ended: Option<Ended>,
    /// The connection thread is done: the standby thread returns.
    quit: bool,
}

impl Shared {
    fn socket(&self) -> MutexGuard<'_, Socket> {
        self.socket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection thread: read, run, answer, until the connection ends.
fn serve<E: Executor>(
    shared: &Shared,
    ctx: &Context,
    mut session: ServerSession<E>,
) -> (Ended, u64) {
    // An answer was just sent: poll briefly for the next request, as long
    // as the client usually takes to send one (see `spin`).
    let mut answered = false;
    let mut spin = Spin::default();
    // When the poll for the next request began.
    let mut waiting_since: Option<Instant> = None;
    // When the last request came.
    let mut last_call = Instant::now();
    let reason = loop {
        if ctx.control.stopping() {
            shared
                .socket()
                .close(close_code::AWAY, "server shutting down");
            break "server shutting down".into();
        }
        // Backpressure also for requests queued during a long call: their
        // answers wait until the client has read the ones before.
        if let Err(ended) = shared.socket().drain_to(PENDING_MAX) {
            break shared.state().ended.take().unwrap_or(ended);
        }
        let frame = {
            let mut state = shared.state();
            if let Some(frame) = state.queued.pop_front() {
                state.queued_bytes -= frame.len();
                waiting_since = None;
                Some(frame)
            } else if let Some(ended) = state.ended.take() {
                break ended;
            } else {
                None
            }
        };
        let frame = match frame {
            Some(frame) => frame,
            None => {
                let mut socket = shared.socket();
                let spun = if answered {
                    answered = false;
                    waiting_since = Some(Instant::now());
                    socket.spin_for_request(spin.budget())
                } else {
                    Ok(None)
                };
                match spun.and_then(|f| match f {
                    Some(f) => Ok(Some(f)),
                    None => socket.read_request(false),
                }) {
                    Ok(Some(frame)) => {
                        if let Some(since) = waiting_since.take() {
                            spin.observe(since.elapsed());
                        }
                        frame
                    }
                    Ok(None) => {
                        // Idle a while: the buffers kept for large messages
                        // go, and keep going (one lent out comes back later).
                        if last_call.elapsed() >= IDLE_TRIM {
                            socket.wire.trim();
                            drop(socket);
                            session.trim();
                        }
                        continue;
                    }
                    Err(ended) => break ended,
                }
            }
        };
        last_call = Instant::now();
        {
            let mut state = shared.state();
            state.calls += 1;
            state.running = Some((state.calls, Instant::now()));
        }
        let response = session.respond(frame);
        // A standby thread on the socket lets it go at its next look (within
        // BUSY_READ); the lock below waits for that.
        shared.state().running = None;
        let sent = shared.socket().send(&response);
        if let Err(ended) = sent {
            // Memory a host lent for the answer goes back now, before any
            // lock is taken (its release may wait for the host's own lock).
            drop(response);
            // If the standby thread saw the end first, its reason is the one.
            break shared.state().ended.take().unwrap_or(ended);
        }
        // Written: the executor may build its next answer in it.
        session.recycle(response.into_buffer());
        answered = true;
    };
    (reason, session.requests_handled())
    // The session drops with this frame and releases every object the client held.
}

/// The standby thread: keep the connection alive while a long call runs
/// (and close it if the server shuts down meanwhile).
fn standby(shared: &Shared, control: &Control) {
    let mut state = shared.state();
    loop {
        if state.quit {
            return;
        }
        // Sleep until a call has run TAKEOVER_AFTER; with the connection
        // ended there is nothing left to do but wait for the quit.
        let call = match state.running {
            Some((call, since)) if state.ended.is_none() => {
                let left = TAKEOVER_AFTER.saturating_sub(since.elapsed());
                if left.is_zero() {
                    call
                } else {
                    state = shared
                        .wake
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    continue;
                }
            }
            _ => {
                let idle = if state.ended.is_some() {
                    Duration::from_secs(3600)
                } else {
                    TAKEOVER_AFTER
                };
                state = shared
                    .wake
                    .wait_timeout(state, idle)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
        };
        drop(state);
        {
            let mut socket = shared.socket();
            loop {
                {
                    let state = shared.state();
                    // Only for the call it came for: that one may have
                    // returned while this thread waited for the socket.
                    let same_call = matches!(state.running, Some((c, _)) if c == call);
                    if !same_call || state.quit || state.ended.is_some() {
                        break;
                    }
                }
                if control.stopping() {
                    socket.close(close_code::AWAY, "server shutting down");
                    shared.state().ended = Some("server shutting down".into());
                    break;
                }
                if shared.state().queued_bytes > QUEUED_MAX {
                    // Backpressure: the client waits until the queue drains.
                    // Its pings are not read meanwhile, so tell it we live
                    // (an unsolicited pong, which asks for no answer).
                    if let Err(ended) = socket.heartbeat() {
                        shared.state().ended = Some(ended);
                        break;
                    }
                    drop(socket);
                    thread::sleep(BUSY_READ);
                    socket = shared.socket();
                    continue;
                }
                match socket.read_request(true) {
                    Ok(Some(frame)) => {
                        let mut state = shared.state();
                        state.queued_bytes += frame.len();
                        state.queued.push_back(frame);
                    }
                    Ok(None) => {}
                    Err(ended) => {
                        shared.state().ended = Some(ended);
                        break;
                    }
                }
            }
        }
        state = shared.state();
    }
}

/// The socket and what the connection knows about it.
struct Socket {
    wire: Wire,
    /// The server's stop flag: a write that waits for a client gives up on it.
    control: Arc<Control>,
    liveness: Liveness,
    /// The client answers pings while idle, so its silence means it is gone.
    answers_idle: bool,
    /// When we last pinged the client.
    last_ping: Option<Instant>,
}

impl Socket {
    /// Read until a request arrives (`Some`), or the read times out or a
    /// ping was answered (`None`), or the connection ends (`Err`). `busy`:
    /// someone waits for the socket, so read in short slices.
    fn read_request(&mut self, busy: bool) -> Result<Option<Bytes>, Ended> {
        if self.wire.pending() > 0 {
            self.flush()?;
            if self.wire.pending() > PENDING_MAX {
                // Backpressure: read nothing more until the client reads.
                return self.keepalive().map(|()| None);
            }
        }
        let timeout = if busy || self.wire.pending() > 0 {
            BUSY_READ
        } else {
            IDLE_READ
        };
        if let Err(e) = self.wire.set_read_timeout(Some(timeout)) {
            return Err(format!("socket error: {e}"));
        }
        match self.wire.read() {
            Ok(Incoming::Message(frame)) => Ok(Some(frame)),
            Ok(Incoming::Ping(payload)) => {
                if self.wire.queue_pong(&payload).is_ok() {
                    self.flush()?;
                }
                Ok(None)
            }
            Ok(Incoming::Pong) => Ok(None),
            Ok(Incoming::Close(_)) => {
                // Our half of the close handshake.
                self.wire.close_now();
                Err("closed by the client".into())
            }
            Err(e) if e.is_retry() => {
                if self.wire.receiving() {
                    // A large request still coming in (a slow link): the
                    // client hears nothing from us meanwhile, so say we live.
                    self.heartbeat()?;
                }
                self.keepalive().map(|()| None)
            }
            Err(WireError::Eof { mid_frame: false }) => {
                Err("the client went away without closing".into())
            }
            Err(e) => {
                if let Some((code, reason)) = e.close_frame() {
                    self.close(code, &reason);
                    return Err(format!("refused a message: {e}"));
                }
                Err(format!("connection lost: {e}"))
            }
        }
    }

    /// Ping a silent client; give up on one silent too long.
    fn keepalive(&mut self) -> Result<(), Ended> {
        let silent = self.wire.last_heard().elapsed();
        if let Some(dead) = self.liveness.dead_after {
            if silent >= dead && (self.answers_idle || self.wire.pending() > 0) {
                return Err(format!(
                    "the client sent nothing for {} s, not even a pong: it is frozen or \
                     unreachable; its session and objects are freed",
                    silent.as_secs()
                ));
            }
        }
        let every = self.liveness.ping_every();
        if silent < every {
            return Ok(());
        }
        let due = self.last_ping.map_or(true, |t| t.elapsed() >= every);
        if due && !self.wire.closing() && self.wire.queue_ping().is_ok() {
            self.last_ping = Some(Instant::now());
            self.flush()?;
        }
        Ok(())
    }

    /// Say we are alive without reading: an unsolicited pong every
    /// [`HEARTBEAT`] (the client's own patience is not known here).
    fn heartbeat(&mut self) -> Result<(), Ended> {
        let due = self.last_ping.map_or(true, |t| t.elapsed() >= HEARTBEAT);
        if due && !self.wire.closing() && self.wire.queue_pong(b"").is_ok() {
            self.last_ping = Some(Instant::now());
            self.flush()?;
        }
        Ok(())
    }

    /// Write queued answers until at most `limit` bytes wait: a client that
    /// does not read is not served further. One that takes nothing for
    /// `dead_after` ends the connection, as does a shutdown.
    fn drain_to(&mut self, limit: usize) -> Result<(), Ended> {
        let mut left = self.wire.pending();
        let mut progress = Instant::now();
        while self.wire.pending() > limit {
            self.flush()?;
            if self.wire.pending() < left {
                left = self.wire.pending();
                progress = Instant::now();
            }
            if self.control.stopping() {
                return Err("server shutting down".into());
            }
            if let Some(dead) = self.liveness.dead_after {
                if progress.elapsed() >= dead {
                    return Err(format!(
                        "the client read nothing for {} s",
                        progress.elapsed().as_secs()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Poll for a request without sleeping, for `budget` at most.
    fn spin_for_request(&mut self, budget: Duration) -> Result<Option<Bytes>, Ended> {
        if self.wire.pending() > 0 || self.wire.set_nonblocking(true).is_err() {
            return Ok(None);
        }
        let until = Instant::now() + budget;
        let mut got = Ok(None);
        while Instant::now() < until {
            got = self.read_request(true);
            if !matches!(got, Ok(None)) {
                break;
            }
            // Yield, not spin: a peer thread on this CPU gets to run.
            std::thread::yield_now();
        }
        let _ = self.wire.set_nonblocking(false);
        got
    }

    /// Write a response. A small one is queued and written as far as the
    /// socket takes it; a large one goes straight from its buffer to the
    /// socket, and the socket is held until it is out: the client reads
    /// while it writes, so this waits for the client, and one that reads
    /// nothing for `dead_after` ends the connection, as does a shutdown.
    fn send(&mut self, frame: &OutFrame) -> Result<(), Ended> {
        let control = self.control.clone();
        let dead_after = self.liveness.dead_after;
        let mut stalled = |_: &mut Reader, _: &mut Stream, idle: Duration| {
            if control.stopping() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the server is shutting down",
                ));
            }
            match dead_after {
                Some(dead) if idle >= dead => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the client read nothing for {} s", idle.as_secs()),
                )),
                _ => Ok(()),
            }
        };
        let parts = frame.parts();
        if let ([one], true) = (parts.as_slice(), frame.len() <= crate::wire::SMALL) {
            return match self.wire.queue_binary(one) {
                Ok(()) => self.flush(),
                Err(e) => Err(format!("connection lost: {e}")),
            };
        }
        self.wire
            .write_message(&parts, &mut stalled)
            .map_err(|e| format!("connection lost: {e}"))
    }

    fn flush(&mut self) -> Result<(), Ended> {
        self.wire
            .flush()
            .map(drop)
            .map_err(|e| format!("connection lost: {e}"))
    }

    /// Send a close frame and wait briefly for the client's reply.
    fn close(&mut self, code: u16, reason: &str) {
        self.wire.close(Some((code, reason)));
    }
}
