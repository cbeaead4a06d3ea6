//! The framing: a hello line each way, then length-prefixed frames.

use std::io::{self, IoSlice, Read, Write};

use bytes::Bytes;

use crate::error::Error;
use simplerpc_core::pool::{FramePool as Pool, POOLED_MIN};

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

/// Frames at least this large are placed so that the first large bin (an
/// array's data) starts on an [`ALIGNMENT`]-byte boundary: a host (Python)
/// then makes the array over the frame in place, whatever its dtype.
const PLACED_MIN: usize = 1 << 20;
/// The boundary: a cache line, enough for every numpy dtype.
const ALIGNMENT: usize = 64;
/// How much of a large frame's first bytes is read before it is placed.
const PLACE_PREFIX: usize = 4096;
/// Bins from this size up are an array's data worth aligning (as the
/// codec splices them).
const LARGE_BIN: usize = 64 << 10;
/// The most a single read takes: a cache-sized piece.
const PIECE: usize = 256 << 10;

/// Reads frames, resuming where a timeout or a signal left it.
#[derive(Debug)]
pub(crate) struct FrameReader {
    head: [u8; PREFIX],
    head_len: usize,
    /// The buffer of the frame being read, allocated once the prefix is in.
    body: Option<Vec<u8>>,
    /// Where in `body` the frame starts.
    start: usize,
    /// The frame's length, and how much of it is in.
    len: usize,
    filled: usize,
    /// A large frame not yet placed (see [`PLACED_MIN`]): its first bytes
    /// are read first, at [`ALIGNMENT`], and moved once they say where.
    placing: bool,
    max: usize,
    pool: Pool,
}

impl FrameReader {
    pub(crate) fn new(max: usize) -> FrameReader {
        FrameReader {
            head: [0; PREFIX],
            head_len: 0,
            body: None,
            start: 0,
            len: 0,
            filled: 0,
            placing: false,
            max,
            pool: Pool::default(),
        }
    }

    /// Whether part of a frame has been read.
    pub(crate) fn mid_frame(&self) -> bool {
        self.head_len > 0
    }

    /// Let the buffers kept for large frames go (the connection idles).
    pub(crate) fn trim(&self) {
        self.pool.trim();
    }

