//! Writing WebSocket frames to a blocking socket with a write timeout.
//!
//! Small frames are copied into a pending buffer and written from it, so a
//! response the peer is not reading yet waits there while the connection
//! goes on (the caller bounds how much may wait). A large frame is written
//! straight from the caller's buffers (the parts of an outgoing frame: its
//! own bytes and the array payloads spliced in): a server, and a client
//! whose frames carry the all-zero key (over loopback and TLS), hands its
//! header and parts to the kernel together (vectored writes); a client with
//! a random key masks them a cache-sized piece at a time into a scratch
//! buffer and writes that, so no buffer ever grows to the frame's size and
//! nothing is joined.

use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

use super::mask::{self, KeySource};
use super::opcode;

/// Frames up to this size go through the pending buffer.
pub(crate) const SMALL: usize = 64 << 10;
/// The pending buffer's capacity is cut back to this once it is written out.
const KEEP: usize = 256 << 10;

/// The header of a frame of `len` bytes: the bytes and how many are used.
pub(crate) fn header(fin: bool, op: u8, len: usize, key: Option<[u8; 4]>) -> ([u8; 14], usize) {
    let mut h = [0u8; 14];
    h[0] = op | if fin { 0x80 } else { 0 };
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    let mut n = if len < 126 {
        h[1] = mask_bit | len as u8;
        2
    } else if len <= 0xffff {
        h[1] = mask_bit | 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = mask_bit | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    if let Some(k) = key {
        h[n..n + 4].copy_from_slice(&k);
        n += 4;
    }
    (h, n)
}

/// A socket error that only means "not now": the write timed out, would
/// block, or a signal interrupted it.
pub(crate) fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Where frames are written: a socket, or TLS over one, which may hold
/// sealed bytes the socket has not taken yet.
pub(crate) trait Sink: Write {
    /// Bytes written here that the socket has not taken yet: progress is
    /// what the socket took, not what was handed over.
    fn held(&self) -> usize {
        0
    }
}

impl Sink for crate::tls::Stream {
    fn held(&self) -> usize {
        self.buffered()
    }
}

impl Sink for Vec<u8> {}

/// Writes frames; masks them when it is a client's.
pub(crate) struct Writer {
    keys: Option<KeySource>,
    pending: Vec<u8>,
    sent: usize,
    /// A close frame was queued: no frame may follow it.
    closed: bool,
    /// A signal interrupted a write since [`Writer::take_interrupted`].
    interrupted: bool,
    /// When the socket last took bytes in the middle of a large message:
    /// past the kernel's buffer, only a peer that reads makes that happen.
    peer_read: Option<Instant>,
    /// Where a client masks a large frame (see [`Writer::write_message`]).
    scratch: Vec<u8>,
    /// A client's frames carry the all-zero masking key (see
    /// [`Writer::use_zero_key`]): masking them changes no byte.
    zero_key: bool,
}

impl Writer {
    /// A writer for a client (`mask`) or a server.
    pub(crate) fn new(mask: bool) -> Writer {
        Writer {
            keys: mask.then(KeySource::new),
            pending: Vec::new(),
            sent: 0,
            closed: false,
            interrupted: false,
            peer_read: None,
            scratch: Vec::new(),
            zero_key: false,
        }
    }

    /// Make a client's frames carry the all-zero masking key, which RFC
    /// 6455 allows as a value (the frame is masked: the server unmasks it as
    /// any other) but which leaves every byte as it is, so that a large
    /// frame goes from the caller's buffers to the socket as a server's
    /// does, with no pass over it. The key's purpose (§10.3) is to keep a
    /// script's chosen bytes from reaching an intermediary that reads clear
    /// text; the caller asks for this only where no such intermediary can
    /// exist: over loopback and under TLS.
    pub(crate) fn use_zero_key(&mut self) {
        self.zero_key = self.keys.is_some();
    }

    /// The masking key of the next frame: none for a server's, all zero or
    /// the next unpredictable one for a client's.
    fn next_key(&mut self) -> Option<[u8; 4]> {
        if self.zero_key {
            return Some([0; 4]);
        }
        self.keys.as_mut().map(KeySource::next_key)
    }

    /// Bytes queued that the socket has not taken yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len() - self.sent
    }

    /// Whether a close frame was queued (nothing more may be sent).
    pub(crate) fn closed(&self) -> bool {
        self.closed
    }

    /// When the peer was last seen reading a large message of ours.
    pub(crate) fn peer_read(&self) -> Option<Instant> {
        self.peer_read
    }

    /// Note a signal that interrupted something else (a read while writing).
    pub(crate) fn note_interrupted(&mut self) {
        self.interrupted = true;
    }

    /// Whether a signal interrupted a write since the last call (the write
    /// went on: a frame cannot be left half written).
    pub(crate) fn take_interrupted(&mut self) -> bool {
        std::mem::take(&mut self.interrupted)
    }

    /// Queue a whole frame (a message of one frame, or a control frame).
    pub(crate) fn queue(&mut self, op: u8, payload: &[u8]) -> io::Result<()> {
        if self.closed {
            return Err(closing());
        }
        if op == opcode::CLOSE {
            self.closed = true;
        }
        let key = self.next_key();
        let (h, n) = header(true, op, payload.len(), key);
        self.pending.extend_from_slice(&h[..n]);
        let at = self.pending.len();
        self.pending.extend_from_slice(payload);
        if let Some(k) = key.filter(|k| *k != [0; 4]) {
            mask::apply(&mut self.pending[at..], k, 0);
        }
        Ok(())
    }

    /// Write what is pending. `Ok(true)`: all of it is out; `Ok(false)`: the
    /// socket would take no more before its write timeout.
    pub(crate) fn flush(&mut self, w: &mut impl Write) -> io::Result<bool> {
        while self.sent < self.pending.len() {
            match w.write(&self.pending[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.interrupted = true,
                Err(e) if is_retry(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        // Under TLS the last records may wait in its buffer: out with them.
        loop {
            match w.flush() {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.interrupted = true,
                Err(e) if is_retry(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.sent = 0;
        if self.pending.capacity() > KEEP {
            self.pending.shrink_to(KEEP);
        }
        Ok(true)
    }

    /// Write a binary message of one frame carrying `parts` joined, after
    /// what is pending. A large one goes straight from `parts` to the socket:
    /// a server's (and a zero-keyed client's) with vectored writes, a
    /// random-keyed client's masked a piece at a time into a cache-sized
    /// scratch buffer and written from there, so no
    /// buffer ever grows to its size, nothing is joined and `parts` are left
    /// as they were. Each time the socket takes nothing within its write
    /// timeout, `stalled` is called with how long it has taken nothing: it
    /// may read meanwhile (so two peers writing large messages to each other
    /// cannot deadlock), and its error gives up (the frame is then cut short,
    /// and the connection must end).
    pub(crate) fn write_message<W: Sink>(
        &mut self,
        w: &mut W,
        parts: &[&[u8]],
        stalled: &mut dyn FnMut(&mut W, Duration) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.closed {
            return Err(closing());
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= SMALL {
            self.queue_parts(opcode::BINARY, parts)?;
            return self.drain(w, stalled);
        }
        self.drain(w, stalled)?;
        let key = self.next_key();
        let (h, hlen) = header(true, opcode::BINARY, len, key);
        let head = &h[..hlen];
        let total = hlen + len;
        let mut progress = Instant::now();
        let mut held = w.held();
        let mut done = 0;
        // A client's frame: bytes [from, to) of it, masked, in the scratch.
        let mut scratch = std::mem::take(&mut self.scratch);
        let (mut from, mut to) = (0, 0);
        let result = loop {
            if done >= total {
                break Ok(());
            }
            let result = match key {
                None | Some([0, 0, 0, 0]) => {
                    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                    let n = slices_from(done, head, parts, &mut slices, WRITE_PIECE);
                    w.write_vectored(&slices[..n])
                }
                Some(k) => {
                    if done == to {
                        scratch.resize(SCRATCH, 0);
                        let n = fill_masked(&mut scratch, done, head, parts, k);
                        (from, to) = (done, done + n);
                    }
                    w.write(&scratch[done - from..to - from])
                }
            };
            match result {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    held = w.held();
                    progress = Instant::now();
                    self.peer_read = Some(progress);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.interrupted = true,
                Err(e) if is_retry(&e) => {
                    // Under TLS the socket may have taken sealed bytes
                    // before the write timed out: that is progress too.
                    let now = w.held();
                    if now < held {
                        progress = Instant::now();
                        self.peer_read = Some(progress);
                    }
                    held = now;
                    if let Err(e) = stalled(w, progress.elapsed()) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.scratch = scratch;
        result?;
        // Under TLS the frame's last records may wait in its buffer.
        self.drain(w, stalled)
    }

    /// Queue a whole binary frame carrying `parts` joined.
    fn queue_parts(&mut self, op: u8, parts: &[&[u8]]) -> io::Result<()> {
        if self.closed {
            return Err(closing());
        }
        let len = parts.iter().map(|p| p.len()).sum();
        let key = self.next_key();
        let (h, n) = header(true, op, len, key);
        self.pending.extend_from_slice(&h[..n]);
        let at = self.pending.len();
        for p in parts {
            self.pending.extend_from_slice(p);
        }
        if let Some(k) = key.filter(|k| *k != [0; 4]) {
            mask::apply(&mut self.pending[at..], k, 0);
        }
        Ok(())
    }

    /// Let the scratch buffer go (when the connection is idle).
    pub(crate) fn trim(&mut self) {
        self.scratch = Vec::new();
    }
}

/// At most this many buffers go to one vectored write.
const MAX_SLICES: usize = 16;
/// A client masks its large frames into a buffer of this size.
const SCRATCH: usize = 256 << 10;

/// At most this many bytes go to one write of a large frame: the kernel
/// copies a piece that fits the CPU's cache, and the reader's side (see
/// `wire::read`'s `PIECE`) takes it while it is there. One write of a whole
/// 64 MiB frame made a transfer over loopback 20-35% slower.
const WRITE_PIECE: usize = 1 << 20;

/// The slices of the frame `head` + `parts` from byte `done` on: at most
/// `out.len()` of them, and at most `max` bytes; returns how many.
fn slices_from<'a>(
    mut done: usize,
    head: &'a [u8],
    parts: &[&'a [u8]],
    out: &mut [IoSlice<'a>],
    mut max: usize,
) -> usize {
    let mut n = 0;
    for p in std::iter::once(head).chain(parts.iter().copied()) {
        if n == out.len() || max == 0 {
            break;
        }
        if done >= p.len() {
            done -= p.len();
            continue;
        }
        let take = (p.len() - done).min(max);
        out[n] = IoSlice::new(&p[done..done + take]);
        max -= take;
        done = 0;
        n += 1;
    }
    n
}

/// Copy the frame `head` + `parts` from byte `at` on into `out`, as much as
/// fits, masking the payload with `key`; returns how many bytes.
fn fill_masked(out: &mut [u8], at: usize, head: &[u8], parts: &[&[u8]], key: [u8; 4]) -> usize {
    let mut skip = at;
    let mut filled = 0;
    // Where the payload begins, in frame bytes.
    let mut pos = 0usize;
    for (i, p) in std::iter::once(head)
        .chain(parts.iter().copied())
        .enumerate()
    {
        if filled == out.len() {
            break;
        }
        let start = pos;
        pos += p.len();
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        let src = &p[skip..];
        let n = src.len().min(out.len() - filled);
        let dst = &mut out[filled..filled + n];
        if i == 0 {
            dst.copy_from_slice(&src[..n]);
        } else {
            mask::copy_masked(dst, &src[..n], key, start + skip - head.len());
        }
        filled += n;
        skip = 0;
    }
    filled
}

impl Writer {
    /// Flush everything pending, calling `stalled` while the socket takes nothing.
    fn drain<W: Sink>(
        &mut self,
        w: &mut W,
        stalled: &mut dyn FnMut(&mut W, Duration) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut left = self.pending() + w.held();
        let mut progress = Instant::now();
        while !self.flush(w)? {
            let now = self.pending() + w.held();
            if now < left {
                left = now;
                progress = Instant::now();
            }
            stalled(w, progress.elapsed())?;
        }
        Ok(())
    }
}

fn closing() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the connection is closing: nothing may be sent after the close frame",
    )
}

#[cfg(test)]
mod tests {
    use super::super::read::Reader;
    use super::super::Incoming;
    use super::*;
    use std::io::Cursor;

    /// A writer that takes at most `step` bytes per call and times out every
    /// third call: a slow peer.
    struct Slow {
        out: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink for Slow {}

    #[test]
    fn what_is_written_reads_back_for_either_role_and_any_size() {
        for client in [false, true] {
            let sizes = [0usize, 5, 125, 126, 65535, 65536, 65537, 300_000];
            let mut w = Writer::new(client);
            let mut sock = Slow {
                out: Vec::new(),
                step: 7000,
                calls: 0,
            };
            let mut stalls = 0;
            for &len in &sizes {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                w.write_message(&mut sock, &[&payload], &mut |_, _| {
                    stalls += 1;
                    Ok(())
                })
                .unwrap();
            }
            w.queue(opcode::PING, b"hi").unwrap();
            while !w.flush(&mut sock).unwrap() {}
            assert!(stalls > 0);
            let mut r = Reader::new(client, 1 << 20, &[]);
            let mut c = Cursor::new(sock.out);
            for &len in &sizes {
                let want: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                match r.read(&mut c).unwrap() {
                    Incoming::Message(m) => assert_eq!(m.as_ref(), want.as_slice(), "{len}"),
                    other => panic!("{other:?}"),
                }
            }
            assert!(matches!(r.read(&mut c).unwrap(), Incoming::Ping(p) if p == b"hi"));
        }
    }

    #[test]
    fn a_message_in_parts_reads_back_joined_for_either_role() {
        // Parts of every kind of size, empty ones included, crossing the
        // scratch buffer's size more than once.
        let cuts = [0usize, 3, 3, 70_000, 70_001, 400_000, 400_000, 900_005];
        let whole: Vec<u8> = (0..*cuts.last().unwrap())
            .map(|i| (i % 253) as u8)
            .collect();
        let parts: Vec<&[u8]> = cuts.windows(2).map(|w| &whole[w[0]..w[1]]).collect();
        for client in [false, true] {
            let mut w = Writer::new(client);
            let mut sock = Slow {
                out: Vec::new(),
                step: 50_000,
                calls: 0,
            };
            w.write_message(&mut sock, &parts, &mut |_, _| Ok(()))
                .unwrap();
            // A small message in parts goes through the pending buffer.
            w.write_message(&mut sock, &[b"ab", b"", b"c"], &mut |_, _| Ok(()))
                .unwrap();
            let mut r = Reader::new(client, 1 << 21, &[]);
            let mut c = Cursor::new(sock.out);
            match r.read(&mut c).unwrap() {
                Incoming::Message(m) => assert!(m.as_ref() == whole.as_slice(), "client {client}"),
                other => panic!("{other:?}"),
            }
            assert!(
                matches!(r.read(&mut c).unwrap(), Incoming::Message(m) if m.as_ref() == b"abc")
            );
        }
    }

    #[test]
    fn tungstenite_reads_what_a_server_writes() {
        use tungstenite::protocol::Role;
        use tungstenite::{Message, WebSocket};
        for len in [0usize, 5, 126, 65536, 300_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 249) as u8).collect();
            let want = payload.clone();
            let mut wire = Vec::new();
            Writer::new(false)
                .write_message(&mut wire, &[&payload], &mut |_, _| Ok(()))
                .unwrap();
            let mut ws = WebSocket::from_raw_socket(Cursor::new(wire), Role::Client, None);
            match ws.read().unwrap() {
                Message::Binary(got) => assert_eq!(got.as_ref(), want.as_slice(), "{len}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn tungstenite_reads_what_a_client_writes() {
        use tungstenite::protocol::Role;
        use tungstenite::{Message, WebSocket};
        for len in [3usize, 70_000, 300_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 247) as u8).collect();
            let want = payload.clone();
            let mut wire = Vec::new();
            Writer::new(true)
                .write_message(&mut wire, &[&payload], &mut |_, _| Ok(()))
                .unwrap();
            let mut ws = WebSocket::from_raw_socket(Cursor::new(wire), Role::Server, None);
            match ws.read().unwrap() {
                Message::Binary(got) => assert_eq!(got.as_ref(), want.as_slice(), "{len}"),
                other => panic!("{other:?}"),
            }
        }
    }

    /// A sink like TLS': it takes everything at once into a buffer of its
    /// own, which its socket drains `step` bytes per flush (a slow but
    /// live peer), timing out until it is empty.
    struct Held {
        held: usize,
        step: usize,
        out: usize,
    }

    impl Write for Held {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.held > 0 {
                self.flush()?;
            }
            self.held += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            let n = self.held.min(self.step);
            self.held -= n;
            self.out += n;
            if self.held > 0 {
                return Err(io::ErrorKind::TimedOut.into());
            }
            Ok(())
        }
    }

    impl Sink for Held {
        fn held(&self) -> usize {
            self.held
        }
    }

    #[test]
    fn bytes_the_socket_takes_from_tls_buffer_count_as_progress() {
        // A small message (through the queue, then drained) and a large
        // one: each takes ~30 stalls of 5 ms to go out, far longer than
        // the 60 ms without progress that gives up on a peer; the peer
        // takes bytes at every stall, so neither gives up.
        for len in [60_000usize, 300_000] {
            let mut sock = Held {
                held: 0,
                step: len / 30,
                out: 0,
            };
            let mut w = Writer::new(false);
            let payload = vec![7u8; len];
            w.write_message(&mut sock, &[&payload], &mut |_, idle| {
                if idle >= Duration::from_millis(60) {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no progress"));
                }
                std::thread::sleep(Duration::from_millis(5));
                Ok(())
            })
            .unwrap();
            while !w.flush(&mut sock).unwrap() {}
            assert_eq!(sock.out, header(true, opcode::BINARY, len, None).1 + len);
        }
    }

    #[test]
    fn a_zero_key_frame_is_masked_and_carries_its_bytes_as_they_are() {
        use tungstenite::protocol::Role;
        use tungstenite::{Message, WebSocket};
        for len in [3usize, 70_000, 300_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 241) as u8 + 1).collect();
            let parts: Vec<&[u8]> = payload.chunks(100_000).collect();
            for zero in [true, false] {
                let mut w = Writer::new(true);
                if zero {
                    w.use_zero_key();
                }
                let mut wire = Vec::new();
                w.write_message(&mut wire, &parts, &mut |_, _| Ok(()))
                    .unwrap();
                // The mask bit is set and the key follows the length.
                assert_eq!(wire[1] & 0x80, 0x80, "{len}");
                let at = match wire[1] & 0x7f {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                };
                let (key, body) = wire[at..].split_at(4);
                assert_eq!(key == [0; 4], zero, "{len}");
                // All zero: the payload is the caller's bytes; else masked.
                assert_eq!(body == payload.as_slice(), zero, "{len}");
                // Both read back, by our server's reader and by tungstenite.
                let mut r = Reader::new(true, 1 << 20, &[]);
                match r.read(&mut Cursor::new(wire.clone())).unwrap() {
                    Incoming::Message(m) => assert!(m.as_ref() == payload.as_slice(), "{len}"),
                    other => panic!("{other:?}"),
                }
                let mut ws = WebSocket::from_raw_socket(Cursor::new(wire), Role::Server, None);
                match ws.read().unwrap() {
                    Message::Binary(got) => assert!(got.as_ref() == payload.as_slice(), "{len}"),
                    other => panic!("{other:?}"),
                }
            }
        }
        // A server's writer has no key to make zero.
        let mut w = Writer::new(false);
        w.use_zero_key();
        let mut wire = Vec::new();
        w.write_message(&mut wire, &[b"abc"], &mut |_, _| Ok(()))
            .unwrap();
        assert_eq!(wire, [0x82, 3, b'a', b'b', b'c']);
    }

    /// Takes everything it is given, and notes the largest write.
    #[derive(Default)]
    struct Greedy {
        out: Vec<u8>,
        largest: usize,
    }

    impl Write for Greedy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let n: usize = bufs.iter().map(|b| b.len()).sum();
            for b in bufs {
                self.out.extend_from_slice(b);
            }
            self.largest = self.largest.max(n);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink for Greedy {}

    #[test]
    fn a_large_frame_goes_out_a_piece_at_a_time_even_to_a_greedy_socket() {
        let whole: Vec<u8> = (0..3 * WRITE_PIECE + 12_345)
            .map(|i| (i % 239) as u8)
            .collect();
        // Parts larger and smaller than a piece, cut anywhere.
        let parts: Vec<&[u8]> = vec![&whole[..10], &whole[10..2_500_000], &whole[2_500_000..]];
        for zero_key_client in [false, true] {
            let mut w = Writer::new(zero_key_client);
            if zero_key_client {
                w.use_zero_key();
            }
            let mut sock = Greedy::default();
            w.write_message(&mut sock, &parts, &mut |_, _| Ok(()))
                .unwrap();
            assert!(sock.largest <= WRITE_PIECE, "{}", sock.largest);
            let mut r = Reader::new(zero_key_client, 1 << 23, &[]);
            match r.read(&mut Cursor::new(sock.out)).unwrap() {
                Incoming::Message(m) => assert!(m.as_ref() == whole.as_slice()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn nothing_follows_a_close_frame() {
        let mut w = Writer::new(false);
        w.queue(opcode::CLOSE, &[3, 232]).unwrap();
        assert!(w.queue(opcode::PING, b"").is_err());
        assert!(w
            .write_message(&mut Vec::new(), &[&[1, 2, 3]], &mut |_, _| Ok(()))
            .is_err());
    }
}
