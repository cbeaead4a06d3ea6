//! The framing: a hello line each way, then length-prefixed frames.

use std::io::{self, IoSlice, Read, Write};

use bytes::Bytes;

use crate::error::Error;

/// The first word of each hello line: the protocol and its version.
pub const MAGIC: &str = "simplerpc-stream/1";
/// The most bytes a hello line may take, its newline included.
pub const HELLO_MAX: usize = 256;
/// The bytes of each frame's length prefix (an unsigned little-endian integer).
pub const PREFIX: usize = 8;

/// Write one hello line: the magic word and an extension list.
pub(crate) fn write_hello(stream: &mut impl Write, extensions: &str) -> io::Result<()> {
    let line = format!("{MAGIC} {extensions}\n");
    stream.write_all(line.as_bytes())?;
    stream.flush()
}

/// Read the peer's hello line and return what follows the magic word.
/// Reads one byte at a time so that no byte of the first frame is taken.
pub(crate) fn read_hello(stream: &mut impl Read, peer: &str) -> Result<String, Error> {
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => {
                return Err(Error::Handshake(format!(
                    "the {peer} closed the stream before its hello line{}",
                    if line.is_empty() {
                        String::new()
                    } else {
                        format!(" (it sent {:?})", String::from_utf8_lossy(&line))
                    }
                )))
            }
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                line.push(byte[0]);
                if line.len() >= HELLO_MAX {
                    return Err(bad_hello(peer, &line));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    let text = std::str::from_utf8(&line).map_err(|_| bad_hello(peer, &line))?;
    match text.split_once(' ') {
        Some((MAGIC, rest)) => Ok(rest.trim().to_owned()),
        None if text == MAGIC => Ok(String::new()),
        _ => Err(bad_hello(peer, &line)),
    }
}

fn bad_hello(peer: &str, line: &[u8]) -> Error {
    let shown: String = String::from_utf8_lossy(line).chars().take(80).collect();
    Error::Handshake(format!(
        "the {peer} does not speak {MAGIC}: its first line was {shown:?}; are both ends \
         simplerpc of the same protocol version, and is this the right file descriptor?"
    ))
}

/// At most this many buffers go to one vectored write.
const MAX_SLICES: usize = 16;

/// Write one frame carrying `parts` joined: its length, then its bytes,
/// with vectored writes (nothing is copied behind a prefix or joined: a
/// large array spliced into a response goes from where it lies). `on_stall`
/// runs whenever the socket times out without taking anything (the write
/// timeout); an error from it ends the write.
pub(crate) fn write_frame<W: Write>(
    stream: &mut W,
    parts: &[&[u8]],
    mut on_stall: impl FnMut(&mut W) -> io::Result<()>,
) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let head = (len as u64).to_le_bytes();
    let mut done = 0usize;
    let total = PREFIX + len;
    while done < total {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = slices_from(done, &head, parts, &mut slices);
        match stream.write_vectored(&slices[..n]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the peer takes no more bytes",
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if crate::socket::is_retry(&e) => on_stall(stream)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The slices of `head` + `parts` from byte `done` on (at most `out.len()`
/// of them, empty ones left out); returns how many.
fn slices_from<'a>(
    mut done: usize,
    head: &'a [u8],
    parts: &[&'a [u8]],
    out: &mut [IoSlice<'a>],
) -> usize {
    let mut n = 0;
    for p in std::iter::once(head).chain(parts.iter().copied()) {
        if n == out.len() {
            break;
        }
        if done >= p.len() {
            done -= p.len();
            continue;
        }
        out[n] = IoSlice::new(&p[done..]);
        done = 0;
        n += 1;
    }
    n
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Not now: a timeout, a signal. What was read so far is kept; read again.
    Retry(io::Error),
    /// The stream ended; `mid_frame` if it ended inside a frame.
    Eof { mid_frame: bool },
    /// The length prefix is over the limit, or zero.
    Refused(Error),
    /// The stream failed.
    Io(io::Error),
}

/// Reads frames, resuming where a timeout or a signal left it.
#[derive(Debug)]
pub(crate) struct FrameReader {
    head: [u8; PREFIX],
    head_len: usize,
    /// The frame being read, allocated at its exact size once the prefix is in.
    body: Option<Vec<u8>>,
    filled: usize,
    max: usize,
}

impl FrameReader {
    pub(crate) fn new(max: usize) -> FrameReader {
        FrameReader {
            head: [0; PREFIX],
            head_len: 0,
            body: None,
            filled: 0,
            max,
        }
    }

    /// Whether part of a frame has been read.
    pub(crate) fn mid_frame(&self) -> bool {
        self.head_len > 0
    }

    /// Read until one whole frame is in.
    pub(crate) fn read(&mut self, stream: &mut impl Read) -> Result<Bytes, ReadError> {
        while self.head_len < PREFIX {
            let n = self.fill(stream, None)?;
            self.head_len += n;
        }
        if self.body.is_none() {
            let len = u64::from_le_bytes(self.head);
            if len == 0 {
                return Err(ReadError::Refused(Error::Framing(
                    "a frame of length 0 (not a simplerpc message)".into(),
                )));
            }
            if len > self.max as u64 {
                return Err(ReadError::Refused(Error::TooLarge {
                    size: len,
                    limit: self.max,
                }));
            }
            // Exact size; zeroed memory of this size comes from the OS as
            // fresh pages, so the zeroing costs nothing but the touch.
            self.body = Some(vec![0u8; len as usize]);
            self.filled = 0;
        }
        loop {
            let len = self.body.as_ref().map_or(0, Vec::len);
            if self.filled == len {
                break;
            }
            let n = self.fill(stream, Some(()))?;
            self.filled += n;
        }
        self.head_len = 0;
        self.filled = 0;
        Ok(Bytes::from(self.body.take().unwrap_or_default()))
    }

    /// One read into the prefix (`body: None`) or the body.
    fn fill(&mut self, stream: &mut impl Read, body: Option<()>) -> Result<usize, ReadError> {
        let buf = match body {
            None => &mut self.head[self.head_len..],
            Some(()) => match self.body.as_mut() {
                Some(b) => &mut b[self.filled..],
                None => return Ok(0),
            },
        };
        match stream.read(buf) {
            Ok(0) => Err(ReadError::Eof {
                mid_frame: self.head_len > 0,
            }),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted || crate::socket::is_retry(&e) => {
                Err(ReadError::Retry(e))
            }
            Err(e) => Err(ReadError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_a_long_one_is_refused_unallocated() {
        let mut out = Vec::new();
        write_frame(&mut out, &[b"hello"], |_| Ok(())).unwrap();
        assert_eq!(&out[..8], &5u64.to_le_bytes());
        let mut r = FrameReader::new(16);
        assert_eq!(&r.read(&mut &out[..]).unwrap()[..], b"hello");
        let huge = u64::MAX.to_le_bytes();
        let mut r = FrameReader::new(16);
        match r.read(&mut &huge[..]) {
            Err(ReadError::Refused(Error::TooLarge { size, limit })) => {
                assert_eq!((size, limit), (u64::MAX, 16));
            }
            other => panic!("{other:?}"),
        }
        assert!(r.body.is_none());
    }

    /// Takes at most `step` bytes per write, and only from the first slice.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Takes at most 7 bytes a write, so every part boundary is crossed
    /// mid-write.
    struct Dribble(Vec<u8>);

    impl Write for Dribble {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_frame_in_parts_reads_back_joined_however_the_socket_takes_it() {
        let whole: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        // Empty parts, tiny ones, and more parts than one vectored write takes.
        let mut cuts = vec![0usize, 0, 1, 2, 3, 50_000, 50_000, 70_000];
        cuts.extend((0..20).map(|i| 70_001 + i * 100));
        cuts.push(whole.len());
        let parts: Vec<&[u8]> = cuts.windows(2).map(|w| &whole[w[0]..w[1]]).collect();
        for step in [1usize, 5, 8, 9, 4096, usize::MAX] {
            let mut sock = Trickle {
                out: Vec::new(),
                step,
            };
            write_frame(&mut sock, &parts, |_| Ok(())).unwrap();
            let mut r = FrameReader::new(1 << 20);
            let got = r.read(&mut &sock.out[..]).unwrap();
            assert!(got[..] == whole[..], "step {step}");
        }
    }

    #[test]
    fn a_frame_in_parts_is_the_frame_joined() {
        let parts: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; usize::from(i % 5) * 3]).collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let joined = parts.concat();
        let mut out = Dribble(Vec::new());
        write_frame(&mut out, &refs, |_| Ok(())).unwrap();
        let mut one = Vec::new();
        write_frame(&mut one, &[&joined], |_| Ok(())).unwrap();
        assert_eq!(out.0, one);
        let mut r = FrameReader::new(1 << 20);
        assert_eq!(&r.read(&mut &out.0[..]).unwrap()[..], &joined[..]);
    }

    #[test]
    fn a_wrong_hello_names_what_came() {
        let e = read_hello(&mut &b"GET / HTTP/1.1\r\n"[..], "server").unwrap_err();
        assert!(e.to_string().contains("GET / HTTP"), "{e}");
        let ok = read_hello(
            &mut &b"simplerpc-stream/1 release, promise\nXX"[..],
            "server",
        );
        assert_eq!(ok.unwrap(), "release, promise");
    }
}
