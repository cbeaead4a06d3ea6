//! The server side: one stream, one [`ServerSession`], on the calling thread.
//!
//! The thread reads a request, runs it and writes its response itself (a
//! small call crosses no thread boundary). Writes have a short timeout:
//! while a response cannot go out (the client is not reading, because it is
//! still writing requests), the thread reads the requests that arrive into
//! a queue, up to [`QUEUED_MAX`] bytes, and runs them next in order. The
//! client keeps at most [`crate::client::WINDOW`] bytes of requests
//! unanswered (and a larger request only with none in flight), less than
//! the queue takes, so neither side can block the other for good.
//!
//! There are no pings: the connection is private, and a client that dies
//! closes its end, which ends the stream. A long call holds the thread;
//! requests the client pipelines meanwhile wait in the socket.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use simplerpc_core::{Executor, Extensions, ServerSession};

use crate::error::Error;
use crate::socket::Socket;
use crate::wire::{read_hello, write_frame, write_hello, FrameReader, ReadError};

/// Requests read while a response could not be written: past this many
/// bytes, no more are read until the queue drains.
pub const QUEUED_MAX: usize = 64 << 20;
/// A write that cannot progress this long reads requests meanwhile.
const WRITE_STALL: Duration = Duration::from_millis(10);
/// How long a stalled write looks for incoming requests each time.
const STALL_READ: Duration = Duration::from_millis(1);
/// A connection idle this long lets the buffers kept for large messages go.
const IDLE_TRIM: Duration = Duration::from_secs(1);

/// How a stream server serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest request accepted, in bytes; a longer one ends the
    /// connection with [`Error::TooLarge`]. Default 2 GiB.
    pub max_message_size: usize,
    /// Most objects the client may hold at once (see
    /// [`ServerSession::set_max_objects`]). Default 1,000,000.
    pub max_objects: usize,
    /// The extensions the server accepts. Default all.
    pub extensions: Extensions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_size: crate::DEFAULT_MAX_MESSAGE_SIZE,
            max_objects: 1_000_000,
            extensions: Extensions::ALL,
        }
    }
}

/// How a served connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served {
    /// How many requests it handled.
    pub requests: u64,
    /// The extensions negotiated.
    pub extensions: Extensions,
}

/// Ends a [`serve`] running on another thread: shuts the stream down, so
/// its next read sees the end (a call running then finishes first).
pub struct StopHandle(Box<dyn Socket>);

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// A handle on `stream`, to take before handing it to [`serve`].
    pub fn new(stream: &dyn Socket) -> io::Result<StopHandle> {
        Ok(StopHandle(stream.try_clone_socket()?))
    }

    /// Stop serving (and close the client's connection).
    pub fn stop(&self) {
        let _ = self.0.shutdown_both();
    }
}

/// Serve one client on `stream` with `executor` until the client closes
/// its end (`Ok`), or the stream fails or breaks the protocol (`Err`). The
/// session, and every object the client held, is freed on return.
pub fn serve<S: Socket, E: Executor>(
    stream: S,
    executor: E,
    config: &ServerConfig,
) -> Result<Served, Error> {
    serve_with(stream, config, |_| Ok(executor))
}

/// [`serve`], with the executor made by `open` once the hello has been
/// exchanged (it learns the negotiated extensions). An `Err` from `open`
/// closes the stream and is returned.
pub fn serve_with<S: Socket, E: Executor>(
    mut stream: S,
    config: &ServerConfig,
    open: impl FnOnce(Extensions) -> Result<E, Error>,
) -> Result<Served, Error> {
    if config.max_message_size == 0 {
        return Err(Error::Config("max_message_size must be above 0".into()));
    }
    stream.set_read_timeout(None)?;
    let offered = read_hello(&mut stream, "client")?;
    let accepted = Extensions::negotiate(Some(&offered), config.extensions);
    write_hello(&mut stream, &accepted.header_value())?;
    let executor = open(accepted)?;
    let mut session = ServerSession::new(executor, accepted).with_max_objects(config.max_objects);
    let result = run(&mut stream, &mut session, config);
    let requests = session.requests_handled();
    // Dropping the session releases every object the client held.
    drop(session);
    result.map(|()| Served {
        requests,
        extensions: accepted,
    })
}

fn run<S: Socket, E: Executor>(
    stream: &mut S,
    session: &mut ServerSession<E>,
    config: &ServerConfig,
) -> Result<(), Error> {
    stream.set_write_timeout(Some(WRITE_STALL))?;
    let mut reader = FrameReader::new(config.max_message_size);
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    let mut queued_bytes = 0usize;
    // A request came since the buffers were last let go.
    let mut busy = false;
    let mut failure: Option<Error> = None;
    loop {
        let frame = if let Some(frame) = queue.pop_front() {
            queued_bytes -= frame.len();
            frame
        } else {
            if let Some(e) = failure.take() {
                return Err(e);
            }
            match reader.read(stream) {
                Ok(frame) => {
                    if !busy {
                        busy = true;
                        stream.set_read_timeout(Some(IDLE_TRIM))?;
                    }
                    frame
                }
                Err(ReadError::Retry(e)) => {
                    if e.kind() != io::ErrorKind::Interrupted && !reader.mid_frame() {
                        // Idle: large buffers go back to the system.
                        session.trim();
                        reader.trim();
                        busy = false;
                        stream.set_read_timeout(None)?;
                    }
                    continue;
                }
                Err(ReadError::Eof { mid_frame: false }) => return Ok(()),
                Err(ReadError::Eof { mid_frame: true }) => {
                    return Err(Error::Framing("the stream ended inside a frame".into()))
                }
                Err(ReadError::Refused(e)) => return Err(e),
                // A client that closes with answers unread resets the stream.
                Err(ReadError::Io(e)) if gone(&e) => return Ok(()),
                Err(ReadError::Io(e)) => return Err(Error::Io(e)),
            }
        };
        // Large arrays in the answer are spliced in where they lie, not
        // copied into the frame (see `OutFrame`).
        let response = session.respond(frame);
        let written = write_frame(stream, &response.parts(), |s| {
            // The client is not reading: read what it writes meanwhile.
            if queued_bytes > QUEUED_MAX || failure.is_some() {
                return Ok(());
            }
            s.set_read_timeout(Some(STALL_READ))?;
            let got = loop {
                match reader.read(s) {
                    Ok(frame) => {
                        queued_bytes += frame.len();
                        queue.push_back(frame);
                        if queued_bytes > QUEUED_MAX {
                            break Ok(());
                        }
                    }
                    Err(ReadError::Retry(_)) => break Ok(()),
                    // The client went: the write fails next anyway.
                    Err(ReadError::Eof { .. }) => {
                        break Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            "the client closed the stream before reading its answer",
                        ))
                    }
                    Err(ReadError::Refused(e)) => {
                        // Answer what came before it first.
                        failure = Some(e);
                        break Ok(());
                    }
                    Err(ReadError::Io(e)) => break Err(e),
                }
            };
            s.set_read_timeout(Some(IDLE_TRIM))?;
            got
        });
        if let Err(e) = written {
            if gone(&e) {
                // A client that leaves without reading its last answer.
                return Ok(());
            }
            return Err(Error::Io(e));
        }
        session.recycle(response.into_buffer());
    }
}

/// The client closed its end (it exited, or closed with answers unread).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}
