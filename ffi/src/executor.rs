//! An executor made of C callbacks, and the reply object they answer through.

use std::ffi::c_void;
use std::sync::Arc;

use simplerpc_core::{
    Arguments, Bytes, ExecError, ExecResult, Executor, Handle, Key, RawValue, Target, Value,
};

use crate::error::{
    guard, srpc_status, srpc_status_in, FfiError, SrpcStatusErrState, SrpcStatusOk,
};
use crate::types::{srpc_call, srpc_call_kind, srpc_slice, srpc_str, SRPC_NO_OBJECT};

/// Opens a session for a newly connected client. Writes the session's own
/// pointer (may be NULL) to `*session` and returns SRPC_STATUS_OK, or another
/// srpc_status to refuse the client.
pub type srpc_open_fn = Option<
    unsafe extern "C" fn(userdata: *mut c_void, session: *mut *mut c_void) -> srpc_status_in,
>;
/// Closes a session (the client went away); every handle it held was released first.
pub type srpc_close_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, session: *mut c_void)>;
/// Serves one call. Answer through `reply` with exactly one of
/// srpc_reply_handle(), srpc_reply_value(), srpc_reply_error() (or nothing,
/// for SRPC_CALL_KIND_EXECUTE), then return SRPC_STATUS_OK. `call` and
/// `reply` are valid only during the callback and only on its thread: a
/// reply answered later, or from another thread, is refused with
/// SRPC_STATUS_ERR_STATE. Any other status reports the call as failed.
///
/// `call->args`, `kwargs` and `key` are borrowed from the request frame, as
/// the client wrote them: a reference in them is the client's marker map,
/// a proxy `{"__rpc_proxy__": true, "obj_id": ID}` or a promise
/// `{"__rpc_promise__": N}`, whose number is no handle of this executor;
/// the i-th reference of either kind stands for the handle `call->refs[i]`
/// (see srpc_call).
pub type srpc_call_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        session: *mut c_void,
        call: *const srpc_call,
        reply: *mut srpc_reply,
    ) -> srpc_status_in,
>;
/// The client no longer uses `handle`: drop the object. Called once per
/// distinct handle, when the last object id naming it is released, and for
/// every handle still held when the session ends (before `close`); also for
/// handles the executor treats as static, which it then ignores. See
/// "Objects, ids and handles" at the top of this header.
pub type srpc_release_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, session: *mut c_void, handle: u64)>;
/// Frees `userdata` once nothing will call back any more.
pub type srpc_free_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// An executor given as C callbacks. `call` is required; the others may be NULL.
/// The library copies this struct; `userdata` is passed to every callback and
/// released with `free_userdata` (if set) when the server or session that
/// took it is freed. Callbacks of a running server are called from several
/// threads at once (one per client), so `userdata` must be thread-safe;
/// the calls of one session never overlap.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct srpc_executor {
    /// Host state passed to every callback.
    pub userdata: *mut c_void,
    /// Per-client session start (optional).
    pub open: srpc_open_fn,
    /// Per-client session end (optional).
    pub close: srpc_close_fn,
    /// Serves calls (required).
    pub call: srpc_call_fn,
    /// Releases handles (optional).
    pub release: srpc_release_fn,
    /// Frees userdata at the end (optional).
    pub free_userdata: srpc_free_fn,
}

/// Owns the callbacks and userdata; frees userdata when the last user drops.
pub struct Callbacks(srpc_executor);

// SAFETY: the header documents that userdata and the callbacks must be
// thread-safe: the host promises it by handing them to a server.
unsafe impl Send for Callbacks {}
// SAFETY: as above.
unsafe impl Sync for Callbacks {}

impl Drop for Callbacks {
    fn drop(&mut self) {
        if let Some(free) = self.0.free_userdata {
            // SAFETY: called once, when no session can call back any more.
            let _ = std::panic::catch_unwind(|| unsafe { free(self.0.userdata) });
        }
    }
}

