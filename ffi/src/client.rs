//! The client: over WebSocket (srpc_client_connect()) or over a stream
//! socket (srpc_client_connect_fd(), see [`crate::stream`]); every other
//! srpc_client_* function works on both.

use std::time::Duration;

use simplerpc_core::{ObjId, RawRequest, RawValue, RemoteError, Request, RequestId, Response};
use simplerpc_ws::{Client, ClientConfig, Error};

use crate::error::{
    guard, guard_keep, srpc_status, FfiError, SrpcStatusErrClosed, SrpcStatusErrInvalidArgument,
    SrpcStatusErrIo, SrpcStatusErrProtocol, SrpcStatusErrRefused, SrpcStatusErrTimeout,
    SrpcStatusErrUnauthorized,
};
use crate::types::{
    fill_response, refused, srpc_buf, srpc_call, srpc_call_kind, srpc_response, srpc_slice,
    srpc_str, Outgoing, SRPC_NO_OBJECT,
};

/// A connection to a server. Opaque. May be used from several threads; its
/// calls are serialised.
pub struct srpc_client(pub(crate) Transport);

/// The connection under an srpc_client.
pub(crate) enum Transport {
    Ws(Client),
    Stream(simplerpc_stream::Client),
}

/// Run `$e` on whichever client `$t` holds, as `$c`.
macro_rules! both {
    ($t:expr, $c:ident => $e:expr) => {
        match $t {
            Transport::Ws($c) => $e,
            Transport::Stream($c) => $e,
        }
    };
}

impl Transport {
    fn send(&self, r: &Request) -> Result<RequestId, FfiError> {
        both!(self, c => c.send(r).map_err(FfiError::from))
    }
    fn send_raw(&self, r: &RawRequest<'_>) -> Result<RequestId, FfiError> {
        match self {
            Transport::Ws(c) => c.send_raw(r).map_err(|e| match e {
                Error::InvalidRequest(e) => refused(e),
                other => ws_error(other),
            }),
            Transport::Stream(c) => c.send_raw(r).map_err(|e| match e {
                simplerpc_stream::Error::InvalidRequest(e) => refused(e),
                other => crate::stream::stream_error(other),
            }),
        }
    }
    fn send_pipelined(&self, r: &Request) -> Result<ObjId, FfiError> {
        both!(self, c => c.send_pipelined(r).map_err(FfiError::from))
    }
    fn send_raw_pipelined(&self, r: &RawRequest<'_>) -> Result<ObjId, FfiError> {
        both!(self, c => c.send_raw_pipelined(r).map_err(FfiError::from))
    }
    /// The answer, or the error (SRPC_STATUS_INTERRUPTED when a signal ended the wait).
    fn wait(&self, id: RequestId) -> Result<(Response, Option<RawValue>), FfiError> {
        both!(self, c => c.wait(id).map_err(FfiError::from))
    }
    fn abandon(&self, id: RequestId) {
        both!(self, c => c.abandon(id))
    }
    fn take_failure(&self) -> Option<(RequestId, RemoteError)> {
        both!(self, c => c.take_failure())
    }
    fn set_interruptible(&self, on: bool) {
        both!(self, c => c.set_interruptible(on))
    }
    fn set_liveness(&self, ping: Duration, dead: Option<Duration>) {
        match self {
            Transport::Ws(c) => c.set_liveness(ping, dead),
            // No pings: a server that dies closes the stream.
            Transport::Stream(_) => {}
        }
    }
    fn set_timeout(&self, t: Option<Duration>) {
        both!(self, c => c.set_timeout(t))
    }
    fn max_message_size(&self) -> usize {
        both!(self, c => c.max_message_size())
    }
    fn round_trips(&self) -> u64 {
        both!(self, c => c.round_trips())
    }
    fn promises(&self) -> bool {
        both!(self, c => c.promises())
    }
    fn extensions(&self) -> simplerpc_core::Extensions {
        both!(self, c => c.extensions())
    }
    fn release(&self, id: ObjId) {
        both!(self, c => c.release(id))
    }
    /// The session's counters (a `stats` request). A wait that ends early
    /// (a signal, SRPC_STATUS_INTERRUPTED) gives the request up, so its late
    /// answer is dropped and the host may simply ask again.
    fn stats(&self) -> Result<simplerpc_core::SessionStats, FfiError> {
        let id = self.send(&Request::Stats)?;
        let (response, _) = self.wait(id).inspect_err(|_| self.abandon(id))?;
        simplerpc_core::SessionStats::from_response(response).map_err(FfiError::remote)
    }
    fn close(&self) {
        both!(self, c => c.close())
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        ws_error(e)
    }
}

