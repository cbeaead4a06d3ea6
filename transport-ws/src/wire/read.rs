//! Reading WebSocket frames (RFC 6455 §5) from a blocking socket.
//!
//! A message's payload goes into a buffer of its size (a large one with
//! up to a page and a cache line more in front, to place it: see
//! [`PAGE_SKEW`] and [`Align`]), allocated fallibly once its header is read
//! and refused before any allocation when it is over the limit. Large
//! payloads are read from the socket straight into that buffer and unmasked
//! there in cache-sized pieces (a zero-keyed one, as unmasked, in large
//! pieces and left as it is); small frames and headers come through a small
//! fixed buffer. Between messages the reader keeps that small buffer and at
//! most two buffers of 16 to 256 MiB messages (core's
//! [`FramePool`](simplerpc_core::pool::FramePool), let go when the
//! connection idles), so a 1 GiB message leaves nothing behind once its
//! bytes are dropped.
//!
//! A read that times out, would block or is interrupted by a signal loses
//! nothing: the next call goes on where it stopped.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{close_code, mask, opcode, Incoming, WireError};
use simplerpc_core::pool::{FramePool as Pool, POOLED_MIN};

/// The small buffer's size: headers, control frames and small messages.
const BUF: usize = 64 << 10;
/// A payload with at least this much left to read is read straight into
/// its buffer rather than through the small one.
const DIRECT: usize = 16 << 10;
/// How much of a large payload is read at a time: small enough to stay in
/// the CPU's cache between the kernel's copy and an unmasking, and so that
/// the kernel frees the socket's buffers soon and the sender refills them
/// while they are still in cache. Measured on loopback between two CPUs
/// (64 MiB, Rust pair, medians): unmasked reads of 256 KiB against 8 MiB
/// took a download from 3.1 to 4.7-4.9 GB/s and an upload from 2.2-2.3 to
/// 2.8-3.0 GB/s (with writes of at most 1 MiB, see `wire::write`).
const PIECE: usize = 256 << 10;
/// A read that is still receiving one large frame after this long returns a
/// would-block (a retry), so that its caller can do what is due meanwhile:
/// a server tells its client it lives while a slow upload comes in.
const READ_SLICE: Duration = Duration::from_millis(200);

/// The header of the frame being read, and how much of its payload is in.
struct Frame {
    fin: bool,
    opcode: u8,
    key: Option<[u8; 4]>,
    len: usize,
    done: usize,
}

/// A data message (or control frame) being read: its kind and its payload
/// so far: `data[pad..filled]`, in a buffer whose capacity was reserved for
/// all of it, after `pad` bytes that place it in memory (see [`Align`]).
/// `data` may run past `filled` with zeros: room made ready for the next
/// read straight from the socket.
#[derive(Default)]
struct Message {
    text: bool,
    data: Vec<u8>,
    pad: usize,
    filled: usize,
}

impl Message {
    /// The payload so far.
    fn len(&self) -> usize {
        self.filled - self.pad
    }

    /// Append `src` after what is filled.
    fn put(&mut self, src: &[u8]) {
        let at = self.filled;
        if self.data.len() < at + src.len() {
            self.data.truncate(at);
            self.data.extend_from_slice(src);
        } else {
            self.data[at..at + src.len()].copy_from_slice(src);
        }
        self.filled += src.len();
    }

    /// Room for `want` more bytes after what is filled, zeroed once (a
    /// piece read short keeps the rest of its room for the next read).
    fn room(&mut self, want: usize) -> &mut [u8] {
        let end = self.filled + want;
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        &mut self.data[self.filled..end]
    }

    /// The payload. A large one is lent from `pool`: its buffer goes back
    /// there when the last of its bytes are dropped.
    fn finish(mut self, pool: &Pool) -> Bytes {
        self.data.truncate(self.filled);
        let pad = self.pad;
        // (A message a little under POOLED_MIN has a buffer over it, for
        // the placing room: not kept, as no message that size takes one.)
        if self.filled - pad >= POOLED_MIN {
            pool.lend(self.data, pad)
        } else {
            Bytes::from(self.data).slice(pad..)
        }
    }
}

