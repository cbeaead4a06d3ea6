//! The connection a [`Client`](super::Client) locks for each request: the
//! socket, the [`ClientSession`], and how the connection ended (the server
//! closed it, the socket failed, the client closed it).

use std::net::TcpStream;
use std::time::Duration;

use simplerpc_core::ClientSession;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::POLL;
use crate::close;
use crate::error::{would_block, Error};

/// Why the connection can no longer be used.
#[derive(Debug, Clone)]
pub(super) enum Ended {
    Closed(String),
    Unauthorized,
}

impl Ended {
    /// The error every later request gets.
    pub(super) fn error(&self, addr: &str) -> Error {
        match self {
            Ended::Closed(why) => Error::Closed(why.clone()),
            Ended::Unauthorized => Error::Unauthorized { addr: addr.into() },
        }
    }
}

pub(super) struct Conn {
    pub(super) ws: WebSocket<TcpStream>,
    pub(super) session: ClientSession,
    pub(super) ended: Option<Ended>,
    /// An error seen while idle, reported by the next request.
    pub(super) pending: Option<Error>,
    /// The socket's current read timeout, to skip redundant system calls.
    pub(super) read_timeout: Option<Duration>,
    pub(super) addr: String,
    /// How long a request may wait for its responses (None: as long as it takes).
    pub(super) timeout: Option<Duration>,
}

impl Conn {
    /// A connection fresh from the handshake (no read timeout set).
    pub(super) fn new(
        ws: WebSocket<TcpStream>,
        session: ClientSession,
        addr: String,
        timeout: Option<Duration>,
    ) -> Conn {
        Conn {
            ws,
            session,
            ended: None,
            pending: None,
            read_timeout: None,
            addr,
            timeout,
        }
    }

    /// The server sent a close frame: answer it and remember why.
    pub(super) fn peer_closed(&mut self, frame: Option<CloseFrame>) -> Error {
        let _ = self.ws.flush();
        let ended = match frame {
            // The reference server's answer to a wrong token.
            Some(f) if f.code == CloseCode::Policy => Ended::Unauthorized,
            Some(f) if f.reason.is_empty() => Ended::Closed(format!(
                "the server closed it with code {}",
                u16::from(f.code)
            )),
            Some(f) => Ended::Closed(format!(
                "the server closed it with code {}: {}",
                u16::from(f.code),
                f.reason
            )),
            None => Ended::Closed("the server closed it".into()),
        };
        let error = ended.error(&self.addr);
        self.ended = Some(ended);
        error
    }

    /// The socket failed. A close frame may still be waiting to be read (the
    /// reference server closes right after the handshake when the token is
    /// wrong); look for it before giving up.
    pub(super) fn fail(&mut self, e: tungstenite::Error) -> Error {
        if self.ended.is_none() && matches!(e, tungstenite::Error::Io(_)) {
            let _ = self.ws.get_ref().set_read_timeout(Some(POLL));
            self.read_timeout = Some(POLL);
            for _ in 0..8 {
                match self.ws.read() {
                    Ok(Message::Close(frame)) => return self.peer_closed(frame),
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {}
                    Err(_) => break,
                }
            }
        }
        if let Some(ended) = &self.ended {
            return ended.error(&self.addr);
        }
        let why = match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                "the connection was closed".to_string()
            }
            tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ) => "the server dropped the connection".to_string(),
            tungstenite::Error::Capacity(e) => format!("a message exceeds the size limit: {e}"),
            other => other.to_string(),
        };
        self.ended = Some(Ended::Closed(why.clone()));
        Error::Closed(why)
    }

    pub(super) fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<(), Error> {
        if self.read_timeout != t {
            if let Err(e) = self.ws.get_ref().set_read_timeout(t) {
                return Err(self.fail(e.into()));
            }
            self.read_timeout = t;
        }
        Ok(())
    }

    /// Close politely and wait briefly for the server's answer.
    pub(super) fn close(&mut self) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(Ended::Closed("closed by this client".into()));
        close::close_with_grace(&mut self.ws, None, &mut self.read_timeout);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Tell the server we are going; do not wait for its answer.
        if self.ended.is_none() {
            self.ended = Some(Ended::Closed("the client was dropped".into()));
            let _ = self.ws.close(None);
            let _ = self.ws.flush();
        }
    }
}