/// `e` as the ABI reports it. The messages name no Rust API (no
/// `ClientConfig::token`): a C or Python host adds its own hints.
fn ws_error(e: Error) -> FfiError {
    let status = match &e {
        Error::Remote(r) => return FfiError::remote(r.clone()),
        Error::Unauthorized { addr } => {
            return FfiError::new(
                SrpcStatusErrUnauthorized,
                format!(
                    "the server at {addr} refused the token: use the token the server \
                     printed when it started"
                ),
            )
        }
        Error::MissingToken { addr } => {
            return FfiError::new(
                SrpcStatusErrUnauthorized,
                format!(
                    "no token to connect to {addr}: use the token the server printed \
                     when it started"
                ),
            )
        }
        Error::Dead(silent) => {
            return FfiError::new(
                SrpcStatusErrTimeout,
                format!(
                    "the server sent nothing for {} s while a request waited, not even a \
                     pong: it is frozen or unreachable; the connection was closed, connect again",
                    silent.as_secs()
                ),
            )
        }
        Error::Connect { addr, source } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            return FfiError::new(
                SrpcStatusErrRefused,
                format!("nothing listens on {addr} (connection refused): is the server running, on that port?"),
            )
        }
        Error::Connect { source, .. } if source.kind() == std::io::ErrorKind::TimedOut => {
            SrpcStatusErrTimeout
        }
        Error::Closed(_) => SrpcStatusErrClosed,
        Error::Timeout(_) | Error::ConnectTimeout { .. } => SrpcStatusErrTimeout,
        Error::Interrupted => crate::error::SrpcStatusInterrupted,
        Error::Connect { .. }
        | Error::Handshake { .. }
        | Error::Tls { .. }
        | Error::Io(_)
        | Error::Bind { .. } => SrpcStatusErrIo,
        Error::Protocol(_) | Error::UnexpectedResponse { .. } => SrpcStatusErrProtocol,
        Error::NoAnswer(_) => crate::error::SrpcStatusErrState,
        _ => SrpcStatusErrInvalidArgument,
    };
    FfiError::new(status, e.to_string())
}

fn live<'a>(p: *const srpc_client) -> Result<&'a srpc_client, FfiError> {
    // SAFETY: NULL checked; otherwise a live client from srpc_client_connect().
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null("client"))
}

/// Connect to `ws://host:port/` presenting `token`, offering the extensions
/// SRPC_EXT_DEFAULT. An empty `host` means "localhost"; an empty `token` is
/// refused (SRPC_STATUS_ERR_UNAUTHORIZED), and so is a wrong one. Nothing
/// listening at the address gives SRPC_STATUS_ERR_REFUSED, another network
/// failure SRPC_STATUS_ERR_IO. Against a stock simplerpyc server the
/// reference protocol is spoken exactly. Close and free with
/// srpc_client_free().
///
/// # Safety
/// The strings are valid for their lengths; `client_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_connect(
    host: srpc_str,
    port: u16,
    token: srpc_str,
    client_out: *mut *mut srpc_client,
) -> srpc_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        srpc_client_connect_timeout(
            host,
            port,
            token,
            crate::session::SRPC_EXT_DEFAULT,
            0,
            client_out,
        )
    }
}

/// As srpc_client_connect(), offering the extension bits `extensions`
/// (SRPC_EXT_*): SRPC_EXT_ALL when the host's msgpack handles the tuple
/// marker (SRPC_EXT_TUPLE). What the server accepted:
/// srpc_client_extensions().
///
/// # Safety
/// The strings are valid for their lengths; `client_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_connect_ext(
    host: srpc_str,
    port: u16,
    token: srpc_str,
    extensions: u32,
    client_out: *mut *mut srpc_client,
) -> srpc_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { srpc_client_connect_timeout(host, port, token, extensions, 0, client_out) }
}

