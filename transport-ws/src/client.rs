//! The client: one WebSocket connection driving a [`ClientSession`].
//!
//! [`Client`] is cheap to clone and may be shared between threads; requests
//! take turns on the connection. Its low-level calls ([`Client::request`],
//! [`Client::pipeline`], [`Client::release`]) carry protocol values as they
//! are; the proxy layer ([`crate::proxy`]) builds on them.
//!
//! A background thread answers the server's pings while the client is idle
//! (a stock server drops a connection whose pongs stop); during a call the
//! calling thread answers them as it waits for the response.

use std::io;
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use simplerpc_core::{
    extensions, ClientError, ClientSession, Extensions, ObjId, Request, Response,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderValue, StatusCode, Uri};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::close;
use crate::config::{websocket_config, ClientConfig};
use crate::error::{would_block, Error};

/// How long connecting may wait for the server's handshake answer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Socket timeout while a write cannot progress: the client then reads
/// responses meanwhile, so pipelining large requests cannot deadlock.
const POLL: Duration = Duration::from_millis(10);
/// How long `connect` waits for a stock server to refuse a token (it closes
/// with 1008 right after the upgrade).
const STOCK_REFUSAL_WAIT: Duration = Duration::from_millis(150);
/// How often the idle connection is checked for pings.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// A connection to a simplerpc (or stock simplerpyc) server. Clones share it.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Mutex<Conn>,
    /// Ids dropped by proxies; moved into the session before each send, so a
    /// proxy's drop never waits for a call in progress.
    releases: Mutex<Vec<ObjId>>,
    extensions: Extensions,
    addr: String,
    /// Dropping this sender ends the keepalive thread.
    keepalive: Mutex<Option<Sender<()>>>,
}

/// Why the connection can no longer be used.
#[derive(Debug, Clone)]
enum Ended {
    Closed(String),
    Unauthorized,
}

