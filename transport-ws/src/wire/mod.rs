//! WebSocket framing after the handshake (RFC 6455 §5), on a blocking
//! socket: our own, not tungstenite's, which keeps using tungstenite for the
//! HTTP upgrade.
//!
//! Why not tungstenite's: it keeps its read buffer at the size of the
//! largest message ever received and its write buffer at the size of the
//! largest one sent, for the connection's life (a 1 GiB array would keep
//! 1 GiB in each process until disconnect); it copies a client's frame
//! into its write buffer to mask it; and it cannot let one thread read
//! while another writes. Here a message is read into a buffer of exactly
//! its size, allocated fallibly after the size check; a large frame is
//! written from the caller's own buffers (a client with a random key masks
//! it a piece at a time on the way); and a read or
//! write that times out or is interrupted by a signal goes on where it
//! stopped.
//!
//! - `read`: [`Reader`], frames in, messages out (a large one into a buffer
//!   of core's [`simplerpc_core::pool::FramePool`], kept for the next ones).
//! - `write`: [`Writer`], frames out.
//! - `mask`: the masking, and the masking keys.
//! - `tap`: keeps the bytes read past the handshake for the [`Reader`].

mod mask;
mod read;
mod tap;
mod write;

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::tls::Stream;

pub(crate) use read::Reader;
pub(crate) use tap::{bound, Tap};
pub(crate) use write::{is_retry, Writer, SMALL};

/// The frame opcodes (RFC 6455 §5.2).
pub(crate) mod opcode {
    /// More of a fragmented message.
    pub(crate) const CONTINUATION: u8 = 0x0;
    /// A text message.
    pub(crate) const TEXT: u8 = 0x1;
    /// A binary message.
    pub(crate) const BINARY: u8 = 0x2;
    /// The close handshake.
    pub(crate) const CLOSE: u8 = 0x8;
    /// A ping, to be answered by a pong with its payload.
    pub(crate) const PING: u8 = 0x9;
    /// A pong.
    pub(crate) const PONG: u8 = 0xa;
}

/// The close codes we send.
pub(crate) mod close_code {
    /// Normal closure.
    pub(crate) const NORMAL: u16 = 1000;
    /// The endpoint is going away (a server shutting down).
    pub(crate) const AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub(crate) const PROTOCOL: u16 = 1002;
    /// A message too big to process.
    pub(crate) const TOO_BIG: u16 = 1009;
    /// An unexpected condition on the server.
    pub(crate) const ERROR: u16 = 1011;
}

/// What a read produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A whole data message (binary, or text already checked to be UTF-8).
    Message(Bytes),
    /// A ping: answer it with a pong carrying this payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The peer's close frame: its code and reason, if it gave them.
    Close(Option<(u16, String)>),
}

/// Why a read failed.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The socket failed, or only timed out, would block or was interrupted
    /// ([`WireError::is_retry`]: nothing is lost, read again).
    Io(io::Error),
    /// The peer closed the TCP connection without a close frame.
    Eof {
        /// It stopped in the middle of a frame.
        mid_frame: bool,
    },
    /// The peer broke the framing rules; close with `code`.
    Protocol {
        /// The close code to answer (1002, or 1007 for text that is not UTF-8).
        code: u16,
        /// What was wrong.
        reason: String,
    },
    /// A message larger than the limit (refused before it was read).
    TooBig {
        /// Its size as announced.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message within the limit that memory could not be found for.
    NoMemory {
        /// Its size.
        size: usize,
    },
}

impl WireError {
    /// Only a timeout, a would-block or a signal: read again.
    pub(crate) fn is_retry(&self) -> bool {
        matches!(self, WireError::Io(e) if is_retry(e))
    }

    /// The close frame to answer this error with, if the connection still
    /// carries one: the code and a reason (at most 123 bytes).
    pub(crate) fn close_frame(&self) -> Option<(u16, String)> {
        let (code, mut reason) = match self {
            WireError::Protocol { code, reason } => (*code, reason.clone()),
            WireError::TooBig { .. } | WireError::NoMemory { .. } => {
                (close_code::TOO_BIG, self.to_string())
            }
            WireError::Io(_) | WireError::Eof { .. } => return None,
        };
        truncate(&mut reason, 123);
        Some((code, reason))
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Eof { mid_frame: true } => {
                write!(f, "the connection was cut in the middle of a message")
            }
            WireError::Eof { mid_frame: false } => {
                write!(f, "the connection was closed without a close frame")
            }
            WireError::Protocol { reason, .. } => write!(f, "WebSocket protocol error: {reason}"),
            WireError::TooBig { size, max } => write!(
                f,
                "a message of {size} bytes is over the limit of {max} bytes (max_message_size)"
            ),
            WireError::NoMemory { size } => {
                write!(f, "cannot allocate {size} bytes for a message")
            }
        }
    }
}

