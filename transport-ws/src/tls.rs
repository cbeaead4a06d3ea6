//! TLS for `wss://`, with rustls and its `ring` crypto provider (pure Rust
//! and a little C/assembly built by `cc`: no system library to install).
//!
//! The connection stays blocking and one thread per connection: a
//! [`Stream`] is either the bare socket or TLS over it, and the WebSocket
//! framing in [`crate::wire`] reads and writes it as it would the socket.
//! rustls runs the handshake (its unbuffered API, over our buffers) and
//! keeps the keys; the records after it are sealed and opened in place by
//! [`record`], so each byte is copied once on each side. Unlike rustls' own
//! `StreamOwned`, reading here never waits
//! for pending writes to go out (and writing never reads): a side stalled
//! writing a large message reads the peer's meanwhile, as over plain TCP,
//! so two peers sending each other large messages cannot deadlock.
//!
//! Server certificates are checked against the platform's trusted roots
//! (`rustls-native-certs`: the system store, so a lab CA installed with the
//! system's tools, or named by `SSL_CERT_FILE`, is trusted like any other),
//! or against the CAs of one PEM file (`cafile`) for self-signed lab
//! certificates.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{CertificateError, RootCertStore};

use crate::error::Error;

mod record;

#[cfg(feature = "fuzzing")]
pub use record::fuzzing;

use record::{Kernel, TlsStream};

/// The first byte of a TLS handshake record (a ClientHello).
pub(crate) const HANDSHAKE_RECORD: u8 = 0x16;

/// The handshake's buffer of received records starts at this size and
/// grows, up to [`HANDSHAKE_MAX`], for a long certificate chain.
const HANDSHAKE_INBOX: usize = 32 << 10;
const HANDSHAKE_MAX: usize = 1 << 20;

/// A connection's byte stream: the socket, or TLS over it.
pub(crate) enum Stream {
    /// Plain TCP (`ws://`).
    Plain(TcpStream),
    /// TLS over TCP (`wss://`), its handshake done.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The socket underneath (timeouts, non-blocking mode, shutdown).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    /// Bytes TLS holds, sealed, that the socket has not taken yet (written
    /// by the next write or flush); none on a plain socket.
    pub(crate) fn buffered(&self) -> usize {
        match self {
            Stream::Plain(_) => 0,
            Stream::Tls(t) => t.buffered(),
        }
    }

    /// Send a TLS 1.3 key update (for tests: rustls updates keys by itself
    /// near a cipher's limit); `request`: ask the peer to update its own too.
    #[cfg(test)]
    pub(crate) fn update_keys(&mut self, request: bool) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Err(io::ErrorKind::Unsupported.into()),
            Stream::Tls(t) => t.update_keys(request),
        }
    }
}

#[cfg(test)]
impl Stream {
    /// Pretend the cipher's confidentiality limit is `records` away.
    pub(crate) fn limit_records(&mut self, records: u64) {
        if let Stream::Tls(t) = self {
            t.limit_records(records);
        }
    }