impl Callbacks {
    /// Take a copy of the host's callbacks (`call` is required).
    pub fn new(e: &srpc_executor) -> Result<Arc<Callbacks>, FfiError> {
        if e.call.is_none() {
            return Err(FfiError::null("executor.call"));
        }
        Ok(Arc::new(Callbacks(*e)))
    }

    /// Open one client's executor, for a connection that negotiated the
    /// extension bits `extensions` (srpc_reply_extensions() tells them).
    pub fn open(self: &Arc<Self>, extensions: u32) -> Result<CExecutor, FfiError> {
        let mut session: *mut c_void = std::ptr::null_mut();
        if let Some(open) = self.0.open {
            // SAFETY: the host's callback, with its userdata and a valid out-pointer.
            let st = unsafe { open(self.0.userdata, &mut session) };
            if st != SrpcStatusOk as u32 {
                return Err(FfiError::new(
                    SrpcStatusErrState,
                    format!(
                        "the executor's open callback refused the session (status {})",
                        srpc_status::describe(st)
                    ),
                ));
            }
        }
        Ok(CExecutor {
            cb: Arc::clone(self),
            session,
            opened: true,
            spare: None,
            extensions,
            withdrawn: None,
        })
    }

    /// Open one client's executor for a server: an executor whose open
    /// callback failed answers every call with that error.
    pub fn open_or_refuse(self: &Arc<Self>, extensions: u32) -> CExecutor {
        self.open(extensions).unwrap_or_else(|e| {
            log::warn!("{}", e.message);
            CExecutor {
                cb: Arc::clone(self),
                session: std::ptr::null_mut(),
                opened: false,
                spare: None,
                extensions,
                withdrawn: None,
            }
        })
    }
}

/// One client's executor over C callbacks.
pub struct CExecutor {
    cb: Arc<Callbacks>,
    session: *mut c_void,
    /// False when the open callback refused: nothing is called back then.
    opened: bool,
    /// A written response frame kept to build the next large value in
    /// (see [`Executor::recycle`]).
    spare: Option<Vec<u8>>,
    /// The extension bits the connection negotiated.
    extensions: u32,
    /// A handle answered for a request that then failed, for the session
    /// to give back (see [`Executor::take_withdrawn`]).
    withdrawn: Option<Handle>,
}

/// Frames from this size up are kept for reuse (until the connection idles,
/// see [`Executor::trim`]): below it the allocator serves a new one as cheaply.
const SPARE_MIN: usize = 64 << 10;
/// Frames over this size are not kept: a huge answer's memory goes back at once.
const SPARE_MAX: usize = 256 << 20;

// SAFETY: see Callbacks; the session pointer is used by one thread at a time.
unsafe impl Send for CExecutor {}

impl Drop for CExecutor {
    fn drop(&mut self) {
        if !self.opened {
            return;
        }
        if let Some(close) = self.cb.0.close {
            // SAFETY: the host's callback with the pointer its open returned.
            let _ = std::panic::catch_unwind(|| unsafe { close(self.cb.0.userdata, self.session) });
        }
    }
}

/// Where a callback puts its answer. Opaque; valid only during the callback.
#[allow(non_camel_case_types)]
pub struct srpc_reply {
    /// The call being answered, for messages.
    kind: srpc_call_kind,
    answer: Option<Result<Answer, ExecError>>,
    /// A value srpc_reply_value() refused (not msgpack): reported to the
    /// client unless the callback answers properly after all.
    refused: Option<ExecError>,
    /// The call's `args`, `kwargs` and `key` as shared bytes of the request
    /// frame, for srpc_reply_keep_input().
    inputs: [Option<RawValue>; 3],
    /// A frame to build a value in (the executor's spare).
    spare: Option<Vec<u8>>,
    /// The extension bits the connection negotiated.
    extensions: u32,
}

