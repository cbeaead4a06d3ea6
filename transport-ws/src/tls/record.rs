//! The TLS record layer once the handshake is done: rustls negotiates the
//! keys (and computes new ones on a key update, and keeps the session
//! tickets a server sends: its `kernel` API, made for this), and this
//! module seals and opens the records itself, with `ring`'s AEADs (the
//! code rustls' `ring` provider runs), so that bytes are copied as little
//! as possible:
//!
//! - a read into a large buffer with nothing at hand reads the socket
//!   straight into it and opens the records there, each one's plaintext
//!   moved down onto the previous one's in the same pass: no copy but the
//!   kernel's;
//! - otherwise records are read many at a time into one buffer, opened in
//!   place there, and their plaintext is copied once into the caller's
//!   buffer (what a small buffer does not take stays where it is, opened);
//! - sent plaintext is copied once, from the caller's slices straight into
//!   full records of an outgoing buffer, and sealed in place there.
//!
//! (rustls 0.23's own APIs, the unbuffered one included, hand each record
//! through a fresh allocation: two or three copies each way.)
//!
//! What the record layer must do besides, it does: TLS 1.3's inner content
//! type and padding, its key updates (answering a requested one, and
//! updating our own keys before the cipher's confidentiality limit), its
//! session tickets, TLS 1.2's explicit GCM nonces and additional data,
//! alerts (close_notify is the end of the stream), record size limits, and
//! sequence numbers that never repeat a nonce.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;

use ring::aead;
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{
    AlertDescription, ConnectionTrafficSecrets, ContentType, ExtractedSecrets, HandshakeType,
    ProtocolVersion, SupportedCipherSuite,
};

/// The largest plaintext of a record.
const MAX_PLAIN: usize = 1 << 14;
/// The largest body (after the 5-byte header) of a received record:
/// TLS 1.3 allows 256 bytes of expansion, TLS 1.2 2048.
const MAX_BODY_13: usize = MAX_PLAIN + 256;
const MAX_BODY_12: usize = MAX_PLAIN + 2048;
/// The largest record, header included.
const MAX_RECORD: usize = 5 + MAX_BODY_12;
/// The AEAD tag (all of AES-GCM and ChaCha20-Poly1305).
const TAG: usize = 16;
/// TLS 1.2 AES-GCM's explicit nonce, sent before each record's ciphertext.
const EXPLICIT: usize = 8;

/// How much the socket is read at a time: many records per system call.
pub(super) const INBOX: usize = 256 << 10;
/// How much sealed output is buffered before a write waits for the socket.
pub(super) const OUTBOX: usize = 256 << 10;
/// A read into a buffer at least this large, with nothing at hand, goes
/// straight from the socket into it (see [`TlsStream::read_direct`]).
const DIRECT_MIN: usize = 32 << 10;
/// A record is not cut shorter than this to fit the outgoing buffer (the
/// rest waits for the next write): no tiny records in a stream of large ones.
const MIN_CUT: usize = 4 << 10;
/// Post-handshake handshake messages (session tickets, key updates) are
/// small: a larger one is refused rather than buffered.
const MAX_HS_MESSAGE: usize = 64 << 10;
/// Our keys are updated this many records before the cipher's
/// confidentiality limit (TLS 1.3); TLS 1.2, which cannot, fails there.
const LIMIT_MARGIN: u64 = 1024;

/// How records are laid out: TLS 1.3, or TLS 1.2 with or without an
/// explicit nonce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Tls13,
    Tls12Gcm,
    Tls12Chacha,
}

impl Layout {
    /// Bytes a record adds to its plaintext.
    fn overhead(self) -> usize {
        match self {
            Layout::Tls13 => 5 + 1 + TAG,
            Layout::Tls12Gcm => 5 + EXPLICIT + TAG,
            Layout::Tls12Chacha => 5 + TAG,
        }
    }
}