/// As srpc_client_connect_ext(), giving up after `timeout_ms` milliseconds
/// (0: no limit of ours; the operating system's for the TCP connection, 30 s
/// for the handshake): the TCP connection and the WebSocket handshake
/// together. Past it, SRPC_STATUS_ERR_TIMEOUT.
///
/// # Safety
/// The strings are valid for their lengths; `client_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_connect_timeout(
    host: srpc_str,
    port: u16,
    token: srpc_str,
    extensions: u32,
    timeout_ms: u64,
    client_out: *mut *mut srpc_client,
) -> srpc_status {
    guard(|| {
        // SAFETY: NULL checked; otherwise valid.
        let o = unsafe { client_out.as_mut() }.ok_or_else(|| FfiError::null("client_out"))?;
        // SAFETY: valid for the call.
        let host = unsafe { host.as_str("host")? };
        // SAFETY: valid for the call.
        let token = unsafe { token.as_str("token")? };
        let mut cfg = ClientConfig::new(
            if host.is_empty() { "localhost" } else { host },
            port,
            token,
        );
        if token.is_empty() {
            cfg.token = None;
        }
        cfg.extensions = crate::session::extensions(extensions);
        if timeout_ms != 0 {
            cfg.connect_timeout = Some(Duration::from_millis(timeout_ms));
        }
        let c = Client::connect(&cfg).map_err(ws_error)?;
        *o = Box::into_raw(Box::new(srpc_client(Transport::Ws(c))));
        Ok(())
    })
}

/// Where and how a client connects (srpc_client_connect_config()). Zero
/// fields take the defaults.
#[repr(C)]
pub struct srpc_client_config {
    /// Server host name or address; empty means "localhost". With TLS, the
    /// name the server's certificate must list.
    pub host: srpc_str,
    /// Server port.
    pub port: u16,
    /// The token the server printed; empty is refused
    /// (SRPC_STATUS_ERR_UNAUTHORIZED).
    pub token: srpc_str,
    /// The extensions to offer (SRPC_EXT_*); 0 means SRPC_EXT_DEFAULT.
    pub extensions: u32,
    /// Speak TLS (wss://): the server's certificate is checked against the
    /// platform's trusted roots, or against `cafile`.
    pub tls: bool,
    /// Path of a PEM file of the CA certificates to trust instead of the
    /// platform's (a lab's own CA); implies `tls`. Empty: none.
    pub cafile: srpc_str,
    /// Give up connecting after this many milliseconds (the TCP connection
    /// and the TLS and WebSocket handshakes together):
    /// SRPC_STATUS_ERR_TIMEOUT. 0: no limit of ours, as in
    /// srpc_client_connect_timeout().
    pub timeout_ms: u64,
}

/// Connect as `config` says (TLS included). A refused certificate, or a
/// server that does not speak TLS, is SRPC_STATUS_ERR_IO with a message
/// naming the host and the reason (srpc_last_error_message()); nothing
/// listening at the address is SRPC_STATUS_ERR_REFUSED, no connection
/// within `timeout_ms` SRPC_STATUS_ERR_TIMEOUT. Close and free with
/// srpc_client_free().
///
/// # Safety
/// `config` points to a valid struct whose strings are valid for their
/// lengths; `client_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_connect_config(
    config: *const srpc_client_config,
    client_out: *mut *mut srpc_client,
) -> srpc_status {
    guard(|| {
        // SAFETY: NULL checked; otherwise valid (documented).
        let c = unsafe { config.as_ref() }.ok_or_else(|| FfiError::null("config"))?;
        // SAFETY: NULL checked; otherwise valid.
        let o = unsafe { client_out.as_mut() }.ok_or_else(|| FfiError::null("client_out"))?;
        // SAFETY: valid for the call.
        let host = unsafe { c.host.as_str("config.host")? };
        // SAFETY: valid for the call.
        let token = unsafe { c.token.as_str("config.token")? };
        // SAFETY: valid for the call.
        let cafile = unsafe { c.cafile.as_str("config.cafile")? };
        let mut cfg = ClientConfig::new(
            if host.is_empty() { "localhost" } else { host },
            c.port,
            token,
        );
        if token.is_empty() {
            cfg.token = None;
        }
        cfg.extensions = crate::session::extensions(if c.extensions == 0 {
            crate::session::SRPC_EXT_DEFAULT
        } else {
            c.extensions
        });
        cfg.tls = c.tls;
        if !cafile.is_empty() {
            cfg.cafile = Some(cafile.into());
        }
        if c.timeout_ms != 0 {
            cfg.connect_timeout = Some(Duration::from_millis(c.timeout_ms));
        }
        let client = Client::connect(&cfg).map_err(ws_error)?;
        *o = Box::into_raw(Box::new(srpc_client(Transport::Ws(client))));
        Ok(())
    })
}

