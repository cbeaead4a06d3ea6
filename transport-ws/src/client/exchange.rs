//! Writing request frames and reading until a given request is answered.
//! The client has no I/O thread of its own: the thread that makes a request
//! does the I/O while it holds the connection, answering the server's pings
//! as it waits.
//!
//! Every frame read goes into the [`simplerpc_core::ClientSession`]
//! ([`ClientSession::receive`](simplerpc_core::ClientSession::receive)),
//! which keeps the answers callers wait for and notes those of pipelined
//! requests, so waited-for and pipelined requests share the connection in
//! any mix.

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use simplerpc_core::{BorrowedFrame, ClientError, OutFrame, RawValue, RequestId, Response};

use super::conn::{Conn, Ended};
use super::POLL;
use crate::error::Error;
use crate::tls::Stream;
use crate::wire::{Incoming, Reader, WireError};

/// Request frames from this size up are kept to build the next one in...
const RECYCLE_MIN: usize = 1 << 20;
/// ...up to this size.
const RECYCLE_MAX: usize = 256 << 20;
/// How often a wait with no deadline looks at the server's silence.
const LIVENESS_TICK: Duration = Duration::from_secs(1);

/// A response with the bytes of its value as the frame holds them (see
/// [`simplerpc_core::ClientSession::handle_frame_raw`]), or why the frame
/// answering the request could not be read.
pub(super) type Answer = Result<(Response, Option<RawValue>), ClientError>;

impl Conn {
    /// Write one request frame, reading responses meanwhile if the socket
    /// will not take it at once (so a large pipeline cannot deadlock against
    /// a server that is writing to us). A large frame goes to the socket
    /// from its own parts (array payloads where they lie), masked on the
    /// way a piece at a time unless its key is all zero (loopback, TLS).
    pub(super) fn write_frame(&mut self, frame: OutFrame) -> Result<(), Error> {
        self.write_parts(&frame.parts())?;
        self.recycle(frame.into_buffer());
        Ok(())
    }

    /// [`Conn::write_frame`] for a frame whose large parts the caller lends
    /// (msgpack a host packed in parts): they are written, or the write
    /// failed and the connection is ended, before this returns, so nothing
    /// keeps them afterwards (a small frame is copied into the pending
    /// buffer; a large one goes from the parts to the socket).
    pub(super) fn write_borrowed(&mut self, frame: BorrowedFrame<'_>) -> Result<(), Error> {
        self.write_parts(&frame.parts())?;
        self.recycle(frame.into_buffer());
        Ok(())
    }

    /// Keep a written frame's buffer for the next large request (not a
    /// huge one's: it would double the memory a huge upload takes).
    fn recycle(&mut self, frame: Vec<u8>) {
        if (RECYCLE_MIN..=RECYCLE_MAX).contains(&frame.capacity()) {
            self.session.recycle(frame);
        }
    }