/// The msgpack inputs of a call, for srpc_reply_keep_input().
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum srpc_input {
    /// `args`
    SrpcInputArgs = 0,
    /// `kwargs`
    SrpcInputKwargs = 1,
    /// `key`
    SrpcInputKey = 2,
}

/// Keep input `which` of the running call (its `args`, `kwargs` or `key`)
/// beyond the callback: `*out` gets an owned buffer over the very bytes
/// `call->args` (`kwargs`, `key`) points to, and the request frame stays
/// alive until srpc_buf_free(). So a host can make values over the frame in
/// place (a numpy array over its data) rather than copy them out. The
/// reader places a large request so that its first large bin starts on a
/// 64-byte boundary. An input the call does not have gives an empty buffer.
///
/// # Safety
/// `reply` is the pointer passed to the running callback; `out` is valid
/// for writing an srpc_buf.
#[no_mangle]
pub unsafe extern "C" fn srpc_reply_keep_input(
    reply: *mut srpc_reply,
    which: u32,
    out: *mut crate::types::srpc_buf,
) -> srpc_status {
    guard(|| {
        let r = reply_mut(reply)?;
        // SAFETY: NULL checked; otherwise valid for writing (the caller's contract).
        let out = unsafe { out.as_mut() }.ok_or_else(|| FfiError::null("out"))?;
        let i = usize::try_from(which)
            .ok()
            .filter(|&i| i < 3)
            .ok_or_else(|| FfiError::invalid(format!("input {which} is not an srpc_input")))?;
        *out = match &r.inputs[i] {
            Some(raw) => crate::types::srpc_buf::from_raw(raw.clone()),
            None => crate::types::srpc_buf::empty(),
        };
        Ok(())
    })
}

/// The extension bits (SRPC_EXT_*) the running call's connection
/// negotiated with its client: 0 for a stock simplerpyc client. With
/// SRPC_EXT_TUPLE set, a tuple in the call's `args`, `kwargs` and `key`
/// travels as the marker map `{"__tuple__": [items...]}` (one str key, its
/// value an array), and a value answered with srpc_reply_value() may write
/// tuples so (the client makes them tuples again); without it a `__tuple__`
/// map is just a map, and tuples must be answered as plain arrays (the
/// library passes a value's bytes on as they are). A connection's bits never
/// change, so a host may ask once per session. A reply that is not the
/// running callback's gives 0.
///
/// # Safety
/// `reply` is NULL or the pointer passed to the running callback.
#[no_mangle]
pub unsafe extern "C" fn srpc_reply_extensions(reply: *const srpc_reply) -> u32 {
    if reply.is_null() || !std::ptr::eq(CURRENT_REPLY.with(|c| c.get()), reply) {
        return 0;
    }
    // SAFETY: the reply of the callback running on this thread (checked
    // above), alive on `invoke`'s stack until that callback returns.
    unsafe { &*reply }.extensions
}

enum Answer {
    Handle(u64),
    /// msgpack checked once and copied once, into the buffer that becomes
    /// the response frame.
    Value(RawValue),
    /// No answer, where none is needed (execute).
    Nothing,
}

fn str_or(s: &srpc_str, what: &str) -> Result<String, FfiError> {
    // SAFETY: the callback passes a valid srpc_str (documented).
    unsafe { s.as_str(what) }.map(str::to_owned)
}