/// Send what `call` asks for and wait for the answer: the response with its
/// value's bytes as the frame holds them.
fn send(c: &srpc_client, call: &Outgoing<'_>) -> Result<(Response, Option<RawValue>), FfiError> {
    let id = RequestId(send_only(c, call, false)?);
    match c.0.wait(id) {
        Ok(answer) => Ok(answer),
        // No way to hand the id back from here: give the request up (its
        // answer is dropped and its object released when it comes).
        Err(e) if e.status == crate::error::SrpcStatusInterrupted => {
            c.0.abandon(id);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Send what `call` asks for without waiting: its request id, or with
/// `pipelined` its promise.
fn send_only(c: &srpc_client, call: &Outgoing<'_>, pipelined: bool) -> Result<u64, FfiError> {
    Ok(match (call, pipelined) {
        (Outgoing::Request(r), false) => c.0.send(r)?.0,
        (Outgoing::Raw(f), false) => c.0.send_raw(&f.request())?.0,
        (Outgoing::Request(r), true) => c.0.send_pipelined(r)?.0,
        (Outgoing::Raw(f), true) => c.0.send_raw_pipelined(&f.request())?.0,
    })
}

/// The bit that marks a promise among object ids: an object id with it set
/// names the object request `id & ~SRPC_PROMISE_BIT` will return (see
/// srpc_client_send_pipelined()). A server never allocates such ids.
pub const SRPC_PROMISE_BIT: u64 = 0x8000_0000_0000_0000;
const _: () = assert!(SRPC_PROMISE_BIT == ObjId::PROMISE_BIT);

/// Whether the server accepted promise pipelining (the `promise` extension;
/// ours does, a stock simplerpyc server does not).
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_promises(client: *const srpc_client) -> bool {
    live(client).map(|c| c.0.promises()).unwrap_or(false)
}

/// Send `call` without waiting for its answer, and write the *promise* of
/// the object it will return to `*promise_out`: use it as `obj`, or inside
/// `args`/`kwargs`/`key` as `{"__rpc_promise__": n}` with `n = promise &
/// ~SRPC_PROMISE_BIT`, in later calls, and release it with
/// srpc_client_release() like any object id. A chain of such calls and the
/// srpc_client_request() (or srpc_client_wait()) that needs its value cost
/// one round trip. If the call fails, calls built on it are not run and
/// fail with its error (SRPC_STATUS_ERR_REMOTE, with its own type); an error
/// nobody waits for is kept for srpc_client_take_failure(). For getattr,
/// call, getitem and eval; needs srpc_client_promises() (else
/// SRPC_STATUS_ERR_PROTOCOL).
///
/// # Safety
/// `client` is live; `call` is a valid srpc_call; `promise_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_send_pipelined(
    client: *const srpc_client,
    call: *const srpc_call,
    promise_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        // SAFETY: NULL checked; otherwise valid.
        let call = unsafe { call.as_ref() }.ok_or_else(|| FfiError::null("call"))?;
        // SAFETY: NULL checked; otherwise valid for writing.
        let out = unsafe { promise_out.as_mut() }.ok_or_else(|| FfiError::null("promise_out"))?;
        // SAFETY: the srpc_call's fields are valid per the caller's contract.
        let outgoing = unsafe { call.to_outgoing()? };
        *out = send_only(c, &outgoing, true)?;
        Ok(())
    })
}