    /// Write one frame given as its parts in order.
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        self.set_read_timeout(Some(POLL))?;
        let session = &mut self.session;
        let dead_after = self.liveness.dead_after;
        let mut closed = None;
        let mut failure = None;
        let mut interrupted = false;
        let mut stalled = |reader: &mut Reader, stream: &mut Stream, idle: Duration| {
            if let Some(dead) = dead_after {
                if idle >= dead && reader.last_heard().elapsed() >= dead {
                    failure = Some(Error::Dead(idle));
                    return Err(io::Error::other("dead"));
                }
            }
            // Pings wait: a pong cannot go out in the middle of our frame.
            match reader.read(stream) {
                Ok(Incoming::Message(m)) => {
                    if let Err(e) = session.receive(m) {
                        failure = Some(Error::Protocol(e));
                        return Err(io::Error::other("protocol"));
                    }
                    Ok(())
                }
                Ok(Incoming::Close(frame)) => {
                    closed = Some(frame);
                    Err(io::Error::other("closed"))
                }
                Ok(Incoming::Ping(_) | Incoming::Pong) => Ok(()),
                Err(WireError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    interrupted = true;
                    Ok(())
                }
                Err(e) if e.is_retry() => Ok(()),
                Err(e) => Err(io::Error::other(e.to_string())),
            }
        };
        let result = self.wire.write_message(parts, &mut stalled);
        if interrupted {
            self.wire.note_interrupted();
        }
        if let Some(frame) = closed {
            return Err(self.peer_closed(frame));
        }
        if let Some(e) = failure {
            // The frame is cut short: the connection cannot go on.
            self.ended = Some(match &e {
                Error::Dead(silent) => Ended::Dead(*silent),
                other => Ended::Closed(format!("a request was cut short: {other}")),
            });
            let _ = self.wire.stream().shutdown(Shutdown::Both);
            return Err(e);
        }
        result.map_err(|e| self.fail_io(format!("cannot send a request: {e}")))?;
        self.last_request = Instant::now();
        Ok(())
    }

    /// Read until request `id` is answered, within the request timeout if
    /// there is one, and take its answer.
    pub(super) fn wait(&mut self, id: RequestId) -> Result<Answer, Error> {
        if self.interruptible && self.wire.take_interrupted() {
            return Err(Error::Interrupted);
        }
        self.flush_all()?;
        // How long the server takes, for the next wait's poll.
        let since = (!self.session.is_answered(id)).then(Instant::now);
        self.spin_for(id)?;
        // A timeout past what an Instant can hold (Duration::MAX) is none.
        let deadline = self
            .timeout
            .and_then(|limit| Some((Instant::now().checked_add(limit)?, limit)));
        while !self.session.is_answered(id) {
            let mut tick = self
                .liveness
                .dead_after
                .map(|_| LIVENESS_TICK.min(self.liveness.ping_every()));
            if let Some((deadline, limit)) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // The late answers could no longer be paired: end the connection.
                    self.ended = Some(Ended::Closed(format!(
                        "a request got no answer within {limit:?}"
                    )));
                    let _ = self.wire.stream().shutdown(Shutdown::Both);
                    return Err(Error::Timeout(limit));
                }
                let slice = left.min(Duration::from_millis(100));
                tick = Some(tick.map_or(slice, |t| t.min(slice)));
            }
            self.set_read_timeout(tick)?;
            self.read_one()?;
            self.keepalive()?;
        }
        self.last_request = Instant::now();
        if let Some(since) = since {
            self.spin.observe(self.last_request - since);
        }
        self.take(id)
    }

    /// Poll the socket without sleeping for a short while, as long as the
    /// server usually takes to answer (see `crate::spin`): a small call is
    /// often answered within it, and a thread that never sleeps is not
    /// woken, which on a machine with few cores costs tens of
    /// microseconds, the better part of a small round trip.
    fn spin_for(&mut self, id: RequestId) -> Result<(), Error> {
        if self.session.is_answered(id) || self.wire.set_nonblocking(true).is_err() {
            return Ok(());
        }
        let until = Instant::now() + self.spin.budget();
        let mut result = Ok(());
        while !self.session.is_answered(id) && Instant::now() < until {
            if let Err(e) = self.read_one() {
                result = Err(e);
                break;
            }
            // Yield, not spin: a peer thread on this CPU gets to run.
            std::thread::yield_now();
        }
        let _ = self.wire.set_nonblocking(false);
        result
    }

    fn take(&mut self, id: RequestId) -> Result<Answer, Error> {
        self.session.take(id).ok_or(Error::NoAnswer(id.0))
    }

    /// Ping a silent server; give up on one silent too long.
    fn keepalive(&mut self) -> Result<(), Error> {
        let silent = self.wire.last_heard().elapsed();
        if let Some(dead) = self.liveness.dead_after {
            if silent >= dead {
                self.ended = Some(Ended::Dead(silent));
                let _ = self.wire.stream().shutdown(Shutdown::Both);
                return Err(Error::Dead(silent));
            }
        }
        let every = self.liveness.ping_every();
        if silent < every {
            return Ok(());
        }
        let due = self.last_ping.map_or(true, |t| t.elapsed() >= every);
        if due && self.wire.queue_ping().is_ok() {
            self.last_ping = Some(Instant::now());
            self.flush_some()?;
        }
        Ok(())
    }

    /// Flush everything written; while the socket will not take more, read
    /// responses so the server is never blocked writing to us.
    fn flush_all(&mut self) -> Result<(), Error> {
        loop {
            match self.wire.flush() {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    self.set_read_timeout(Some(POLL))?;
                    self.read_one()?;
                }
                Err(e) => return Err(self.fail_io(e.to_string())),
            }
        }
    }

    /// Write what the socket takes now (a pong), leaving the rest queued.
    fn flush_some(&mut self) -> Result<(), Error> {
        match self.wire.flush() {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail_io(e.to_string())),
        }
    }

    /// Read one message; a response goes into the session.
    pub(super) fn read_one(&mut self) -> Result<(), Error> {
        match self.wire.read() {
            Ok(Incoming::Message(frame)) => {
                self.session.receive(frame)?;
                Ok(())
            }
            Ok(Incoming::Ping(payload)) => {
                if self.wire.queue_pong(&payload).is_ok() {
                    self.flush_some()?;
                }
                Ok(())
            }
            Ok(Incoming::Pong) => Ok(()),
            Ok(Incoming::Close(frame)) => Err(self.peer_closed(frame)),
            Err(WireError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {
                if self.interruptible {
                    Err(Error::Interrupted)
                } else {
                    Ok(())
                }
            }
            Err(e) if e.is_retry() => Ok(()),
            Err(e) => Err(self.fail_read(e)),
        }
    }
}