thread_local! {
    /// The reply of the callback running on this thread, if any: the only
    /// reply the srpc_reply_* functions accept.
    static CURRENT_REPLY: std::cell::Cell<*mut srpc_reply> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

fn reply_mut<'a>(reply: *mut srpc_reply) -> Result<&'a mut srpc_reply, FfiError> {
    if reply.is_null() {
        return Err(FfiError::null("reply"));
    }
    if CURRENT_REPLY.with(|c| c.get()) != reply {
        return Err(FfiError::new(
            SrpcStatusErrState,
            "this reply is not the one of a callback running on this thread (answered too late, or from another thread)",
        ));
    }
    // SAFETY: it is the reply of the callback running on this thread (checked
    // above), which lives on `invoke`'s stack until that callback returns.
    let r = unsafe { reply.as_mut() }.ok_or_else(|| FfiError::null("reply"))?;
    if r.answer.is_some() {
        return Err(FfiError::new(
            SrpcStatusErrState,
            "this reply was already answered",
        ));
    }
    Ok(r)
}

/// Answer with a handle: the executor now holds an object under `handle`.
/// The client gets a new object id for it, even for a handle answered
/// before (the release callback then runs once, when the last id goes). If
/// the callback then returns a failure status, the handle is released at once
/// (unless an id of the client still names it: then when the last one goes).
///
/// # Safety
/// `reply` is the pointer passed to the running callback.
#[no_mangle]
pub unsafe extern "C" fn srpc_reply_handle(reply: *mut srpc_reply, handle: u64) -> srpc_status {
    guard(|| {
        reply_mut(reply)?.answer = Some(Ok(Answer::Handle(handle)));
        Ok(())
    })
}

/// Answer with a value, given as msgpack. The bytes are checked here, once,
/// and copied once, into the buffer that becomes the response frame (they
/// reach the client byte for byte, never decoded and encoded again). Bytes
/// that are not exactly one msgpack value return
/// SRPC_STATUS_ERR_INVALID_ARGUMENT, and unless the callback then answers
/// otherwise, the client gets a `simplerpc.ExecutorError` saying that the
/// executor answered invalid msgpack.
///
/// # Safety
/// `reply` is the pointer passed to the running callback; `data` is NULL with
/// `len` 0 or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn srpc_reply_value(
    reply: *mut srpc_reply,
    data: *const u8,
    len: usize,
) -> srpc_status {
    guard(|| {
        let r = reply_mut(reply)?;
        // SAFETY: forwarded precondition.
        let bytes = unsafe { crate::types::raw_slice(data, len, "data")? };
        r.answer_value(RawValue::copy_from_slice(bytes), len)
    })
}

/// As srpc_reply_value(), for a value given in `n` parts that together make
/// the msgpack (a header, an array's own memory, the rest): each part is
/// copied once, straight into the response frame, so a host need not join
/// them into one buffer first.
///
/// # Safety
/// `reply` is the pointer passed to the running callback; `parts` is NULL
/// with `n` 0 or points to `n` srpc_slice, each valid for its length.
#[no_mangle]
pub unsafe extern "C" fn srpc_reply_value_parts(
    reply: *mut srpc_reply,
    parts: *const srpc_slice,
    n: usize,
) -> srpc_status {
    guard(|| {
        let r = reply_mut(reply)?;
        let size = n
            .checked_mul(std::mem::size_of::<srpc_slice>())
            .ok_or_else(|| FfiError::invalid(format!("{n} parts is not plausible")))?;
        // SAFETY: forwarded precondition (NULL only with n == 0).
        let slices = unsafe { crate::types::raw_slice(parts.cast::<u8>(), size, "parts")? };
        let slices: &[srpc_slice] = if n == 0 {
            &[]
        } else {
            // SAFETY: `parts` points to `n` srpc_slice (the caller's
            // contract); raw_slice checked it is not NULL.
            unsafe { std::slice::from_raw_parts(slices.as_ptr().cast::<srpc_slice>(), n) }
        };
        let mut bytes = Vec::with_capacity(n);
        for (i, s) in slices.iter().enumerate() {
            // SAFETY: each part is valid for its length (the caller's contract).
            bytes.push(unsafe { s.as_bytes(&format!("parts[{i}]"))? });
        }
        let len = bytes.iter().map(|b| b.len()).sum();
        let spare = r.spare.take();
        r.answer_value(RawValue::copy_from_parts_into(&bytes, spare), len)
    })
}

