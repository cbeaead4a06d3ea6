//! Server and client configuration.

use std::path::PathBuf;
use std::time::Duration;

use simplerpc_core::Extensions;
use tungstenite::protocol::WebSocketConfig;

use crate::error::Error;

/// The default largest message: 2 GiB, so a 1 GiB array and its framing fit.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 2 << 30;

/// The default host, as the reference uses.
pub const DEFAULT_HOST: &str = "localhost";

/// The default port, as the reference uses.
pub const DEFAULT_PORT: u16 = 8000;

/// By default a peer silent this long is pinged.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);

/// By default a peer silent this long, pings unanswered, counts as dead.
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(30);

/// How a side tells a live peer from a dead one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    pub(crate) ping_interval: Duration,
    pub(crate) dead_after: Option<Duration>,
}

impl Liveness {
    /// How often a silent peer is pinged: the interval, or more often when
    /// that would leave fewer than three pings before it counts as dead.
    pub(crate) fn ping_every(&self) -> Duration {
        match self.dead_after {
            Some(dead) => self.ping_interval.min(dead / 3),
            None => self.ping_interval,
        }
    }
}

/// The default [`ServerConfig::max_connections`]: 256 clients at once. Each
/// takes two threads; a few hundred is far past what one simulator host
/// serves, and still a bound on threads when something connects in a loop.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// The default [`ServerConfig::stack_size`]: 8 MiB, the main thread's stack
/// on Linux, so executor code (a Python executor with a raised recursion
/// limit, say) has the depth it would have there. Only the pages a thread
/// touches are committed.
pub const DEFAULT_STACK_SIZE: usize = 8 << 20;

/// The smallest [`ServerConfig::stack_size`] accepted: 64 KiB.
pub const MIN_STACK_SIZE: usize = 64 << 10;

/// The default [`ServerConfig::handshake_timeout`]: 10 s from the
/// connection's accept to its upgrade.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub use simplerpc_core::server::DEFAULT_MAX_OBJECTS;

/// How a [`Server`](crate::Server) listens and whom it lets in. Its
/// `Debug` form shows the token as `"<hidden>"`, so a log of it leaks nothing.
#[derive(Clone)]
pub struct ServerConfig {
    /// Host name or address to listen on (`"localhost"`, `"0.0.0.0"`).
    pub host: String,
    /// Port to listen on; 0 picks a free one ([`Server::local_addr`](crate::Server::local_addr) tells which).
    pub port: u16,
    /// The token clients must present; `None` generates a fresh one like the
    /// reference does ([`Server::token`](crate::Server::token) tells it).
    pub token: Option<String>,
    /// Largest message (and frame) accepted from a client, in bytes.
    pub max_message_size: usize,
    /// The protocol extensions this server accepts when a client offers them.
    pub extensions: Extensions,
    /// A client silent this long is pinged.
    pub ping_interval: Duration,
    /// A client silent this long (its pings unanswered, or a response it
    /// does not read) is dropped, and its session and objects freed; `None`
    /// never gives up. A stock simplerpyc client answers pings only during
    /// its calls, so for it only an unread response counts.
    pub dead_after: Option<Duration>,
    /// The most objects one connection may hold at once (default
    /// [`DEFAULT_MAX_OBJECTS`]); a request that would create one more is
    /// answered with a `simplerpc.ObjectLimitError` until the client
    /// releases some (see [`ServerSession::set_max_objects`](simplerpc_core::ServerSession::set_max_objects)).
    pub max_objects: usize,
    /// The most connections served at once, handshakes in progress included
    /// (default [`DEFAULT_MAX_CONNECTIONS`]). One more is answered
    /// `HTTP 503` at once by the accept loop, with no thread started for it;
    /// clients report it naming this limit.
    pub max_connections: usize,
    /// Stack size, in bytes, of the threads that run executor code (each
    /// connection's thread); default [`DEFAULT_STACK_SIZE`], at least
    /// [`MIN_STACK_SIZE`].
    pub stack_size: usize,
    /// How long a client has, from its connection's accept, to complete the
    /// WebSocket upgrade (default [`DEFAULT_HANDSHAKE_TIMEOUT`]); a wall-clock
    /// deadline, however the bytes trickle in. Past it the connection is
    /// dropped.
    pub handshake_timeout: Duration,
    /// The server's certificate chain, a PEM file (its own certificate
    /// first, then any intermediates). With [`ServerConfig::keyfile`] the
    /// server speaks only TLS (`wss://`); a plain `ws://` client is
    /// answered HTTP 400 naming the cause.
    pub certfile: Option<PathBuf>,
    /// The private key of [`ServerConfig::certfile`], a PEM file.
    pub keyfile: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            token: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            extensions: Extensions::ALL,
            ping_interval: DEFAULT_PING_INTERVAL,
            dead_after: Some(DEFAULT_DEAD_AFTER),
            max_objects: DEFAULT_MAX_OBJECTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            stack_size: DEFAULT_STACK_SIZE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            certfile: None,
            keyfile: None,
        }
    }
}

