//! The server's dispatch without ctypes callbacks: an `srpc_executor` whose
//! callbacks are the Rust functions below, calling the methods of the Python
//! executor (`simplerpc._executor.PythonExecutor`) of each session, with the
//! same arguments and answers as the package's ctypes callbacks
//! (`_native.NativeServer._on_call`).

use std::ffi::c_void;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::ThreadId;

use pyo3::exceptions::{PyNotImplementedError, PyUnicodeDecodeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::abi::{self, Bytes, Call, Executor};
use crate::buffer::{Borrowed, Held};

/// Call arguments at least this large are decoded by the package's own
/// decoder for large values (arrays over the request frame in place), as
/// `_native._decode_borrowed` decides (`_SPLIT_VALUE`).
const SPLIT_VALUE: usize = 256 << 10;

/// Parts of an answer from this size up are lent to the library
/// (`srpc_reply_value_lent`), not copied, while one client is connected: the
/// package's `_native._LEND_MIN` (the library's SPLICE_MIN).
const LEND_MIN: usize = 64 << 10;

/// PyBUF_READ: a read-only memoryview.
const PYBUF_READ: c_int = 0x100;

/// What every session's callbacks share: the Python callables, and the
/// number of open sessions.
struct Shared {
    make_executor: Py<PyAny>,
    describe_exception: Py<PyAny>,
    large_decoder: Py<PyAny>,
    refused: Py<PyAny>,
    /// Sessions opened (on_open) and not yet closed (on_close), as
    /// `len(NativeServer._sessions)`: large answers are lent only while
    /// there is one.
    sessions: AtomicUsize,
}

/// One client's session: its executor, and the thread state kept for the
/// connection's thread (as `_on_open` does with a nested PyGILState_Ensure).
struct Session {
    executor: Py<PyAny>,
    checked_tuples: bool,
    gil: Option<(ThreadId, ffi::PyGILState_STATE)>,
}

/// The executor table for `srpc_server_start` / `srpc_server_serve_fd`.
///
/// `Dispatcher(make_executor, describe_exception, large_decoder, refused)`:
/// `make_executor()` makes a session's executor; `describe_exception(exc)`
/// gives `(type, message, traceback, payload)`; `large_decoder(reply,
/// args_addr, kwargs_addr, tuples)` gives the `decode` function for call
/// arguments of 256 KiB or more; `refused(exc)` logs an executor that could
/// not be made. Keep the object alive as long as the server runs: the table
/// (`address`) points into it.
#[pyclass(module = "simplerpc._speedups", frozen)]
pub struct Dispatcher {
    shared: Box<Shared>,
    table: Box<Executor>,
}

// SAFETY: the raw pointers inside point at `shared`, owned by this object
// and only read (under the GIL) by the callbacks.
unsafe impl Send for Dispatcher {}
// SAFETY: as above: nothing is mutated through `&Dispatcher`.
unsafe impl Sync for Dispatcher {}

#[pymethods]
impl Dispatcher {
    #[new]
    fn new(
        make_executor: Py<PyAny>,
        describe_exception: Py<PyAny>,
        large_decoder: Py<PyAny>,
        refused: Py<PyAny>,
    ) -> PyResult<Self> {
        abi::table()?;
        let shared = Box::new(Shared {
            make_executor,
            describe_exception,
            large_decoder,
            refused,
            sessions: AtomicUsize::new(0),
        });
        let table = Box::new(Executor {
            userdata: &*shared as *const Shared as *mut c_void,
            open: Some(on_open),
            close: Some(on_close),
            call: Some(on_call),
            release: Some(on_release),
            free_userdata: None,
        });
        Ok(Dispatcher { shared, table })
    }

    /// The address of the `srpc_executor` to pass to the library.
    fn address(&self) -> usize {
        let _ = &self.shared;
        &*self.table as *const Executor as usize
    }
}

unsafe extern "C" fn on_open(userdata: *mut c_void, session_out: *mut *mut c_void) -> u32 {
    catch_unwind(AssertUnwindSafe(|| {
        Python::attach(|py| {
            // SAFETY: userdata is the Shared of a Dispatcher that outlives the server.
            let shared = unsafe { &*(userdata as *const Shared) };
            match shared.make_executor.call0(py) {
                Ok(executor) => {
                    // A nested ensure: the thread state of this connection's
                    // thread lives until on_close, so that each callback only
                    // takes the GIL instead of making a thread state.
                    // SAFETY: the GIL is held (attach); released in on_close.
                    let state = unsafe { ffi::PyGILState_Ensure() };
                    let session = Box::new(Session {
                        executor,
                        checked_tuples: false,
                        gil: Some((std::thread::current().id(), state)),
                    });
                    // SAFETY: session_out is the library's out-pointer.
                    unsafe { *session_out = Box::into_raw(session) as *mut c_void };
                    shared.sessions.fetch_add(1, Ordering::SeqCst);
                    abi::STATUS_OK
                }
                Err(e) => {
                    let _ = shared.refused.call1(py, (e.into_value(py),));
                    abi::STATUS_ERR_STATE
                }
            }
        })
    }))
    .unwrap_or(abi::STATUS_ERR_PANIC)
}

unsafe extern "C" fn on_close(userdata: *mut c_void, session: *mut c_void) {
    if session.is_null() {
        return;
    }
    // SAFETY: userdata is the Shared of a Dispatcher that outlives the server.
    let shared = unsafe { &*(userdata as *const Shared) };
    // A non-NULL session is one on_open counted.
    shared.sessions.fetch_sub(1, Ordering::SeqCst);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        Python::attach(|_py| {
            // SAFETY: `session` came from Box::into_raw in on_open and is closed once.
            let session = unsafe { Box::from_raw(session as *mut Session) };
            if let Some((thread, state)) = session.gil {
                if thread == std::thread::current().id() {
                    // SAFETY: the state of the nested ensure made in on_open
                    // on this same thread; the GIL is held (attach).
                    unsafe { ffi::PyGILState_Release(state) };
                }
            }
            drop(session);
        })
    }));
}