/// Where in a message's first bytes the data a reader should align begins
/// (see [`simplerpc_core::codec::first_large_bin`]); `None`: nothing to align.
pub(crate) type Align = fn(&[u8]) -> Option<usize>;

/// Messages at least this large are placed so that the data [`Align`] finds
/// starts on a [`ALIGNMENT`]-byte boundary.
const ALIGN_MIN: usize = 1 << 20;
/// The boundary: a cache line, enough for every numpy dtype.
const ALIGNMENT: usize = 64;
/// How much of a large message's first bytes [`Align`] looks at.
const ALIGN_PREFIX: usize = 4096;
/// A page, as the kernel's copies see it.
const PAGE: usize = 4096;
/// Where in a page a large message's payload lands, counted from where the
/// sender's bytes most likely sit in the kernel's buffers (its frame header
/// at the start of a page): half a page away.
///
/// Over loopback the kernel copies from the pages the sender's bytes were
/// copied into, and the two sides' page offsets differ by the same amount
/// over the whole message. When the destination sits a few bytes to either
/// side of the source within a page, every load of the copy waits on the
/// store before it (4K aliasing): measured on this machine kind, a 64 MiB
/// message was read at 2.6 GB/s with the two 6 bytes apart and at 4.6-5.5
/// GB/s with them 32 bytes or more apart. Half a page keeps it clear of
/// that however the guess is off by a few hundred bytes.
const PAGE_SKEW: usize = PAGE / 2;

/// Reads frames and puts messages together.
pub(crate) struct Reader {
    /// Frames from the peer are masked (we are the server).
    masked: bool,
    max_message: usize,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    frame: Option<Frame>,
    message: Option<Message>,
    /// A control frame's payload so far (at most 125 bytes).
    control: Message,
    /// When the peer last sent anything.
    last_heard: Instant,
    /// When the current [`Reader::read`] began (see [`READ_SLICE`]).
    slice_began: Instant,
    /// How to place a large message in memory, if at all.
    align: Option<Align>,
    /// Buffers of large messages, for the next ones.
    pool: Pool,
}

impl Reader {
    /// A reader for a server (`masked`: the client masks its frames) or a
    /// client, refusing messages over `max_message` bytes. `leftover`: bytes
    /// read past the end of the handshake, the start of the first frame.
    pub(crate) fn new(masked: bool, max_message: usize, leftover: &[u8]) -> Reader {
        let mut buf = vec![0u8; BUF.max(leftover.len())].into_boxed_slice();
        buf[..leftover.len()].copy_from_slice(leftover);
        Reader {
            masked,
            max_message,
            buf,
            start: 0,
            end: leftover.len(),
            frame: None,
            message: None,
            control: Message::default(),
            last_heard: Instant::now(),
            slice_began: Instant::now(),
            align: None,
            pool: Pool::default(),
        }
    }

    /// Let the buffers kept for large messages go (the connection idles).
    pub(crate) fn trim(&self) {
        self.pool.trim();
    }

    /// Place each large message so that the data `align` finds in its
    /// first bytes is aligned in memory.
    pub(crate) fn set_align(&mut self, align: Align) {
        self.align = Some(align);
    }

    /// When bytes last arrived (or the reader was made).
    pub(crate) fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Whether a frame is partly read (more of it is on its way).
    pub(crate) fn mid_frame(&self) -> bool {
        self.frame.is_some() || self.message.is_some() || self.start < self.end
    }

    /// Read until a message or control frame is complete.
    /// A read that has spent [`READ_SLICE`] inside one large frame returns
    /// a would-block; the next call goes on where it stopped.
    pub(crate) fn read(&mut self, r: &mut impl Read) -> Result<Incoming, WireError> {
        self.slice_began = Instant::now();
        loop {
            if self.frame.is_none() && !self.parse_header()? {
                self.fill(r)?;
                continue;
            }
            if let Some(done) = self.read_payload(r)? {
                return Ok(done);
            }
        }
    }