impl ServerConfig {
    /// Refuse limits that cannot work (zero connections, a stack too small
    /// to run anything, a zero deadline), naming the field.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Config(what));
        if self.max_connections == 0 {
            return bad("max_connections is 0: the server would refuse every client".into());
        }
        if self.max_objects == 0 {
            return bad("max_objects is 0: every request making an object would fail".into());
        }
        if self.stack_size < MIN_STACK_SIZE {
            return bad(format!(
                "stack_size is {} bytes, below the minimum of {MIN_STACK_SIZE}",
                self.stack_size
            ));
        }
        if self.handshake_timeout.is_zero() {
            return bad("handshake_timeout is 0: no client could connect".into());
        }
        match (&self.certfile, &self.keyfile) {
            (Some(_), None) => return bad("certfile without keyfile: TLS needs both".into()),
            (None, Some(_)) => return bad("keyfile without certfile: TLS needs both".into()),
            _ => {}
        }
        Ok(())
    }
}

/// Where a [`Client`](crate::Client) connects and how. Its `Debug` form
/// shows the token as `"<hidden>"`.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// The token the server printed; connecting without one is an error.
    pub token: Option<String>,
    /// The protocol extensions to offer; [`Extensions::NONE`] speaks exactly
    /// the reference protocol.
    pub extensions: Extensions,
    /// Largest message (and frame) accepted from the server, in bytes, and
    /// largest request this client builds (a larger one is refused before
    /// it is built, naming its size and this limit).
    pub max_message_size: usize,
    /// How long connecting (the TCP connection and the WebSocket handshake)
    /// may take; `None` (the default) leaves the TCP connection to the
    /// operating system's timeout and gives the handshake 30 s. Past it,
    /// [`Error::ConnectTimeout`].
    pub connect_timeout: Option<Duration>,
    /// How long a request may wait for its response; `None` (the default)
    /// waits as long as the call takes. A request that runs out of time fails
    /// with [`Error::Timeout`] and ends the connection.
    pub timeout: Option<std::time::Duration>,
    /// While a request waits, a server silent this long is pinged.
    pub ping_interval: Duration,
    /// A simplerpc server silent this long while a request waits, its pings
    /// unanswered, counts as dead (frozen, or the network is gone): the
    /// request fails with [`Error::Dead`] and the
    /// connection is closed. A healthy server answers pings during the
    /// longest call. `None` waits forever. Not applied to a stock
    /// simplerpyc server, which cannot answer pings while it runs a call.
    pub dead_after: Option<Duration>,
    /// Speak TLS (`wss://`): the server's certificate is checked against
    /// the platform's trusted roots, or against [`ClientConfig::cafile`].
    pub tls: bool,
    /// A PEM file of the CA certificates to trust instead of the
    /// platform's (a lab's own CA, or a self-signed server certificate);
    /// implies [`ClientConfig::tls`].
    pub cafile: Option<PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            token: None,
            extensions: Extensions::ALL,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            connect_timeout: None,
            timeout: None,
            ping_interval: DEFAULT_PING_INTERVAL,
            dead_after: Some(DEFAULT_DEAD_AFTER),
            tls: false,
            cafile: None,
        }
    }
}