/// Send `call` and return at once with its request id in `*request_out`;
/// srpc_client_wait() takes the answer later. Calls sent meanwhile share the
/// round trip.
///
/// # Safety
/// `client` is live; `call` is a valid srpc_call; `request_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_send(
    client: *const srpc_client,
    call: *const srpc_call,
    request_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        // SAFETY: NULL checked; otherwise valid.
        let call = unsafe { call.as_ref() }.ok_or_else(|| FfiError::null("call"))?;
        // SAFETY: NULL checked; otherwise valid for writing.
        let out = unsafe { request_out.as_mut() }.ok_or_else(|| FfiError::null("request_out"))?;
        // SAFETY: the srpc_call's fields are valid per the caller's contract.
        let outgoing = unsafe { call.to_outgoing()? };
        *out = send_only(c, &outgoing, false)?;
        Ok(())
    })
}

/// Wait for the answer of the request srpc_client_send() numbered `request`,
/// and write it as srpc_client_request() does (its `request_id` set). A
/// request with no answer to take (never sent, sent pipelined, or already
/// taken) returns SRPC_STATUS_ERR_STATE; the connection is fine.
///
/// # Safety
/// `client` is live; `response` is valid for writing an srpc_response.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_wait(
    client: *const srpc_client,
    request: u64,
    response: *mut srpc_response,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        if response.is_null() {
            return Err(FfiError::null("response"));
        }
        let (resp, raw) = match c.0.wait(RequestId(request)) {
            Ok(answer) => answer,
            Err(e) if e.status == crate::error::SrpcStatusInterrupted => {
                // SAFETY: non-NULL and valid for writing (the caller's contract).
                unsafe { response.write(interrupted_response(request)) };
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // SAFETY: non-NULL and valid for writing (the caller's contract).
        unsafe { fill_response(request, resp, raw, response) }
    })
}

/// The response written with SRPC_STATUS_INTERRUPTED: only the request's id.
fn interrupted_response(request: u64) -> srpc_response {
    srpc_response {
        kind: crate::types::srpc_response_kind::SrpcResponseKindDone,
        obj: SRPC_NO_OBJECT,
        request_id: request,
        value: srpc_buf::empty(),
    }
}

/// Let a signal end a wait (`on`), as a host that runs its signal handlers
/// between calls needs (Python's Ctrl-C, a profiler's timer): a wait a
/// signal interrupts returns SRPC_STATUS_INTERRUPTED, the request still in
/// flight. Off by default: interrupted system calls are retried.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_set_interruptible(
    client: *const srpc_client,
    on: bool,
) -> srpc_status {
    guard(|| {
        live(client)?.0.set_interruptible(on);
        Ok(())
    })
}

/// Ping a server silent for `ping_interval_ms` (0: the default, 10 000)
/// while a request waits, and give up on one silent for `dead_after_ms`
/// (0: never; the default is 30 000), pings unanswered: the request then
/// fails with SRPC_STATUS_ERR_TIMEOUT saying the server is frozen or
/// unreachable, and the connection is closed. A healthy server answers
/// pings during the longest call. Not applied to a stock simplerpyc
/// server, which cannot answer pings during a call, nor to a stream
/// connection (srpc_client_connect_fd()), which has no pings: a server that
/// dies closes the stream.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_set_liveness(
    client: *const srpc_client,
    ping_interval_ms: u64,
    dead_after_ms: u64,
) -> srpc_status {
    guard(|| {
        let ping = match ping_interval_ms {
            0 => simplerpc_ws::config::DEFAULT_PING_INTERVAL,
            ms => Duration::from_millis(ms),
        };
        let dead = (dead_after_ms != 0).then(|| Duration::from_millis(dead_after_ms));
        live(client)?.0.set_liveness(ping, dead);
        Ok(())
    })
}

/// Give up on request `request` (sent with srpc_client_send(), or
/// interrupted): its answer is dropped when it comes and an object it
/// returns is released, so the connection stays usable and nothing leaks.
/// Does no I/O.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_abandon(
    client: *const srpc_client,
    request: u64,
) -> srpc_status {
    guard_keep(|| {
        live(client)?.0.abandon(RequestId(request));
        Ok(())
    })
}

