//! The client side of the WebSocket handshake: the TCP connection, TLS
//! over it for `wss://`, the upgrade request (token in an `Authorization:
//! Bearer` header, extensions offered in another),
//! reading which extensions the server accepted, and telling a refused
//! token from a working connection.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use simplerpc_core::{extensions, Extensions};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{header, HeaderValue, StatusCode, Uri};

use super::POLL;
use crate::config::{websocket_config, ClientConfig};
use crate::error::Error;
use crate::tls::{self, Stream};
use crate::token;
use crate::wire::{bound, Incoming, Tap, Wire};

/// How long connecting may wait for the server's handshake answer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `connect` waits for a stock server to refuse a token (it closes
/// with 1008 right after the upgrade).
const STOCK_REFUSAL_WAIT: Duration = Duration::from_millis(150);

/// Connect to `addr` (`config.addr()`), present `token` and offer
/// `config.extensions`. Returns the socket, set up for requests (no read
/// timeout, a [`POLL`] write timeout), and the extensions both sides speak.
///
/// The token goes in an `Authorization: Bearer` header, out of the URL
/// (which proxies and access logs record). A stock simplerpyc server reads
/// only the URL's `?token=` and refuses with close code 1008 after the
/// upgrade: over plain `ws://`, that refusal is answered by connecting
/// once more with the token in the URL as well.
pub(super) fn connect(
    config: &ClientConfig,
    addr: &str,
    token: &str,
) -> Result<(Wire, Extensions), Error> {
    let mut stock_refused = false;
    match connect_once(config, addr, token, false, &mut stock_refused) {
        Err(Error::Unauthorized { .. }) if stock_refused && !config.uses_tls() => {
            log::debug!(
                "{addr} refused the token in a header as a stock server does; \
                 presenting it in the URL"
            );
            connect_once(config, addr, token, true, &mut stock_refused)
        }
        other => other,
    }
}

fn connect_once(
    config: &ClientConfig,
    addr: &str,
    token: &str,
    token_in_url: bool,
    stock_refused: &mut bool,
) -> Result<(Wire, Extensions), Error> {
    let host = config.host.trim_start_matches('[').trim_end_matches(']');
    let connect_err = |source: io::Error| Error::Connect {
        addr: addr.into(),
        source,
    };
    let started = Instant::now();
    let timed_out = |after: Duration| Error::ConnectTimeout {
        addr: addr.into(),
        after,
    };
    let stream = match config.connect_timeout {
        None => TcpStream::connect((host, config.port)).map_err(connect_err)?,
        Some(limit) => connect_within(host, config.port, limit).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                timed_out(limit)
            } else {
                connect_err(e)
            }
        })?,
    };
    // The handshake has what is left of the connect timeout, at most 30 s.
    let handshake_wait = match config.connect_timeout {
        Some(limit) => limit
            .saturating_sub(started.elapsed())
            .min(HANDSHAKE_TIMEOUT)
            .max(Duration::from_millis(1)),
        None => HANDSHAKE_TIMEOUT,
    };
    // One budget for the TLS and WebSocket handshakes together, however
    // many reads they take (each read and write waits only what is left).
    let deadline = Instant::now() + handshake_wait;
    stream.set_nodelay(true).map_err(connect_err)?;

    let stream = if config.uses_tls() {
        start_tls(config, host, addr, stream, handshake_wait, deadline)?
    } else {
        Stream::Plain(stream)
    };

    let request = upgrade_request(addr, host, token, token_in_url, config)?;
    let ws_config = websocket_config(config.max_message_size);
    let (mut ws, response) = match tungstenite::client::client_with_config(
        request,
        Tap::new(stream, deadline),
        Some(ws_config),
    ) {
        Ok(done) => done,
        Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            return Err(http_refusal(addr, resp.status(), resp.body().as_deref()))
        }
        Err(HandshakeError::Failure(e)) => {
            let mut reason = e.to_string();
            if !config.uses_tls() && matches!(e, tungstenite::Error::Protocol(_)) {
                reason.push_str(" (is it a TLS server? connect with wss://, or tls=True)");
            }
            return Err(handshake_err(addr, reason));
        }
        Err(HandshakeError::Interrupted(_)) => {
            return Err(match config.connect_timeout {
                Some(limit) if handshake_wait < HANDSHAKE_TIMEOUT => timed_out(limit),
                _ => handshake_err(addr, format!("no answer within {handshake_wait:?}")),
            })
        }
    };
    let accepted = response
        .headers()
        .get(extensions::HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or(Extensions::NONE, Extensions::parse)
        .intersect(config.extensions);
    // From here on the frames are ours (see `wire`).
    let (stream, leftover) = ws.get_mut().finish().map_err(connect_err)?;
    drop(ws);
    let mut wire = Wire::client(stream, config.max_message_size, &leftover);
    if accepted == Extensions::NONE {
        if let Err(e) = await_stock_refusal(&mut wire, addr) {
            *stock_refused = matches!(e, Error::Unauthorized { .. });
            return Err(e);
        }
    }
    wire.set_read_timeout(None).map_err(connect_err)?;
    wire.stream()
        .set_write_timeout(Some(POLL))
        .map_err(connect_err)?;
    Ok((wire, accepted))
}