/// Called once when the library no longer reads memory a host lent it with
/// srpc_reply_value_lent(): from any thread, possibly long after the
/// callback that lent it has returned (once the answer is written, or
/// dropped with its connection).
pub type srpc_lent_release_fn = Option<unsafe extern "C" fn(ctx: *mut c_void)>;

/// Calls the host's release function when the last lent part is let go.
struct Lender {
    release: srpc_lent_release_fn,
    ctx: *mut c_void,
}

// SAFETY: `ctx` is only handed back to `release`, which the caller of
// srpc_reply_value_lent() allows to be called from any thread.
unsafe impl Send for Lender {}
// SAFETY: as above; a Lender is never read but to be dropped.
unsafe impl Sync for Lender {}

impl Drop for Lender {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the caller gave this function and context for exactly
            // one call, made here once nothing reads the lent memory.
            unsafe { release(self.ctx) }
        }
    }
}

/// One lent part: memory the host keeps valid and unchanged until its
/// Lender is dropped.
struct LentPart {
    ptr: *const u8,
    len: usize,
    _lender: Arc<Lender>,
}

// SAFETY: the memory is read-only for the library and stays valid until the
// release function is called (srpc_reply_value_lent()'s contract), which
// is after the last LentPart is dropped; reading it from any thread is what
// the host allowed.
unsafe impl Send for LentPart {}
// SAFETY: as above (shared reads only).
unsafe impl Sync for LentPart {}