    /// Pretend our TLS sequence numbers are used up.
    pub(crate) fn exhaust_sequence(&mut self) {
        if let Stream::Tls(t) = self {
            t.exhaust_sequence();
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            Stream::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// rustls' connection during the handshake (its unbuffered API: records
/// go through our buffers).
enum Unbuffered {
    Client(Box<UnbufferedClientConnection>),
    Server(Box<UnbufferedServerConnection>),
}

/// A TLS handshake in progress: rustls' connection and the buffers it runs
/// over. [`drive`] completes it, [`stream`] makes the stream of it.
pub(crate) struct Handshake {
    conn: Unbuffered,
    /// `inbox[..end]`: records received, not yet processed.
    inbox: Vec<u8>,
    end: usize,
    /// `out[sent..]`: records to send.
    out: Vec<u8>,
    sent: usize,
    /// Application data that arrived with the handshake (a client's
    /// request right after its Finished).
    early: Vec<u8>,
    /// close_notify came with the end of the handshake (after the data in
    /// `early`): the stream starts ended.
    peer_closed: bool,
    done: bool,
}

/// What one step of the handshake leaves to do.
enum Next {
    Again,
    Read,
    Done,
    /// The peer sent close_notify: the handshake may still be complete.
    PeerClosed,
}

impl Handshake {
    fn new(conn: Unbuffered) -> Handshake {
        Handshake {
            conn,
            inbox: vec![0u8; HANDSHAKE_INBOX],
            end: 0,
            out: Vec::new(),
            sent: 0,
            early: Vec::new(),
            peer_closed: false,
            done: false,
        }
    }

    /// Process what was received, write what is to be sent.
    fn step(&mut self, io: &mut impl Write) -> io::Result<Next> {
        let (discard, next) = match &mut self.conn {
            Unbuffered::Client(c) => {
                let status = c.process_tls_records(&mut self.inbox[..self.end]);
                handle(status, &mut self.out, &mut self.sent, &mut self.early, io)
            }
            Unbuffered::Server(s) => {
                let status = s.process_tls_records(&mut self.inbox[..self.end]);
                handle(status, &mut self.out, &mut self.sent, &mut self.early, io)
            }
        };
        self.inbox.copy_within(discard..self.end, 0);
        self.end -= discard;
        match next {
            Err(Failed::Tls(e)) => {
                self.alert(io);
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
            Err(Failed::Io(e)) => Err(e),
            // Data and close_notify may follow a client's Finished in one
            // flight: rustls reads them all before it says the handshake
            // is done. Anything but done after close_notify is a cut.
            Ok(Next::PeerClosed) => {
                self.peer_closed = true;
                Ok(Next::Again)
            }
            Ok(Next::Read) if self.peer_closed => Err(closed_in_handshake()),
            Ok(next) => Ok(next),
        }
    }

    /// After a failure: send the alert rustls queued, best effort. rustls
    /// hands out a queued record before it looks at the inbox again, so
    /// one call gets the alert without processing anything twice.
    fn alert(&mut self, io: &mut impl Write) {
        let mut ignored = Vec::new();
        let (discard, next) = match &mut self.conn {
            Unbuffered::Client(c) => {
                let status = c.process_tls_records(&mut self.inbox[..self.end]);
                handle(status, &mut self.out, &mut self.sent, &mut ignored, io)
            }
            Unbuffered::Server(s) => {
                let status = s.process_tls_records(&mut self.inbox[..self.end]);
                handle(status, &mut self.out, &mut self.sent, &mut ignored, io)
            }
        };
        self.inbox.copy_within(discard..self.end, 0);
        self.end -= discard;
        if matches!(next, Ok(Next::Again)) {
            let _ = io.write_all(&self.out[self.sent..]);
            let _ = io.flush();
        }
    }

    /// Read more records from `io`.
    fn fill(&mut self, io: &mut impl Read) -> io::Result<()> {
        if self.end == self.inbox.len() {
            if self.inbox.len() >= HANDSHAKE_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::General("an oversized TLS handshake".into()),
                ));
            }
            self.inbox.resize(self.inbox.len() * 2, 0);
        }
        match io.read(&mut self.inbox[self.end..])? {
            0 => Err(closed_in_handshake()),
            n => {
                self.end += n;
                Ok(())
            }
        }
    }
}

fn closed_in_handshake() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection during the TLS handshake",
    )
}

/// Why a handshake step failed: TLS refused (an alert is due), or the socket.
enum Failed {
    Tls(rustls::Error),
    Io(io::Error),
}

