//! The WebSocket server with a C executor.

use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use simplerpc_ws::{RunningServer, Server, ServerConfig};

use crate::error::{guard, srpc_status, FfiError, SrpcStatusErrIo};
use crate::executor::{srpc_executor, Callbacks};
use crate::types::srpc_str;

/// How a server listens. Zero fields take the defaults.
#[repr(C)]
pub struct srpc_server_config {
    /// Host to bind ("localhost", "127.0.0.1", "0.0.0.0"); empty means "localhost".
    pub host: srpc_str,
    /// Port to bind; 0 picks a free port (srpc_server_port() tells which).
    pub port: u16,
    /// The token clients must present; empty generates a fresh one
    /// (srpc_server_token() tells it).
    pub token: srpc_str,
    /// Largest message accepted, in bytes; 0 means the default (2 GiB).
    pub max_message_size: u64,
    /// Most objects one connection may hold at once; 0 means the default
    /// (1,000,000). A request that would create one more is answered with
    /// an error of type "simplerpc.ObjectLimitError" until the client
    /// releases some.
    pub max_objects: u64,
    /// Most connections served at once, handshakes included; 0 means the
    /// default (256). One more is answered HTTP 503 naming the limit.
    pub max_connections: u32,
    /// Stack size in bytes of the threads that run executor callbacks; 0
    /// means the default (8 MiB). At least 65536.
    pub stack_size: u64,
    /// Milliseconds a client has, from its accept, to complete the
    /// WebSocket handshake; 0 means the default (10 000).
    pub handshake_timeout_ms: u64,
    /// Milliseconds a client may be silent before it is pinged; 0 means the
    /// default (10 000).
    pub ping_interval_ms: u64,
    /// Milliseconds a client may stay silent, its pings unanswered (or a
    /// response unread), before it is dropped and its session and objects
    /// freed; 0 means the default (30 000), UINT64_MAX never. A stock
    /// simplerpyc client answers pings only during its calls, so for it only
    /// an unread response counts.
    pub dead_after_ms: u64,
    /// The extensions (SRPC_EXT_*) the server accepts when a client offers
    /// them; 0 means the default, SRPC_EXT_DEFAULT (all but SRPC_EXT_TUPLE).
    /// Add SRPC_EXT_TUPLE when the executor reads and writes the tuple
    /// marker (see srpc_reply_extensions()). A stock simplerpyc client
    /// offers none and always gets the reference protocol.
    pub extensions: u32,
    /// Path of the server's certificate chain, a PEM file (its own
    /// certificate first). With `keyfile` the server speaks only TLS
    /// (wss://); empty: plain ws://.
    pub certfile: srpc_str,
    /// Path of the private key of `certfile`, a PEM file; empty: none.
    pub keyfile: srpc_str,
}

/// A running WebSocket server. Opaque.
pub struct srpc_server {
    running: Mutex<Option<RunningServer>>,
    /// Keeps the userdata alive (and unfreed) until srpc_server_free, even
    /// after the server's threads, which hold the other references, ended.
    _callbacks: Arc<Callbacks>,
    port: u16,
    token: CString,
}

fn out<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, FfiError> {
    // SAFETY: NULL checked; otherwise the caller passes a valid out-pointer.
    unsafe { p.as_mut() }.ok_or_else(|| FfiError::null(what))
}

fn live<'a>(p: *const srpc_server) -> Result<&'a srpc_server, FfiError> {
    // SAFETY: NULL checked; otherwise a live server from srpc_server_start().
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null("server"))
}