/// One direction's key, IV and sequence number.
struct Keys {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Keys {
    fn new(seq: u64, secrets: &ConnectionTrafficSecrets) -> io::Result<Keys> {
        let (alg, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(fatal(rustls::Error::General("unsupported cipher".into()))),
        };
        let key = aead::UnboundKey::new(alg, key.as_ref())
            .map_err(|_| fatal(rustls::Error::General("bad traffic key".into())))?;
        let iv: [u8; 12] = iv
            .as_ref()
            .try_into()
            .map_err(|_| fatal(rustls::Error::General("bad traffic IV".into())))?;
        Ok(Keys {
            key: aead::LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The nonce of the next record: the IV XOR the sequence number.
    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// Count a record; a sequence number never repeats (so neither does a
    /// nonce): past the last one, every later call fails too.
    fn advance(&mut self) -> io::Result<()> {
        self.seq = self.seq.checked_add(1).ok_or_else(|| {
            fatal(rustls::Error::General(
                "TLS sequence numbers exhausted".into(),
            ))
        })?;
        Ok(())
    }
}

/// rustls' side of a connection after its handshake: new secrets on a key
/// update, and session tickets.
pub(super) enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
    /// Keys of the fuzz target's making (see [`fuzzing`]).
    #[cfg(feature = "fuzzing")]
    Fuzz(fuzzing::FakeKernel),
}

impl Kernel {
    fn version(&self) -> ProtocolVersion {
        match self {
            Kernel::Client(k) => k.protocol_version(),
            Kernel::Server(k) => k.protocol_version(),
            #[cfg(feature = "fuzzing")]
            Kernel::Fuzz(k) => k.suite.version().version,
        }
    }

    fn suite(&self) -> SupportedCipherSuite {
        match self {
            Kernel::Client(k) => k.negotiated_cipher_suite(),
            Kernel::Server(k) => k.negotiated_cipher_suite(),
            #[cfg(feature = "fuzzing")]
            Kernel::Fuzz(k) => k.suite,
        }
    }

    fn update_tx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
            #[cfg(feature = "fuzzing")]
            Kernel::Fuzz(k) => Ok(k.next(false)),
        }
    }

    fn update_rx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Client(k) => k.update_rx_secret(),
            Kernel::Server(k) => k.update_rx_secret(),
            #[cfg(feature = "fuzzing")]
            Kernel::Fuzz(k) => Ok(k.next(true)),
        }
    }
}

/// A TLS connection over a blocking socket, its handshake done.
///
/// `read` only reads (opening what arrives); `write` seals into the
/// outgoing buffer and hands the socket what it takes; `flush` waits
/// (within the socket's write timeout) until the buffer is out. A timeout,
/// a would-block or a signal loses nothing: call again.
pub(crate) struct TlsStream {
    pub(super) sock: TcpStream,
    kernel: Kernel,
    layout: Layout,
    rx: Keys,
    tx: Keys,
    /// Our keys are updated (TLS 1.3) or the connection fails (TLS 1.2)
    /// when `tx.seq` reaches this.
    tx_limit: u64,
    /// Records read from the socket: `inbox[start..end]` is still to be
    /// opened; `inbox[plain.0..plain.1]`, before `start`, is the opened
    /// plaintext of the last record not yet handed out.
    inbox: Box<[u8]>,
    start: usize,
    end: usize,
    plain: (usize, usize),
    /// Plaintext that arrived with the handshake (handed out first).
    early: Vec<u8>,
    early_at: usize,
    /// A post-handshake handshake message arriving in pieces.
    hs: Vec<u8>,
    /// Sealed records; `out[sent..]` is what the socket has not taken yet.
    out: Vec<u8>,
    sent: usize,
    /// The peer sent close_notify: the end of the stream.
    peer_closed: bool,
    /// Our key update answering the peer's request is queued, and no data
    /// of ours followed it yet.
    answered: bool,
    /// A fatal error ended the connection (reported again to later calls).
    failed: Option<rustls::Error>,
}