/// Act on one state of rustls' handshake: encode and send records, keep
/// application data; returns how many bytes of the inbox were consumed.
fn handle<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    out: &mut Vec<u8>,
    sent: &mut usize,
    early: &mut Vec<u8>,
    io: &mut impl Write,
) -> (usize, Result<Next, Failed>) {
    let mut discard = status.discard;
    let state = match status.state {
        Ok(state) => state,
        Err(e) => return (discard, Err(Failed::Tls(e))),
    };
    let next = match state {
        ConnectionState::EncodeTlsData(mut enc) => {
            let at = out.len();
            out.resize(at + 4096, 0);
            loop {
                match enc.encode(&mut out[at..]) {
                    Ok(n) => {
                        out.truncate(at + n);
                        break Ok(Next::Again);
                    }
                    Err(EncodeError::InsufficientSize(s)) => out.resize(at + s.required_size, 0),
                    Err(EncodeError::AlreadyEncoded) => {
                        out.truncate(at);
                        break Ok(Next::Again);
                    }
                }
            }
        }
        ConnectionState::TransmitTlsData(tx) => {
            // On a timeout `done` is not called: rustls asks again, and
            // what is left of `out` goes then.
            let mut result = Ok(Next::Again);
            while *sent < out.len() {
                match io.write(&out[*sent..]) {
                    Ok(0) => {
                        result = Err(Failed::Io(io::ErrorKind::WriteZero.into()));
                        break;
                    }
                    Ok(n) => *sent += n,
                    Err(e) => {
                        result = Err(Failed::Io(e));
                        break;
                    }
                }
            }
            if result.is_ok() {
                if let Err(e) = io.flush() {
                    result = Err(Failed::Io(e));
                }
            }
            if result.is_ok() {
                out.clear();
                *sent = 0;
                tx.done();
            }
            result
        }
        ConnectionState::BlockedHandshake => Ok(Next::Read),
        ConnectionState::WriteTraffic(_) => Ok(Next::Done),
        ConnectionState::ReadTraffic(mut data) => {
            let mut result = Ok(Next::Again);
            while let Some(record) = data.next_record() {
                match record {
                    Ok(r) => {
                        early.extend_from_slice(r.payload);
                        discard += r.discard;
                    }
                    Err(e) => {
                        result = Err(Failed::Tls(e));
                        break;
                    }
                }
            }
            result
        }
        ConnectionState::PeerClosed => Ok(Next::PeerClosed),
        ConnectionState::Closed => Err(Failed::Io(closed_in_handshake())),
        other => Err(Failed::Tls(rustls::Error::General(format!(
            "unexpected TLS state {other:?} during the handshake"
        )))),
    };
    (discard, next)
}

/// Accept TLS (the handshake runs over what [`drive`] is given).
pub(crate) fn server_connection(config: &Arc<rustls::ServerConfig>) -> io::Result<Handshake> {
    let conn = UnbufferedServerConnection::new(config.clone()).map_err(io::Error::other)?;
    Ok(Handshake::new(Unbuffered::Server(Box::new(conn))))
}

/// Complete a handshake started by [`server_connection`] or
/// [`client_connection`] over `io` (the socket with timeouts, or a wrapper
/// that bounds it): an error of a timeout or would-block kind means "not
/// yet, call again"; any other ends it (a TLS refusal is an error of kind
/// `InvalidData` carrying the `rustls::Error`, after an alert to the peer).
pub(crate) fn drive(hs: &mut Handshake, io: &mut (impl Read + Write)) -> io::Result<()> {
    while !hs.done {
        match hs.step(io)? {
            Next::Again | Next::PeerClosed => {}
            Next::Read => hs.fill(io)?,
            Next::Done => hs.done = true,
        }
    }
    Ok(())
}

/// The stream once `hs` is done: the record layer takes over from rustls.
pub(crate) fn stream(hs: Handshake, sock: TcpStream) -> io::Result<Stream> {
    let to_io = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
    if !hs.done {
        return Err(to_io(rustls::Error::HandshakeNotComplete));
    }
    let (secrets, kernel) = match hs.conn {
        Unbuffered::Client(c) => {
            let (s, k) = c.dangerous_into_kernel_connection().map_err(to_io)?;
            (s, Kernel::Client(k))
        }
        Unbuffered::Server(s) => {
            let (s, k) = s.dangerous_into_kernel_connection().map_err(to_io)?;
            (s, Kernel::Server(k))
        }
    };
    let records = if hs.peer_closed {
        &[][..]
    } else {
        &hs.inbox[..hs.end]
    };
    let mut t = TlsStream::new(sock, secrets, kernel, hs.early, records)?;
    if hs.peer_closed {
        t.peer_closed();
    }
    Ok(Stream::Tls(Box::new(t)))
}