/// Cut `s` to at most `max` bytes, at a character boundary.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Where a large message's first large bin (an array's data) starts: both
/// sides place such a message so that it is aligned, and a host (Python)
/// can make the array over it in place.
fn align_first_large_bin(prefix: &[u8]) -> Option<usize> {
    simplerpc_core::codec::first_large_bin(prefix, 64 << 10)
}

/// How long closing waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The read timeout while closing.
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// A WebSocket connection after the handshake: the socket, a reader and a
/// writer.
pub(crate) struct Wire {
    stream: Stream,
    reader: Reader,
    writer: Writer,
    /// The socket's read timeout as last set, to skip redundant system calls.
    read_timeout: Option<Option<Duration>>,
    nonblocking: bool,
}

/// Whether a client's frames may carry the all-zero masking key: under TLS
/// (an intermediary sees only ciphertext) or to a loopback address (there is
/// no intermediary).
fn zero_key_for(tls: bool, peer: Option<std::net::IpAddr>) -> bool {
    // An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) counts as its IPv4 one.
    tls || peer.is_some_and(|ip| ip.to_canonical().is_loopback())
}

impl Wire {
    /// The server's end of a connection; `leftover`: bytes read past the
    /// handshake. On both ends a large message is placed in memory so that
    /// its first large bin is aligned (see [`align_first_large_bin`]).
    pub(crate) fn server(stream: Stream, max_message: usize, leftover: &[u8]) -> Wire {
        let mut wire = Wire::new(stream, false, max_message, leftover);
        wire.reader.set_align(align_first_large_bin);
        wire
    }

    /// The client's end (it masks what it sends). Over loopback and under
    /// TLS its frames carry the all-zero masking key, which costs no pass
    /// over a large payload on either end (see [`Writer::use_zero_key`]):
    /// no intermediary that reads clear text can sit on either path.
    pub(crate) fn client(stream: Stream, max_message: usize, leftover: &[u8]) -> Wire {
        let zero_key = zero_key_for(
            matches!(stream, Stream::Tls(_)),
            stream.tcp().peer_addr().ok().map(|a| a.ip()),
        );
        let mut wire = Wire::new(stream, true, max_message, leftover);
        if zero_key {
            wire.writer.use_zero_key();
        }
        wire.reader.set_align(align_first_large_bin);
        wire
    }

    fn new(stream: Stream, client: bool, max_message: usize, leftover: &[u8]) -> Wire {
        Wire {
            stream,
            reader: Reader::new(!client, max_message, leftover),
            writer: Writer::new(client),
            read_timeout: None,
            nonblocking: false,
        }
    }

    /// The socket (under TLS, if any).
    pub(crate) fn stream(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// Read until a message or a control frame arrives.
    pub(crate) fn read(&mut self) -> Result<Incoming, WireError> {
        self.reader.read(&mut self.stream)
    }

    /// Whether a frame from the peer is partly read (more is on its way).
    pub(crate) fn receiving(&self) -> bool {
        self.reader.mid_frame()
    }

    /// When the peer last showed it is alive: it sent anything, or it read
    /// a large message of ours (a peer busy taking a long message sends
    /// nothing meanwhile, and must not count as silent).
    pub(crate) fn last_heard(&self) -> Instant {
        let heard = self.reader.last_heard();
        match self.writer.peer_read() {
            Some(read) if read > heard => read,
            _ => heard,
        }
    }

    /// Let the buffers kept for large messages go (the connection idles).
    pub(crate) fn trim(&mut self) {
        self.reader.trim();
        self.writer.trim();
    }

    /// Note a signal that interrupted a read made while writing.
    pub(crate) fn note_interrupted(&mut self) {
        self.writer.note_interrupted();
    }

    /// Set the socket's read timeout (`None`: reads wait as long as it takes).
    pub(crate) fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if self.read_timeout != Some(t) {
            self.stream.tcp().set_read_timeout(t)?;
            self.read_timeout = Some(t);
        }
        Ok(())
    }

