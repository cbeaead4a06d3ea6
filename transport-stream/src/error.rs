//! The errors of the stream transport, worded to say what to do next.

use std::io;

use simplerpc_core::codec::EncodeError;
use simplerpc_core::message::FrameError;
use simplerpc_core::{ClientError, RemoteError};

/// Everything that can go wrong connecting, calling or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer did not answer the hello line as this protocol does.
    #[error("the stream handshake failed: {0}")]
    Handshake(String),
    /// The peer announced a message over the reader's limit; nothing was
    /// allocated for it and the connection was closed.
    #[error(
        "the peer sent a message of {size} bytes, over the limit of {limit} bytes; the \
         connection was closed (raise max_message_size on this side if such messages are meant)"
    )]
    TooLarge {
        /// the announced length
        size: u64,
        /// this side's `max_message_size`
        limit: usize,
    },
    /// A message within the limit could not be given memory; nothing of it
    /// was kept and the connection was closed.
    #[error(
        "no memory for a message of {size} bytes; the connection was closed (free memory, \
         or lower max_message_size so that such a message is refused up front)"
    )]
    NoMemory {
        /// the announced length
        size: u64,
    },
    /// The peer broke the framing.
    #[error("the peer broke the stream framing: {0}; the connection was closed")]
    Framing(String),
    /// The connection is gone (the server exited or closed the stream, the
    /// client was closed). Requests in flight got no answer.
    #[error("the connection to the server is closed ({0})")]
    Closed(String),
    /// A request got no answer within the client's timeout; the connection
    /// was closed (a late answer could not be paired any more).
    #[error("the server did not answer within {0:?}; the connection was closed")]
    Timeout(std::time::Duration),
    /// A signal interrupted a wait (only for a client that asked for it,
    /// [`Client::set_interruptible`](crate::Client::set_interruptible)): the
    /// request is still in flight; wait for it again, or abandon it.
    #[error("a signal interrupted the wait; the request is still in flight")]
    Interrupted,
    /// The remote code raised an exception.
    #[error("remote exception {0}")]
    Remote(RemoteError),
    /// The server sent something the protocol does not allow.
    #[error("protocol error: {0}")]
    Protocol(#[from] ClientError),
    /// A request could not be encoded (a value the protocol cannot carry).
    #[error("the request cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
    /// A request given as msgpack is not what the protocol needs; nothing was sent.
    #[error("the request cannot be sent: {0}")]
    InvalidRequest(FrameError),
    /// [`Client::wait`](crate::Client::wait) for a request with no answer
    /// to take: never sent, sent pipelined, or already taken. The
    /// connection is fine.
    #[error("request {0} has no answer to wait for: it was never sent, was pipelined, or its answer was already taken")]
    NoAnswer(u64),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Another I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// The remote exception, when this error is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }
}
