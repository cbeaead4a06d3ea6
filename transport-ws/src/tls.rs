//! TLS for `wss://`, with rustls and its `ring` crypto provider (pure Rust
//! and a little C/assembly built by `cc`: no system library to install).
//!
//! The connection stays blocking and one thread per connection: a
//! [`Stream`] is either the bare socket or a rustls connection over it, and
//! the WebSocket framing in [`crate::wire`] reads and writes it as it would
//! the socket. Unlike rustls' own `StreamOwned`, reading here never waits
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

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, RootCertStore};

use crate::error::Error;

/// How much encrypted output a connection buffers before a write waits for
/// the socket: a few records, so a large message goes out in few system calls.
const SEND_BUFFER: usize = 256 << 10;

/// How much the socket is read at a time under TLS: many records per
/// system call.
const INBOX: usize = 256 << 10;

/// The first byte of a TLS handshake record (a ClientHello).
pub(crate) const HANDSHAKE_RECORD: u8 = 0x16;

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

    /// Whether TLS holds encrypted bytes the socket has not taken yet
    /// (written by the next flush).
    pub(crate) fn buffered(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.conn.wants_write())
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

/// A rustls connection over a blocking socket, its handshake done.
///
/// `read` only reads (decrypting what arrives); `write` encrypts into
/// rustls' buffer and hands the socket what it takes; `flush` waits (within
/// the socket's write timeout) until the buffer is out. A timeout, a
/// would-block or a signal loses nothing: call again.
pub(crate) struct TlsStream {
    conn: rustls::Connection,
    sock: TcpStream,
    /// Records read from the socket, not yet handed to rustls: one read
    /// of the socket takes many records (rustls alone reads 4 KiB at a
    /// time, a system call each).
    inbox: Box<[u8]>,
    /// `inbox[start..end]` is still to be handed to rustls.
    start: usize,
    end: usize,
}

impl TlsStream {
    /// Write buffered records until none is left (or the socket refuses).
    fn push(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Hand the socket what it takes now; what it does not stays buffered
    /// for the next write or flush (which report a broken socket).
    fn push_some(&mut self) {
        let _ = self.push();
    }
}

impl Read for TlsStream {
    /// Fills as much of `buf` as the records already read give, reading
    /// the socket (once) only when there is nothing at all to return.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            match self.conn.reader().read(&mut buf[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Cut without TLS's close_notify: an end of stream, as on a
                // plain socket (the framing tells whether a frame was cut).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) if filled > 0 => {
                    log::debug!("TLS read: {e}");
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
            if self.start == self.end {
                if filled > 0 {
                    // Hand over what is here rather than wait for more.
                    return Ok(filled);
                }
                // A timeout or a would-block is the socket's, and loses nothing.
                let n = self.sock.read(&mut self.inbox)?;
                self.start = 0;
                self.end = n;
                if n == 0 {
                    // The end of the stream: rustls notes it (and tells a
                    // clean close from a cut one at the next read).
                    self.conn.read_tls(&mut io::empty())?;
                    continue;
                }
            }
            let mut records = &self.inbox[self.start..self.end];
            self.start += self.conn.read_tls(&mut records)?;
            if let Err(e) = self.conn.process_new_packets() {
                // Tell the peer why (an alert), best effort.
                self.push_some();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // Earlier records first: until they are out, take nothing more
        // (so what this returns is what the socket is taking).
        self.push()?;
        let n = self.conn.writer().write_vectored(bufs)?;
        self.push_some();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
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
    let config = rustls::ServerConfig::builder_with_provider(provider())
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
    Ok(Arc::new(config))
}

/// Accept TLS on `sock` (the handshake runs over `io`, the same socket
/// bounded by the caller's deadline).
pub(crate) fn server_connection(
    config: &Arc<rustls::ServerConfig>,
) -> io::Result<rustls::Connection> {
    let mut conn = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
    conn.set_buffer_limit(Some(SEND_BUFFER));
    Ok(conn.into())
}

/// Complete a handshake started by [`server_connection`] or
/// [`client_connection`] over `io` (the socket with timeouts, or a wrapper
/// that bounds it): an error of a timeout or would-block kind means "not
/// yet, call again"; any other ends it.
pub(crate) fn drive(conn: &mut rustls::Connection, io: &mut (impl Read + Write)) -> io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(io)?;
    }
    while conn.wants_write() {
        conn.write_tls(io)?;
    }
    Ok(())
}

/// The stream once `conn`'s handshake is done.
pub(crate) fn stream(conn: rustls::Connection, sock: TcpStream) -> Stream {
    Stream::Tls(Box::new(TlsStream {
        conn,
        sock,
        inbox: vec![0u8; INBOX].into_boxed_slice(),
        start: 0,
        end: 0,
    }))
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
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
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
) -> Result<rustls::Connection, Error> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Error::Config(format!("{host:?} is not a host name TLS can check: {e}")))?;
    let mut conn = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| Error::Config(e.to_string()))?;
    conn.set_buffer_limit(Some(SEND_BUFFER));
    Ok(conn.into())
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
/// (nothing is installed process-wide).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