/// The server's TLS setup, loaded once at bind.
pub(crate) fn server_config(
    certfile: &Path,
    keyfile: &Path,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = CertificateDer::pem_file_iter(certfile)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Config(format!(
                "cannot read the certificate chain from {}: {e} (a PEM file of one or more \
                 CERTIFICATE blocks, the server's first)",
                certfile.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM CERTIFICATE block",
            certfile.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
        Error::Config(format!(
            "cannot read a private key from {}: {e} (a PEM file with a PRIVATE KEY, \
             RSA PRIVATE KEY or EC PRIVATE KEY block)",
            keyfile.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Config(format!(
                "the certificate in {} and the key in {} cannot serve TLS: {e} (do they belong together?)",
                certfile.display(),
                keyfile.display()
            ))
        })?;
    // Our record layer takes the keys once the handshake is done.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// The client's TLS setup: the platform's roots, or those of `cafile`.
pub(crate) fn client_config(cafile: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let roots = match cafile {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::Config(format!(
                        "cannot read CA certificates from {}: {e} (cafile must be a PEM file \
                         of CERTIFICATE blocks)",
                        path.display()
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::Config(format!(
                    "{} holds no usable CA certificate (cafile must be a PEM file of \
                     CERTIFICATE blocks)",
                    path.display()
                )));
            }
            Arc::new(roots)
        }
        None => native_roots()?,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// The platform's trusted roots, loaded once per process.
fn native_roots() -> Result<Arc<RootCertStore>, Error> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), |e| e.to_string());
                return Err(format!(
                    "no trusted root certificates on this machine ({why}): install the \
                     system's CA certificates, or pass cafile= with the CA that signed the \
                     server's certificate"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
        .map_err(Error::Config)
}

/// Start a client handshake with `host` (a name or an IP address).
pub(crate) fn client_connection(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<Handshake, Error> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Error::Config(format!("{host:?} is not a host name TLS can check: {e}")))?;
    let conn = UnbufferedClientConnection::new(config.clone(), name)
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok(Handshake::new(Unbuffered::Client(Box::new(conn))))
}

/// What a failed client handshake means, for a person: the reason a
/// certificate was refused, or that the server does not speak TLS.
pub(crate) fn explain_client_failure(host: &str, e: &io::Error) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => explain_certificate(host, cert),
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "the server refused the TLS handshake (alert {alert:?}); it may require a \
             client setting this client lacks"
        ),
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. }) => {
            "the server answered something that is not TLS: it is probably a plain ws:// \
             server (connect with ws:// or tls=False), or not a simplerpc server"
                .into()
        }
        Some(other) => format!("TLS failed: {other}"),
        None if e.kind() == io::ErrorKind::UnexpectedEof
            || e.kind() == io::ErrorKind::ConnectionReset =>
        {
            "the server closed the connection during the TLS handshake: it is probably a \
             plain ws:// server (connect with ws:// or tls=False)"
                .into()
        }
        None => e.to_string(),
    }
}

fn explain_certificate(host: &str, e: &CertificateError) -> String {
    use CertificateError as C;
    match e {
        C::UnknownIssuer => format!(
            "the certificate of {host} is not signed by a trusted authority (unknown issuer): \
             for a lab certificate pass cafile= with the PEM file of the CA that signed it"
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the certificate of the server is not valid for the name {host} (name mismatch): \
             connect with a name or address the certificate lists, or make one for {host} ({e})"
        ),
        C::Expired | C::ExpiredContext { .. } => {
            format!("the certificate of {host} has expired ({e}): renew it")
        }
        C::NotValidYet | C::NotValidYetContext { .. } => format!(
            "the certificate of {host} is not valid yet ({e}): check the clocks of both hosts"
        ),
        C::BadSignature => format!(
            "the certificate of {host} does not verify against the trusted CA of its \
             issuer's name (a different CA of the same name?): pass cafile= with the CA \
             that signed it"
        ),
        other => format!("the certificate of {host} was refused: {other:?}"),
    }
}

/// The crypto provider: `ring`, chosen explicitly for each configuration
/// (nothing is installed process-wide), with all of its cipher suites and
/// versions. Only their order differs: AES-128-GCM before AES-256-GCM (in
/// each protocol version), ~12% faster on the data. The key exchange
/// (X25519, P-256) is at the 128-bit level anyway, so the larger key adds
/// no strength to the connection; the suites a peer may pick are the same.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::CipherSuite as S;
    let mut p = rustls::crypto::ring::default_provider();
    // A stable sort: only AES-256 suites move, each after the AES-128 one
    // of its version and key type.
    p.cipher_suites.sort_by_key(|s| {
        let v = u8::from(s.version().version == rustls::ProtocolVersion::TLSv1_2);
        let aes256 = matches!(
            s.suite(),
            S::TLS13_AES_256_GCM_SHA384
                | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        );
        let chacha = matches!(
            s.suite(),
            S::TLS13_CHACHA20_POLY1305_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        );
        (v, u8::from(aes256) + 2 * u8::from(chacha))
    });
    Arc::new(p)
}

#[cfg(test)]
mod tests;