/// An error of the TLS layer, as the I/O error the stream reports.
fn fatal(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// The stream after a handshake: the negotiated secrets, rustls' side
    /// of the connection, plaintext that came with the handshake and the
    /// records read past it.
    pub(super) fn new(
        sock: TcpStream,
        secrets: ExtractedSecrets,
        kernel: Kernel,
        early: Vec<u8>,
        records: &[u8],
    ) -> io::Result<TlsStream> {
        let tls13 = kernel.version() == ProtocolVersion::TLSv1_3;
        let layout = match (&secrets.tx.1, tls13) {
            (_, true) => Layout::Tls13,
            (ConnectionTrafficSecrets::Chacha20Poly1305 { .. }, false) => Layout::Tls12Chacha,
            (_, false) => Layout::Tls12Gcm,
        };
        let limit = match kernel.suite() {
            SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        let mut inbox = vec![0u8; INBOX + MAX_RECORD].into_boxed_slice();
        if records.len() > inbox.len() {
            return Err(fatal(rustls::Error::General(
                "too much data after the handshake".into(),
            )));
        }
        inbox[..records.len()].copy_from_slice(records);
        Ok(TlsStream {
            sock,
            layout,
            rx: Keys::new(secrets.rx.0, &secrets.rx.1)?,
            tx: Keys::new(secrets.tx.0, &secrets.tx.1)?,
            tx_limit: limit.saturating_sub(LIMIT_MARGIN),
            kernel,
            inbox,
            start: 0,
            end: records.len(),
            plain: (0, 0),
            early,
            early_at: 0,
            hs: Vec::new(),
            out: Vec::with_capacity(OUTBOX + MAX_RECORD),
            sent: 0,
            peer_closed: false,
            answered: false,
            failed: None,
        })
    }

    /// The peer's close_notify came with the handshake: the end of the
    /// stream once the data that came with it is read.
    pub(super) fn peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Pretend the cipher's confidentiality limit is `records` away.
    #[cfg(test)]
    pub(crate) fn limit_records(&mut self, records: u64) {
        self.tx_limit = self.tx.seq + records;
    }

    /// Pretend our sequence numbers are used up but for the last one (and
    /// the cipher has no limit before).
    #[cfg(test)]
    pub(crate) fn exhaust_sequence(&mut self) {
        self.tx.seq = u64::MAX;
        self.tx_limit = u64::MAX;
    }

    /// Bytes of sealed records the socket has not taken yet.
    pub(crate) fn buffered(&self) -> usize {
        self.out.len() - self.sent
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(e) => Err(fatal(e.clone())),
            None => Ok(()),
        }
    }

    /// End the connection with `e`: tell the peer (a fatal alert, best
    /// effort, one write that may not wait) and report it from now on.
    fn fail(&mut self, alert: AlertDescription, e: rustls::Error) -> io::Error {
        if self.failed.is_none() {
            self.failed = Some(e.clone());
            let body = [2u8, u8::from(alert)];
            // Only after what is already out: a few bytes the socket takes
            // at once (a peer that reads nothing is not waited for).
            if self.buffered() == 0
                && self
                    .seal(u8::from(ContentType::Alert), |out| {
                        out.extend_from_slice(&body)
                    })
                    .is_ok()
            {
                let _ = self.sock.write(&self.out[self.sent..]);
            }
        }
        fatal(e)
    }

    // ---- sending ----

    /// Append one record of type `typ` to the outgoing buffer, its
    /// plaintext appended by `fill`, and seal it in place.
    ///
    /// The record's sequence number is taken before anything is sealed:
    /// whatever happens next, no other record is sealed with its nonce.
    fn seal(&mut self, typ: u8, fill: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let seq = self.tx.seq;
        let nonce = self.tx.nonce();
        self.tx.advance()?;
        let at = self.out.len();
        let outer = match self.layout {
            Layout::Tls13 => u8::from(ContentType::ApplicationData),
            _ => typ,
        };
        self.out.extend_from_slice(&[outer, 3, 3, 0, 0]);
        if self.layout == Layout::Tls12Gcm {
            self.out.extend_from_slice(&nonce[4..]);
        }
        let body = self.out.len();
        fill(&mut self.out);
        let plain_len = self.out.len() - body;
        debug_assert!(plain_len <= MAX_PLAIN);
        if self.layout == Layout::Tls13 {
            self.out.push(typ);
        }
        let record_len = self.out.len() - at - 5 + TAG;
        self.out[at + 3..at + 5].copy_from_slice(&(record_len as u16).to_be_bytes());
        let mut aad = [0u8; 13];
        let aad: &[u8] = match self.layout {
            Layout::Tls13 => {
                aad[..5].copy_from_slice(&self.out[at..at + 5]);
                &aad[..5]
            }
            _ => {
                aad[..8].copy_from_slice(&seq.to_be_bytes());
                aad[8..11].copy_from_slice(&[typ, 3, 3]);
                aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
                &aad
            }
        };
        let sealed = self.tx.key.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut self.out[body..],
        );
        match sealed {
            Ok(tag) => {
                self.out.extend_from_slice(tag.as_ref());
                Ok(())
            }
            Err(_) => {
                self.out.truncate(at);
                Err(fatal(rustls::Error::EncryptError))
            }
        }
    }

    /// Before sealing application data: past the confidentiality limit's
    /// margin, new keys (TLS 1.3) or the end (TLS 1.2).
    fn mind_limit(&mut self) -> io::Result<()> {
        if self.tx.seq < self.tx_limit {
            return Ok(());
        }
        if self.layout != Layout::Tls13 {
            let e = rustls::Error::General(
                "this TLS 1.2 connection sent as many records as its cipher safely allows: \
                 reconnect"
                    .into(),
            );
            return Err(self.fail(AlertDescription::InternalError, e));
        }
        self.update_keys(false)
    }

    /// Send a key update (queued first in the outgoing buffer) and seal
    /// what follows with new keys; `request`: ask the peer to update its own.
    pub(crate) fn update_keys(&mut self, request: bool) -> io::Result<()> {
        self.check()?;
        if self.layout != Layout::Tls13 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "key updates need TLS 1.3",
            ));
        }
        let msg = [
            u8::from(HandshakeType::KeyUpdate),
            0,
            0,
            1,
            u8::from(request),
        ];
        self.seal(u8::from(ContentType::Handshake), |out| {
            out.extend_from_slice(&msg)
        })?;
        let (seq, secrets) = self
            .kernel
            .update_tx()
            .map_err(|e| self.fail(AlertDescription::InternalError, e))?;
        self.tx = Keys::new(seq, &secrets)?;
        Ok(())
    }

    /// Write the outgoing buffer until the socket has taken all of it.
    fn push(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            match self.sock.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// Seal as much of `bufs` as the outgoing buffer holds, in records
    /// as full as the slices make them (a record gathers small slices);
    /// returns how many plaintext bytes were taken.
    fn seal_slices(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let overhead = self.layout.overhead();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut taken = 0;
        // Where the next record's plaintext starts: slice `i`, byte `off`.
        let (mut i, mut off) = (0, 0);
        while taken < total {
            if let Err(e) = self.mind_limit() {
                return self.taken_or(taken, e);
            }
            let room = (OUTBOX + MAX_RECORD / 2).saturating_sub(self.out.len());
            let want = (total - taken).min(MAX_PLAIN);
            let take = want.min(room.saturating_sub(overhead));
            if take == 0 || (take < want && take < MIN_CUT) {
                break;
            }
            let mut left = take;
            let sealed = self.seal(u8::from(ContentType::ApplicationData), |out| {
                while left > 0 {
                    let b = &bufs[i][off..];
                    let n = b.len().min(left);
                    out.extend_from_slice(&b[..n]);
                    left -= n;
                    off += n;
                    if off == bufs[i].len() {
                        i += 1;
                        off = 0;
                    }
                }
            });
            if let Err(e) = sealed {
                return self.taken_or(taken, e);
            }
            // Skip empty slices so that `bufs[i][off..]` is never past the end.
            while i < bufs.len() && off == bufs[i].len() {
                i += 1;
                off = 0;
            }
            taken += take;
            self.answered = false;
        }
        Ok(taken)
    }

    /// After `e` while sealing: the plaintext already sealed was taken (it
    /// is in the outgoing buffer, and must not be handed over again), so
    /// that is returned and `e` comes with the next call.
    fn taken_or(&mut self, taken: usize, e: io::Error) -> io::Result<usize> {
        if self.failed.is_none() {
            self.failed = Some(rustls::Error::General(e.to_string()));
        }
        if taken > 0 {
            Ok(taken)
        } else {
            Err(e)
        }
    }

    // ---- receiving ----

    /// The largest record body the peer may send.
    fn max_body(&self) -> usize {
        if self.layout == Layout::Tls13 {
            MAX_BODY_13
        } else {
            MAX_BODY_12
        }
    }

    /// Open the next whole record in the inbox, if any: `Ok(false)` when
    /// none is there (or the peer closed). Application data is left in
    /// place as `plain`.
    fn open_next(&mut self) -> io::Result<bool> {
        if self.peer_closed || self.end - self.start < 5 {
            return Ok(false);
        }
        let h = &self.inbox[self.start..self.start + 5];
        let header = [h[0], h[1], h[2], h[3], h[4]];
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        if len > self.max_body() {
            return Err(self.fail(
                AlertDescription::RecordOverflow,
                rustls::Error::PeerSentOversizedRecord,
            ));
        }
        if self.end - self.start < 5 + len {
            return Ok(false);
        }
        let body = self.start + 5;
        self.start = body + len;
        let opened = open_record(
            self.layout,
            &self.rx,
            header,
            &mut self.inbox[body..body + len],
            0,
        );
        let (typ, n) = match opened {
            Ok(r) => r,
            Err(e) => return Err(self.fail(refusal(&e), e)),
        };
        self.rx.advance()?;
        self.not_inside_handshake(typ)?;
        if typ == u8::from(ContentType::ApplicationData) {
            self.plain = (body, body + n);
        } else {
            // (Rare and small: a copy spares juggling borrows.)
            let data = self.inbox[body..body + n].to_vec();
            self.control(typ, &data)?;
        }
        Ok(true)
    }

    /// Read the socket straight into `buf` and open the records there, in
    /// place, each one's plaintext moved down onto the last one's (ring
    /// opens from one offset to another in a single pass): no copy at all.
    /// A record cut at the end goes to the inbox (at most one record).
    fn read_direct(&mut self, buf: &mut [u8]) -> io::Result<Direct> {
        let n = self.sock.read(buf)?;
        if n == 0 {
            return Ok(Direct::Eof);
        }
        let (mut filled, mut at) = (0, 0);
        let mut error = None;
        while !self.peer_closed && n - at >= 5 {
            let header = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]];
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if len > self.max_body() {
                let e = rustls::Error::PeerSentOversizedRecord;
                error = Some(self.fail(AlertDescription::RecordOverflow, e));
                break;
            }
            if n - at < 5 + len {
                break;
            }
            let body = at + 5;
            at = body + len;
            let opened = open_record(
                self.layout,
                &self.rx,
                header,
                &mut buf[filled..at],
                body - filled,
            );
            let (typ, plain) = match opened {
                Ok(r) => r,
                Err(e) => {
                    error = Some(self.fail(refusal(&e), e));
                    break;
                }
            };
            if let Err(e) = self
                .rx
                .advance()
                .and_then(|()| self.not_inside_handshake(typ))
            {
                error = Some(e);
                break;
            }
            if typ == u8::from(ContentType::ApplicationData) {
                filled += plain;
            } else if let Err(e) = self.control(typ, &buf[filled..filled + plain]) {
                error = Some(e);
                break;
            }
        }
        if error.is_none() && !self.peer_closed {
            let rest = &buf[at..n];
            self.inbox[..rest.len()].copy_from_slice(rest);
            (self.start, self.end) = (0, rest.len());
        }
        if let Some(e) = &error {
            self.stick(e);
        }
        if filled > 0 {
            // An error comes with the next read (it is kept in `failed`).
            return Ok(Direct::Data(filled));
        }
        match error {
            Some(e) => Err(e),
            None if self.peer_closed => Ok(Direct::Eof),
            None => Ok(Direct::Nothing),
        }
    }

    /// A handshake message in pieces is not interleaved with other records
    /// (RFC 8446 §5.1).
    fn not_inside_handshake(&mut self, typ: u8) -> io::Result<()> {
        if self.hs.is_empty() || typ == u8::from(ContentType::Handshake) {
            return Ok(());
        }
        let e = rustls::Error::General(format!(
            "a TLS record of type {typ} inside a fragmented handshake message"
        ));
        Err(self.fail(AlertDescription::UnexpectedMessage, e))
    }

    /// Keep a fatal error of the record layer (of kind `InvalidData`; not
    /// the socket's) for every later call, however it arose.
    fn stick(&mut self, e: &io::Error) {
        if self.failed.is_none() && e.kind() == io::ErrorKind::InvalidData {
            let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
            self.failed = Some(
                inner
                    .cloned()
                    .unwrap_or_else(|| rustls::Error::General(e.to_string())),
            );
        }
    }

    /// A record other than application data: an alert or a handshake message.
    fn control(&mut self, typ: u8, data: &[u8]) -> io::Result<()> {
        match ContentType::from(typ) {
            ContentType::Alert => self.alert(data),
            ContentType::Handshake => self.handshake(data),
            _ => {
                let e = rustls::Error::General(format!(
                    "unexpected TLS record of type {typ} after the handshake"
                ));
                Err(self.fail(AlertDescription::UnexpectedMessage, e))
            }
        }
    }

    /// An alert from the peer: close_notify ends the stream; a fatal one
    /// ends the connection with its reason.
    fn alert(&mut self, a: &[u8]) -> io::Result<()> {
        if a.len() != 2 {
            let e = rustls::Error::General("a malformed TLS alert".into());
            return Err(self.fail(AlertDescription::DecodeError, e));
        }
        let (level, desc) = (a[0], AlertDescription::from(a[1]));
        if desc == AlertDescription::CloseNotify {
            self.peer_closed = true;
            return Ok(());
        }
        // TLS 1.2's warnings (and anyone's user_canceled) do not end it.
        if desc == AlertDescription::UserCanceled || (level == 1 && self.layout != Layout::Tls13) {
            log::debug!("TLS warning alert from the peer: {desc:?}");
            return Ok(());
        }
        let e = rustls::Error::AlertReceived(desc);
        self.failed = Some(e.clone());
        Err(fatal(e))
    }

    /// Handshake messages after the handshake: TLS 1.3's session tickets
    /// (to a client) and key updates.
    fn handshake(&mut self, data: &[u8]) -> io::Result<()> {
        if self.layout != Layout::Tls13 {
            let e = rustls::Error::General("renegotiation is not supported".into());
            return Err(self.fail(AlertDescription::NoRenegotiation, e));
        }
        // RFC 8446 §5.1: no zero-length fragments of handshake messages.
        if data.is_empty() {
            let e = rustls::Error::General("an empty TLS handshake record".into());
            return Err(self.fail(AlertDescription::UnexpectedMessage, e));
        }
        self.hs.extend_from_slice(data);
        loop {
            if self.hs.len() < 4 {
                return Ok(());
            }
            let typ = HandshakeType::from(self.hs[0]);
            let len = u32::from_be_bytes([0, self.hs[1], self.hs[2], self.hs[3]]) as usize;
            if len > MAX_HS_MESSAGE {
                let e = rustls::Error::General("an oversized post-handshake message".into());
                return Err(self.fail(AlertDescription::DecodeError, e));
            }
            if self.hs.len() < 4 + len {
                return Ok(());
            }
            let msg: Vec<u8> = self.hs.drain(..4 + len).collect();
            let body = &msg[4..];
            match typ {
                HandshakeType::NewSessionTicket => {
                    let done = match &mut self.kernel {
                        Kernel::Client(k) => k.handle_new_session_ticket(body),
                        Kernel::Server(_) => Err(rustls::Error::General(
                            "a session ticket from a client".into(),
                        )),
                        // Taken as a client would, unread.
                        #[cfg(feature = "fuzzing")]
                        Kernel::Fuzz(k) if k.client => Ok(()),
                        #[cfg(feature = "fuzzing")]
                        Kernel::Fuzz(_) => Err(rustls::Error::General(
                            "a session ticket from a client".into(),
                        )),
                    };
                    if let Err(e) = done {
                        return Err(self.fail(AlertDescription::UnexpectedMessage, e));
                    }
                }
                HandshakeType::KeyUpdate => {
                    // One byte, 0 or 1 (RFC 8446 §4.6.3), ending its record
                    // (§5.1: the keys change after it).
                    let bad = if body.len() != 1 {
                        Some(AlertDescription::DecodeError)
                    } else if body[0] > 1 {
                        Some(AlertDescription::IllegalParameter)
                    } else if !self.hs.is_empty() {
                        Some(AlertDescription::UnexpectedMessage)
                    } else {
                        None
                    };
                    if let Some(alert) = bad {
                        let e = rustls::Error::General(format!(
                            "a malformed TLS key update ({alert:?})"
                        ));
                        return Err(self.fail(alert, e));
                    }
                    let (seq, secrets) = self
                        .kernel
                        .update_rx()
                        .map_err(|e| self.fail(AlertDescription::InternalError, e))?;
                    self.rx = Keys::new(seq, &secrets)?;
                    // Ours goes out before any more data of ours (the next
                    // write or flush sends it); one answers any number of
                    // requests that come before our next data.
                    if body[0] == 1 && !self.answered {
                        self.update_keys(false)?;
                        self.answered = true;
                    }
                }
                other => {
                    let e = rustls::Error::General(format!(
                        "unexpected TLS handshake message {other:?} after the handshake"
                    ));
                    return Err(self.fail(AlertDescription::UnexpectedMessage, e));
                }
            }
        }
    }

    /// Make room after `end` for at least a whole record: start over when
    /// everything was opened, or move a partial record to the front (rare:
    /// once per inbox-full of records, at most one record's bytes).
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.inbox.len() - self.end < MAX_RECORD {
            self.inbox.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.plain = (0, 0);
    }

    /// Where a read into the inbox should stop to complete the partial
    /// record there and no more (so the next read can go direct).
    fn rest_of_record(&self) -> usize {
        let have = self.end - self.start;
        let whole = if have >= 5 {
            let h = &self.inbox[self.start + 3..self.start + 5];
            5 + usize::from(u16::from_be_bytes([h[0], h[1]]))
        } else {
            5
        };
        (self.end + whole.saturating_sub(have)).clamp(self.end + 1, self.inbox.len())
    }
}

