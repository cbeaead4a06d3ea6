//! One client's connection on the server: the connection thread, which
//! runs requests itself, and a standby thread that keeps the connection
//! alive while a call runs long.
//!
//! Blocking tungstenite cannot be split into a reading and a writing half
//! (tungstenite-rs #311), so the socket sits behind a mutex and one thread
//! at a time does the I/O.
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
//! not reading yet stays buffered while the thread goes on reading. A large
//! one (from [`RAW_WRITE_MIN`]) goes straight to the socket and the thread
//! waits until the client has read it, so a client must read while it
//! writes (ours does, and so does the stock one); one that reads nothing
//! for 30 s is dropped, and a shutdown does not wait for it.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use simplerpc_core::{Executor, ServerSession};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::close;
use crate::error::would_block;
use crate::handshake;
use crate::server::{ClientInfo, Context, Control};

/// Socket read timeout while nothing is buffered: how soon a shutdown is noticed.
const IDLE_READ: Duration = Duration::from_millis(150);
/// Socket read timeout while a response waits to be flushed, and of the
/// standby thread between looks at the running call.
const BUSY_READ: Duration = Duration::from_millis(5);
/// A call that runs longer than this gets the standby thread on the socket.
const TAKEOVER_AFTER: Duration = Duration::from_millis(100);
/// Socket write timeout: a write that cannot progress this long yields to reading.
const WRITE_TIMEOUT: Duration = Duration::from_millis(50);
/// Responses this large are written past tungstenite's buffer (see `raw_frame`).
const RAW_WRITE_MIN: usize = 1 << 20;
/// How long the connection thread polls for the next request, after an
/// answer, before it sleeps: a client stepping in a loop often sends it
/// within this, and a thread that does not sleep is not woken (tens of
/// microseconds on a machine with few cores).
const SPIN: Duration = Duration::from_micros(60);

/// Why the connection ended, for the log.
type Ended = String;

