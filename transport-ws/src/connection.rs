//! One client's connection on the server: an I/O thread and a worker thread.
//!
//! Blocking tungstenite cannot be split into a reading and a writing half
//! (tungstenite-rs #311), so one I/O thread owns the socket and does both.
//! The worker thread owns the client's [`ServerSession`] (and through it the
//! executor); frames go to it and response frames come back over channels,
//! in order, exactly one per request.
//!
//! The I/O loop:
//! - with no request outstanding it blocks on the socket, with a read
//!   timeout ([`IDLE_READ`]) so that a shutdown is noticed;
//! - with a request outstanding it waits on the response channel
//!   ([`RESPONSE_WAIT`]) and writes the response the moment it arrives, so a
//!   fast call costs no extra latency; while a slow call runs, it alternates
//!   that wait with a short socket read ([`BUSY_READ`]), which answers pings
//!   (a stock client drops a connection whose pongs stop) and takes
//!   pipelined requests;
//! - writes have a timeout too: a response the client is not reading yet
//!   stays buffered while the loop keeps reading, so a client that pipelines
//!   large requests cannot deadlock with it.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use simplerpc_core::ServerSession;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::close;
use crate::error::would_block;
use crate::handshake;
use crate::server::{ClientInfo, Context, Factory};

/// Socket read timeout while no request is outstanding: how soon a shutdown is noticed.
const IDLE_READ: Duration = Duration::from_millis(150);
/// Socket read timeout between waits for a slow call's response.
const BUSY_READ: Duration = Duration::from_millis(5);
/// How long one wait on the response channel lasts.
const RESPONSE_WAIT: Duration = Duration::from_millis(30);
/// Socket write timeout: a write that cannot progress this long yields to reading.
const WRITE_TIMEOUT: Duration = Duration::from_millis(50);

/// Serve one accepted TCP connection until it ends; joins its worker.
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
    let info = ClientInfo { peer, extensions };
    let (frames_tx, frames_rx) = mpsc::channel::<Bytes>();
    let (responses_tx, responses_rx) = mpsc::channel::<Vec<u8>>();
    let factory = ctx.factory.clone();
    let worker = thread::Builder::new()
        .name(format!("simplerpc-worker-{peer}"))
        .spawn(move || work(&factory, &info, frames_rx, responses_tx));
    let mut io = IoLoop {
        ws,
        frames: frames_tx,
        responses: responses_rx,
        outstanding: 0,
        unflushed: false,
        read_timeout: None,
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            log::error!("client {peer}: cannot start a worker thread: {e}");
            io.close(CloseCode::Error, "the server cannot serve more clients");
            return;
        }
    };
    let reason = io.run(ctx);
    // Dropping the channels ends the worker once its current call returns.
    drop(io);
    match worker.join() {
        Ok(served) => {
            log::info!("client {peer} disconnected after {served} request(s): {reason}")
        }
        Err(_) => log::error!("client {peer} disconnected ({reason}); its worker panicked"),
    }
}

/// The worker: owns the session (and so the executor) for the connection's life.
fn work(
    factory: &Factory,
    info: &ClientInfo,
    frames: Receiver<Bytes>,
    responses: Sender<Vec<u8>>,
) -> u64 {
    let executor = factory(info);
    let mut session = ServerSession::new(executor, info.extensions);
    while let Ok(frame) = frames.recv() {
        let response = session.handle_frame(frame);
        if responses.send(response).is_err() {
            break;
        }
    }
    session.requests_handled()
    // The session drops here and releases every object the client held.
}

fn describe(ext: simplerpc_core::Extensions) -> String {
    let names = ext.header_value();
    if names.is_empty() {
        "none, reference protocol".into()
    } else {
        names
    }
}

/// Why the I/O loop ended, for the log.
type Ended = String;

struct IoLoop {
    ws: WebSocket<TcpStream>,
    frames: Sender<Bytes>,
    responses: Receiver<Vec<u8>>,
    /// Requests handed to the worker whose responses have not come back.
    outstanding: usize,
    /// Response bytes are buffered that the socket would not take yet.
    unflushed: bool,
    /// The socket's current read timeout, to skip redundant system calls.
    read_timeout: Option<Duration>,
}

impl IoLoop {
    fn run(&mut self, ctx: &Context) -> Ended {
        loop {
            if ctx.control.stopping() {
                self.close(CloseCode::Away, "server shutting down");
                return "server shutting down".into();
            }
            if self.outstanding > 0 {
                match self.responses.recv_timeout(RESPONSE_WAIT) {
                    Ok(frame) => {
                        if let Err(e) = self.deliver(frame) {
                            return e;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.close(CloseCode::Error, "internal server error");
                        return "the worker ended unexpectedly".into();
                    }
                }
            }
            if self.unflushed {
                if let Err(e) = self.flush() {
                    return e;
                }
            }
            let busy = self.outstanding > 0 || self.unflushed;
            if let Err(e) = self.set_read_timeout(if busy { BUSY_READ } else { IDLE_READ }) {
                return format!("socket error: {e}");
            }
            match self.ws.read() {
                Ok(Message::Binary(frame)) => {
                    if let Err(e) = self.dispatch(frame) {
                        return e;
                    }
                }
                // Not a protocol message: the session answers it with an error.
                Ok(Message::Text(text)) => {
                    if let Err(e) = self.dispatch(text.into()) {
                        return e;
                    }
                }
                Ok(Message::Ping(_)) => {
                    // tungstenite queued the pong; send it now.
                    if let Err(e) = self.flush() {
                        return e;
                    }
                }
                Ok(Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    // Sends our half of the close handshake.
                    let _ = self.ws.flush();
                    return "closed by the client".into();
                }
                Err(e) if would_block(&e) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return "closed by the client".into();
                }
                Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    return "the client went away without closing".into();
                }
                Err(e) => return format!("connection lost: {e}"),
            }
        }
    }

    /// Hand a request frame to the worker.
    fn dispatch(&mut self, frame: Bytes) -> Result<(), Ended> {
        if self.frames.send(frame).is_err() {
            self.close(CloseCode::Error, "internal server error");
            return Err("the worker ended unexpectedly".into());
        }
        self.outstanding += 1;
        Ok(())
    }

    /// Write a response, and any others already waiting, then flush.
    fn deliver(&mut self, first: Vec<u8>) -> Result<(), Ended> {
        let mut next = Some(first);
        while let Some(frame) = next {
            self.outstanding -= 1;
            match self.ws.write(Message::Binary(frame.into())) {
                Ok(()) => {}
                // Buffered; it goes out with a later flush.
                Err(e) if would_block(&e) => self.unflushed = true,
                Err(e) => return Err(format!("connection lost: {e}")),
            }
            next = self.responses.try_recv().ok();
        }
        self.flush()
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
    fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        close::close_with_grace(&mut self.ws, Some(frame), &mut self.read_timeout);
    }
}