impl ClientConfig {
    /// A configuration for `host:port` with `token`.
    pub fn new(host: impl Into<String>, port: u16, token: impl Into<String>) -> Self {
        ClientConfig {
            host: host.into(),
            port,
            token: Some(token.into()),
            ..ClientConfig::default()
        }
    }

    /// Read `SIMPLERPC_HOST`, `SIMPLERPC_PORT` and `SIMPLERPC_TOKEN`
    /// (defaults: `localhost`, 8000, no token). A port that is not a number is
    /// an error; a missing token is reported by [`Client::connect`](crate::Client::connect).
    pub fn from_env() -> Result<Self, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let port = match var("SIMPLERPC_PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "SIMPLERPC_PORT is {p:?}, not a port number (1-65535)"
                ))
            })?,
        };
        Ok(ClientConfig {
            host: var("SIMPLERPC_HOST").unwrap_or_else(|| DEFAULT_HOST.into()),
            port,
            token: var("SIMPLERPC_TOKEN"),
            ..ClientConfig::default()
        })
    }

    /// Whether this client speaks TLS ([`ClientConfig::tls`], or a
    /// [`ClientConfig::cafile`] given).
    pub fn uses_tls(&self) -> bool {
        self.tls || self.cafile.is_some()
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// `host:port`, bracketing a bare IPv6 address.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// tungstenite's configuration with both size limits set to `max`.
pub(crate) fn websocket_config(max: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("max_message_size", &self.max_message_size)
            .field("extensions", &self.extensions)
            .field("ping_interval", &self.ping_interval)
            .field("dead_after", &self.dead_after)
            .field("max_objects", &self.max_objects)
            .field("max_connections", &self.max_connections)
            .field("stack_size", &self.stack_size)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .finish()
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("extensions", &self.extensions)
            .field("max_message_size", &self.max_message_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("ping_interval", &self.ping_interval)
            .field("dead_after", &self.dead_after)
            .field("tls", &self.tls)
            .field("cafile", &self.cafile)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_reads_the_reference_variables() {
        // The only test that touches these variables.
        std::env::set_var("SIMPLERPC_HOST", "10.1.2.3");
        std::env::set_var("SIMPLERPC_PORT", "9001");
        std::env::set_var("SIMPLERPC_TOKEN", "tok");
        let c = ClientConfig::from_env().unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.token.as_deref()),
            ("10.1.2.3", 9001, Some("tok"))
        );
        assert_eq!(c.extensions, Extensions::ALL);
        std::env::set_var("SIMPLERPC_PORT", "eighty");
        assert!(matches!(ClientConfig::from_env(), Err(Error::Config(_))));
        for v in ["SIMPLERPC_HOST", "SIMPLERPC_PORT", "SIMPLERPC_TOKEN"] {
            std::env::remove_var(v);
        }
        let c = ClientConfig::from_env().unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.token),
            (DEFAULT_HOST, DEFAULT_PORT, None)
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("[::1]", 80), "[::1]:80");
        assert_eq!(host_port("localhost", 80), "localhost:80");
    }

    #[test]
    fn debug_hides_the_token() {
        let c = ClientConfig {
            token: Some("s3cret-token".into()),
            ..ClientConfig::default()
        };
        let s = ServerConfig {
            token: Some("s3cret-token".into()),
            ..ServerConfig::default()
        };
        for shown in [format!("{c:?}"), format!("{s:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("<hidden>"), "{shown}");
        }
    }
}