/// Take the oldest error of a pipelined call that no wait has reported yet,
/// so that no error is lost: raise it at your next wait. Returns
/// SRPC_STATUS_OK (writing nothing) when there is none; otherwise returns
/// SRPC_STATUS_ERR_REMOTE with the error in srpc_last_error_type() and
/// friends, and writes the failed request's id to `*request_out` (as
/// srpc_client_request() writes its response on SRPC_STATUS_ERR_REMOTE).
///
/// # Safety
/// `client` is live; `request_out` is valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_take_failure(
    client: *const srpc_client,
    request_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        // SAFETY: NULL checked; otherwise valid for writing.
        let out = unsafe { request_out.as_mut() }.ok_or_else(|| FfiError::null("request_out"))?;
        match c.0.take_failure() {
            None => Ok(()),
            Some((id, e)) => {
                *out = id.0;
                Err(FfiError::remote(e))
            }
        }
    })
}

/// The largest message this client sends or accepts, in bytes: a request
/// over it is refused before it is built (SRPC_STATUS_ERR_INVALID_ARGUMENT,
/// naming its size and the limit), so a host with its own encoder can check
/// first. 0 for a NULL client.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_max_message_size(client: *const srpc_client) -> u64 {
    live(client)
        .map(|c| c.0.max_message_size() as u64)
        .unwrap_or(0)
}

/// How many times this client waited for answers from the server: its round
/// trips (for tests and benchmarks).
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_round_trips(client: *const srpc_client) -> u64 {
    live(client).map(|c| c.0.round_trips()).unwrap_or(0)
}

/// How many objects this connection holds on the server, written to
/// `*count_out`: the count the server session keeps, read with a `stats`
/// request (one round trip). Objects released with srpc_client_release()
/// before it are freed by this very request and no longer counted, so a
/// host can check that it releases what it drops. Needs the SRPC_EXT_STATS
/// extension (a simplerpc server accepts it by default); against a stock
/// simplerpyc server, which has no such request, it sends nothing and
/// returns SRPC_STATUS_ERR_INVALID_ARGUMENT. A signal that ends the wait
/// (srpc_client_set_interruptible()) returns SRPC_STATUS_INTERRUPTED with
/// the request given up: call it again.
///
/// # Safety
/// `client` is live; `count_out` is valid for writing.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_live_objects(
    client: *const srpc_client,
    count_out: *mut u64,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        // SAFETY: NULL checked; otherwise valid for writing.
        let out = unsafe { count_out.as_mut() }.ok_or_else(|| FfiError::null("count_out"))?;
        *out = c.0.stats()?.live_objects;
        Ok(())
    })
}

/// Send `call` and wait for its response. `args`, `kwargs` and `key` go into
/// the request frame as they are (checked, copied once; the large array
/// payloads of `args_parts`, `kwargs_parts` and `key_parts` written from
/// where they lie, not copied); a value comes back in `response->value` as
/// the response frame holds it (not re-encoded; see
/// srpc_response). A remote exception returns SRPC_STATUS_ERR_REMOTE with
/// the details in srpc_last_error_type() and friends, writes `*response`
/// with kind SRPC_RESPONSE_KIND_ERROR, and the connection stays usable.
///
/// # Safety
/// `client` is live; `call` is a valid srpc_call; `response` is valid for
/// writing an srpc_response.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_request(
    client: *const srpc_client,
    call: *const srpc_call,
    response: *mut srpc_response,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        // SAFETY: NULL checked; otherwise valid.
        let call = unsafe { call.as_ref() }.ok_or_else(|| FfiError::null("call"))?;
        if response.is_null() {
            return Err(FfiError::null("response"));
        }
        // SAFETY: the srpc_call's fields are valid per the caller's contract.
        let outgoing = unsafe { call.to_outgoing()? };
        let id = send_only(c, &outgoing, false)?;
        // The id first: a host whose signal handler raises as this returns
        // (Python) can still give the request up.
        // SAFETY: non-NULL and valid for writing (the caller's contract); a
        // field is written through a raw pointer, the rest may be uninitialised.
        unsafe { std::ptr::addr_of_mut!((*response).request_id).write(id) };
        let (resp, raw) = match c.0.wait(RequestId(id)) {
            Ok(answer) => answer,
            Err(e) if e.status == crate::error::SrpcStatusInterrupted => {
                // SAFETY: non-NULL and valid for writing (the caller's contract).
                unsafe { response.write(interrupted_response(id)) };
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // SAFETY: non-NULL and valid for writing (the caller's contract).
        unsafe { fill_response(id, resp, raw, response) }
    })
}

