//! The server side of the WebSocket handshake: TLS first when the server
//! has a certificate, then the token check and the extension negotiation,
//! both decided before the upgrade.
//!
//! The whole handshake has one wall-clock deadline
//! ([`ServerConfig::handshake_timeout`](crate::ServerConfig::handshake_timeout)),
//! checked before every read of the socket and bounding how long each read
//! may wait: a client that trickles its request a byte at a time is dropped
//! at the deadline, not when it stops sending.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use simplerpc_core::{extensions, Extensions};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{header, HeaderValue, StatusCode};

use crate::server::Context;
use crate::tls::{self, Stream, HANDSHAKE_RECORD};
use crate::token;
use crate::wire::Wire;

/// How often a handshake in progress looks at the stop flag.
const HANDSHAKE_POLL: Duration = Duration::from_millis(200);

/// Body of the refusal a client without the right token gets.
const UNAUTHORIZED_BODY: &str = "invalid or missing token\n";

/// Body of the answer a plain `ws://` client of a TLS server gets.
const TLS_ONLY_BODY: &str =
    "this server speaks TLS only: connect with wss:// (Python: tls=True or a wss:// URL)\n";

/// Run the handshake on a fresh connection. `None` when it failed or was
/// refused (already logged); otherwise the connection and the accepted extensions.
pub(crate) fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Context,
) -> Option<(Wire, Extensions)> {
    let limit = ctx.handshake_timeout;
    let deadline = Instant::now() + limit;
    if let Err(e) = configure(&stream, limit) {
        log::warn!("client {peer}: cannot configure the socket: {e}");
        return None;
    }
    let first = first_byte(&stream, peer, deadline, ctx)?;
    let mut stream = match (&ctx.tls, first) {
        (Some(config), HANDSHAKE_RECORD) => accept_tls(stream, config, peer, deadline, ctx)?,
        (Some(_), _) => {
            log::warn!(
                "client {peer}: refused, it spoke plain ws:// to this TLS server \
                 (it must connect with wss://)"
            );
            refuse_plain(&stream);
            return None;
        }
        (None, HANDSHAKE_RECORD) => {
            log::warn!(
                "client {peer}: dropped, it began a TLS handshake but this server speaks \
                 plain ws:// (connect with ws://, or start the server with a certificate \
                 and key)"
            );
            return None;
        }
        (None, _) => Stream::Plain(stream),
    };
    let refused = Cell::new(false);
    let accepted = Cell::new(Extensions::NONE);
    // tungstenite's callback type fixes the error type.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token::authorize_request(authorization, target, &ctx.token) {
            refused.set(true);
            return Err(unauthorized());
        }
        let offered = req
            .headers()
            .get(extensions::HEADER)
            .and_then(|v| v.to_str().ok());
        let ext = Extensions::negotiate(offered, ctx.extensions);
        if ext != Extensions::NONE {
            if let Ok(v) = HeaderValue::from_str(&ext.header_value()) {
                resp.headers_mut().insert(extensions::HEADER, v);
                accepted.set(ext);
            }
        }
        Ok(resp)
    };
    let timed = Timed {
        stream: &mut stream,
        deadline,
        read_timeout: Some(HANDSHAKE_POLL),
        write_timeout: None,
    };
    let late = || log::warn!("client {peer}: no WebSocket handshake within {limit:?}; dropped");
    let mut attempt = tungstenite::accept_hdr_with_config(timed, callback, Some(ctx.ws_config));
    loop {
        match attempt {
            // tungstenite refuses bytes after the request (JunkAfterRequest),
            // so nothing is buffered: the frames start on the bare socket,
            // and from here on they are ours (see `wire`).
            Ok(ws) => {
                drop(ws);
                let max = ctx.ws_config.max_message_size.unwrap_or(usize::MAX);
                return Some((Wire::server(stream, max, &[]), accepted.get()));
            }
            Err(HandshakeError::Interrupted(mid)) => {
                if ctx.control.stopping() {
                    return None;
                }
                if Instant::now() >= deadline {
                    late();
                    return None;
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => {
                if refused.get() {
                    log::warn!("client {peer}: refused, invalid or missing token (HTTP 401)");
                } else if matches!(&e, tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::TimedOut)
                {
                    late();
                } else {
                    log::warn!("client {peer}: WebSocket handshake failed: {e}");
                }
                return None;
            }
        }
    }
}

/// The first byte the client sends (left unread), to tell a TLS handshake
/// from plain HTTP; `None` when it sends nothing in time (logged).
fn first_byte(
    stream: &TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    ctx: &Context,
) -> Option<u8> {
    let mut b = [0u8; 1];
    loop {
        match stream.peek(&mut b) {
            Ok(0) => return None,
            Ok(_) => return Some(b[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if ctx.control.stopping() {
                    return None;
                }
                if Instant::now() >= deadline {
                    log::warn!(
                        "client {peer}: sent nothing within {:?}; dropped",
                        ctx.handshake_timeout
                    );
                    return None;
                }
            }
            Err(e) => {
                log::warn!("client {peer}: {e}");
                return None;
            }
        }
    }
}

/// The TLS handshake, within the handshake's deadline.
fn accept_tls(
    stream: TcpStream,
    config: &std::sync::Arc<rustls::ServerConfig>,
    peer: SocketAddr,
    deadline: Instant,
    ctx: &Context,
) -> Option<Stream> {
    let mut conn = match tls::server_connection(config) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("client {peer}: cannot start TLS: {e}");
            return None;
        }
    };
    let mut plain = Stream::Plain(stream);
    let mut timed = Timed {
        stream: &mut plain,
        deadline,
        read_timeout: Some(HANDSHAKE_POLL),
        write_timeout: None,
    };
    loop {
        match tls::drive(&mut conn, &mut timed) {
            Ok(()) => break,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                if ctx.control.stopping() {
                    return None;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                log::warn!(
                    "client {peer}: no TLS handshake within {:?}; dropped",
                    ctx.handshake_timeout
                );
                return None;
            }
            Err(e) => {
                log::warn!("client {peer}: TLS handshake failed: {e}");
                return None;
            }
        }
    }
    let Stream::Plain(stream) = plain else {
        return None;
    };
    match tls::stream(conn, stream) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("client {peer}: TLS failed after its handshake: {e}");
            None
        }
    }
}

