//! The socket as tungstenite sees it during the handshake: every byte read
//! is also kept, so that what arrived after the end of the HTTP head (the
//! start of the first frame, which tungstenite buffered) can be handed to
//! our [`Reader`](super::Reader) instead of being lost with tungstenite's
//! buffer.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::tls::Stream;

/// A socket that remembers what was read through it.
pub(crate) struct Tap {
    stream: Option<Stream>,
    seen: Vec<u8>,
    /// No read or write waits past this (the connect timeout's budget).
    deadline: Instant,
}

impl Tap {
    /// Wrap a fresh socket whose reads and writes end by `deadline`.
    pub(crate) fn new(stream: Stream, deadline: Instant) -> Tap {
        Tap {
            stream: Some(stream),
            seen: Vec::new(),
            deadline,
        }
    }

    /// The stream, its timeouts set to what is left before the deadline.
    fn bounded(&mut self) -> io::Result<&mut Stream> {
        let stream = self.stream.as_mut().ok_or_else(spent)?;
        bound(stream.tcp(), self.deadline)?;
        Ok(stream)
    }

    /// The stream (taken: the tap is spent), and the bytes read past the
    /// end of the HTTP head (the blank line that ends it).
    pub(crate) fn finish(&mut self) -> io::Result<(Stream, Vec<u8>)> {
        let stream = self.stream.take().ok_or_else(spent)?;
        // The head ends at the first blank line (CRLF, or bare LF, which
        // HTTP parsers accept too).
        let ends = [&b"\r\n\r\n"[..], b"\n\r\n", b"\n\n"];
        let end = ends
            .iter()
            .filter_map(|p| {
                self.seen
                    .windows(p.len())
                    .position(|w| w == *p)
                    .map(|at| at + p.len())
            })
            .min()
            .unwrap_or(self.seen.len());
        let rest = self.seen.split_off(end);
        self.seen = Vec::new();
        Ok((stream, rest))
    }
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A signal during the handshake is not a failure: read again.
        let n = loop {
            match self.bounded()?.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.bounded()?.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        loop {
            match self.bounded()?.flush() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// Set `sock`'s read and write timeouts to what is left before `deadline`;
/// past it, an error of kind `WouldBlock` (what a timed-out socket says),
/// so one budget bounds a handshake of many reads however the peer paces them.
pub(crate) fn bound(sock: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    // A zero timeout means "none" to the socket.
    if left < Duration::from_millis(1) {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the connect timeout passed during the handshake",
        ));
    }
    sock.set_read_timeout(Some(left))?;
    sock.set_write_timeout(Some(left))
}

fn spent() -> io::Error {
    io::Error::other("internal: the handshake's stream was already taken")
}