fn simple(kind: srpc_call_kind, obj: u64, name: srpc_str, path: srpc_str) -> srpc_call {
    let none = srpc_slice {
        ptr: std::ptr::null(),
        len: 0,
    };
    srpc_call {
        kind: kind as u32,
        obj,
        name,
        path,
        args: none,
        kwargs: none,
        key: none,
        payload: none,
        args_parts: std::ptr::null(),
        args_parts_len: 0,
        kwargs_parts: std::ptr::null(),
        kwargs_parts_len: 0,
        key_parts: std::ptr::null(),
        key_parts_len: 0,
        refs: std::ptr::null(),
        refs_len: 0,
    }
}

fn empty() -> srpc_str {
    srpc_str {
        ptr: std::ptr::null(),
        len: 0,
    }
}

/// Run `call`, expecting a new object: write its id to `*obj_out`.
unsafe fn object(client: *const srpc_client, call: srpc_call, obj_out: *mut u64) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        // SAFETY: NULL checked; otherwise valid.
        let o = unsafe { obj_out.as_mut() }.ok_or_else(|| FfiError::null("obj_out"))?;
        // SAFETY: the call's fields come from the caller's valid arguments.
        let outgoing = unsafe { call.to_outgoing()? };
        match send(c, &outgoing)?.0 {
            Response::Object(id) => {
                *o = id.0;
                Ok(())
            }
            Response::Error(e) => Err(FfiError::remote(e)),
            _ => Err(FfiError::new(
                SrpcStatusErrProtocol,
                format!(
                    "the server answered a {} request with no object",
                    srpc_call_kind::from_u32(call.kind).map_or("", |k| k.wire_name())
                ),
            )),
        }
    })
}

/// Import `module` (dotted names allowed); writes the module's object id.
///
/// # Safety
/// `client` is live; `module` valid; `obj_out` valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_import(
    client: *const srpc_client,
    module: srpc_str,
    obj_out: *mut u64,
) -> srpc_status {
    // SAFETY: forwarded preconditions.
    unsafe {
        object(
            client,
            simple(
                srpc_call_kind::SrpcCallKindImportModule,
                SRPC_NO_OBJECT,
                module,
                empty(),
            ),
            obj_out,
        )
    }
}

/// Attribute `attr` of object `obj` (or of what `path` names, with
/// SRPC_NO_OBJECT); writes the attribute's object id.
///
/// # Safety
/// `client` is live; strings valid; `obj_out` valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_getattr(
    client: *const srpc_client,
    obj: u64,
    path: srpc_str,
    attr: srpc_str,
    obj_out: *mut u64,
) -> srpc_status {
    // SAFETY: forwarded preconditions.
    unsafe {
        object(
            client,
            simple(srpc_call_kind::SrpcCallKindGetAttr, obj, attr, path),
            obj_out,
        )
    }
}

/// Call object `obj` (or `path`) with msgpack `args` (an array, or empty for
/// no arguments) and `kwargs` (a map, or empty for none); they go into the
/// frame as they are. Writes the result's object id.
///
/// # Safety
/// `client` is live; strings and slices valid; `obj_out` valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_call(
    client: *const srpc_client,
    obj: u64,
    path: srpc_str,
    args: srpc_slice,
    kwargs: srpc_slice,
    obj_out: *mut u64,
) -> srpc_status {
    let mut c = simple(srpc_call_kind::SrpcCallKindCall, obj, empty(), path);
    c.args = args;
    c.kwargs = kwargs;
    // SAFETY: forwarded preconditions.
    unsafe { object(client, c, obj_out) }
}

/// `obj[key]` with a msgpack `key` (one value; it goes into the frame as it
/// is); writes the item's object id.
///
/// # Safety
/// `client` is live; `key` valid; `obj_out` valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_getitem(
    client: *const srpc_client,
    obj: u64,
    key: srpc_slice,
    obj_out: *mut u64,
) -> srpc_status {
    let mut c = simple(srpc_call_kind::SrpcCallKindGetItem, obj, empty(), empty());
    c.key = key;
    // SAFETY: forwarded preconditions.
    unsafe { object(client, c, obj_out) }
}

