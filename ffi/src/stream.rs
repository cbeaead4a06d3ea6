//! The stream transport: a server and a client over one connected socket
//! given as a file descriptor (a socketpair's end, a socket a child process
//! inherited). See the `simplerpc-stream` crate for the wire format: a
//! hello line each way (the extensions offered and accepted, by default
//! SRPC_EXT_DEFAULT), then frames behind an 8-byte little-endian length. No token:
//! whoever holds the descriptor is the peer.
//!
//! On a host that has not ignored SIGPIPE, writing to a socket whose peer
//! has closed raises SIGPIPE, which kills the process by default; Python
//! and Rust programs ignore it, a C program should too
//! (`signal(SIGPIPE, SIG_IGN)`). The library does not change it.

use std::ffi::c_int;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use simplerpc_stream::{Client, ClientConfig, Error, Extensions, ServerConfig};

use crate::client::{srpc_client, Transport};
use crate::error::{
    guard, srpc_status, FfiError, SrpcStatusErrClosed, SrpcStatusErrIo, SrpcStatusErrProtocol,
    SrpcStatusErrTimeout,
};
use crate::executor::{srpc_executor, Callbacks};
use crate::session::{extensions, SRPC_EXT_DEFAULT};

/// Limits of a stream server or client. Zero fields take the defaults.
#[repr(C)]
pub struct srpc_stream_config {
    /// Largest message accepted, in bytes; 0 means the default (2 GiB). A
    /// longer one announced by the peer ends the connection, nothing
    /// allocated for it.
    pub max_message_size: u64,
    /// Server only: most objects the client may hold at once; 0 means the
    /// default (1,000,000).
    pub max_objects: u64,
    /// Client only: milliseconds to wait for the server's hello (a child
    /// process still starting); 0 means no limit. A server that does not
    /// answer in time returns SRPC_STATUS_ERR_PROTOCOL. Requests have no
    /// time limit unless srpc_client_set_timeout() sets one.
    pub hello_timeout_ms: u64,
    /// The extensions (SRPC_EXT_*) a server accepts, or a client offers; 0
    /// means the default, SRPC_EXT_DEFAULT (all but SRPC_EXT_TUPLE). Add
    /// SRPC_EXT_TUPLE when the executor (or the client's msgpack) reads and
    /// writes the tuple marker.
    pub extensions: u32,
}

/// The FfiError of a stream transport error.
pub(crate) fn stream_error(e: Error) -> FfiError {
    let status = match &e {
        Error::Remote(r) => return FfiError::remote(r.clone()),
        // No memory for an incoming message ends the connection: later
        // calls report it closed, and so does this one.
        Error::Closed(_) | Error::NoMemory { .. } => SrpcStatusErrClosed,
        Error::Timeout(_) => SrpcStatusErrTimeout,
        Error::Interrupted => crate::error::SrpcStatusInterrupted,
        Error::Io(_) => SrpcStatusErrIo,
        Error::Handshake(_) | Error::TooLarge { .. } | Error::Framing(_) | Error::Protocol(_) => {
            SrpcStatusErrProtocol
        }
        Error::NoAnswer(_) => crate::error::SrpcStatusErrState,
        _ => crate::error::SrpcStatusErrInvalidArgument,
    };
    FfiError::new(status, e.to_string())
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        stream_error(e)
    }
}

/// Take ownership of `fd` as a Unix stream socket.
fn socket(fd: c_int) -> Result<UnixStream, FfiError> {
    if fd < 0 {
        return Err(FfiError::invalid(format!(
            "fd {fd} is not a file descriptor"
        )));
    }
    // SAFETY: the caller hands over an open descriptor it owns (the contract).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = UnixStream::from(owned);
    // A pipe or a file is no socket: say so now, not at the first timeout.
    if let Err(e) = stream.take_error() {
        return Err(FfiError::invalid(format!(
            "fd {fd} is not a connected stream socket ({e}); pass one end of a socketpair"
        )));
    }
    Ok(stream)
}

/// The limits, the hello timeout and the extensions of `config` (NULL: the defaults).
fn limits(config: *const srpc_stream_config) -> (usize, usize, u64, Extensions) {
    let size = |n: u64, default: usize| {
        if n == 0 {
            default
        } else {
            usize::try_from(n).unwrap_or(usize::MAX)
        }
    };
    let max = simplerpc_stream::DEFAULT_MAX_MESSAGE_SIZE;
    // SAFETY: NULL or valid (the caller's contract).
    match unsafe { config.as_ref() } {
        None => (max, 1_000_000, 0, extensions(SRPC_EXT_DEFAULT)),
        Some(c) => (
            size(c.max_message_size, max),
            size(c.max_objects, 1_000_000),
            c.hello_timeout_ms,
            extensions(match c.extensions {
                0 => SRPC_EXT_DEFAULT,
                bits => bits,
            }),
        ),
    }
}