    /// How many buffers of large frames are kept (for tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.pool.kept()
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
            let room = if len >= PLACED_MIN as u64 {
                ALIGNMENT
            } else {
                0
            };
            let no_memory = || ReadError::Refused(Error::NoMemory { size: len });
            let need = usize::try_from(len)
                .ok()
                .and_then(|n| n.checked_add(room))
                .ok_or_else(no_memory)?;
            let len = need - room;
            // A large frame goes into a buffer an earlier one left, if one
            // fits (no fresh memory to fault in); else into memory reserved
            // here, fallibly, and zeroed a piece at a time as it is read.
            let mut body: Vec<u8> = (len >= POOLED_MIN)
                .then(|| self.pool.take(need))
                .flatten()
                .unwrap_or_default();
            body.try_reserve_exact(need.saturating_sub(body.len()))
                .map_err(|_| no_memory())?;
            self.body = Some(body);
            self.start = room;
            self.len = len;
            self.filled = 0;
            self.placing = room > 0;
        }
        while self.filled < self.len {
            let n = self.fill(stream, Some(()))?;
            self.filled += n;
            if self.placing && self.filled == self.len.min(PLACE_PREFIX) {
                self.place();
            }
        }
        self.head_len = 0;
        let (start, len) = (self.start, self.len);
        let mut body = self.body.take().unwrap_or_default();
        body.truncate(start + len);
        Ok(if len >= POOLED_MIN {
            self.pool.lend(body, start)
        } else {
            Bytes::from(body).slice(start..)
        })
    }

    /// Move a large frame's first bytes so that its first large bin starts
    /// on an [`ALIGNMENT`] boundary (they were read at `ALIGNMENT`).
    fn place(&mut self) {
        self.placing = false;
        let Some(body) = self.body.as_mut() else {
            return;
        };
        let first = &body[self.start..self.start + self.filled];
        let Some(at) = simplerpc_core::codec::first_large_bin(first, LARGE_BIN) else {
            return;
        };
        let addr = body.as_ptr() as usize + at;
        let pad = (ALIGNMENT - addr % ALIGNMENT) % ALIGNMENT;
        body.copy_within(self.start..self.start + self.filled, pad);
        self.start = pad;
    }

    /// One read into the prefix (`body: None`) or the body.
    fn fill(&mut self, stream: &mut impl Read, body: Option<()>) -> Result<usize, ReadError> {
        let buf = match body {
            None => &mut self.head[self.head_len..],
            Some(()) => {
                // A large frame not yet placed: its first bytes only.
                let end = if self.placing {
                    self.len.min(PLACE_PREFIX)
                } else {
                    self.len
                };
                // At most a piece at a time: the bytes of it not yet
                // initialized are zeroed just before the read (in the cache).
                let from = self.start + self.filled;
                let to = self.start + end.min(self.filled + PIECE);
                match self.body.as_mut() {
                    Some(b) => {
                        if b.len() < to {
                            b.resize(to, 0);
                        }
                        &mut b[from..to]
                    }
                    None => return Ok(0),
                }
            }
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

    #[test]
    fn a_frame_no_memory_can_hold_is_refused_not_aborted() {
        // Within an unlimited max_message_size: a length whose buffer (with
        // the placing room) overflows, and one no allocator can give.
        for len in [u64::MAX, 1u64 << 60] {
            let head = len.to_le_bytes();
            let mut r = FrameReader::new(usize::MAX);
            match r.read(&mut &head[..]) {
                Err(ReadError::Refused(Error::NoMemory { size })) => assert_eq!(size, len),
                other => panic!("{len}: {other:?}"),
            }
        }
    }

    /// A reader that hands out at most `step` bytes per read, and says
    /// "not now" (a timeout) every other call.
    struct Slow<'a> {
        data: &'a [u8],
        step: usize,
        calls: usize,
    }

    impl Read for Slow<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_large_frame_lands_aligned_and_its_buffer_comes_back() {
        // A msgpack list: a str of `lead` bytes, then a bin of 17 MiB (an
        // array's data, at an odd offset in the frame).
        for (lead, step) in [(3usize, 1usize << 20), (40, 4093), (200, 7)] {
            let n = (17 << 20) + 5;
            let mut msg = vec![0x92, 0xd9, lead as u8];
            msg.extend(std::iter::repeat(b'x').take(lead));
            msg.push(0xc6);
            msg.extend_from_slice(&(n as u32).to_be_bytes());
            let at = msg.len();
            msg.extend((0..n).map(|i| (i % 251) as u8));
            let mut wire = Vec::new();
            write_frame(&mut wire, &[&msg], |_| Ok(())).unwrap();
            let mut r = FrameReader::new(64 << 20);
            // A small step reads the whole 17 MiB only at the end of a long
            // test: the small ones stop after the first 4096 bytes are in
            // and placed, and a large step then reads the rest.
            let mut src = Slow {
                data: &wire,
                step,
                calls: 0,
            };
            let frame = loop {
                match r.read(&mut src) {
                    Ok(f) => break f,
                    Err(ReadError::Retry(_)) => {
                        if r.filled >= PLACE_PREFIX {
                            src.step = 1 << 20;
                        }
                    }
                    Err(e) => panic!("{e:?}"),
                }
            };
            assert_eq!(&frame[..], &msg[..], "lead {lead}");
            assert_eq!((frame.as_ptr() as usize + at) % ALIGNMENT, 0, "lead {lead}");
            let buffer = frame.as_ptr() as usize - r.start;
            drop(frame);
            assert_eq!(r.pool.kept(), 1, "the buffer came back");
            // The next large frame reuses it.
            let again = r.read(&mut &wire[..]).unwrap();
            assert_eq!(&again[..], &msg[..]);
            assert_eq!(again.as_ptr() as usize - r.start, buffer);
            drop(again);
            r.trim();
            assert_eq!(r.pool.kept(), 0);
        }
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
