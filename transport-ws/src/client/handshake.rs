//! The client side of the WebSocket handshake: the TCP connection, the
//! upgrade request (token in its query, extensions offered in a header),
//! reading which extensions the server accepted, and telling a refused
//! token from a working connection.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use simplerpc_core::{extensions, Extensions};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderValue, StatusCode, Uri};

use super::POLL;
use crate::config::{websocket_config, ClientConfig};
use crate::error::Error;
use crate::token;
use crate::wire::{Incoming, Tap, Wire};

/// How long connecting may wait for the server's handshake answer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `connect` waits for a stock server to refuse a token (it closes
/// with 1008 right after the upgrade).
const STOCK_REFUSAL_WAIT: Duration = Duration::from_millis(150);

/// Connect to `addr` (`config.addr()`), present `token` and offer
/// `config.extensions`. Returns the socket, set up for requests (no read
/// timeout, a [`POLL`] write timeout), and the extensions both sides speak.
pub(super) fn connect(
    config: &ClientConfig,
    addr: &str,
    token: &str,
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
    stream.set_nodelay(true).map_err(connect_err)?;
    stream
        .set_read_timeout(Some(handshake_wait))
        .map_err(connect_err)?;
    stream
        .set_write_timeout(Some(handshake_wait))
        .map_err(connect_err)?;

    let request = upgrade_request(addr, host, token, config.extensions)?;
    let ws_config = websocket_config(config.max_message_size);
    let (mut ws, response) =
        match tungstenite::client::client_with_config(request, Tap::new(stream), Some(ws_config)) {
            Ok(done) => done,
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                return Err(http_refusal(addr, resp.status(), resp.body().as_deref()))
            }
            Err(HandshakeError::Failure(e)) => return Err(handshake_err(addr, e.to_string())),
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
        await_stock_refusal(&mut wire, addr)?;
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

/// The upgrade request for `ws://addr/?token=TOKEN`, offering `offer` in the
/// extensions header (no header when it offers nothing).
fn upgrade_request(
    addr: &str,
    host: &str,
    token: &str,
    offer: Extensions,
) -> Result<Request, Error> {
    let uri: Uri = format!("ws://{addr}{}", token::request_target(token))
        .parse()
        .map_err(|e| Error::Config(format!("cannot make a URL of host {host:?}: {e}")))?;
    let mut request = uri
        .into_client_request()
        .map_err(|e| handshake_err(addr, e.to_string()))?;
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
