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

use std::time::{Duration, Instant};

use simplerpc_core::{ClientError, RawValue, RequestId, Response};
use tungstenite::Message;

use super::conn::{Conn, Ended};
use super::POLL;

/// How long a wait polls before it sleeps (see `Conn::spin_for`).
const SPIN: Duration = Duration::from_micros(60);
use crate::error::{would_block, Error};

/// A response with the bytes of its value as the frame holds them (see
/// [`simplerpc_core::ClientSession::handle_frame_raw`]), or why the frame
/// answering the request could not be read.
pub(super) type Answer = Result<(Response, Option<RawValue>), ClientError>;

impl Conn {
    /// Write one request frame and flush it, reading responses meanwhile if
    /// the socket will not take it at once (so a large pipeline cannot
    /// deadlock against a server that is writing to us).
    pub(super) fn write_frame(&mut self, frame: Vec<u8>) -> Result<(), Error> {
        match self.ws.write(Message::Binary(frame.into())) {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(self.fail(e)),
        }
        self.flush_all()
    }

    /// Read until request `id` is answered, within the request timeout if
    /// there is one, and take its answer.
    pub(super) fn wait(&mut self, id: RequestId) -> Result<Answer, Error> {
        self.flush_all()?;
        self.spin_for(id)?;
        let Some(limit) = self.timeout else {
            self.set_read_timeout(None)?;
            while !self.session.is_answered(id) {
                self.read_one()?;
            }
            return self.take(id);
        };
        let deadline = Instant::now() + limit;
        while !self.session.is_answered(id) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The late answers could no longer be paired: end the connection.
                self.ended = Some(Ended::Closed(format!(
                    "a request got no answer within {limit:?}"
                )));
                let _ = self.ws.get_ref().shutdown(std::net::Shutdown::Both);
                return Err(Error::Timeout(limit));
            }
            self.set_read_timeout(Some(left.min(Duration::from_millis(100))))?;
            self.read_one()?;
        }
        self.take(id)
    }

    /// Poll the socket without sleeping for a short while ([`SPIN`]): a
    /// small call is often answered within it, and a thread that never
    /// sleeps is not woken, which on a machine with few cores costs tens of
    /// microseconds, the better part of a small round trip.
    fn spin_for(&mut self, id: RequestId) -> Result<(), Error> {
        if self.session.is_answered(id) || self.ws.get_ref().set_nonblocking(true).is_err() {
            return Ok(());
        }
        let until = Instant::now() + SPIN;
        let mut result = Ok(());
        while !self.session.is_answered(id) && Instant::now() < until {
            if let Err(e) = self.read_one() {
                result = Err(e);
                break;
            }
            // Yield, not spin: a peer thread on this CPU gets to run.
            std::thread::yield_now();
        }
        let _ = self.ws.get_ref().set_nonblocking(false);
        result
    }

    fn take(&mut self, id: RequestId) -> Result<Answer, Error> {
        self.session.take(id).ok_or(Error::NoAnswer(id.0))
    }

    /// Flush everything written; while the socket will not take more, read
    /// responses so the server is never blocked writing to us.
    fn flush_all(&mut self) -> Result<(), Error> {
        loop {
            match self.ws.flush() {
                Ok(()) => return Ok(()),
                Err(e) if would_block(&e) => {
                    self.set_read_timeout(Some(POLL))?;
                    self.read_one()?;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Read one message; a response goes into the session.
    fn read_one(&mut self) -> Result<(), Error> {
        let frame = match self.ws.read() {
            Ok(Message::Binary(frame)) => frame,
            Ok(Message::Text(text)) => text.into(),
            Ok(Message::Close(frame)) => return Err(self.peer_closed(frame)),
            // Pongs to pings go out with the next read.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => return Ok(()),
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) => return Err(self.fail(e)),
        };
        self.session.receive(frame)?;
        Ok(())
    }
}