    /// Read more bytes into the small buffer.
    fn fill(&mut self, r: &mut impl Read) -> Result<(), WireError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = r.read(&mut self.buf[self.end..]).map_err(WireError::Io)?;
        if n == 0 {
            return Err(WireError::Eof {
                mid_frame: self.mid_frame(),
            });
        }
        self.end += n;
        self.last_heard = Instant::now();
        Ok(())
    }

    /// Parse a frame header from the small buffer; `false` if it is not all there.
    fn parse_header(&mut self) -> Result<bool, WireError> {
        let have = &self.buf[self.start..self.end];
        if have.len() < 2 {
            return Ok(false);
        }
        let (b0, b1) = (have[0], have[1]);
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = 2 + ext + if masked { 4 } else { 0 };
        if have.len() < need {
            return Ok(false);
        }
        let len = match ext {
            0 => u64::from(len7),
            2 => u64::from(u16::from_be_bytes([have[2], have[3]])),
            _ => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&have[2..10]);
                u64::from_be_bytes(b)
            }
        };
        let key = masked.then(|| {
            let k = &have[2 + ext..need];
            [k[0], k[1], k[2], k[3]]
        });
        let fin = b0 & 0x80 != 0;
        let op = b0 & 0x0f;
        if b0 & 0x70 != 0 {
            return Err(WireError::protocol("a frame has reserved bits set"));
        }
        if masked != self.masked {
            return Err(WireError::protocol(if self.masked {
                "a frame from the client is not masked"
            } else {
                "a frame from the server is masked"
            }));
        }
        // The all-zero key (our client's over loopback and TLS) changes no
        // byte: its payload is read as an unmasked one, in large pieces.
        let key = key.filter(|k| *k != [0; 4]);
        if len >> 63 != 0 {
            return Err(WireError::protocol("a frame length has its top bit set"));
        }
        let control = op & 0x08 != 0;
        match op {
            opcode::CONTINUATION if self.message.is_none() => {
                return Err(WireError::protocol("a continuation frame with no message"))
            }
            opcode::TEXT | opcode::BINARY if self.message.is_some() => {
                return Err(WireError::protocol(
                    "a new message began before the last one ended",
                ))
            }
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                if !fin {
                    return Err(WireError::protocol("a fragmented control frame"));
                }
                if len > 125 {
                    return Err(WireError::protocol("a control frame over 125 bytes"));
                }
            }
            _ => return Err(WireError::protocol("a frame with an unknown opcode")),
        }
        if !control {
            let so_far = self.message.as_ref().map_or(0, Message::len) as u64;
            let size = so_far.saturating_add(len);
            if size > self.max_message as u64 {
                return Err(WireError::TooBig {
                    size,
                    max: self.max_message,
                });
            }
            let len = len as usize;
            // A large message is placed in its buffer (see PAGE_SKEW).
            let placed = self.message.is_none() && len >= ALIGN_MIN;
            // The first bytes of the payload, if they came with the header.
            let align = match self.align {
                Some(find) if placed => {
                    let prefix = &self.buf[self.start + need..self.end];
                    let prefix = &prefix[..prefix.len().min(len).min(ALIGN_PREFIX)];
                    match key {
                        Some(k) => {
                            let mut plain = prefix.to_vec();
                            mask::apply(&mut plain, k, 0);
                            find(&plain)
                        }
                        None => find(prefix),
                    }
                }
                _ => None,
            };
            let room = if placed { PAGE + ALIGNMENT } else { 0 };
            // A large message goes into a buffer an earlier one left, if
            // one fits: no fresh memory to fault in.
            let pooled = match &self.message {
                None if len >= POOLED_MIN => self.pool.take(len + room),
                _ => None,
            };
            let message = self.message.get_or_insert_with(|| Message {
                text: op == opcode::TEXT,
                data: pooled.unwrap_or_default(),
                ..Message::default()
            });
            let total = message.filled + len + room;
            let more = total.saturating_sub(message.data.len());
            if message.data.try_reserve_exact(more).is_err() {
                return Err(WireError::NoMemory {
                    size: so_far as usize + len,
                });
            }
            if placed {
                // The payload's first byte half a page from the header's
                // (this read's first byte, most likely at a page's start),
                // then on to the next ALIGNMENT boundary for `align`'s data.
                let base = message.data.as_ptr() as usize;
                let mut pad = (need + PAGE_SKEW + PAGE - base % PAGE) % PAGE;
                if let Some(at) = align {
                    let addr = base + pad + at;
                    pad += (ALIGNMENT - addr % ALIGNMENT) % ALIGNMENT;
                }
                message.pad = pad;
                if message.data.len() < message.pad {
                    message.data.resize(message.pad, 0);
                }
                message.filled = message.pad;
            }
        } else {
            self.control = Message::default();
        }
        self.start += need;
        self.frame = Some(Frame {
            fin,
            opcode: op,
            key,
            len: len as usize,
            done: 0,
        });
        Ok(true)
    }

    /// Read the current frame's payload; `Some` when it completes a message
    /// or is a control frame.
    fn read_payload(&mut self, r: &mut impl Read) -> Result<Option<Incoming>, WireError> {
        loop {
            let Some(f) = self.frame.as_ref() else {
                return Ok(None);
            };
            let (left, done, key) = (f.len - f.done, f.done, f.key);
            let is_control = f.opcode & 0x08 != 0;
            if left == 0 {
                break;
            }
            let buffered = self.end - self.start;
            if buffered == 0 && left < DIRECT {
                self.fill(r)?;
                continue;
            }
            let into: &mut Message = if is_control {
                &mut self.control
            } else {
                match self.message.as_mut() {
                    Some(m) => m,
                    None => return Err(WireError::protocol("internal: no message")),
                }
            };
            let at = into.filled;
            let n = if buffered > 0 {
                let n = buffered.min(left);
                into.put(&self.buf[self.start..self.start + n]);
                self.start += n;
                n
            } else {
                // Straight from the socket into the reserved capacity, a
                // cache-sized piece at a time (unmasked, if it must be,
                // while still in the cache).
                let want = left.min(PIECE);
                let got = r.read(into.room(want)).map_err(WireError::Io)?;
                if got == 0 {
                    return Err(WireError::Eof { mid_frame: true });
                }
                into.filled += got;
                self.last_heard = Instant::now();
                got
            };
            if let Some(key) = key {
                mask::apply(&mut into.data[at..at + n], key, done);
            }
            if let Some(f) = self.frame.as_mut() {
                f.done += n;
                if f.done < f.len && self.last_heard.duration_since(self.slice_began) >= READ_SLICE
                {
                    return Err(WireError::Io(io::ErrorKind::WouldBlock.into()));
                }
            }
        }
        let Some(frame) = self.frame.take() else {
            return Ok(None);
        };
        match frame.opcode {
            opcode::PING => Ok(Some(Incoming::Ping(
                std::mem::take(&mut self.control)
                    .finish(&self.pool)
                    .to_vec(),
            ))),
            opcode::PONG => Ok(Some(Incoming::Pong)),
            opcode::CLOSE => {
                close_frame(&std::mem::take(&mut self.control).finish(&self.pool)).map(Some)
            }
            _ if !frame.fin => Ok(None),
            _ => {
                let Some(m) = self.message.take() else {
                    return Ok(None);
                };
                let text = m.text;
                let data = m.finish(&self.pool);
                if text && std::str::from_utf8(&data).is_err() {
                    return Err(WireError::Protocol {
                        code: 1007,
                        reason: "a text message is not UTF-8".into(),
                    });
                }
                Ok(Some(Incoming::Message(data)))
            }
        }
    }
}