/// What a direct read gave.
enum Direct {
    /// This many bytes of plaintext at the start of the caller's buffer.
    Data(usize),
    /// The end of the stream.
    Eof,
    /// Records that were not data (or a partial one): read again.
    Nothing,
}

/// The alert that answers a record [`open_record`] refused (RFC 8446 §5,
/// §5.2, §5.4): a tag that does not verify, a record too large, or one
/// that should not be there.
fn refusal(e: &rustls::Error) -> AlertDescription {
    match e {
        rustls::Error::DecryptError => AlertDescription::BadRecordMac,
        rustls::Error::PeerSentOversizedRecord => AlertDescription::RecordOverflow,
        _ => AlertDescription::UnexpectedMessage,
    }
}

/// Open the record `header` + `io[src..]` (its body) in place, its
/// plaintext moved to the start of `io`: its content type and the
/// plaintext's length.
fn open_record(
    layout: Layout,
    rx: &Keys,
    header: [u8; 5],
    io: &mut [u8],
    src: usize,
) -> Result<(u8, usize), rustls::Error> {
    let len = io.len() - src;
    match layout {
        Layout::Tls13 => {
            if header[0] != u8::from(ContentType::ApplicationData) {
                return Err(rustls::Error::General(format!(
                    "unexpected TLS record of outer type {} after the handshake",
                    header[0]
                )));
            }
            let plain = rx
                .key
                .open_within(
                    aead::Nonce::assume_unique_for_key(rx.nonce()),
                    aead::Aad::from(header),
                    io,
                    src..,
                )
                .map_err(|_| rustls::Error::DecryptError)?;
            // The inner plaintext: content, the type, zero padding, in
            // all at most 2^14 + 1 bytes (RFC 8446 §5.4: padding does not
            // stretch a record past that).
            if plain.len() > MAX_PLAIN + 1 {
                return Err(rustls::Error::PeerSentOversizedRecord);
            }
            let Some(at) = plain.iter().rposition(|&b| b != 0) else {
                return Err(rustls::Error::General(
                    "a TLS 1.3 record without a content type".into(),
                ));
            };
            Ok((plain[at], at))
        }
        Layout::Tls12Gcm | Layout::Tls12Chacha => {
            let gcm = layout == Layout::Tls12Gcm;
            let skip = if gcm { EXPLICIT } else { 0 };
            if len < skip + TAG {
                return Err(rustls::Error::DecryptError);
            }
            let nonce = if gcm {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&rx.iv[..4]);
                n[4..].copy_from_slice(&io[src..src + EXPLICIT]);
                n
            } else {
                rx.nonce()
            };
            let mut aad = [0u8; 13];
            aad[..8].copy_from_slice(&rx.seq.to_be_bytes());
            aad[8..11].copy_from_slice(&header[..3]);
            aad[11..].copy_from_slice(&((len - skip - TAG) as u16).to_be_bytes());
            let n = rx
                .key
                .open_within(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(aad),
                    io,
                    src + skip..,
                )
                .map_err(|_| rustls::Error::DecryptError)?
                .len();
            if n > MAX_PLAIN {
                return Err(rustls::Error::PeerSentOversizedRecord);
            }
            Ok((header[0], n))
        }
    }
}

