//! # simplerpc-stream
//!
//! simplerpc over a private byte stream: a Unix socketpair, a Unix socket,
//! or a socket a child process inherited as a file descriptor. It carries
//! the same frames as the WebSocket transport ([`simplerpc_core`] builds and
//! reads them; this crate only moves them), with none of WebSocket's
//! machinery: no HTTP, no token (nobody else can reach the channel), no
//! masking, no pings (the peer's death is the end of the stream).
//!
//! ## Wire format
//!
//! 1. **Hello.** The client writes one line, `simplerpc-stream/1 EXTS\n`,
//!    where `EXTS` names the extensions it offers as the WebSocket header
//!    [`simplerpc_core::extensions::HEADER`] does (`release, request-id,
//!    promise`). The server answers `simplerpc-stream/1 ACCEPTED\n` with the
//!    ones it accepts ([`Extensions::negotiate`]). A line is at most
//!    [`HELLO_MAX`] bytes. A peer that sends anything else (an older
//!    version, a program writing to the wrong fd) is refused with an error
//!    that says so, before any frame is read.
//! 2. **Frames.** Each message is an 8-byte little-endian unsigned length
//!    `n` followed by `n` bytes: one msgpack request (client to server) or
//!    response (server to client) exactly as the WebSocket transport's
//!    binary messages carry them. A length over the reader's
//!    `max_message_size` is refused before anything is allocated and ends
//!    the connection with [`Error::TooLarge`]. A length of zero is a
//!    protocol error. The server answers requests in order, one response
//!    each.
//! 3. **End.** Either side closes the stream; the other sees end of file.
//!    A server frees the client's objects when its stream ends.
//!
//! - [`serve`] drives one [`simplerpc_core::ServerSession`] over one stream
//!   on the calling thread until the client goes; [`StopHandle`] ends it
//!   from another thread.
//! - [`Client`]: the same call API as the WebSocket client
//!   (`request`, `send`, `wait`, `send_pipelined`, `release`, ...).
//!
//! ```no_run
//! use std::os::unix::net::UnixStream;
//! use simplerpc_stream::{serve, Client, ClientConfig, ServerConfig};
//! # fn executor() -> simplerpc_registry::RegistryExecutor { unimplemented!() }
//!
//! let (a, b) = UnixStream::pair()?;
//! let server = std::thread::spawn(move || serve(b, executor(), &ServerConfig::default()));
//! let client = Client::connect(a, &ClientConfig::default())?;
//! let m = client.request(&simplerpc_core::Request::ImportModule { module: "demo".into() })?;
//! # let _ = m;
//! client.close();
//! server.join().unwrap()?;
//! # Ok::<(), simplerpc_stream::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod server;
mod socket;
mod wire;

pub use client::{Client, ClientConfig};
pub use error::Error;
pub use server::{serve, serve_with, Served, ServerConfig, StopHandle};
pub use simplerpc_core::{Extensions, ObjId, RemoteError, Request, Response, Value};
pub use socket::Socket;
pub use wire::{HELLO_MAX, MAGIC, PREFIX};

/// The default largest message, in bytes, either side accepts: 2 GiB, as
/// for the WebSocket transport.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 2 << 30;