struct Conn {
    ws: WebSocket<TcpStream>,
    session: ClientSession,
    ended: Option<Ended>,
    /// An error seen while idle, reported by the next request.
    pending: Option<Error>,
    read_timeout: Option<Duration>,
    addr: String,
    /// How long a request may wait for its responses (None: as long as it takes).
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.shared.addr)
            .field("extensions", &self.shared.extensions)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to `ws://host:port/?token=TOKEN`, offering `config.extensions`.
    /// A server that answers no extension header (a stock `simplerpyc`
    /// server) gets exactly the reference protocol.
    pub fn connect(config: &ClientConfig) -> Result<Client, Error> {
        let addr = config.addr();
        let token = config
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::MissingToken { addr: addr.clone() })?;
        let host = config.host.trim_start_matches('[').trim_end_matches(']');
        let connect_err = |source: io::Error| Error::Connect {
            addr: addr.clone(),
            source,
        };
        let stream = TcpStream::connect((host, config.port)).map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        stream
            .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(connect_err)?;
        stream
            .set_write_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(connect_err)?;

        let handshake_err = |reason: String| Error::Handshake {
            addr: addr.clone(),
            reason,
        };
        let uri: Uri = format!("ws://{addr}/?token={}", percent_encode(token))
            .parse()
            .map_err(|e| Error::Config(format!("cannot make a URL of host {host:?}: {e}")))?;
        let mut request = uri
            .into_client_request()
            .map_err(|e| handshake_err(e.to_string()))?;
        if config.extensions != Extensions::NONE {
            let offer = HeaderValue::from_str(&config.extensions.header_value())
                .map_err(|e| handshake_err(e.to_string()))?;
            request.headers_mut().insert(extensions::HEADER, offer);
        }
        let ws_config = websocket_config(config.max_message_size);
        let (ws, response) =
            match tungstenite::client::client_with_config(request, stream, Some(ws_config)) {
                Ok(done) => done,
                Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                    let status = resp.status();
                    return Err(
                        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                            Error::Unauthorized { addr }
                        } else {
                            handshake_err(format!(
                            "the server answered HTTP {status} instead of switching to WebSocket"
                        ))
                        },
                    );
                }
                Err(HandshakeError::Failure(e)) => return Err(handshake_err(e.to_string())),
                Err(HandshakeError::Interrupted(_)) => {
                    return Err(handshake_err(format!(
                        "no answer within {HANDSHAKE_TIMEOUT:?}"
                    )))
                }
            };
        let accepted = response
            .headers()
            .get(extensions::HEADER)
            .and_then(|v| v.to_str().ok())
            .map_or(Extensions::NONE, Extensions::parse)
            .intersect(config.extensions);
        let mut ws = ws;
        if accepted == Extensions::NONE {
            // A stock simplerpyc server accepts the upgrade and only then
            // closes with 1008 on a wrong token: give it a moment to say so,
            // so the refusal is reported here rather than at the first call.
            ws.get_ref()
                .set_read_timeout(Some(STOCK_REFUSAL_WAIT))
                .map_err(connect_err)?;
            match ws.read() {
                Ok(Message::Close(Some(frame))) if frame.code == CloseCode::Policy => {
                    return Err(Error::Unauthorized { addr });
                }
                Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {
                    return Err(Error::Closed(
                        "the server closed the connection right after the handshake".into(),
                    ));
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(_) => {
                    return Err(handshake_err(
                        "the server sent a message before any request".into(),
                    ))
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(handshake_err(e.to_string())),
            }
        }
        let socket = ws.get_ref();
        socket.set_read_timeout(None).map_err(connect_err)?;
        socket.set_write_timeout(Some(POLL)).map_err(connect_err)?;

        let (stop_tx, stop_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            conn: Mutex::new(Conn {
                ws,
                session: ClientSession::new(accepted),
                ended: None,
                pending: None,
                read_timeout: None,
                timeout: config.timeout,
                addr: addr.clone(),
            }),
            releases: Mutex::new(Vec::new()),
            extensions: accepted,
            addr,
            keepalive: Mutex::new(Some(stop_tx)),
        });
        let weak = Arc::downgrade(&shared);
        thread::Builder::new()
            .name("simplerpc-keepalive".into())
            .spawn(move || keepalive(weak, stop_rx))?;
        Ok(Client { shared })
    }

    /// Connect with [`ClientConfig::from_env`].
    pub fn connect_env() -> Result<Client, Error> {
        Client::connect(&ClientConfig::from_env()?)
    }

    /// The extensions the server accepted ([`Extensions::NONE`] against a stock server).
    pub fn extensions(&self) -> Extensions {
        self.shared.extensions
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Send one request and wait for its response. A remote exception comes
    /// back as [`Response::Error`]; `Err` means the exchange itself failed.
    pub fn request(&self, request: &Request) -> Result<Response, Error> {
        let mut conn = self.begin()?;
        let (_, frame) = conn.session.send(request)?;
        let mut responses = conn.exchange(vec![frame])?;
        match responses.pop() {
            Some(r) => Ok(r?),
            None => Err(Error::Closed("no response arrived".into())),
        }
    }

    /// Change how long a request may wait for its response (`None`: no limit).
    /// A request that runs out of time fails with [`Error::Timeout`] and ends
    /// the connection, since its late answer could no longer be paired.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.lock().timeout = timeout;
    }

    /// Send every request, then read every response: one round trip for all.
    /// Responses come back in request order.
    pub fn pipeline(&self, requests: &[Request]) -> Result<Vec<Response>, Error> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.begin()?;
        let mut frames = Vec::with_capacity(requests.len());
        let mut unencodable = None;
        for r in requests {
            match conn.session.send(r) {
                Ok((_, frame)) => frames.push(frame),
                Err(e) => {
                    unencodable = Some(e);
                    break;
                }
            }
        }
        // The requests before the bad one are already counted in flight:
        // send them, so responses stay paired, then report the bad one.
        let responses = conn.exchange(frames)?;
        if let Some(e) = unencodable {
            return Err(Error::Encode(e));
        }
        responses
            .into_iter()
            .map(|r| r.map_err(Error::Protocol))
            .collect()
    }

    /// The object `id` is no longer used: free it on the server with the next
    /// request (no round trip of its own). Does nothing against a server
    /// without the `release` extension, which frees objects at disconnect.
    pub fn release(&self, id: ObjId) {
        if self.shared.extensions.release() {
            self.shared
                .releases
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(id);
        }
    }

    /// Close the connection (the server then frees every object of this
    /// client). Later requests, from any clone, fail with [`Error::Closed`].
    pub fn close(&self) {
        self.lock().close();
        self.shared
            .keepalive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether the connection is known to be closed (never waits: while a
    /// request is in progress the connection counts as open).
    pub fn is_closed(&self) -> bool {
        match self.shared.conn.try_lock() {
            Ok(conn) => conn.ended.is_some(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().ended.is_some(),
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        self.shared
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lock the connection for a request: check it is usable, move queued releases in.
    fn begin(&self) -> Result<MutexGuard<'_, Conn>, Error> {
        let mut conn = self.lock();
        if let Some(e) = conn.pending.take() {
            return Err(e);
        }
        if let Some(ended) = &conn.ended {
            return Err(ended.error(&conn.addr));
        }
        let released = std::mem::take(
            &mut *self
                .shared
                .releases
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for id in released {
            conn.session.release(id);
        }
        Ok(conn)
    }
}

impl Ended {
    fn error(&self, addr: &str) -> Error {
        match self {
            Ended::Closed(why) => Error::Closed(why.clone()),
            Ended::Unauthorized => Error::Unauthorized { addr: addr.into() },
        }
    }
}

type Answer = Result<Response, ClientError>;

impl Conn {
    /// Write `frames`, then read as many responses.
    fn exchange(&mut self, frames: Vec<Vec<u8>>) -> Result<Vec<Answer>, Error> {
        let n = frames.len();
        let mut answers = Vec::with_capacity(n);
        for frame in frames {
            match self.ws.write(Message::Binary(frame.into())) {
                Ok(()) => {}
                // Buffered; make room by flushing, reading responses meanwhile.
                Err(e) if would_block(&e) => self.flush_all(&mut answers)?,
                Err(e) => return Err(self.fail(e)),
            }
        }
        self.flush_all(&mut answers)?;
        let Some(limit) = self.timeout else {
            self.set_read_timeout(None)?;
            while answers.len() < n {
                self.read_one(&mut answers)?;
            }
            return Ok(answers);
        };
        let deadline = Instant::now() + limit;
        while answers.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The late answers could no longer be paired: end the connection.
                self.ended = Some(Ended::Closed(format!(
                    "a request got no answer within {limit:?}"
                )));
                let _ = self.ws.get_ref().shutdown(std::net::Shutdown::Both);
                return Err(Error::Timeout(limit));
            }
            self.set_read_timeout(Some(left.min(Duration::from_millis(100))))?;
            self.read_one(&mut answers)?;
        }
        Ok(answers)
    }

    /// Flush everything written; while the socket will not take more, read
    /// responses so the server is never blocked writing to us.
    fn flush_all(&mut self, answers: &mut Vec<Answer>) -> Result<(), Error> {
        loop {
            match self.ws.flush() {
                Ok(()) => return Ok(()),
                Err(e) if would_block(&e) => {
                    self.set_read_timeout(Some(POLL))?;
                    self.read_one(answers)?;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Read one message; a response is paired by the session and pushed.
    fn read_one(&mut self, answers: &mut Vec<Answer>) -> Result<(), Error> {
        match self.ws.read() {
            Ok(Message::Binary(frame)) => {
                answers.push(self.session.handle_frame(frame).map(|(_, r)| r));
            }
            Ok(Message::Text(text)) => {
                answers.push(self.session.handle_frame(text.into()).map(|(_, r)| r));
            }
            Ok(Message::Close(frame)) => return Err(self.peer_closed(frame)),
            // Pongs to pings go out with the next read.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(self.fail(e)),
        }
        Ok(())
    }

    /// While idle (called by the keepalive thread): answer pings, notice a close.
    fn poll_idle(&mut self) {
        if self.ended.is_some() || self.session.in_flight() > 0 {
            return;
        }
        if self.ws.get_ref().set_nonblocking(true).is_err() {
            return;
        }
        for _ in 0..64 {
            match self.ws.read() {
                Ok(Message::Ping(_)) => {
                    let _ = self.ws.flush();
                }
                Ok(Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Binary(_) | Message::Text(_)) => {
                    if self.pending.is_none() {
                        self.pending = Some(Error::Protocol(ClientError::Unsolicited));
                    }
                }
                Ok(Message::Close(frame)) => {
                    self.peer_closed(frame);
                    break;
                }
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
        let _ = self.ws.get_ref().set_nonblocking(false);
    }

    /// The server sent a close frame: answer it and remember why.
    fn peer_closed(&mut self, frame: Option<CloseFrame>) -> Error {
        let _ = self.ws.flush();
        let ended = match frame {
            // The reference server's answer to a wrong token.
            Some(f) if f.code == CloseCode::Policy => Ended::Unauthorized,
            Some(f) if f.reason.is_empty() => Ended::Closed(format!(
                "the server closed it with code {}",
                u16::from(f.code)
            )),
            Some(f) => Ended::Closed(format!(
                "the server closed it with code {}: {}",
                u16::from(f.code),
                f.reason
            )),
            None => Ended::Closed("the server closed it".into()),
        };
        let error = ended.error(&self.addr);
        self.ended = Some(ended);
        error
    }

    /// The socket failed. A close frame may still be waiting to be read (the
    /// reference server closes right after the handshake when the token is
    /// wrong); look for it before giving up.
    fn fail(&mut self, e: tungstenite::Error) -> Error {
        if self.ended.is_none() && matches!(e, tungstenite::Error::Io(_)) {
            let _ = self.ws.get_ref().set_read_timeout(Some(POLL));
            self.read_timeout = Some(POLL);
            for _ in 0..8 {
                match self.ws.read() {
                    Ok(Message::Close(frame)) => return self.peer_closed(frame),
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {}
                    Err(_) => break,
                }
            }
        }
        if let Some(ended) = &self.ended {
            return ended.error(&self.addr);
        }
        let why = match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                "the connection was closed".to_string()
            }
            tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ) => "the server dropped the connection".to_string(),
            tungstenite::Error::Capacity(e) => format!("a message exceeds the size limit: {e}"),
            other => other.to_string(),
        };
        self.ended = Some(Ended::Closed(why.clone()));
        Error::Closed(why)
    }

    fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<(), Error> {
        if self.read_timeout != t {
            if let Err(e) = self.ws.get_ref().set_read_timeout(t) {
                return Err(self.fail(e.into()));
            }
            self.read_timeout = t;
        }
        Ok(())
    }

    /// Close politely and wait briefly for the server's answer.
    fn close(&mut self) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(Ended::Closed("closed by this client".into()));
        close::close_with_grace(&mut self.ws, None, &mut self.read_timeout);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Tell the server we are going; do not wait for its answer.
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        if conn.ended.is_none() {
            conn.ended = Some(Ended::Closed("the client was dropped".into()));
            let _ = conn.ws.close(None);
            let _ = conn.ws.flush();
        }
    }
}

/// Wake every [`KEEPALIVE_INTERVAL`]; if the connection is idle, read what
/// the server sent (answering pings). Ends with the client.
fn keepalive(client: Weak<Shared>, stop: Receiver<()>) {
    loop {
        match stop.recv_timeout(KEEPALIVE_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(shared) = client.upgrade() else {
            return;
        };
        let ended = match shared.conn.try_lock() {
            Ok(mut conn) => {
                conn.poll_idle();
                conn.ended.is_some()
            }
            Err(_) => false,
        };
        if ended {
            return;
        }
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn encodes_tokens() {
        assert_eq!(percent_encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(percent_encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }
}