impl AsRef<[u8]> for LentPart {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` readable bytes, unchanged, until
        // the Lender this part holds is dropped (the host's contract).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// As srpc_reply_value_parts(), but parts of 64 KiB and up are not copied:
/// the library reads them where they lie, as it writes the response frame
/// (an array's memory goes to the socket without a copy, and the server
/// needs no frame-sized buffer of its own). Smaller parts are copied during
/// this call. The lent memory must stay valid and unchanged until the
/// library calls `release(ctx)`, which it does exactly once, from any
/// thread, whatever the outcome (also when this call fails); `release` may
/// be NULL when the memory outlives the library's use anyway.
///
/// # Safety
/// `reply` is the pointer passed to the running callback; `parts` is NULL
/// with `n` 0 or points to `n` srpc_slice, each valid for its length; the
/// parts of 64 KiB and up stay valid and unchanged until `release(ctx)` is
/// called, and `release` may be called from any thread.
#[no_mangle]
pub unsafe extern "C" fn srpc_reply_value_lent(
    reply: *mut srpc_reply,
    parts: *const srpc_slice,
    n: usize,
    release: srpc_lent_release_fn,
    ctx: *mut c_void,
) -> srpc_status {
    // Made first: every way out of this call releases it, or hands it on.
    let lender = Arc::new(Lender { release, ctx });
    guard(move || {
        let r = reply_mut(reply)?;
        let size = n
            .checked_mul(std::mem::size_of::<srpc_slice>())
            .ok_or_else(|| FfiError::invalid(format!("{n} parts is not plausible")))?;
        // SAFETY: forwarded precondition (NULL only with n == 0).
        let slices = unsafe { crate::types::raw_slice(parts.cast::<u8>(), size, "parts")? };
        let slices: &[srpc_slice] = if n == 0 {
            &[]
        } else {
            // SAFETY: `parts` points to `n` srpc_slice (the caller's
            // contract); raw_slice checked it is not NULL.
            unsafe { std::slice::from_raw_parts(slices.as_ptr().cast::<srpc_slice>(), n) }
        };
        let mut bytes = Vec::with_capacity(n);
        let mut len = 0usize;
        for (i, s) in slices.iter().enumerate() {
            // SAFETY: each part is valid for its length (the caller's contract).
            let b = unsafe { s.as_bytes(&format!("parts[{i}]"))? };
            len = len.saturating_add(b.len());
            bytes.push(if b.len() >= simplerpc_core::codec::SPLICE_MIN {
                Bytes::from_owner(LentPart {
                    ptr: b.as_ptr(),
                    len: b.len(),
                    _lender: lender.clone(),
                })
            } else {
                Bytes::copy_from_slice(b)
            });
        }
        drop(lender);
        r.answer_value(RawValue::from_parts(bytes), len)
    })
}

impl srpc_reply {
    fn answer_value(
        &mut self,
        value: Result<RawValue, simplerpc_core::codec::DecodeError>,
        len: usize,
    ) -> Result<(), FfiError> {
        match value {
            Ok(v) => {
                self.answer = Some(Ok(Answer::Value(v)));
                Ok(())
            }
            Err(e) => {
                self.refused = Some(ExecError::new(
                    EXECUTOR_ERROR,
                    format!(
                        "the C executor answered a {} request with invalid msgpack: {e}",
                        self.kind.wire_name()
                    ),
                ));
                Err(FfiError::invalid(format!(
                    "the value is not valid msgpack ({len} bytes): {e}"
                )))
            }
        }
    }
}

/// Answer with an error: the client sees a remote exception of type
/// `exception_type` ("builtins.ValueError"), with `message`, `traceback` and an
/// optional opaque `payload` (all copied).
///
/// # Safety
/// `reply` is the pointer passed to the running callback; each srpc_str and
/// srpc_slice is NULL with length 0 or valid for its length.
#[no_mangle]
pub unsafe extern "C" fn srpc_reply_error(
    reply: *mut srpc_reply,
    exception_type: srpc_str,
    message: srpc_str,
    traceback: srpc_str,
    payload: srpc_slice,
) -> srpc_status {
    guard(|| {
        let r = reply_mut(reply)?;
        let mut e = ExecError::new(
            str_or(&exception_type, "exception_type")?,
            str_or(&message, "message")?,
        )
        .with_traceback(str_or(&traceback, "traceback")?);
        // SAFETY: forwarded precondition.
        let p = unsafe { payload.as_bytes("payload")? };
        if !p.is_empty() {
            e.payload = Some(Bytes::copy_from_slice(p));
        }
        r.answer = Some(Err(e));
        Ok(())
    })
}

fn borrowed(s: &str) -> srpc_str {
    srpc_str {
        ptr: s.as_ptr().cast(),
        len: s.len(),
    }
}

fn slice(b: &[u8]) -> srpc_slice {
    srpc_slice {
        ptr: b.as_ptr(),
        len: b.len(),
    }
}

/// The exception type of the executor's own faults.
const EXECUTOR_ERROR: &str = "simplerpc.ExecutorError";

struct CallData<'a> {
    kind: srpc_call_kind,
    obj: Option<Handle>,
    name: &'a str,
    path: &'a str,
    args: &'a [u8],
    kwargs: &'a [u8],
    key: &'a [u8],
    payload: &'a [u8],
    refs: &'a [u64],
    /// `args`, `kwargs` and `key` as shared bytes, when they came in a frame.
    inputs: [Option<&'a RawValue>; 3],
}

impl<'a> CallData<'a> {
    fn new(kind: srpc_call_kind) -> Self {
        CallData {
            kind,
            obj: None,
            name: "",
            path: "",
            args: &[],
            kwargs: &[],
            key: &[],
            payload: &[],
            refs: &[],
            inputs: [None; 3],
        }
    }
}

/// The handles of a call's references, as the C ABI passes them.
fn handles(refs: &[Handle]) -> Vec<u64> {
    refs.iter().map(|h| h.0).collect()
}

impl CExecutor {
    fn invoke(&mut self, d: CallData<'_>) -> ExecResult<Answer> {
        if !self.opened {
            return Err(ExecError::new(
                EXECUTOR_ERROR,
                "the server's executor refused to open a session for this client",
            ));
        }
        let call = srpc_call {
            kind: d.kind as u32,
            obj: d.obj.map_or(SRPC_NO_OBJECT, |h| h.0),
            name: borrowed(d.name),
            path: borrowed(d.path),
            args: slice(d.args),
            kwargs: slice(d.kwargs),
            key: slice(d.key),
            payload: slice(d.payload),
            args_parts: std::ptr::null(),
            args_parts_len: 0,
            kwargs_parts: std::ptr::null(),
            kwargs_parts_len: 0,
            key_parts: std::ptr::null(),
            key_parts_len: 0,
            refs: if d.refs.is_empty() {
                std::ptr::null()
            } else {
                d.refs.as_ptr()
            },
            refs_len: d.refs.len(),
        };
        let mut reply = srpc_reply {
            kind: d.kind,
            answer: None,
            refused: None,
            inputs: d.inputs.map(|i| i.cloned()),
            spare: if d.kind == srpc_call_kind::SrpcCallKindMaterialize {
                self.spare.take()
            } else {
                None
            },
            extensions: self.extensions,
        };
        let f = self.cb.0.call.expect("checked in Callbacks::new");
        let previous = CURRENT_REPLY.with(|c| c.replace(&mut reply as *mut srpc_reply));
        // SAFETY: the host's callback; `call` and `reply` live across the call.
        let st = unsafe { f(self.cb.0.userdata, self.session, &call, &mut reply) };
        CURRENT_REPLY.with(|c| c.set(previous));
        if let Some(unused) = reply.spare.take() {
            self.spare = Some(unused);
        }
        let ok = st == SrpcStatusOk as u32;
        let wire = d.kind.wire_name();
        match reply.answer {
            Some(a) if ok => a,
            Some(Err(e)) => Err(e),
            // The executor's one try at a value was not msgpack: say so,
            // whatever status the callback returned after it.
            None if reply.refused.is_some() => Err(reply.refused.take().expect("checked")),
            None if ok && d.kind == srpc_call_kind::SrpcCallKindExecute => Ok(Answer::Nothing),
            None if ok => Err(ExecError::new(
                EXECUTOR_ERROR,
                format!(
                    "the C executor answered a {wire} request with no result (no srpc_reply_* call)"
                ),
            )),
            answer => {
                // A handle answered and then a failure: the handle is not
                // used, so the session gives it back (unless an id of the
                // client names it: a singleton answered again).
                if let Some(Ok(Answer::Handle(h))) = answer {
                    self.withdrawn = Some(Handle(h));
                }
                Err(ExecError::new(
                    EXECUTOR_ERROR,
                    format!(
                        "the C executor's callback failed with status {} serving a {wire} request",
                        srpc_status::describe(st),
                    ),
                ))
            }
        }
    }

    fn handle(&mut self, d: CallData<'_>) -> ExecResult<Handle> {
        let wire = d.kind.wire_name();
        match self.invoke(d)? {
            Answer::Handle(h) => Ok(Handle(h)),
            Answer::Value(_) | Answer::Nothing => Err(ExecError::new(
                EXECUTOR_ERROR,
                format!(
                    "the C executor answered a {wire} request with a value where a handle was expected"
                ),
            )),
        }
    }

    /// The msgpack value a callback answered, as it answered it.
    fn value(&mut self, d: CallData<'_>) -> ExecResult<RawValue> {
        let wire = d.kind.wire_name();
        match self.invoke(d)? {
            Answer::Value(v) => Ok(v),
            Answer::Handle(h) => {
                self.withdrawn = Some(Handle(h));
                Err(ExecError::new(
                    EXECUTOR_ERROR,
                    format!(
                        "the C executor answered a {wire} request with a handle where a value was expected"
                    ),
                ))
            }
            Answer::Nothing => unreachable!("only execute may answer nothing"),
        }
    }
}

fn target<'a>(t: Target<'a>, d: &mut CallData<'a>) {
    match t {
        Target::Object { handle, path } => {
            d.obj = Some(handle);
            d.path = path;
        }
        Target::Path(p) => d.path = p,
    }
}

impl Executor for CExecutor {
    fn import_module(&mut self, module: &str) -> ExecResult<Handle> {
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindImportModule);
        d.name = module;
        self.handle(d)
    }

    fn get_builtin(&mut self, name: &str) -> ExecResult<Handle> {
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindGetBuiltin);
        d.name = name;
        self.handle(d)
    }

    fn getattr(&mut self, t: Target<'_>, attr: &str) -> ExecResult<Handle> {
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindGetAttr);
        target(t, &mut d);
        d.name = attr;
        self.handle(d)
    }

    fn call(&mut self, t: Target<'_>, a: Arguments) -> ExecResult<Handle> {
        // The frame's own bytes, borrowed: the markers in them keep the
        // client's ids, and `refs` says which handle each stands for.
        let refs = handles(&a.refs);
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindCall);
        target(t, &mut d);
        d.args = a.raw_args.as_bytes();
        d.kwargs = a.raw_kwargs.as_bytes();
        d.inputs = [Some(&a.raw_args), Some(&a.raw_kwargs), None];
        d.refs = &refs;
        self.handle(d)
    }

    fn getitem(&mut self, obj: Handle, key: Key) -> ExecResult<Handle> {
        let refs = handles(&key.refs);
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindGetItem);
        d.obj = Some(obj);
        d.key = key.raw.as_bytes();
        d.inputs = [None, None, Some(&key.raw)];
        d.refs = &refs;
        self.handle(d)
    }

    fn materialize(&mut self, obj: Handle) -> ExecResult<Value> {
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindMaterialize);
        d.obj = Some(obj);
        // Checked when the callback answered; sent as it is.
        self.value(d).map(Value::Raw)
    }

    fn eval(&mut self, expr: &str) -> ExecResult<Handle> {
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindEval);
        d.name = expr;
        self.handle(d)
    }

    fn execute(&mut self, code: &str) -> ExecResult<()> {
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindExecute);
        d.name = code;
        if let Answer::Handle(h) = self.invoke(d)? {
            self.release(Handle(h));
        }
        Ok(())
    }

    fn teleport(&mut self, func: Bytes, name: &str) -> ExecResult<Handle> {
        let mut d = CallData::new(srpc_call_kind::SrpcCallKindTeleport);
        d.name = name;
        d.payload = &func;
        self.handle(d)
    }

    fn namespace(&mut self) -> ExecResult<Vec<(String, String)>> {
        let raw = self.value(CallData::new(srpc_call_kind::SrpcCallKindGetNamespace))?;
        let decoded = raw.decode().map_err(|e| {
            ExecError::new(
                EXECUTOR_ERROR,
                format!(
                    "the C executor answered a get_namespace request with invalid msgpack: {e}"
                ),
            )
        })?;
        match decoded {
            Value::Map(pairs) => Ok(pairs
                .into_iter()
                .filter_map(|(k, v)| match (k, v) {
                    (Value::Str(k), Value::Str(v)) => Some((k, v)),
                    _ => None,
                })
                .collect()),
            Value::Nil => Ok(Vec::new()),
            other => Err(ExecError::new(
                EXECUTOR_ERROR,
                format!(
                    "the C executor's namespace must be a map of str to str, got {}",
                    other.type_name()
                ),
            )),
        }
    }

    fn recycle(&mut self, frame: Vec<u8>) -> Option<Vec<u8>> {
        if (SPARE_MIN..=SPARE_MAX).contains(&frame.capacity()) {
            self.spare = Some(frame);
            None
        } else {
            Some(frame)
        }
    }

    fn trim(&mut self) {
        self.spare = None;
    }

    fn take_withdrawn(&mut self) -> Option<Handle> {
        self.withdrawn.take()
    }

    fn release(&mut self, handle: Handle) {
        if !self.opened {
            return;
        }
        if let Some(f) = self.cb.0.release {
            // SAFETY: the host's callback with its userdata and session.
            unsafe { f(self.cb.0.userdata, self.session, handle.0) };
        }
    }
}