/// A TCP connection to `host:port` within `limit`, trying each address the
/// name resolves to with what is left of it (an error of kind `TimedOut`
/// when none answered in time).
fn connect_within(host: &str, port: u16, limit: Duration) -> io::Result<TcpStream> {
    // A limit past what an Instant can hold (Duration::MAX) is none.
    let deadline = Instant::now().checked_add(limit);
    let mut last = None;
    for a in (host, port).to_socket_addrs()? {
        let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            io::Error::from(io::ErrorKind::TimedOut)
        } else {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolves to no address"),
            )
        }
    }))
}

/// TLS over `stream` with `host`, its certificate checked; the handshake
/// done by `deadline` (`wait`: what was left of the connect timeout, at
/// most [`HANDSHAKE_TIMEOUT`], when the handshakes began).
fn start_tls(
    config: &ClientConfig,
    host: &str,
    addr: &str,
    stream: TcpStream,
    wait: Duration,
    deadline: Instant,
) -> Result<Stream, Error> {
    let tls_config = tls::client_config(config.cafile.as_deref())?;
    let mut conn = tls::client_connection(&tls_config, host)?;
    let mut sock = Bounded {
        sock: &stream,
        deadline,
        first: Vec::new(),
    };
    let driven = tls::drive(&mut conn, &mut sock);
    // A server that refuses before TLS answers plain HTTP (a busy one, 503
    // naming its connection limit): say what it said, rather than guess
    // it is a plain ws:// server.
    if driven.is_err() && sock.first.starts_with(b"HTTP/") {
        return Err(plain_http_answer(addr, &sock.first));
    }
    match driven {
        Ok(()) => tls::stream(conn, stream).map_err(|e| Error::Tls {
            addr: addr.into(),
            reason: tls::explain_client_failure(host, &e),
        }),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(match config.connect_timeout {
                Some(limit) if wait < HANDSHAKE_TIMEOUT => Error::ConnectTimeout {
                    addr: addr.into(),
                    after: limit,
                },
                _ => Error::Tls {
                    addr: addr.into(),
                    reason: format!(
                        "no TLS answer within {wait:?}: is the server a plain ws:// \
                         server (connect with ws://), or is the network dropping packets?"
                    ),
                },
            })
        }
        Err(e) => Err(Error::Tls {
            addr: addr.into(),
            reason: tls::explain_client_failure(host, &e),
        }),
    }
}

/// How much of what a server sends first is kept, to report a plain HTTP
/// answer to a TLS handshake.
const FIRST_KEPT: usize = 1024;

/// The socket during the TLS handshake: no read or write waits past
/// `deadline` (see [`bound`]); the first bytes read are kept.
struct Bounded<'a> {
    sock: &'a TcpStream,
    deadline: Instant,
    first: Vec<u8>,
}