unsafe extern "C" fn on_release(_userdata: *mut c_void, session: *mut c_void, handle: u64) {
    if session.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        Python::attach(|py| {
            // SAFETY: a live session (the library calls no callback after close).
            let session = unsafe { &*(session as *const Session) };
            let _ = session.executor.call_method1(py, "release", (handle,));
        })
    }));
}

unsafe extern "C" fn on_call(
    userdata: *mut c_void,
    session: *mut c_void,
    call: *const Call,
    reply: *mut c_void,
) -> u32 {
    catch_unwind(AssertUnwindSafe(|| {
        Python::attach(|py| {
            // SAFETY: userdata is the Shared of a Dispatcher that outlives the server.
            let shared = unsafe { &*(userdata as *const Shared) };
            let result = if session.is_null() || call.is_null() {
                Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "no session for this call",
                ))
            } else {
                // SAFETY: a live session and the call the library lends for this callback.
                let (session, call) = unsafe { (&mut *(session as *mut Session), &*call) };
                dispatch(py, shared, session, call, reply)
            };
            match result {
                Ok(status) => status,
                Err(e) => reply_error(py, shared, e, reply),
            }
        })
    }))
    .unwrap_or(abi::STATUS_ERR_PANIC)
}

fn text<'py>(py: Python<'py>, b: Bytes) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the library lends the call's strings for this callback.
    let bytes = unsafe { b.as_slice() };
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(PyString::new(py, s)),
        Err(e) => Err(PyUnicodeDecodeError::new_err(format!(
            "a name in the request is not UTF-8: {e}"
        ))),
    }
}

/// A read-only memoryview over bytes the library lends for this callback
/// (`empty` when there are none); released by the caller after the call.
fn lent<'py>(py: Python<'py>, b: Bytes, empty: &'static [u8]) -> PyResult<Bound<'py, PyAny>> {
    let (ptr, len) = if b.ptr.is_null() || b.len == 0 {
        (empty.as_ptr(), empty.len())
    } else {
        (b.ptr, b.len)
    };
    let len = isize::try_from(len)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("buffer too large"))?;
    // SAFETY: `ptr` points at `len` bytes that stay valid during this
    // callback; the view is read-only (PyBUF_READ) and released before the
    // callback returns (see `release`).
    unsafe {
        let view = ffi::PyMemoryView_FromMemory(ptr as *mut std::os::raw::c_char, len, PYBUF_READ);
        Bound::from_owned_ptr_or_err(py, view)
    }
}

