//! One exchange: write request frames, then read until each has its
//! response. The client has no I/O thread of its own: the thread that makes
//! the request does the I/O while it holds the connection, answering the
//! server's pings as it waits.

use std::time::{Duration, Instant};

use simplerpc_core::{ClientError, RawValue, Response};
use tungstenite::Message;

use super::conn::{Conn, Ended};
use super::POLL;
use crate::error::{would_block, Error};

/// A response paired with its request by the session, with the bytes of its
/// value as the frame holds them (see [`simplerpc_core::ClientSession::handle_frame_raw`]),
/// or why it could not be paired.
pub(super) type Answer = Result<(Response, Option<RawValue>), ClientError>;

impl Conn {
    /// Write `frames`, then read as many responses, within the request
    /// timeout if there is one.
    pub(super) fn exchange(&mut self, frames: Vec<Vec<u8>>) -> Result<Vec<Answer>, Error> {
        let n = frames.len();
        let mut answers = Vec::with_capacity(n);
        for frame in frames {
            match self.ws.write(Message::Binary(frame.into())) {
                Ok(()) => {}
                // Buffered; make room by flushing, reading responses meanwhile.
                Err(e) if would_block(&e) => self.flush_all(&mut answers)?,
                Err(e) => return Err(self.fail(e)),
            }
        }
        self.flush_all(&mut answers)?;
        let Some(limit) = self.timeout else {
            self.set_read_timeout(None)?;
            while answers.len() < n {
                self.read_one(&mut answers)?;
            }
            return Ok(answers);
        };
        let deadline = Instant::now() + limit;
        while answers.len() < n {
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
            self.read_one(&mut answers)?;
        }
        Ok(answers)
    }

    /// Flush everything written; while the socket will not take more, read
    /// responses so the server is never blocked writing to us.
    fn flush_all(&mut self, answers: &mut Vec<Answer>) -> Result<(), Error> {
        loop {
            match self.ws.flush() {
                Ok(()) => return Ok(()),
                Err(e) if would_block(&e) => {
                    self.set_read_timeout(Some(POLL))?;
                    self.read_one(answers)?;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Read one message; a response is paired by the session and pushed.
    fn read_one(&mut self, answers: &mut Vec<Answer>) -> Result<(), Error> {
        match self.ws.read() {
            Ok(Message::Binary(frame)) => {
                answers.push(
                    self.session
                        .handle_frame_raw(frame)
                        .map(|(_, r, raw)| (r, raw)),
                );
            }
            Ok(Message::Text(text)) => {
                answers.push(
                    self.session
                        .handle_frame_raw(text.into())
                        .map(|(_, r, raw)| (r, raw)),
                );
            }
            Ok(Message::Close(frame)) => return Err(self.peer_closed(frame)),
            // Pongs to pings go out with the next read.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(self.fail(e)),
        }
        Ok(())
    }
}