/// Bind and start a server on its own threads; one executor session is
/// opened per connected client. `executor` is copied; its userdata is freed
/// (by `free_userdata`) in srpc_server_free(), or before this returns when
/// it fails (any failure but a NULL `executor` or `executor->call`: the
/// host must not free it then). Returns SRPC_STATUS_ERR_IO when the
/// address cannot be bound, SRPC_STATUS_ERR_INVALID_ARGUMENT for a limit
/// that cannot work (a stack under 64 KiB). Stop with srpc_server_stop(), free with srpc_server_free().
///
/// # Safety
/// `config` and `executor` point to valid structs; `server_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_start(
    config: *const srpc_server_config,
    executor: *const srpc_executor,
    server_out: *mut *mut srpc_server,
) -> srpc_status {
    guard(|| {
        // SAFETY: NULL checked; otherwise valid structs (documented).
        let cfg = unsafe { config.as_ref() }.ok_or_else(|| FfiError::null("config"))?;
        // SAFETY: as above.
        let ex = unsafe { executor.as_ref() }.ok_or_else(|| FfiError::null("executor"))?;
        // Owned from here: every failure below frees the userdata.
        let callbacks = Callbacks::new(ex)?;
        let o = out(server_out, "server_out")?;
        // SAFETY: the config's strings are valid for the call.
        let host = unsafe { cfg.host.as_str("config.host")? };
        // SAFETY: as above.
        let token = unsafe { cfg.token.as_str("config.token")? };
        let kept = Arc::clone(&callbacks);
        let mut config = ServerConfig {
            port: cfg.port,
            ..ServerConfig::default()
        };
        if !host.is_empty() {
            config.host = host.to_owned();
        }
        if !token.is_empty() {
            config.token = Some(token.to_owned());
        }
        // SAFETY: the config's strings are valid for the call.
        let certfile = unsafe { cfg.certfile.as_str("config.certfile")? };
        // SAFETY: as above.
        let keyfile = unsafe { cfg.keyfile.as_str("config.keyfile")? };
        if !certfile.is_empty() {
            config.certfile = Some(certfile.into());
        }
        if !keyfile.is_empty() {
            config.keyfile = Some(keyfile.into());
        }
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if cfg.max_message_size != 0 {
            config.max_message_size = size(cfg.max_message_size);
        }
        if cfg.max_objects != 0 {
            config.max_objects = size(cfg.max_objects);
        }
        if cfg.max_connections != 0 {
            config.max_connections = size(cfg.max_connections.into());
        }
        if cfg.stack_size != 0 {
            config.stack_size = size(cfg.stack_size);
        }
        if cfg.handshake_timeout_ms != 0 {
            config.handshake_timeout = Duration::from_millis(cfg.handshake_timeout_ms);
        }
        if cfg.ping_interval_ms != 0 {
            config.ping_interval = Duration::from_millis(cfg.ping_interval_ms);
        }
        match cfg.dead_after_ms {
            0 => {}
            u64::MAX => config.dead_after = None,
            ms => config.dead_after = Some(Duration::from_millis(ms)),
        }
        config.extensions = crate::session::extensions(if cfg.extensions == 0 {
            crate::session::SRPC_EXT_DEFAULT
        } else {
            cfg.extensions
        });
        let server = Server::bind(config, move |info: &simplerpc_ws::ClientInfo| {
            callbacks.open_or_refuse(info.extensions.bits())
        })
        .map_err(|e| match e {
            simplerpc_ws::Error::Config(why) => FfiError::invalid(why),
            // Named without the Rust API (ServerConfig::token).
            simplerpc_ws::Error::Token(why) => FfiError::new(
                SrpcStatusErrIo,
                format!("cannot generate a token: {why}; give the server a token of your own"),
            ),
            e => FfiError::new(SrpcStatusErrIo, e.to_string()),
        })?;
        let port = server.local_addr().port();
        let token = CString::new(server.token())
            .map_err(|_| FfiError::invalid("the token contains a NUL byte"))?;
        let running = server
            .spawn()
            .map_err(|e| FfiError::new(SrpcStatusErrIo, e.to_string()))?;
        *o = Box::into_raw(Box::new(srpc_server {
            running: Mutex::new(Some(running)),
            _callbacks: kept,
            port,
            token,
        }));
        Ok(())
    })
}

/// The port the server listens on (0 for NULL).
///
/// # Safety
/// `server` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_port(server: *const srpc_server) -> u16 {
    // SAFETY: NULL checked; otherwise live.
    unsafe { server.as_ref() }.map_or(0, |s| s.port)
}

/// The token clients must present: NUL-terminated, borrowed, valid until
/// srpc_server_free(). NULL for a NULL server.
///
/// # Safety
/// `server` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_token(server: *const srpc_server) -> *const c_char {
    // SAFETY: NULL checked; otherwise live.
    unsafe { server.as_ref() }.map_or(std::ptr::null(), |s| s.token.as_ptr())
}

/// Stop the server: stop accepting, end every session (releasing its
/// handles and calling `close`), and return once all of them have ended.
/// Stopping a stopped server does nothing. Must not be called from an
/// executor callback.
///
/// # Safety
/// `server` is live.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_stop(server: *mut srpc_server) -> srpc_status {
    guard(|| {
        let s = live(server)?;
        // Held while stopping, so a concurrent stop returns only once it is done.
        let mut running = s.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running.take() {
            r.shutdown();
        }
        Ok(())
    })
}

/// Stop the server if it runs, then free it and the executor's userdata.
/// NULL does nothing.
///
/// # Safety
/// `server` is NULL or from srpc_server_start() and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn srpc_server_free(server: *mut srpc_server) {
    if server.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: from Box::into_raw in srpc_server_start; freed once.
        let s = unsafe { Box::from_raw(server) };
        let running = s.running.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running {
            r.shutdown();
        }
    });
}
