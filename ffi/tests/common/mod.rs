//! A C-style executor written in Rust behind the ABI's callbacks, and
//! helpers to drive the ABI as a C host would.
#![allow(dead_code)] // each test file uses part of it

use std::ffi::{c_void, CStr};
use std::sync::Mutex;

use simplerpc::error::{srpc_last_error_message, srpc_status, srpc_status_in};
use simplerpc::executor::{
    srpc_executor, srpc_reply, srpc_reply_error, srpc_reply_extensions, srpc_reply_handle,
    srpc_reply_value, srpc_reply_value_lent, srpc_reply_value_parts,
};
use simplerpc::server::{
    srpc_server, srpc_server_config, srpc_server_free, srpc_server_port, srpc_server_start,
    srpc_server_token,
};
use simplerpc::types::{srpc_buf, srpc_call, srpc_call_kind, srpc_slice, srpc_str};

/// The module's handle; the executor's handles start far from the protocol's
/// object ids (which count from 0), so a marker's id is never a handle.
pub const MODULE: u64 = 1000;
/// `t.value`: materializes as [`ODD_BYTES`].
pub const VALUE: u64 = 1001;
/// `t.echo`: a call records what it got; its result materializes as
/// `[args, kwargs, refs]` (the bytes it was given, spliced in as they are).
pub const ECHO: u64 = 1002;
/// `t.fail`: a call answers a remote exception.
pub const FAIL: u64 = 1003;
/// `t.junk`: materializes as bytes that are not msgpack.
pub const JUNK: u64 = 1004;
/// `t.lent`: materializes as a bin of [`LENT_LEN`] bytes (`i % 251`),
/// answered with srpc_reply_value_lent(): its payload lent, not copied.
pub const LENT: u64 = 1005;
/// `t.lent_junk`: as `t.lent`, with a stray byte after the value.
pub const LENT_JUNK: u64 = 1006;
/// The length of `t.lent`'s payload.
pub const LENT_LEN: usize = 300_000;
/// Results of `echo` calls: `RECORDED + n`.
pub const RECORDED: u64 = 5000;

/// msgpack no encoder writes this way: a map whose keys are not in sorted
/// order (`{"b": 5, "a": [1, -1]}`), 5 as a uint8 (`0xcc 0x05`, canonical is
/// `0x05`) and -1 as an int16 (`0xd1 0xff 0xff`, canonical is `0xff`).
pub const ODD_BYTES: &[u8] = &[
    0x82, 0xa1, b'b', 0xcc, 0x05, 0xa1, b'a', 0x92, 0x01, 0xd1, 0xff, 0xff,
];

/// What one echo call (or getitem) got: args (or key), kwargs, refs.
pub type Seen = (Vec<u8>, Vec<u8>, Vec<u64>);

/// What the executor saw, call by call.
#[derive(Default)]
pub struct State {
    pub calls: Mutex<Vec<Seen>>,
    /// What srpc_reply_value() returned for bytes that are not msgpack.
    pub junk_status: Mutex<Option<u32>>,
    /// What srpc_reply_extensions() said, call by call.
    pub extensions: Mutex<Vec<u32>>,
    /// Payloads lent by srpc_reply_value_lent() and not released yet, and
    /// how many were released.
    #[allow(clippy::vec_box)] // boxed: a Lent's address is its release context
    pub lent: Mutex<(Vec<Box<Lent>>, usize)>,
}

/// What one srpc_reply_value_lent() answer lends: the payload, and the
/// State to tell when it comes back.
pub struct Lent {
    pub payload: Vec<u8>,
    pub state: *const State,
}

/// The release function of srpc_reply_value_lent(): drops the payload.
unsafe extern "C" fn release_lent(ctx: *mut c_void) {
    let at = ctx as *const Lent;
    // SAFETY: ctx is a boxed Lent whose State outlives every connection.
    let state = unsafe { &*(*at).state };
    let mut lent = state.lent.lock().unwrap();
    let before = lent.0.len();
    lent.0.retain(|b| !std::ptr::eq(&**b, at));
    assert_eq!(lent.0.len() + 1, before, "released once");
    lent.1 += 1;
}