fn release(view: &Bound<'_, PyAny>) -> PyResult<()> {
    view.call_method0("release").map(|_| ())
}

fn refs_list<'py>(py: Python<'py>, call: &Call) -> PyResult<Bound<'py, PyList>> {
    let refs: &[u64] = if call.refs.is_null() || call.refs_len == 0 {
        &[]
    } else {
        // SAFETY: the library lends `refs_len` handles at `refs` for this callback.
        unsafe { std::slice::from_raw_parts(call.refs, call.refs_len) }
    };
    PyList::new(py, refs)
}

fn dispatch(
    py: Python<'_>,
    shared: &Shared,
    session: &mut Session,
    call: &Call,
    reply: *mut c_void,
) -> PyResult<u32> {
    let t = abi::table()?;
    let ex = session.executor.bind(py);
    if !session.checked_tuples {
        // The connection's extensions never change: ask once.
        if ex.getattr_opt("tuples")?.is_some_and(|v| v.is_none()) {
            // SAFETY: `reply` is the library's reply for this callback.
            let ext = unsafe { (t.reply_extensions)(reply) };
            ex.setattr("tuples", ext & abi::EXT_TUPLE != 0)?;
        }
        session.checked_tuples = true;
    }
    let obj: Option<u64> = if call.obj == abi::NO_OBJECT {
        None
    } else {
        Some(call.obj)
    };
    let handle = match call.kind {
        abi::KIND_IMPORT_MODULE => ex.call_method1("import_module", (text(py, call.name)?,))?,
        abi::KIND_GET_BUILTIN => ex.call_method1("get_builtin", (text(py, call.name)?,))?,
        abi::KIND_GET_ATTR => {
            ex.call_method1("getattr", (obj, text(py, call.path)?, text(py, call.name)?))?
        }
        abi::KIND_CALL => {
            let path = text(py, call.path)?;
            let refs = refs_list(py, call)?;
            let decode: Bound<'_, PyAny> =
                if call.args.len >= SPLIT_VALUE || call.kwargs.len >= SPLIT_VALUE {
                    let tuples = ex
                        .getattr_opt("tuples")?
                        .map(|v| v.is_truthy())
                        .transpose()?
                        .unwrap_or(false);
                    shared.large_decoder.bind(py).call1((
                        reply as usize,
                        call.args.ptr as usize,
                        call.kwargs.ptr as usize,
                        tuples,
                    ))?
                } else {
                    py.None().into_bound(py)
                };
            let args = lent(py, call.args, b"\x90")?;
            let kwargs = lent(py, call.kwargs, b"\x80")?;
            let decode = if decode.is_none() { None } else { Some(decode) };
            let result = ex.call_method1("call", (obj, path, &args, &kwargs, refs, decode));
            let released = release(&kwargs).and(release(&args));
            let h = result?;
            released?;
            h
        }
        abi::KIND_GET_ITEM => {
            let refs = refs_list(py, call)?;
            let key = lent(py, call.key, b"\xc0")?;
            let result = ex.call_method1("getitem", (obj, &key, refs));
            let released = release(&key);
            let h = result?;
            released?;
            h
        }
        abi::KIND_EVAL => ex.call_method1("eval", (text(py, call.name)?,))?,
        abi::KIND_TELEPORT => {
            // SAFETY: the library lends the payload for this callback.
            let payload = PyBytes::new(py, unsafe { call.payload.as_slice() });
            ex.call_method1("teleport", (payload, text(py, call.name)?))?
        }
        abi::KIND_EXECUTE => {
            ex.call_method1("execute", (text(py, call.name)?,))?;
            return Ok(abi::STATUS_OK);
        }
        abi::KIND_MATERIALIZE | abi::KIND_GET_NAMESPACE => {
            let data = if call.kind == abi::KIND_MATERIALIZE {
                ex.call_method1("materialize", (obj,))?
            } else {
                ex.call_method0("namespace")?
            };
            if let Ok(list) = data.cast::<PyList>() {
                // Parts (an array's own memory among them).
                let parts = list
                    .iter()
                    .map(|p| Borrowed::new(&p))
                    .collect::<PyResult<Vec<_>>>()?;
                let slices: Vec<Bytes> = parts.iter().map(Borrowed::bytes).collect();
                if shared.sessions.load(Ordering::SeqCst) == 1
                    && slices.iter().any(|b| b.len >= LEND_MIN)
                {
                    // One client: the large parts are lent. The library
                    // writes them to the socket where they lie, after this
                    // callback, and calls `release_lent` once done (the
                    // buffers and objects are kept alive till then).
                    let lent = Box::new(Lent {
                        parts: parts.into_iter().map(Borrowed::into_held).collect(),
                    });
                    let ctx = Box::into_raw(lent) as *mut c_void;
                    // SAFETY: `slices` point into the buffers `ctx` holds,
                    // which stay valid and unchanged (the views are held:
                    // numpy refuses to resize an array with exported
                    // buffers) until the library calls `release_lent(ctx)`,
                    // exactly once, also when this call fails; `ctx` is not
                    // touched here after the call.
                    return Ok(unsafe {
                        (t.reply_value_lent)(
                            reply,
                            slices.as_ptr(),
                            slices.len(),
                            Some(release_lent),
                            ctx,
                        )
                    });
                }
                // Several clients: another's call could change the array
                // while it is written, so the library copies every part
                // now, into the response frame (a snapshot).
                // SAFETY: the parts stay borrowed until this returns.
                return Ok(unsafe { (t.reply_value_parts)(reply, slices.as_ptr(), slices.len()) });
            }
            let one = Borrowed::new(&data)?;
            let b = one.bytes();
            // SAFETY: the bytes stay borrowed until this returns.
            return Ok(unsafe { (t.reply_value)(reply, b.ptr, b.len) });
        }
        kind => {
            return Err(PyNotImplementedError::new_err(format!(
                "unknown call kind {kind}"
            )))
        }
    };
    let handle: u64 = handle.extract()?;
    // SAFETY: `reply` is the library's reply for this callback.
    Ok(unsafe { (t.reply_handle)(reply, handle) })
}

