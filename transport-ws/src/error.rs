//! The errors of the WebSocket transport, worded to say what to do next.

use std::io;

use simplerpc_core::codec::EncodeError;
use simplerpc_core::message::FrameError;
use simplerpc_core::{ClientError, RemoteError};

/// Everything that can go wrong connecting, calling or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the token: at the HTTP handshake (401/403), or, as
    /// the reference server does, by closing the connection with code 1008.
    #[error(
        "the server at {addr} refused the token: set SIMPLERPC_TOKEN (or ClientConfig::token) \
         to the token the server printed when it started"
    )]
    Unauthorized {
        /// `host:port` of the server
        addr: String,
    },
    /// No token was configured.
    #[error(
        "no token to connect to {addr}: set SIMPLERPC_TOKEN (or ClientConfig::token) \
         to the token the server printed when it started"
    )]
    MissingToken {
        /// `host:port` of the server
        addr: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}; is the server running and listening there?")]
    Connect {
        /// `host:port` of the server
        addr: String,
        /// what the OS said
        #[source]
        source: io::Error,
    },
    /// Connecting (the TCP connection and the handshake) took longer than
    /// [`ClientConfig::connect_timeout`](crate::ClientConfig::connect_timeout):
    /// the host drops packets, or nothing there answers.
    #[error(
        "connecting to {addr} took longer than {after:?}, the connect timeout: nothing there \
         answers; is the address right, and the server running?"
    )]
    ConnectTimeout {
        /// `host:port` of the server
        addr: String,
        /// the connect timeout
        after: std::time::Duration,
    },
    /// The peer does not speak WebSocket, or broke off the handshake.
    #[error("the WebSocket handshake with {addr} failed: {reason}")]
    Handshake {
        /// `host:port` of the peer
        addr: String,
        /// what went wrong
        reason: String,
    },
    /// TLS could not be set up with the server: its certificate was
    /// refused (the reason says why), or it does not speak TLS.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// `host:port` of the server
        addr: String,
        /// what went wrong, and what to do
        reason: String,
    },
    /// The connection is gone (the server shut down, the network failed, or
    /// the client was closed). Requests in flight got no answer; connect again.
    #[error("the connection to the server is closed ({0}); connect again")]
    Closed(String),
    /// A request got no answer within the client's timeout; the connection
    /// was closed (a late answer could not be paired any more).
    #[error("the server did not answer within {0:?}; the connection was closed, connect again")]
    Timeout(std::time::Duration),
    /// A simplerpc server sent nothing while a request waited, not even a
    /// pong to the pings it was sent, for the client's `dead_after`: it is
    /// frozen (stopped, swapping) or the network is gone. The connection was
    /// closed.
    #[error(
        "the server sent nothing for {} s while a request waited, not even a pong: \
         it is frozen or unreachable; the connection was closed, connect again \
         (ClientConfig::dead_after sets how long to wait)",
        .0.as_secs()
    )]
    Dead(std::time::Duration),
    /// A signal interrupted a wait (only for a client that asked for it,
    /// [`Client::set_interruptible`](crate::Client::set_interruptible)): the
    /// request is still in flight; wait for it again, or abandon it.
    #[error("a signal interrupted the wait; the request is still in flight")]
    Interrupted,
    /// The remote code raised an exception.
    #[error("remote exception {}", remote_text(.0))]
    Remote(RemoteError),
    /// The server sent something the protocol does not allow.
    #[error("protocol error: {0}")]
    Protocol(#[from] ClientError),
    /// The server answered with a response of the wrong kind.
    #[error("protocol error: the server answered a {request} request with {got}")]
    UnexpectedResponse {
        /// the request type
        request: &'static str,
        /// what came back
        got: &'static str,
    },
    /// A request could not be encoded (a value the protocol cannot carry).
    #[error("the request cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
    /// A request given as msgpack ([`crate::Client::request_raw_fields`]) is
    /// not what the protocol needs (invalid msgpack, args that are no array);
    /// nothing was sent.
    #[error("the request cannot be sent: {0}")]
    InvalidRequest(FrameError),
    /// [`Client::wait`](crate::Client::wait) for a request with no answer
    /// to take: never sent, sent pipelined (its answer goes to its promise),
    /// or already taken. The connection is fine.
    #[error("request {0} has no answer to wait for: it was never sent, was pipelined, or its answer was already taken")]
    NoAnswer(u64),
    /// A value did not fit the Rust type asked for
    /// ([`Proxy::materialize_as`](crate::Proxy::materialize_as)), or a Rust
    /// argument has no protocol value; nothing remote went wrong. The path
    /// in `source` names the field that did not fit.
    #[error("{what}: {source}")]
    Convert {
        /// what was being converted (`"env.step() as my_crate::Step"`, `"argument"`)
        what: String,
        /// the value that did not fit, and where
        #[source]
        source: simplerpc_core::ConvertError,
    },
    /// The server could not listen on its address.
    #[error("cannot listen on {addr}: {source}; is another server using that port?")]
    Bind {
        /// `host:port` asked for
        addr: String,
        /// what the OS said
        #[source]
        source: io::Error,
    },
    /// No token could be generated (the OS random source failed).
    #[error("cannot generate a token: {0}; pass one in ServerConfig::token")]
    Token(String),
    /// Another I/O failure (for example, a thread could not be started).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

fn remote_text(e: &RemoteError) -> String {
    if e.traceback.is_empty() {
        e.to_string()
    } else {
        format!("{e}\n\nRemote traceback:\n{}", e.traceback.trim_end())
    }
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
