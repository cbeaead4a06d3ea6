//! The connection a [`Client`](super::Client) locks for each request: the
//! socket, the [`ClientSession`], and how the connection ended (the server
//! closed it, the socket failed, the client closed it).

use std::time::Duration;

use simplerpc_core::ClientSession;

use super::POLL;
use crate::config::Liveness;
use crate::error::Error;
use crate::wire::{close_code, Incoming, Wire, WireError};

/// Why the connection can no longer be used.
#[derive(Debug, Clone)]
pub(super) enum Ended {
    Closed(String),
    Unauthorized,
    Dead(Duration),
}

impl Ended {
    /// The error every later request gets.
    pub(super) fn error(&self, addr: &str) -> Error {
        match self {
            Ended::Closed(why) => Error::Closed(why.clone()),
            Ended::Unauthorized => Error::Unauthorized { addr: addr.into() },
            Ended::Dead(silent) => Error::Dead(*silent),
        }
    }
}

pub(super) struct Conn {
    pub(super) wire: Wire,
    pub(super) session: ClientSession,
    pub(super) ended: Option<Ended>,
    /// An error seen while idle, reported by the next request.
    pub(super) pending: Option<Error>,
    pub(super) addr: String,
    /// How long a request may wait for its responses (None: as long as it takes).
    pub(super) timeout: Option<Duration>,
    /// Pinging a silent server, and when to give up on it (only a simplerpc
    /// server: a stock one cannot answer pings during a call).
    pub(super) liveness: Liveness,
    /// A signal ends a wait with [`Error::Interrupted`] instead of being retried.
    pub(super) interruptible: bool,
    /// When we last pinged the server.
    pub(super) last_ping: Option<std::time::Instant>,
    /// When the last request was written or answered (the keepalive thread
    /// lets kept buffers go once the connection has idled a while).
    pub(super) last_request: std::time::Instant,
    /// How long a wait polls before it sleeps, learnt from the server's answers.
    pub(super) spin: crate::spin::Spin,
}

impl Conn {
    /// A connection fresh from the handshake.
    pub(super) fn new(
        wire: Wire,
        session: ClientSession,
        addr: String,
        timeout: Option<Duration>,
        liveness: Liveness,
    ) -> Conn {
        Conn {
            wire,
            session,
            ended: None,
            pending: None,
            addr,
            timeout,
            liveness,
            interruptible: false,
            last_ping: None,
            last_request: std::time::Instant::now(),
            spin: crate::spin::Spin::default(),
        }
    }

    /// The server sent a close frame: answer it and remember why.
    pub(super) fn peer_closed(&mut self, frame: Option<(u16, String)>) -> Error {
        self.wire.close_now();
        let ended = match frame {
            // The reference server's answer to a wrong token.
            Some((1008, _)) => Ended::Unauthorized,
            Some((code, reason)) if reason.is_empty() => {
                Ended::Closed(format!("the server closed it with code {code}"))
            }
            Some((code, reason)) => {
                Ended::Closed(format!("the server closed it with code {code}: {reason}"))
            }
            None => Ended::Closed("the server closed it".into()),
        };
        let error = ended.error(&self.addr);
        self.ended = Some(ended);
        error
    }

    /// Reading failed. A close frame may still be waiting to be read (the
    /// reference server closes right after the handshake when the token is
    /// wrong); look for it before giving up on a socket error.
    pub(super) fn fail_read(&mut self, e: WireError) -> Error {
        if let Some((code, reason)) = e.close_frame() {
            self.wire.close(Some((code, &reason)));
            return self.end(format!("the server broke the protocol: {e}"));
        }
        if let WireError::Io(_) = e {
            return self.fail_io(e.to_string());
        }
        let why = match e {
            WireError::Eof { mid_frame: false } => "the server dropped the connection".into(),
            other => other.to_string(),
        };
        self.end(why)
    }

    /// Writing (or configuring the socket) failed.
    pub(super) fn fail_io(&mut self, why: String) -> Error {
        if self.ended.is_none() && self.wire.set_read_timeout(Some(POLL)).is_ok() {
            for _ in 0..8 {
                match self.wire.read() {
                    Ok(Incoming::Close(frame)) => return self.peer_closed(frame),
                    Ok(_) => {}
                    Err(e) if e.is_retry() => {}
                    Err(_) => break,
                }
            }
        }
        self.end(why)
    }

    /// Mark the connection ended (unless it already is) and return the error.
    pub(super) fn end(&mut self, why: String) -> Error {
        if self.ended.is_none() {
            self.ended = Some(Ended::Closed(why));
        }
        match &self.ended {
            Some(ended) => ended.error(&self.addr),
            None => Error::Closed(String::new()),
        }
    }

    pub(super) fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<(), Error> {
        if let Err(e) = self.wire.set_read_timeout(t) {
            return Err(self.fail_io(e.to_string()));
        }
        Ok(())
    }

    /// Close politely and wait briefly for the server's answer.
    pub(super) fn close(&mut self) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(Ended::Closed("closed by this client".into()));
        self.wire.close(Some((close_code::NORMAL, "")));
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Tell the server we are going; do not wait for its answer.
        if self.ended.is_none() {
            self.ended = Some(Ended::Closed("the client was dropped".into()));
            self.wire.close_now();
        }
    }
}