pub fn s(t: &str) -> srpc_str {
    srpc_str {
        ptr: t.as_ptr().cast(),
        len: t.len(),
    }
}

pub fn sl(b: &[u8]) -> srpc_slice {
    srpc_slice {
        ptr: if b.is_empty() {
            std::ptr::null()
        } else {
            b.as_ptr()
        },
        len: b.len(),
    }
}

/// # Safety
/// `x` is NULL with length 0 or valid for its length.
unsafe fn bytes<'a>(x: srpc_slice) -> &'a [u8] {
    if x.len == 0 {
        &[]
    } else {
        // SAFETY: the library passes slices valid for the callback.
        unsafe { std::slice::from_raw_parts(x.ptr, x.len) }
    }
}

fn error(reply: *mut srpc_reply, t: &str, m: &str) -> srpc_status_in {
    // SAFETY: the reply of the running callback; borrowed strings.
    unsafe { srpc_reply_error(reply, s(t), s(m), s(""), sl(&[])) as u32 }
}

/// msgpack array header for `n` items.
fn array(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
}

unsafe extern "C" fn on_call(
    userdata: *mut c_void,
    _session: *mut c_void,
    call: *const srpc_call,
    reply: *mut srpc_reply,
) -> srpc_status_in {
    // SAFETY: userdata is the State this file boxed; call valid for the callback.
    let (state, c) = unsafe { (&*(userdata as *const State), &*call) };
    // SAFETY: as above.
    let name = unsafe {
        bytes(srpc_slice {
            ptr: c.name.ptr.cast(),
            len: c.name.len,
        })
    };
    // SAFETY: the running callback's reply.
    let ext = unsafe { srpc_reply_extensions(reply) };
    state.extensions.lock().unwrap().push(ext);
    let Some(kind) = srpc_call_kind::from_u32(c.kind) else {
        return error(reply, "builtins.ValueError", "bad kind");
    };
    match kind {
        srpc_call_kind::SrpcCallKindImportModule if name == b"t" => {
            // SAFETY: the running callback's reply.
            unsafe { srpc_reply_handle(reply, MODULE) as u32 }
        }
        srpc_call_kind::SrpcCallKindGetAttr => {
            let h = match name {
                b"value" => VALUE,
                b"echo" => ECHO,
                b"fail" => FAIL,
                b"junk" => JUNK,
                b"lent" => LENT,
                b"lent_junk" => LENT_JUNK,
                _ => return error(reply, "builtins.AttributeError", "no such attribute"),
            };
            // SAFETY: the running callback's reply.
            unsafe { srpc_reply_handle(reply, h) as u32 }
        }
        srpc_call_kind::SrpcCallKindCall if c.obj == ECHO => {
            // SAFETY: args, kwargs and refs are valid for the callback.
            let refs = if c.refs_len == 0 {
                Vec::new()
            } else {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts(c.refs, c.refs_len) }.to_vec()
            };
            // SAFETY: as above.
            let rec = unsafe { (bytes(c.args).to_vec(), bytes(c.kwargs).to_vec(), refs) };
            let mut calls = state.calls.lock().unwrap();
            calls.push(rec);
            // SAFETY: the running callback's reply.
            unsafe { srpc_reply_handle(reply, RECORDED + calls.len() as u64 - 1) as u32 }
        }
        srpc_call_kind::SrpcCallKindCall if c.obj == FAIL => {
            error(reply, "builtins.ValueError", "it failed on purpose")
        }
        srpc_call_kind::SrpcCallKindGetItem => {
            // Same record as a call: the key as args, no kwargs.
            let refs = if c.refs_len == 0 {
                Vec::new()
            } else {
                // SAFETY: valid for the callback.
                unsafe { std::slice::from_raw_parts(c.refs, c.refs_len) }.to_vec()
            };
            // SAFETY: valid for the callback.
            let rec = (unsafe { bytes(c.key) }.to_vec(), vec![0x80], refs);
            let mut calls = state.calls.lock().unwrap();
            calls.push(rec);
            // SAFETY: the running callback's reply.
            unsafe { srpc_reply_handle(reply, RECORDED + calls.len() as u64 - 1) as u32 }
        }
        srpc_call_kind::SrpcCallKindMaterialize if matches!(c.obj, LENT | LENT_JUNK) => {
            let lent = Box::new(Lent {
                payload: (0..LENT_LEN).map(|i| (i % 251) as u8).collect(),
                state,
            });
            let mut head = vec![0xc6];
            head.extend_from_slice(&(LENT_LEN as u32).to_be_bytes());
            let tail: &[u8] = if c.obj == LENT_JUNK { &[0xc0] } else { &[] };
            let parts = [sl(&head), sl(&lent.payload), sl(tail)];
            let ctx = (&*lent as *const Lent).cast_mut().cast::<c_void>();
            state.lent.lock().unwrap().0.push(lent);
            // SAFETY: the running callback's reply; the head and tail are
            // valid for this call, the payload until release_lent drops it.
            unsafe {
                srpc_reply_value_lent(reply, parts.as_ptr(), parts.len(), Some(release_lent), ctx)
                    as u32
            }
        }
        srpc_call_kind::SrpcCallKindMaterialize => {
            let v: Vec<u8> = match c.obj {
                VALUE => ODD_BYTES.to_vec(),
                JUNK => vec![0xc1, 0xff],
                n if n >= RECORDED => {
                    let calls = state.calls.lock().unwrap();
                    let (a, k, refs) = &calls[(n - RECORDED) as usize];
                    let mut v = vec![0x93];
                    v.extend_from_slice(a);
                    v.extend_from_slice(k);
                    array(&mut v, refs.len());
                    for r in refs {
                        v.push(0xcf);
                        v.extend_from_slice(&r.to_be_bytes());
                    }
                    v
                }
                _ => return error(reply, "builtins.TypeError", "no value"),
            };
            let st = if matches!(c.obj, VALUE | JUNK) {
                // In two parts (srpc_reply_value_parts), as a host with a
                // header and an array's own memory answers: joined, checked
                // and copied once.
                let (a, b) = v.split_at(v.len() / 2);
                let parts = [sl(a), sl(b)];
                // SAFETY: the running callback's reply; the parts are valid.
                unsafe { srpc_reply_value_parts(reply, parts.as_ptr(), parts.len()) as u32 }
            } else {
                // SAFETY: the running callback's reply; `v` valid for its length.
                unsafe { srpc_reply_value(reply, v.as_ptr(), v.len()) as u32 }
            };
            if c.obj == JUNK {
                *state.junk_status.lock().unwrap() = Some(st);
            }
            st
        }
        srpc_call_kind::SrpcCallKindGetNamespace => {
            let v = [0x81, 0xa1, b'x', 0xa3, b'i', b'n', b't'];
            // SAFETY: as above.
            unsafe { srpc_reply_value(reply, v.as_ptr(), v.len()) as u32 }
        }
        _ => error(reply, "builtins.NotImplementedError", "not here"),
    }
}

