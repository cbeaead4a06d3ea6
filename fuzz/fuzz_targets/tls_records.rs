//! The TLS record layer reading hostile records: sealed with the right
//! keys (so that their contents get past the tag check) but of any type,
//! size, padding and order, mixed with raw bytes, corrupted records, key
//! updates, close_notify and a cut, read through buffers of any size (the
//! inbox and the direct read). It may fail, never panic or hang, and what
//! it delivers is always a prefix of the application data sealed, and
//! nothing from the first bad byte or close_notify on; an error stays.
//!
//! Input: a byte of setup (bits 0-1: the suite, `simplerpc_ws::fuzzing::
//! SUITES`; bit 2: a client; bit 3: the first records come with the
//! handshake), a byte of read size (high bit: 64 KiB, a direct read; else
//! 1 to 128 bytes), then operations, each an opcode byte (low three bits)
//! and its arguments.

#![no_main]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use simplerpc_fuzz::Input;
use simplerpc_ws::fuzzing;

/// The largest plaintext of a record.
const MAX_PLAIN: usize = 1 << 14;

/// The peer's side: seals records with the keys the stream expects.
struct Sealer {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    tls13: bool,
    chacha: bool,
    generation: u8,
}

impl Sealer {
    fn new(suite: u8) -> Sealer {
        let s = fuzzing::SUITES[usize::from(suite % 4)];
        let chacha = suite % 2 == 1;
        let mut sealer = Sealer {
            key: key(chacha, 0),
            iv: fuzzing::keys(0).1,
            seq: 0,
            tls13: s.version().version == rustls::ProtocolVersion::TLSv1_3,
            chacha,
            generation: 0,
        };
        sealer.rekey(0);
        sealer
    }

    fn rekey(&mut self, generation: u8) {
        self.generation = generation;
        self.key = key(self.chacha, generation);
        self.iv = fuzzing::keys(generation).1;
        self.seq = 0;
    }

    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// What the stream makes of a record [`Sealer::seal`] seals with
    /// these arguments: its application data, if it is that.
    fn data(&self, typ: u8, content: &[u8], pad: usize, raw_inner: bool) -> Option<Vec<u8>> {
        if !self.tls13 {
            return (typ == 23).then(|| content.to_vec());
        }
        let mut inner = content.to_vec();
        if !raw_inner {
            inner.push(typ);
            inner.resize(inner.len() + pad, 0);
        }
        let at = inner.iter().rposition(|&b| b != 0)?;
        (inner[at] == 23).then(|| inner[..at].to_vec())
    }

    /// A record of type `typ` with `content` and (TLS 1.3) `pad` zeros;
    /// `raw_inner`: (TLS 1.3) `content` is the whole inner plaintext.
    fn seal(&mut self, typ: u8, content: &[u8], pad: usize, raw_inner: bool) -> Vec<u8> {
        let nonce = self.nonce();
        self.seq += 1;
        if self.tls13 {
            let mut body = content.to_vec();
            if !raw_inner {
                body.push(typ);
                body.resize(body.len() + pad, 0);
            }
            let len = (body.len() + 16).min(0xffff) as u16;
            let mut rec = vec![23, 3, 3];
            rec.extend_from_slice(&len.to_be_bytes());
            let aad = Aad::from([23, 3, 3, rec[3], rec[4]]);
            self.key
                .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut body)
                .unwrap();
            rec.extend_from_slice(&body);
            return rec;
        }
        let explicit = if self.chacha { 0 } else { 8 };
        let len = (explicit + content.len() + 16).min(0xffff) as u16;
        let mut rec = vec![typ, 3, 3];
        rec.extend_from_slice(&len.to_be_bytes());
        if !self.chacha {
            rec.extend_from_slice(&nonce[4..]);
        }
        let mut aad = self.seq.wrapping_sub(1).to_be_bytes().to_vec();
        aad.extend_from_slice(&[typ, 3, 3]);
        aad.extend_from_slice(&(content.len() as u16).to_be_bytes());
        let mut body = content.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .unwrap();
        rec.extend_from_slice(&body);
        rec
    }
}

fn key(chacha: bool, generation: u8) -> LessSafeKey {
    let alg = if chacha {
        &aead::CHACHA20_POLY1305
    } else {
        &aead::AES_256_GCM
    };
    LessSafeKey::new(UnboundKey::new(alg, &fuzzing::keys(generation).0).unwrap())
}