/// Serve one client over the connected socket `fd` on the calling thread,
/// with one session of `executor`, until the client closes its end: then
/// SRPC_STATUS_OK. A socket that fails, or a peer that breaks the
/// protocol (a wrong hello, an oversized message), returns
/// SRPC_STATUS_ERR_IO or SRPC_STATUS_ERR_PROTOCOL with the reason in
/// srpc_last_error_message(). The executor's callbacks run on the calling
/// thread; an open callback that fails makes every call answer with its
/// error (as srpc_server_start() does); the session is closed, and the userdata freed (by
/// `free_userdata`), before this returns. `config` may be NULL (defaults).
///
/// `fd` is taken over and closed on return, in every case. To end the
/// service early from another thread, `shutdown(fd, SHUT_RDWR)`: it
/// returns once the call running then (if any) is done.
///
/// # Safety
/// `config` is NULL or valid; `executor` points to a valid struct; `fd` is
/// an open descriptor the caller owns and does not use or close afterwards.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_serve_fd(
    config: *const srpc_stream_config,
    executor: *const srpc_executor,
    fd: c_int,
) -> srpc_status {
    guard(|| {
        // The fd is taken (closed on every way out) and the userdata owned
        // (freed on every way out) before either can be refused.
        let stream = socket(fd);
        // SAFETY: NULL checked; otherwise a valid struct (documented).
        let ex = unsafe { executor.as_ref() }.ok_or_else(|| FfiError::null("executor"))?;
        let callbacks = Callbacks::new(ex)?;
        let stream = stream?;
        let (max_message_size, max_objects, _, extensions) = limits(config);
        let config = ServerConfig {
            max_message_size,
            max_objects,
            extensions,
        };
        let served = simplerpc_stream::serve_with(stream, &config, |accepted| {
            Ok(callbacks.open_or_refuse(accepted.bits()))
        });
        served.map(drop).map_err(|e| match e {
            Error::Io(io) => FfiError::new(SrpcStatusErrIo, format!("the stream failed: {io}")),
            other => stream_error(other),
        })
    })
}

/// Connect over the connected socket `fd` whose other end a stream server
/// serves (srpc_server_serve_fd(), `python -m simplerpc.server --fd N`):
/// say hello, offering `config->extensions` (default SRPC_EXT_DEFAULT), and
/// read the server's answer (srpc_client_extensions() tells what it accepted).
/// `config` may be NULL (defaults, no time limit; `max_objects` is not used). Every
/// srpc_client_* function works on the client; srpc_client_set_liveness()
/// does nothing (a server that dies closes the stream). A server that does
/// not answer the hello as one (a wrong descriptor) returns
/// SRPC_STATUS_ERR_PROTOCOL naming what it sent. Free with srpc_client_free().
///
/// `fd` is taken over in every case (closed on failure, and by
/// srpc_client_free()).
///
/// # Safety
/// `config` is NULL or valid; `fd` is an open descriptor the caller owns and
/// does not use or close afterwards; `client_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_connect_fd(
    config: *const srpc_stream_config,
    fd: c_int,
    client_out: *mut *mut srpc_client,
) -> srpc_status {
    guard(|| {
        let stream = socket(fd)?;
        // SAFETY: NULL checked; otherwise valid.
        let o = unsafe { client_out.as_mut() }.ok_or_else(|| FfiError::null("client_out"))?;
        let (max_message_size, _, hello_ms, extensions) = limits(config);
        let config = ClientConfig {
            max_message_size,
            extensions,
            timeout: (hello_ms != 0).then(|| std::time::Duration::from_millis(hello_ms)),
        };
        let client = Client::connect(stream, &config).map_err(stream_error)?;
        // The hello's limit is not the requests'.
        client.set_timeout(None);
        *o = Box::into_raw(Box::new(srpc_client(Transport::Stream(client))));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_memory_for_a_message_reports_the_connection_closed() {
        // Not an invalid argument (a ValueError in Python): the host gave
        // none, and the connection is gone.
        let e = stream_error(Error::NoMemory { size: 1 << 40 });
        assert_eq!(e.status, SrpcStatusErrClosed);
        assert!(e
            .message
            .contains("no memory for a message of 1099511627776 bytes"));
    }
}