unsafe extern "C" fn free_state(userdata: *mut c_void) {
    // SAFETY: the State boxed in `executor`, freed once by the library.
    drop(unsafe { Box::from_raw(userdata as *mut State) });
}

/// The executor; its State lives until the library frees the userdata.
pub fn executor() -> (srpc_executor, *const State) {
    let state = Box::into_raw(Box::new(State::default()));
    (
        srpc_executor {
            userdata: state.cast(),
            open: None,
            close: None,
            call: Some(on_call),
            release: None,
            free_userdata: Some(free_state),
        },
        state,
    )
}

/// A running WebSocket server over [`executor`], freed on drop.
pub struct Server {
    pub ptr: *mut srpc_server,
    pub port: u16,
    pub token: String,
    pub state: *const State,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(|_| {}).expect("start")
    }

    /// A server with the configuration `limits` makes of the default one
    /// (all zeros, on 127.0.0.1), or the status it failed with.
    pub fn start_with(limits: impl FnOnce(&mut srpc_server_config)) -> Result<Server, srpc_status> {
        let (ex, state) = executor();
        let mut cfg = srpc_server_config {
            host: s("127.0.0.1"),
            port: 0,
            token: s(""),
            max_message_size: 0,
            max_objects: 0,
            max_connections: 0,
            stack_size: 0,
            handshake_timeout_ms: 0,
            ping_interval_ms: 0,
            dead_after_ms: 0,
            extensions: 0,
            certfile: s(""),
            keyfile: s(""),
        };
        limits(&mut cfg);
        let mut ptr = std::ptr::null_mut();
        // SAFETY: valid config, executor and out-pointer.
        let st = unsafe { srpc_server_start(&cfg, &ex, &mut ptr) };
        if st != srpc_status::SrpcStatusOk {
            // The library freed the executor's userdata (free_state).
            return Err(st);
        }
        // SAFETY: a live server.
        let (port, token) = unsafe { (srpc_server_port(ptr), srpc_server_token(ptr)) };
        // SAFETY: NUL-terminated, valid until the server is freed.
        let token = unsafe { CStr::from_ptr(token) }
            .to_str()
            .unwrap()
            .to_owned();
        Ok(Server {
            ptr,
            port,
            token,
            state,
        })
    }

    /// What the executor recorded (valid while the server lives).
    pub fn calls(&self) -> Vec<Seen> {
        // SAFETY: the State lives until srpc_server_free.
        unsafe { &*self.state }.calls.lock().unwrap().clone()
    }

    /// What srpc_reply_extensions() said in each call so far.
    pub fn extensions_seen(&self) -> Vec<u32> {
        // SAFETY: as above.
        unsafe { &*self.state }.extensions.lock().unwrap().clone()
    }

    /// How many lent payloads are out, and how many came back.
    pub fn lent(&self) -> (usize, usize) {
        // SAFETY: as above.
        let lent = unsafe { &*self.state }.lent.lock().unwrap();
        (lent.0.len(), lent.1)
    }

    /// What srpc_reply_value() returned for the junk value, if it was asked.
    pub fn junk_status(&self) -> Option<u32> {
        // SAFETY: as above.
        *unsafe { &*self.state }.junk_status.lock().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: from srpc_server_start, freed once.
        unsafe { srpc_server_free(self.ptr) };
    }
}

pub fn last_message() -> String {
    let p = srpc_last_error_message();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: NUL-terminated, valid until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The bytes of a library buffer (copied), without freeing it.
pub fn buf_bytes(b: &srpc_buf) -> Vec<u8> {
    if b.len == 0 {
        return Vec::new();
    }
    // SAFETY: the library filled the buffer and it is not freed yet.
    unsafe { std::slice::from_raw_parts(b.data, b.len) }.to_vec()
}

/// msgpack of a proxy reference marker for client object `id`.
pub fn marker(id: u64) -> Vec<u8> {
    let mut v = vec![0x82, 0xad];
    v.extend_from_slice(b"__rpc_proxy__");
    v.push(0xc3);
    v.push(0xa6);
    v.extend_from_slice(b"obj_id");
    v.push(0xcf);
    v.extend_from_slice(&id.to_be_bytes());
    v
}

/// msgpack of a promise reference for the object pipelined request `n`
/// returns (`promise & !SRPC_PROMISE_BIT`).
pub fn promise_marker(n: u64) -> Vec<u8> {
    let mut v = vec![0x81, 0xaf];
    v.extend_from_slice(b"__rpc_promise__");
    v.push(0xcf);
    v.extend_from_slice(&n.to_be_bytes());
    v
}