/// Answer a plain HTTP request to a TLS server with HTTP 400 saying why,
/// and close. The request is read first (so closing does not reset the
/// connection before the client reads the answer).
fn refuse_plain(stream: &TcpStream) {
    let mut s = stream;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 8192];
    let _ = s.read(&mut sink);
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{TLS_ONLY_BODY}",
        TLS_ONLY_BODY.len()
    );
    let _ = s.write_all(answer.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Until the client closes (it has its answer), briefly.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

fn configure(stream: &TcpStream, limit: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(HANDSHAKE_POLL))?;
    stream.set_write_timeout(Some(limit))
}

/// The socket as the handshake sees it: no read starts after the deadline,
/// and none waits past it (nor longer than [`HANDSHAKE_POLL`], so the
/// stop flag is looked at).
struct Timed<'a> {
    stream: &'a mut Stream,
    deadline: Instant,
    /// The socket's read timeout, to skip redundant system calls.
    read_timeout: Option<Duration>,
    /// The socket's write timeout as last set here (`None`: not yet).
    write_timeout: Option<Duration>,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        // A zero timeout means "none" to the socket.
        if left < Duration::from_millis(1) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the handshake deadline passed",
            ));
        }
        let wait = Some(left.min(HANDSHAKE_POLL));
        if self.read_timeout != wait {
            self.stream.tcp().set_read_timeout(wait)?;
            self.read_timeout = wait;
        }
        loop {
            match self.stream.read(buf) {
                // A signal is not a failure: read again (the deadline is
                // looked at by the next call).
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Timed<'_> {
    /// Before a write: no write starts after the deadline, and none waits
    /// past it (the socket's write timeout is what is left).
    fn bound_write(&mut self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the handshake deadline passed",
            ));
        }
        let wait = Some(left);
        // Only when it shrank noticeably: a system call per write otherwise.
        if self
            .write_timeout
            .map_or(true, |t| t > left + Duration::from_millis(50))
        {
            self.stream.tcp().set_write_timeout(wait)?;
            self.write_timeout = wait;
        }
        Ok(())
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bound_write()?;
        loop {
            match self.stream.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.bound_write()?;
        loop {
            match self.stream.flush() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// HTTP 401 with a short body: a stock client sees a failed connection.
fn unauthorized() -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(UNAUTHORIZED_BODY.to_owned()));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(UNAUTHORIZED_BODY.len()),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