/// A close frame's status code and reason (RFC 6455 §5.5.1, §7.4).
fn close_frame(payload: &[u8]) -> Result<Incoming, WireError> {
    match payload.len() {
        0 => Ok(Incoming::Close(None)),
        1 => Err(WireError::protocol("a close frame of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(WireError::protocol("a close frame with an invalid code"));
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| WireError::Protocol {
                code: 1007,
                reason: "a close reason is not UTF-8".into(),
            })?;
            Ok(Incoming::Close(Some((code, reason.to_owned()))))
        }
    }
}

impl WireError {
    fn protocol(reason: &str) -> WireError {
        WireError::Protocol {
            code: close_code::PROTOCOL,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::write::header;
    use super::*;
    use std::io::{self, Cursor};

    fn frame(fin: bool, op: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
        let (h, n) = header(fin, op, payload.len(), key);
        let mut out = h[..n].to_vec();
        let at = out.len();
        out.extend_from_slice(payload);
        if let Some(k) = key {
            mask::apply(&mut out[at..], k, 0);
        }
        out
    }

    /// A reader that hands out at most `step` bytes per read, and a
    /// `WouldBlock` every other call: a slow, non-blocking socket.
    struct Trickle {
        data: Cursor<Vec<u8>>,
        step: usize,
        calls: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step);
            self.data.read(&mut buf[..n])
        }
    }