    /// Make reads and writes return at once when they cannot progress.
    pub(crate) fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        if self.nonblocking != on {
            self.stream.tcp().set_nonblocking(on)?;
            self.nonblocking = on;
        }
        Ok(())
    }

    /// Bytes the socket has not taken yet: of queued frames, and (under
    /// TLS) of sealed records (so progress is what the socket took).
    pub(crate) fn pending(&self) -> usize {
        self.writer.pending() + self.stream.buffered()
    }

    /// Whether our close frame was queued (nothing more may be sent).
    pub(crate) fn closing(&self) -> bool {
        self.writer.closed()
    }

    /// Whether a signal interrupted a write since the last call.
    pub(crate) fn take_interrupted(&mut self) -> bool {
        self.writer.take_interrupted()
    }

    /// Queue a pong answering a ping's `payload` (written by the next flush).
    pub(crate) fn queue_pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.writer.queue(opcode::PONG, payload)
    }

    /// Queue a ping (written by the next flush).
    pub(crate) fn queue_ping(&mut self) -> io::Result<()> {
        self.writer.queue(opcode::PING, b"simplerpc")
    }

    /// Write what is queued; `Ok(false)` when the socket would not take all
    /// of it within its write timeout.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        self.writer.flush(&mut self.stream)
    }

    /// Send a binary message (see [`Writer::write_message`]). `stalled` may
    /// read meanwhile through the reader it is given.
    pub(crate) fn write_message(
        &mut self,
        parts: &[&[u8]],
        stalled: &mut dyn FnMut(&mut Reader, &mut Stream, Duration) -> io::Result<()>,
    ) -> io::Result<()> {
        let reader = &mut self.reader;
        self.writer
            .write_message(&mut self.stream, parts, &mut |stream, idle| {
                stalled(reader, stream, idle)
            })
    }

    /// Queue a binary message of one frame (at most [`SMALL`] bytes are
    /// worth it: a larger one is copied whole).
    pub(crate) fn queue_binary(&mut self, payload: &[u8]) -> io::Result<()> {
        self.writer.queue(opcode::BINARY, payload)
    }

    /// Send a close frame (`None`: a bare one) and wait up to a second for
    /// the peer's, dropping whatever else arrives. Never fails: a connection
    /// that breaks meanwhile is closed anyway.
    pub(crate) fn close(&mut self, frame: Option<(u16, &str)>) {
        if !self.writer.closed() {
            let mut payload = Vec::new();
            if let Some((code, reason)) = frame {
                let mut reason = reason.to_owned();
                truncate(&mut reason, 123);
                payload.extend_from_slice(&code.to_be_bytes());
                payload.extend_from_slice(reason.as_bytes());
            }
            if self.writer.queue(opcode::CLOSE, &payload).is_err() {
                return;
            }
        }
        if self.set_nonblocking(false).is_err() || self.set_read_timeout(Some(CLOSE_POLL)).is_err()
        {
            return;
        }
        let deadline = Instant::now() + CLOSE_GRACE;
        while Instant::now() < deadline {
            match self.flush() {
                Ok(_) => {}
                Err(_) => return,
            }
            match self.read() {
                Ok(Incoming::Close(_)) => {
                    let _ = self.flush();
                    return;
                }
                Ok(_) => {}
                Err(e) if e.is_retry() => {}
                Err(_) => return,
            }
        }
    }

    /// Send a close frame without waiting for the peer's (best effort, a
    /// dropped connection's goodbye).
    pub(crate) fn close_now(&mut self) {
        if !self.writer.closed() && self.writer.queue(opcode::CLOSE, &[]).is_ok() {
            let _ = self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_zero_key_is_for_loopback_and_tls_only() {
        let lan = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
        assert!(super::zero_key_for(
            false,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        ));
        assert!(super::zero_key_for(
            false,
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        ));
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        assert!(super::zero_key_for(false, Some(mapped)));
        let mapped_lan = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        assert!(!super::zero_key_for(false, Some(mapped_lan)));
        assert!(super::zero_key_for(true, Some(lan)));
        assert!(!super::zero_key_for(false, Some(lan)));
        assert!(!super::zero_key_for(false, None));
    }
}
