//! Liveness while idle: a background thread answers the server's pings when
//! no request holds the connection (a stock server drops a connection whose
//! pongs stop), and notices a close or an unsolicited message. During a
//! request the requesting thread answers pings itself (see `exchange`).

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError, Weak};
use std::thread;
use std::time::Duration;

use super::conn::Conn;
use super::Shared;
use crate::error::Error;
use crate::wire::Incoming;

/// A connection idle this long lets the buffers it kept for large messages go.
const IDLE_TRIM: Duration = Duration::from_secs(2);
/// How often the idle connection is checked for pings.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// The handle that stops the keepalive thread: dropping its sender ends it.
pub(super) struct Keepalive(Mutex<Option<Sender<()>>>);

impl Keepalive {
    /// A handle, and the receiver [`start`] gives the thread.
    pub(super) fn new() -> (Keepalive, Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        (Keepalive(Mutex::new(Some(tx))), rx)
    }

    /// Stop the thread (it ends within [`KEEPALIVE_INTERVAL`]).
    pub(super) fn stop(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// Start the keepalive thread of `client`; it holds only a weak reference,
/// so it ends with the client at the latest.
pub(super) fn start(client: Weak<Shared>, stop: Receiver<()>) -> io::Result<()> {
    thread::Builder::new()
        .name("simplerpc-keepalive".into())
        .spawn(move || run(client, stop))
        .map(drop)
}

/// Wake every [`KEEPALIVE_INTERVAL`]; if the connection is idle, read what
/// the server sent (answering pings). Ends with the client.
fn run(client: Weak<Shared>, stop: Receiver<()>) {
    loop {
        match stop.recv_timeout(KEEPALIVE_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(shared) = client.upgrade() else {
            return;
        };
        let ended = match shared.conn.try_lock() {
            Ok(mut conn) => {
                conn.poll_idle();
                conn.ended.is_some()
            }
            Err(_) => false,
        };
        if ended {
            return;
        }
    }
}

impl Conn {
    /// While idle: answer pings, notice a close.
    fn poll_idle(&mut self) {
        if self.ended.is_some() {
            return;
        }
        // Idle a while: the buffers kept for large messages go, and keep
        // going (one lent out to an array comes back when it is dropped).
        if self.last_request.elapsed() >= IDLE_TRIM {
            self.wire.trim();
            self.session.trim();
        }
        if self.wire.set_nonblocking(true).is_err() {
            return;
        }
        for _ in 0..64 {
            match self.wire.read() {
                Ok(Incoming::Ping(payload)) => {
                    if self.wire.queue_pong(&payload).is_ok() {
                        let _ = self.wire.flush();
                    }
                }
                Ok(Incoming::Pong) => {}
                // The answer of a pipelined request (or of one sent with
                // `Client::send`) that arrived while nobody waits: keep it in
                // the session for the next wait; with nothing in flight it is
                // an error the next request reports.
                Ok(Incoming::Message(frame)) => self.receive_idle(frame),
                Ok(Incoming::Close(frame)) => {
                    self.peer_closed(frame);
                    break;
                }
                Err(e) if e.is_retry() => break,
                Err(e) => {
                    let e = self.fail_read(e);
                    if self.pending.is_none() {
                        self.pending = Some(e);
                    }
                    break;
                }
            }
        }
        let _ = self.wire.set_nonblocking(false);
    }

    fn receive_idle(&mut self, frame: bytes::Bytes) {
        if let Err(e) = self.session.receive(frame) {
            if self.pending.is_none() {
                self.pending = Some(Error::Protocol(e));
            }
        }
    }
}