/// The parts of an answer lent to the library (`srpc_reply_value_lent`).
struct Lent {
    parts: Vec<Held>,
}

/// The release function of a lent answer: called once by the library, from
/// any thread (its I/O thread, once the frame is written or dropped; or
/// during `srpc_reply_value_lent` itself), possibly long after the callback.
unsafe extern "C" fn release_lent(ctx: *mut c_void) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: `ctx` came from Box::into_raw in `dispatch` and the library
    // hands it back exactly once. The Held parts are only touched with the
    // GIL held, whichever thread this runs on.
    let lent = unsafe { Box::from_raw(ctx as *mut Lent) };
    let _ = catch_unwind(AssertUnwindSafe(move || {
        // try_attach: nothing when the interpreter is gone (or, on builds
        // that can tell, finalizing), where taking the GIL could hang or end
        // this thread. The buffers are then left as they are (the process is
        // ending; dropping a Held without release only leaks). Servers are
        // closed at exit (atexit) before finalization, so this is the
        // exception.
        let mut lent = Some(lent);
        let released = Python::try_attach(|py| {
            if let Some(lent) = lent.take() {
                for part in lent.parts {
                    part.release(py);
                }
            }
        });
        if released.is_none() {
            std::mem::forget(lent);
        }
    }));
}

/// Answer with the error `e`, described by the package's `describe_exception`.
fn reply_error(py: Python<'_>, shared: &Shared, e: PyErr, reply: *mut c_void) -> u32 {
    let Ok(t) = abi::table() else {
        return abi::STATUS_ERR_STATE;
    };
    let exc = e.into_value(py);
    let described = shared
        .describe_exception
        .call1(py, (exc.clone_ref(py),))
        .and_then(|d| d.extract::<(String, String, String, Option<Vec<u8>>)>(py));
    let (etype, message, traceback, payload) = match described {
        Ok(d) => d,
        Err(_) => {
            let message = exc
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| "an exception".into());
            (
                "builtins.Exception".to_string(),
                message,
                String::new(),
                None,
            )
        }
    };
    let payload = payload.unwrap_or_default();
    // SAFETY: the strings live across the call; `reply` is the library's reply.
    unsafe {
        (t.reply_error)(
            reply,
            Bytes::of(etype.as_bytes()),
            Bytes::of(message.as_bytes()),
            Bytes::of(traceback.as_bytes()),
            Bytes::of(&payload),
        )
    }
}