/// A connected pair of sockets on the loopback: (ours, the peer's).
fn pair() -> (TcpStream, TcpStream) {
    static LISTENER: OnceLock<TcpListener> = OnceLock::new();
    let l = LISTENER.get_or_init(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let ours = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (peer, _) = l.accept().unwrap();
    (ours, peer)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let setup = input.byte().unwrap_or(0);
    let size = input.byte().unwrap_or(0);
    let step = if size & 0x80 != 0 {
        64 << 10
    } else {
        usize::from(size) + 1
    };
    let mut sealer = Sealer::new(setup);
    let mut out: Vec<u8> = Vec::new();
    // The application data sealed, in order; how much of it may arrive
    // (up to the first bad byte or close_notify).
    let mut expected: Vec<u8> = Vec::new();
    let mut limit: Option<usize> = None;
    let mut ops = 0;
    while let Some(op) = input.byte() {
        ops += 1;
        if ops > 64 || out.len() > (1 << 20) {
            break;
        }
        let arg = |input: &mut Input| input.byte().unwrap_or(0);
        match op & 7 {
            // A record of any type with content from the input.
            0 | 1 => {
                let typ = arg(&mut input);
                let n = usize::from(arg(&mut input));
                let content: Vec<u8> = (0..n).map(|_| arg(&mut input)).collect();
                let pad = if op & 1 == 1 {
                    usize::from(arg(&mut input))
                } else {
                    0
                };
                expected.extend(sealer.data(typ, &content, pad, false).unwrap_or_default());
                out.extend(sealer.seal(typ, &content, pad, false));
            }
            // A large record: a filler byte up to a length near the limits.
            2 => {
                let typ = arg(&mut input);
                let fill = arg(&mut input);
                let len = usize::from(u16::from_le_bytes([arg(&mut input), arg(&mut input)]))
                    % (MAX_PLAIN + 64);
                let pad = usize::from(arg(&mut input)) * usize::from(op >> 7);
                let content = vec![fill; len];
                expected.extend(sealer.data(typ, &content, pad, false).unwrap_or_default());
                out.extend(sealer.seal(typ, &content, pad, false));
            }
            // A key update, then the next keys (TLS 1.2 refuses it).
            3 => {
                let request = arg(&mut input) & 1;
                out.extend(sealer.seal(22, &[24, 0, 0, 1, request], 0, false));
                if sealer.tls13 {
                    let g = sealer.generation.wrapping_add(1);
                    sealer.rekey(g);
                } else {
                    limit.get_or_insert(expected.len());
                }
            }
            // Raw bytes: nothing after them can pass.
            4 => {
                let n = usize::from(arg(&mut input));
                if n > 0 {
                    limit.get_or_insert(expected.len());
                }
                out.extend((0..n).map(|_| arg(&mut input)));
            }
            // A record with one byte changed.
            5 => {
                let n = usize::from(arg(&mut input));
                let content: Vec<u8> = (0..n).map(|_| arg(&mut input)).collect();
                let at = usize::from(arg(&mut input));
                let flip = arg(&mut input) | 1;
                let mut rec = sealer.seal(23, &content, 0, false);
                let at = at % rec.len();
                rec[at] ^= flip;
                limit.get_or_insert(expected.len());
                out.extend(rec);
            }
            // A TLS 1.3 inner plaintext as it comes (type and padding).
            6 => {
                let n = usize::from(arg(&mut input));
                let inner: Vec<u8> = (0..n).map(|_| arg(&mut input)).collect();
                expected.extend(sealer.data(23, &inner, 0, true).unwrap_or_default());
                out.extend(sealer.seal(23, &inner, 0, true));
            }
            // close_notify, or a cut: nothing after it arrives.
            _ => {
                let cut = usize::from(arg(&mut input));
                limit.get_or_insert(expected.len());
                if cut == 0 {
                    out.extend(sealer.seal(21, &[1, 0], 0, false));
                } else {
                    out.truncate(out.len().saturating_sub(cut));
                    break;
                }
            }
        }
    }
    let limit = limit.unwrap_or(expected.len());

    // The first records come with the handshake, or all through the socket.
    let split = if setup & 8 != 0 {
        (usize::from(setup >> 4) * 97).min(out.len())
    } else {
        0
    };
    let (ours, mut peer) = pair();
    ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ours.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut stream = fuzzing::stream(ours, setup, setup & 4 != 0, &out[..split])
        .expect("the fuzz stream starts");
    let mut got = Vec::new();
    let mut failed = false;
    std::thread::scope(|s| {
        let rest = &out[split..];
        let writer = s.spawn(move || {
            let _ = peer.write_all(rest);
            let _ = peer.shutdown(Shutdown::Write);
            peer
        });
        let mut buf = vec![0u8; step];
        for _ in 0..100_000 {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    assert!(n <= buf.len());
                    got.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    assert!(
                        !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                        "the read waited for bytes that never come"
                    );
                    failed = true;
                    break;
                }
            }
            assert!(got.len() <= limit, "more data than the valid records hold");
        }
        // An error stays; an end stays.
        let again = stream.read(&mut buf);
        if failed {
            assert!(again.is_err(), "an error did not stay: {again:?}");
            assert!(stream.write(b"x").is_err());
        } else {
            assert_eq!(again.ok(), Some(0), "read after the end of the stream");
            let _ = stream.write(b"x");
        }
        drop(stream);
        drop(writer.join().unwrap());
    });
    assert!(got.len() <= limit, "more data than the valid records hold");
    assert!(
        expected.starts_with(&got),
        "delivered data that was not sealed as application data, in order"
    );
});