/// Serve one accepted TCP connection until it ends; joins its standby thread.
pub(crate) fn run(stream: TcpStream, peer: SocketAddr, ctx: &Context) {
    let Some((ws, extensions)) = handshake::accept(stream, peer, ctx) else {
        return;
    };
    if let Err(e) = ws.get_ref().set_write_timeout(Some(WRITE_TIMEOUT)) {
        log::warn!("client {peer}: cannot configure the socket: {e}");
        return;
    }
    log::info!(
        "client {peer} connected (extensions: {})",
        describe(extensions)
    );
    let shared = Arc::new(Shared {
        socket: Mutex::new(Socket {
            ws,
            control: ctx.control.clone(),
            read_timeout: None,
            unflushed: false,
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
                .close(CloseCode::Error, "the server cannot serve more clients");
            return;
        }
    };
    let info = ClientInfo { peer, extensions };
    let (reason, served) = match catch_unwind(AssertUnwindSafe(|| (ctx.factory)(&info))) {
        Ok(executor) => serve(&shared, ctx, ctx.session(executor, extensions)),
        Err(_) => {
            shared
                .socket()
                .close(CloseCode::Error, "internal server error");
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
    // An answer was just sent: poll briefly for the next request.
    let mut answered = false;
    let reason = loop {
        if ctx.control.stopping() {
            shared
                .socket()
                .close(CloseCode::Away, "server shutting down");
            break "server shutting down".into();
        }
        let frame = {
            let mut state = shared.state();
            if let Some(frame) = state.queued.pop_front() {
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
                    socket.spin_for_request()
                } else {
                    Ok(None)
                };
                match spun.and_then(|f| match f {
                    Some(f) => Ok(Some(f)),
                    None => socket.read_request(false),
                }) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => continue,
                    Err(ended) => break ended,
                }
            }
        };
        {
            let mut state = shared.state();
            state.calls += 1;
            state.running = Some((state.calls, Instant::now()));
        }
        let response = session.handle_frame(frame);
        // A standby thread on the socket lets it go at its next look (within
        // BUSY_READ); the lock below waits for that.
        shared.state().running = None;
        if let Err(ended) = shared.socket().send(response) {
            // If the standby thread saw the end first, its reason is the one.
            break shared.state().ended.take().unwrap_or(ended);
        }
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
                    socket.close(CloseCode::Away, "server shutting down");
                    shared.state().ended = Some("server shutting down".into());
                    break;
                }
                match socket.read_request(true) {
                    Ok(Some(frame)) => shared.state().queued.push_back(frame),
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
    ws: WebSocket<TcpStream>,
    /// The server's stop flag: a write that waits for a client gives up on it.
    control: Arc<Control>,
    /// The socket's current read timeout, to skip redundant system calls.
    read_timeout: Option<Duration>,
    /// Response bytes are buffered that the socket would not take yet.
    unflushed: bool,
}

impl Socket {
    /// Read until a request arrives (`Some`), or the read times out or a
    /// ping was answered (`None`), or the connection ends (`Err`). `busy`:
    /// someone waits for the socket, so read in short slices.
    fn read_request(&mut self, busy: bool) -> Result<Option<Bytes>, Ended> {
        if self.unflushed {
            self.flush()?;
        }
        let timeout = if busy || self.unflushed {
            BUSY_READ
        } else {
            IDLE_READ
        };
        if let Err(e) = self.set_read_timeout(timeout) {
            return Err(format!("socket error: {e}"));
        }
        match self.ws.read() {
            Ok(Message::Binary(frame)) => Ok(Some(frame)),
            // Not a protocol message: the session answers it with an error.
            Ok(Message::Text(text)) => Ok(Some(text.into())),
            Ok(Message::Ping(_)) => {
                // tungstenite queued the pong; send it now.
                self.flush()?;
                Ok(None)
            }
            Ok(Message::Pong(_) | Message::Frame(_)) => Ok(None),
            Ok(Message::Close(_)) => {
                // Sends our half of the close handshake.
                let _ = self.ws.flush();
                Err("closed by the client".into())
            }
            Err(e) if would_block(&e) => Ok(None),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Err("closed by the client".into())
            }
            Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                Err("the client went away without closing".into())
            }
            // A message over the limit: say so with 1009 (message too big)
            // and the sizes, so the client can tell its user why.
            Err(tungstenite::Error::Capacity(e)) => {
                let mut reason = format!("{e} (the server's max_message_size)");
                // A close reason may hold 123 bytes.
                while reason.len() > 123 {
                    reason.pop();
                }
                self.close(CloseCode::Size, reason.clone());
                Err(format!("refused a message: {reason}"))
            }
            Err(e) => Err(format!("connection lost: {e}")),
        }
    }

    /// Poll for a request without sleeping, for [`SPIN`] at most.
    fn spin_for_request(&mut self) -> Result<Option<Bytes>, Ended> {
        if self.unflushed || self.ws.get_ref().set_nonblocking(true).is_err() {
            return Ok(None);
        }
        let until = Instant::now() + SPIN;
        let mut got = Ok(None);
        while Instant::now() < until {
            got = self.read_request(true);
            if !matches!(got, Ok(None)) {
                break;
            }
            // Yield, not spin: a peer thread on this CPU gets to run.
            std::thread::yield_now();
        }
        let _ = self.ws.get_ref().set_nonblocking(false);
        got
    }

    /// Write a response and flush what the socket takes.
    fn send(&mut self, frame: Vec<u8>) -> Result<(), Ended> {
        if frame.len() >= RAW_WRITE_MIN {
            return self.send_raw(&frame);
        }
        match self.ws.write(Message::Binary(frame.into())) {
            Ok(()) => {}
            // Buffered; it goes out with a later flush.
            Err(e) if would_block(&e) => self.unflushed = true,
            Err(e) => return Err(format!("connection lost: {e}")),
        }
        self.flush()
    }

    /// A large response goes straight to the socket (see `raw_frame`): once
    /// tungstenite has written out what it holds, the frame is written past
    /// it, so its buffer never grows to the response's size. The socket is
    /// held until the frame is out; a client reads while it writes, so this
    /// waits for the client, and a client that reads nothing for
    /// `raw_frame::STALL_LIMIT` ends the connection.
    fn send_raw(&mut self, frame: &[u8]) -> Result<(), Ended> {
        // After our close frame no data frame may follow.
        if !self.ws.can_write() {
            return Err("the connection is closing".into());
        }
        let control = self.control.clone();
        let stop = move || control.stopping();
        // What tungstenite holds goes first (small: large frames never enter
        // it). It does not say how much each try wrote, so the stall limit
        // counts from the start here.
        let since = Instant::now();
        loop {
            match self.ws.flush() {
                Ok(()) => break,
                Err(e) if would_block(&e) => {
                    if stop() {
                        return Err("server shutting down".into());
                    }
                    if since.elapsed() >= crate::raw_frame::STALL_LIMIT {
                        return Err("connection lost: the client read nothing".into());
                    }
                }
                Err(e) => return Err(format!("connection lost: {e}")),
            }
        }
        self.unflushed = false;
        crate::raw_frame::write_binary(self.ws.get_mut(), frame, &stop)
            .map_err(|e| format!("connection lost: {e}"))
    }

    fn flush(&mut self) -> Result<(), Ended> {
        match self.ws.flush() {
            Ok(()) => {
                self.unflushed = false;
                Ok(())
            }
            Err(e) if would_block(&e) => {
                self.unflushed = true;
                Ok(())
            }
            Err(e) => Err(format!("connection lost: {e}")),
        }
    }

    fn set_read_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        if self.read_timeout != Some(t) {
            self.ws.get_ref().set_read_timeout(Some(t))?;
            self.read_timeout = Some(t);
        }
        Ok(())
    }

    /// Send a close frame and wait briefly for the client's reply.
    fn close(&mut self, code: CloseCode, reason: impl Into<String>) {
        let frame = CloseFrame {
            code,
            reason: reason.into().into(),
        };
        close::close_with_grace(&mut self.ws, Some(frame), &mut self.read_timeout);
    }
}