    fn read_all(wire: Vec<u8>, masked: bool, step: usize) -> Vec<Incoming> {
        let mut r = Reader::new(masked, 1 << 30, &[]);
        let mut t = Trickle {
            data: Cursor::new(wire),
            step,
            calls: 0,
        };
        let mut got = Vec::new();
        loop {
            match r.read(&mut t) {
                Ok(m) => got.push(m),
                Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(WireError::Eof { mid_frame: false }) => return got,
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn messages_survive_any_split_and_fragmentation() {
        let big: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
        for key in [None, Some([1, 2, 3, 4])] {
            let mut wire = frame(true, opcode::BINARY, b"hello", key);
            wire.extend(frame(false, opcode::BINARY, &big[..100_000], key));
            wire.extend(frame(true, opcode::PING, b"p", key));
            wire.extend(frame(
                false,
                opcode::CONTINUATION,
                &big[100_000..200_001],
                key,
            ));
            wire.extend(frame(true, opcode::CONTINUATION, &big[200_001..], key));
            wire.extend(frame(true, opcode::TEXT, "é".as_bytes(), key));
            wire.extend(frame(true, opcode::CLOSE, b"\x03\xe8bye", key));
            for step in [1, 7, 1000, 1 << 20] {
                let got = read_all(wire.clone(), key.is_some(), step);
                assert_eq!(got.len(), 5, "step {step}");
                assert!(matches!(&got[0], Incoming::Message(m) if m.as_ref() == b"hello"));
                assert!(matches!(&got[1], Incoming::Ping(p) if p == b"p"));
                assert!(matches!(&got[2], Incoming::Message(m) if m.as_ref() == big.as_slice()));
                assert!(matches!(&got[3], Incoming::Message(m) if m.as_ref() == "é".as_bytes()));
                assert!(
                    matches!(&got[4], Incoming::Close(Some((1000, r))) if r == "bye"),
                    "{:?}",
                    got[4]
                );
            }
        }
    }

    #[test]
    fn zero_keyed_frames_read_back_among_random_keyed_ones() {
        // Our client's all-zero key, frame by frame among other keys (as a
        // peer may mix them): fragments, a control frame between them, a
        // large message placed for alignment; the server reads each frame
        // with its own key.
        let big: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
        let (zero, other) = (Some([0u8; 4]), Some([5u8, 6, 7, 8]));
        let mut wire = frame(false, opcode::BINARY, &big[..70_000], zero);
        wire.extend(frame(true, opcode::PING, b"p", zero));
        wire.extend(frame(
            false,
            opcode::CONTINUATION,
            &big[70_000..150_001],
            other,
        ));
        wire.extend(frame(true, opcode::CONTINUATION, &big[150_001..], zero));
        wire.extend(frame(true, opcode::CLOSE, b"\x03\xe8bye", zero));
        for step in [1, 7, 1000, 1 << 20] {
            let got = read_all(wire.clone(), true, step);
            assert_eq!(got.len(), 3, "step {step}");
            assert!(matches!(&got[0], Incoming::Ping(p) if p == b"p"));
            assert!(matches!(&got[1], Incoming::Message(m) if m.as_ref() == big.as_slice()));
            assert!(matches!(&got[2], Incoming::Close(Some((1000, r))) if r == "bye"));
        }
        let mut payload: Vec<u8> = (0..(3usize << 20) + 5).map(|i| (i % 251) as u8).collect();
        payload[0] = 20;
        let mut r = Reader::new(true, 1 << 30, &[]);
        r.set_align(|p| Some(p[0] as usize % 64));
        let mut src = Cursor::new(frame(true, opcode::BINARY, &payload, zero));
        let got = loop {
            match r.read(&mut src) {
                Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => break other.unwrap(),
            }
        };
        match got {
            Incoming::Message(m) => {
                assert_eq!(m.as_ref(), payload.as_slice());
                assert_eq!((m.as_ptr() as usize + 20) % ALIGNMENT, 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_large_message_is_placed_so_that_its_data_is_aligned() {
        let payload: Vec<u8> = (0..(3usize << 20) + 5).map(|i| (i % 251) as u8).collect();
        for (at, key) in [0usize, 1, 7, 20, 63, 4000]
            .into_iter()
            .flat_map(|at| [(at, None), (at, Some([9, 8, 7, 6]))])
        {
            let mut payload = payload.clone();
            payload[0] = at as u8;
            let wire = frame(true, opcode::BINARY, &payload, key);
            let mut r = Reader::new(key.is_some(), 1 << 30, &[]);
            r.set_align(if at == 4000 {
                |_| Some(4000)
            } else {
                |p| Some(p[0] as usize % 64)
            });
            // The first byte says where the data to align is (0..63 here):
            // the hook must see it unmasked.
            let want = payload.clone();
            let mut src = Cursor::new(wire);
            // A slow (debug, loaded) read may stop at READ_SLICE: go on.
            let got = loop {
                match r.read(&mut src) {
                    Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    other => break other.unwrap(),
                }
            };
            match got {
                Incoming::Message(m) => {
                    assert_eq!(m.as_ref(), want.as_slice());
                    let off = if at == 4000 { 4000 } else { at % 64 };
                    assert_eq!((m.as_ptr() as usize + off) % ALIGNMENT, 0, "{at}");
                    // Half a page (to the next alignment boundary) from
                    // where the frame's header would sit in a page.
                    let header = 2 + 8 + if key.is_some() { 4 } else { 0 };
                    let skew = (m.as_ptr() as usize + PAGE - header) % PAGE;
                    assert!(
                        (PAGE_SKEW..PAGE_SKEW + ALIGNMENT).contains(&skew),
                        "{at}: {skew}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn leftover_from_the_handshake_is_read_first() {
        let wire = frame(true, opcode::BINARY, b"abc", None);
        let mut r = Reader::new(false, 100, &wire[..3]);
        let got = r.read(&mut Cursor::new(wire[3..].to_vec())).unwrap();
        assert!(matches!(got, Incoming::Message(m) if m.as_ref() == b"abc"));
    }

    fn first_error(wire: Vec<u8>, masked: bool, max: usize) -> WireError {
        let mut r = Reader::new(masked, max, &[]);
        let mut c = Cursor::new(wire);
        loop {
            match r.read(&mut c) {
                Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {} // a READ_SLICE
                Err(e) => return e,
                Ok(_) => {}
            }
        }
    }

    #[test]
    fn broken_frames_are_refused_with_the_right_code() {
        let k = Some([5, 6, 7, 8]);
        let cases: Vec<(Vec<u8>, bool, u16)> = vec![
            (frame(true, opcode::BINARY, b"x", None), true, 1002), // unmasked from a client
            (frame(true, opcode::BINARY, b"x", k), false, 1002),   // masked from a server
            (vec![0xc2, 0x80, 0, 0, 0, 0], true, 1002),            // reserved bit
            (frame(true, 0x3, b"", k), true, 1002),                // unknown opcode
            (frame(false, opcode::PING, b"", k), true, 1002),      // fragmented control
            (frame(true, opcode::PING, &[0; 126], k), true, 1002), // control too long
            (frame(true, opcode::CONTINUATION, b"x", k), true, 1002),
            (frame(true, opcode::TEXT, &[0xff], k), true, 1007),
            (frame(true, opcode::CLOSE, &[3], k), true, 1002),
            (frame(true, opcode::CLOSE, &[0, 5], k), true, 1002),
        ];
        for (i, (wire, masked, code)) in cases.into_iter().enumerate() {
            match first_error(wire, masked, 1000) {
                WireError::Protocol { code: c, .. } => assert_eq!(c, code, "case {i}"),
                other => panic!("case {i}: {other:?}"),
            }
        }
        let mut two = frame(false, opcode::BINARY, b"x", k);
        two.extend(frame(true, opcode::BINARY, b"y", k));
        assert!(matches!(
            first_error(two, true, 1000),
            WireError::Protocol { code: 1002, .. }
        ));
    }

    #[test]
    fn an_oversized_message_is_refused_before_anything_is_allocated() {
        // A header claiming 2^62 bytes, and no payload at all.
        let mut wire = vec![0x82, 0xff];
        wire.extend_from_slice(&(1u64 << 62).to_be_bytes());
        wire.extend_from_slice(&[1, 2, 3, 4]);
        match first_error(wire, true, 1 << 20) {
            WireError::TooBig { size, max } => {
                assert_eq!(size, 1 << 62);
                assert_eq!(max, 1 << 20);
            }
            other => panic!("{other:?}"),
        }
        // Fragments count together.
        let mut wire = frame(false, opcode::BINARY, &[0; 600], None);
        wire.extend(frame(true, opcode::CONTINUATION, &[0; 600], None));
        assert!(matches!(
            first_error(wire, false, 1000),
            WireError::TooBig { size: 1200, .. }
        ));
    }

    #[test]
    fn a_signal_during_a_large_payload_is_reported() {
        struct Signal {
            data: Cursor<Vec<u8>>,
            calls: usize,
        }
        impl Read for Signal {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.calls += 1;
                match self.calls {
                    // the header alone, then a signal, then nothing yet
                    1 => self.data.read(&mut buf[..10]),
                    2 => Err(io::ErrorKind::Interrupted.into()),
                    _ => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
        let wire = frame(true, opcode::BINARY, &vec![7u8; 100_000], None);
        let mut r = Reader::new(false, 1 << 30, &[]);
        let mut s = Signal {
            data: Cursor::new(wire),
            calls: 0,
        };
        let mut kinds = Vec::new();
        for _ in 0..3 {
            match r.read(&mut s) {
                Err(WireError::Io(e)) => kinds.push(e.kind()),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            kinds.contains(&io::ErrorKind::Interrupted),
            "the signal never surfaced: {kinds:?}"
        );
    }

    #[test]
    fn a_cut_frame_is_an_eof_mid_frame() {
        let wire = frame(true, opcode::BINARY, &[1; 100], None);
        assert!(matches!(
            first_error(wire[..50].to_vec(), false, 1000),
            WireError::Eof { mid_frame: true }
        ));
        assert!(matches!(
            first_error(Vec::new(), false, 1000),
            WireError::Eof { mid_frame: false }
        ));
    }
}