impl io::Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A signal during the handshake is not a failure: read again (as
        // `Tap` does for the WebSocket upgrade; the deadline still bounds it).
        let n = loop {
            bound(self.sock, self.deadline)?;
            match io::Read::read(&mut self.sock, buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        let keep = n.min(FIRST_KEPT - self.first.len());
        self.first.extend_from_slice(&buf[..keep]);
        Ok(n)
    }
}

/// The error for a plain HTTP answer (`bytes`, its start) to our TLS
/// handshake: a busy server's 503 as over plain `ws://` (its body names the
/// limit), any other as a server that does not speak TLS.
fn plain_http_answer(addr: &str, bytes: &[u8]) -> Error {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok());
    match code {
        // A busy server's refusal, over TLS or not.
        Some(status) if status == StatusCode::SERVICE_UNAVAILABLE => {
            http_refusal(addr, status, Some(body.as_bytes()))
        }
        _ => Error::Tls {
            addr: addr.into(),
            reason: format!(
                "the server answered the TLS handshake with plain HTTP ({}): it does not \
                 speak TLS on this port (a plain ws:// server, or another service)",
                head.lines().next().unwrap_or("").trim()
            ),
        },
    }
}

impl io::Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            bound(self.sock, self.deadline)?;
            match io::Write::write(&mut self.sock, buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::Write::flush(&mut self.sock)
    }
}

/// The upgrade request for `ws://addr/` (`wss://`), the token in an
/// `Authorization: Bearer` header (and in the URL's query too when
/// `token_in_url`, for a stock server), offering the configured extensions
/// in their header (no header when it offers nothing).
fn upgrade_request(
    addr: &str,
    host: &str,
    token: &str,
    token_in_url: bool,
    config: &ClientConfig,
) -> Result<Request, Error> {
    let offer = config.extensions;
    let scheme = if config.uses_tls() { "wss" } else { "ws" };
    let target = if token_in_url {
        token::request_target(token)
    } else {
        "/".to_owned()
    };
    let uri: Uri = format!("{scheme}://{addr}{target}")
        .parse()
        .map_err(|e| Error::Config(format!("cannot make a URL of host {host:?}: {e}")))?;
    let mut request = uri
        .into_client_request()
        .map_err(|e| handshake_err(addr, e.to_string()))?;
    let bearer = HeaderValue::from_str(&token::bearer(token)).map_err(|_| {
        Error::Config("the token holds characters an HTTP header cannot carry".into())
    })?;
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
    if offer != Extensions::NONE {
        let value = HeaderValue::from_str(&offer.header_value())
            .map_err(|e| handshake_err(addr, e.to_string()))?;
        request.headers_mut().insert(extensions::HEADER, value);
    }
    Ok(request)
}

/// A stock simplerpyc server accepts the upgrade and only then closes with
/// 1008 on a wrong token: give it a moment to say so, so the refusal is
/// reported by `connect` rather than by the first call.
fn await_stock_refusal(wire: &mut Wire, addr: &str) -> Result<(), Error> {
    wire.set_read_timeout(Some(STOCK_REFUSAL_WAIT))
        .map_err(|source| Error::Connect {
            addr: addr.into(),
            source,
        })?;
    match wire.read() {
        Ok(Incoming::Close(Some((1008, _)))) => Err(Error::Unauthorized { addr: addr.into() }),
        Ok(Incoming::Close(_)) | Err(crate::wire::WireError::Eof { .. }) => Err(Error::Closed(
            "the server closed the connection right after the handshake".into(),
        )),
        Ok(Incoming::Ping(payload)) => {
            if wire.queue_pong(&payload).is_ok() {
                let _ = wire.flush();
            }
            Ok(())
        }
        Ok(Incoming::Pong) => Ok(()),
        Ok(Incoming::Message(_)) => Err(handshake_err(
            addr,
            "the server sent a message before any request".into(),
        )),
        Err(e) if e.is_retry() => Ok(()),
        Err(e) => Err(handshake_err(addr, e.to_string())),
    }
}

/// The server answered the upgrade request with a plain HTTP status, and
/// perhaps a reason in the body (a busy server names its connection limit).
fn http_refusal(addr: &str, status: StatusCode, body: Option<&[u8]>) -> Error {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Error::Unauthorized { addr: addr.into() };
    }
    let mut reason = format!("the server answered HTTP {status} instead of switching to WebSocket");
    let said = body.map_or("", |b| std::str::from_utf8(b).unwrap_or("").trim());
    if !said.is_empty() {
        reason = format!("{reason}: {}", said.chars().take(300).collect::<String>());
    }
    handshake_err(addr, reason)
}

fn handshake_err(addr: &str, reason: String) -> Error {
    Error::Handshake {
        addr: addr.into(),
        reason,
    }
}