impl TlsStream {
    /// Fills as much of `buf` as the records already read give, reading
    /// the socket (once) only when there is nothing at all to return. A
    /// large `buf` with nothing at hand is read into directly (see
    /// [`TlsStream::read_direct`]); bytes of `buf` past what is returned
    /// may have been written.
    fn read_records(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut filled = 0;
        if self.early_at < self.early.len() {
            let src = &self.early[self.early_at..];
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            self.early_at += n;
            filled = n;
            if self.early_at == self.early.len() {
                self.early = Vec::new();
                self.early_at = 0;
            }
        }
        loop {
            let (from, to) = self.plain;
            if from < to {
                let n = (to - from).min(buf.len() - filled);
                buf[filled..filled + n].copy_from_slice(&self.inbox[from..from + n]);
                self.plain.0 += n;
                filled += n;
            }
            if filled == buf.len() {
                return Ok(filled);
            }
            if self.failed.is_some() {
                return if filled > 0 {
                    Ok(filled)
                } else {
                    self.check().map(|()| 0)
                };
            }
            match self.open_next() {
                Ok(true) => continue,
                Ok(false) => {}
                // What was read before the error is handed over; the error
                // comes with the next read.
                Err(e) if filled > 0 => {
                    self.stick(&e);
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
            if filled > 0 || self.peer_closed {
                return Ok(filled);
            }
            // Nothing at hand: read the socket. A timeout or a would-block
            // is the socket's, and loses nothing.
            let direct = buf.len() >= DIRECT_MIN;
            if direct && self.start == self.end {
                self.plain = (0, 0);
                match self.read_direct(buf)? {
                    Direct::Data(n) => return Ok(n),
                    // Cut without close_notify (or mid-record): an end of
                    // stream too, as on a plain socket (the framing tells
                    // whether a frame was cut).
                    Direct::Eof => return Ok(0),
                    Direct::Nothing => continue,
                }
            }
            self.make_room();
            let stop = if direct {
                self.rest_of_record()
            } else {
                self.inbox.len()
            };
            let n = self.sock.read(&mut self.inbox[self.end..stop])?;
            if n == 0 {
                return Ok(0);
            }
            self.end += n;
        }
    }
}

impl Read for TlsStream {
    /// See [`TlsStream::read_records`]; an error of the record layer is
    /// reported again by every later call.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.read_records(buf);
        if let Err(e) = &r {
            self.stick(e);
        }
        r
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.check()?;
        // Earlier records first: until they are out, take nothing more
        // (so what this returns is what the socket is taking).
        self.push()?;
        let n = self.seal_slices(bufs).inspect_err(|e| self.stick(e))?;
        // Hand the socket what it takes now; what it does not stays
        // buffered for the next write or flush (which report a broken socket).
        let _ = self.push();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.push()
    }
}

impl Drop for TlsStream {
    /// Say goodbye (close_notify), best effort and without waiting.
    fn drop(&mut self) {
        if self.failed.is_none()
            && self
                .seal(u8::from(ContentType::Alert), |out| {
                    out.extend_from_slice(&[1, 0])
                })
                .is_ok()
        {
            let _ = self.sock.set_nonblocking(true);
            let _ = self.sock.write(&self.out[self.sent..]);
        }
    }
}

/// The record layer on input of a fuzz target's making (feature
/// `fuzzing`): a stream as after a handshake, with keys known to the
/// target, so that what it seals passes the tag check. Not an API.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};
    use rustls::crypto::ring::cipher_suite as cs;

