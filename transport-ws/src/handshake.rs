//! The server side of the WebSocket handshake: the token check and the
//! extension negotiation, both decided before the upgrade.

use std::cell::Cell;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use simplerpc_core::{extensions, Extensions};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{header, HeaderValue, StatusCode};

use crate::server::Context;
use crate::token;
use crate::wire::{Tap, Wire};

/// How long a client may take to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a handshake in progress looks at the stop flag.
const HANDSHAKE_POLL: Duration = Duration::from_millis(200);

/// Body of the refusal a client without the right token gets.
const UNAUTHORIZED_BODY: &str = "invalid or missing token\n";

/// Run the handshake on a fresh connection. `None` when it failed or was
/// refused (already logged); otherwise the connection, with what the client
/// sent past the handshake already in its reader, and the accepted extensions.
pub(crate) fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Context,
) -> Option<(Wire, Extensions)> {
    if let Err(e) = configure(&stream) {
        log::warn!("client {peer}: cannot configure the socket: {e}");
        return None;
    }
    let refused = Cell::new(false);
    let accepted = Cell::new(Extensions::NONE);
    // tungstenite's callback type fixes the error type.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        if !token::authorize(target, &ctx.token) {
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
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut attempt =
        tungstenite::accept_hdr_with_config(Tap::new(stream), callback, Some(ctx.ws_config));
    loop {
        match attempt {
            Ok(mut ws) => {
                // From here on the frames are ours (see `wire`).
                let max = ctx.ws_config.max_message_size.unwrap_or(usize::MAX);
                return match ws.get_mut().finish() {
                    Ok((stream, leftover)) => {
                        Some((Wire::server(stream, max, &leftover), accepted.get()))
                    }
                    Err(e) => {
                        log::warn!("client {peer}: cannot configure the socket: {e}");
                        None
                    }
                };
            }
            Err(HandshakeError::Interrupted(mid)) => {
                if ctx.control.stopping() {
                    return None;
                }
                if Instant::now() > deadline {
                    log::warn!("client {peer}: no WebSocket handshake within {HANDSHAKE_TIMEOUT:?}; dropped");
                    return None;
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => {
                if refused.get() {
                    log::warn!("client {peer}: refused, invalid or missing token (HTTP 401)");
                } else {
                    log::warn!("client {peer}: WebSocket handshake failed: {e}");
                }
                return None;
            }
        }
    }
}

fn configure(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(HANDSHAKE_POLL))?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))
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