/// Evaluate `expr` on the server; writes the result's object id.
///
/// # Safety
/// `client` is live; `expr` valid; `obj_out` valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_eval(
    client: *const srpc_client,
    expr: srpc_str,
    obj_out: *mut u64,
) -> srpc_status {
    // SAFETY: forwarded preconditions.
    unsafe {
        object(
            client,
            simple(
                srpc_call_kind::SrpcCallKindEval,
                SRPC_NO_OBJECT,
                expr,
                empty(),
            ),
            obj_out,
        )
    }
}

/// Execute `code` on the server.
///
/// # Safety
/// `client` is live; `code` valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_execute(
    client: *const srpc_client,
    code: srpc_str,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        let call = simple(
            srpc_call_kind::SrpcCallKindExecute,
            SRPC_NO_OBJECT,
            code,
            empty(),
        );
        // SAFETY: `code` is valid for the call (the caller's contract).
        let outgoing = unsafe { call.to_outgoing()? };
        match send(c, &outgoing)?.0 {
            Response::Error(e) => Err(FfiError::remote(e)),
            _ => Ok(()),
        }
    })
}

/// Fetch the value of object `obj` as msgpack into `*value_out` (free it
/// with srpc_buf_free()): the bytes as the response frame holds them, not
/// decoded and encoded again, and not copied out of the frame (`data`
/// points into it; the buffer keeps it alive).
///
/// # Safety
/// `client` is live; `value_out` valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_materialize(
    client: *const srpc_client,
    obj: u64,
    value_out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        let c = live(client)?;
        if value_out.is_null() {
            return Err(FfiError::null("value_out"));
        }
        let request = Request::Materialize { obj_id: ObjId(obj) };
        let value = match send(c, &Outgoing::Request(request))? {
            (Response::Value(_), Some(raw)) => srpc_buf::from_raw(raw),
            (Response::Value(v), None) => srpc_buf::from_vec(
                simplerpc_core::codec::to_vec(&v).map_err(|e| FfiError::invalid(e.to_string()))?,
            ),
            (Response::Error(e), _) => return Err(FfiError::remote(e)),
            _ => {
                return Err(FfiError::new(
                    SrpcStatusErrProtocol,
                    "the server answered materialize with no value",
                ))
            }
        };
        // SAFETY: non-NULL; the caller's srpc_buf, written whole.
        unsafe { value_out.write(value) };
        Ok(())
    })
}

/// Release object `obj`: it is freed on the server with the next request
/// (against a stock server, which cannot free objects, nothing happens).
/// Never blocks on the network; safe to call from any thread, e.g. a finaliser.
/// A success leaves this thread's last error as it was, so a finaliser that
/// runs between a failed call and the reading of its details wipes nothing.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_release(client: *const srpc_client, obj: u64) -> srpc_status {
    // From finalisers: a success must not wipe a failure the host is reading.
    guard_keep(|| {
        live(client)?.0.release(ObjId(obj));
        Ok(())
    })
}

/// Limit how long each request waits for its answer, in milliseconds (0: no
/// limit, the default). A request that runs out of time returns
/// SRPC_STATUS_ERR_TIMEOUT and closes the connection (a late answer could not be
/// paired any more).
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_set_timeout(
    client: *const srpc_client,
    timeout_ms: u64,
) -> srpc_status {
    guard(|| {
        let t = (timeout_ms != 0).then(|| std::time::Duration::from_millis(timeout_ms));
        live(client)?.0.set_timeout(t);
        Ok(())
    })
}

/// The extension bits (SRPC_EXT_*) negotiated with the server: 0 for a stock
/// server. With SRPC_EXT_TUPLE, values carry tuples as the marker map
/// `{"__tuple__": [items...]}` both ways (see SRPC_EXT_TUPLE).
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_extensions(client: *const srpc_client) -> u32 {
    // SAFETY: NULL checked; otherwise live.
    unsafe { client.as_ref() }.map_or(0, |c| c.0.extensions().bits())
}

/// Close the connection (politely, waiting briefly for the server's answer)
/// and free the client. NULL does nothing.
///
/// # Safety
/// `client` is NULL or from srpc_client_connect() or
/// srpc_client_connect_fd() and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn srpc_client_free(client: *mut srpc_client) {
    if client.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: from Box::into_raw in srpc_client_connect; freed once.
        let c = unsafe { Box::from_raw(client) };
        c.0.close();
    });
}