    /// What stands for rustls' kernel connection: key generations.
    pub(crate) struct FakeKernel {
        pub(super) suite: SupportedCipherSuite,
        pub(super) client: bool,
        rx: u8,
        tx: u8,
    }

    impl FakeKernel {
        /// The next generation's keys (a key update), sequence numbers from 0.
        pub(super) fn next(&mut self, rx: bool) -> (u64, ConnectionTrafficSecrets) {
            let g = if rx { &mut self.rx } else { &mut self.tx };
            *g = g.wrapping_add(1);
            (0, secrets(self.suite, *g))
        }
    }

    /// The suites a fuzz input picks from (`suite % 4`).
    pub const SUITES: [SupportedCipherSuite; 4] = [
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ];

    /// The key and IV of generation `g`: the first (0) of both directions,
    /// then one more each key update.
    pub fn keys(g: u8) -> ([u8; 32], [u8; 12]) {
        ([g ^ 0x5a; 32], [g.wrapping_mul(3) ^ 0xa5; 12])
    }

    fn secrets(suite: SupportedCipherSuite, g: u8) -> ConnectionTrafficSecrets {
        let (key, iv) = keys(g);
        let (key, iv) = (AeadKey::from(key), Iv::new(iv));
        if suite.suite() == cs::TLS13_CHACHA20_POLY1305_SHA256.suite()
            || suite.suite() == cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256.suite()
        {
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv }
        } else {
            ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        }
    }

    /// A stream over `sock` as after a handshake of `SUITES[suite % 4]`,
    /// keys of generation 0 both ways and sequence numbers from 0, as a
    /// client (which takes session tickets) or a server, with `records`
    /// read past the handshake.
    pub fn stream(
        sock: TcpStream,
        suite: u8,
        client: bool,
        records: &[u8],
    ) -> io::Result<impl Read + Write> {
        let suite = SUITES[usize::from(suite % 4)];
        let secrets = ExtractedSecrets {
            tx: (0, secrets(suite, 0)),
            rx: (0, secrets(suite, 0)),
        };
        let kernel = Kernel::Fuzz(FakeKernel {
            suite,
            client,
            rx: 0,
            tx: 0,
        });
        TlsStream::new(sock, secrets, kernel, Vec::new(), records)
    }
}
