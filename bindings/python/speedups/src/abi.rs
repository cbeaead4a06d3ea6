//! The C ABI of libsimplerpc (include/simplerpc.h), mirrored: the structures
//! this module fills or reads, and the functions it calls, reached through
//! the addresses the package's ctypes loader hands over (`bind`).

use std::ffi::c_void;
use std::sync::OnceLock;

use pyo3::exceptions::{PyKeyError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `srpc_str` and `srpc_slice`: a pointer and a length (NULL when empty).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl Bytes {
    pub const EMPTY: Bytes = Bytes {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// Over `b`, NULL when it is empty (as the package's ctypes code does).
    pub fn of(b: &[u8]) -> Bytes {
        if b.is_empty() {
            Bytes::EMPTY
        } else {
            Bytes {
                ptr: b.as_ptr(),
                len: b.len(),
            }
        }
    }

    /// The bytes, for the duration of a callback that lent them.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable bytes (or `len` be 0).
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// `srpc_call`.
#[repr(C)]
pub struct Call {
    pub kind: u32,
    pub obj: u64,
    pub name: Bytes,
    pub path: Bytes,
    pub args: Bytes,
    pub kwargs: Bytes,
    pub key: Bytes,
    pub payload: Bytes,
    pub args_parts: *const Bytes,
    pub args_parts_len: usize,
    pub kwargs_parts: *const Bytes,
    pub kwargs_parts_len: usize,
    pub key_parts: *const Bytes,
    pub key_parts_len: usize,
    pub refs: *const u64,
    pub refs_len: usize,
}

/// `srpc_buf`.
#[repr(C)]
pub struct Buf {
    pub data: *const u8,
    pub len: usize,
    pub owner: *mut c_void,
}

/// `srpc_response`.
#[repr(C)]
pub struct Response {
    pub kind: u32,
    pub obj: u64,
    pub request_id: u64,
    pub value: Buf,
}

/// The size of each structure this module mirrors and the offset of each of
/// its fields, named as in the header (`{"srpc_call": {"size": 136,
/// "kind": 0, ...}, ...}`): tests/test_abi_header.py compares them with
/// what a C compiler makes of include/simplerpc.h, so that a field added to
/// the ABI and not here fails a test instead of corrupting memory.
#[pyfunction]
pub fn layout(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    use std::mem::{offset_of, size_of};
    let out = PyDict::new(py);
    macro_rules! mirror {
        ($c:literal, $t:ty, [$($f:ident),* $(,)?]) => {{
            let d = PyDict::new(py);
            d.set_item("size", size_of::<$t>())?;
            $(d.set_item(stringify!($f), offset_of!($t, $f))?;)*
            out.set_item($c, d)?;
        }};
    }
    mirror!("srpc_slice", Bytes, [ptr, len]);
    mirror!("srpc_str", Bytes, [ptr, len]);
    mirror!("srpc_buf", Buf, [data, len, owner]);
    mirror!("srpc_response", Response, [kind, obj, request_id, value]);
    mirror!(
        "srpc_call",
        Call,
        [
            kind,
            obj,
            name,
            path,
            args,
            kwargs,
            key,
            payload,
            args_parts,
            args_parts_len,
            kwargs_parts,
            kwargs_parts_len,
            key_parts,
            key_parts_len,
            refs,
            refs_len,
        ]
    );
    mirror!(
        "srpc_executor",
        Executor,
        [userdata, open, close, call, release, free_userdata]
    );
    Ok(out)
}

/// `srpc_open_fn`.
pub type OpenFn = unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> u32;
/// `srpc_close_fn`.
pub type CloseFn = unsafe extern "C" fn(*mut c_void, *mut c_void);
/// `srpc_call_fn`.
pub type CallFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *const Call, *mut c_void) -> u32;
/// `srpc_release_fn`.
pub type ReleaseFn = unsafe extern "C" fn(*mut c_void, *mut c_void, u64);
/// `srpc_lent_release_fn`: called once, from any thread, when the library
/// no longer reads memory lent by `srpc_reply_value_lent`.
pub type LentReleaseFn = unsafe extern "C" fn(*mut c_void);
/// `srpc_free_fn`.
pub type FreeFn = unsafe extern "C" fn(*mut c_void);

/// `srpc_executor`.
#[repr(C)]
pub struct Executor {
    pub userdata: *mut c_void,
    pub open: Option<OpenFn>,
    pub close: Option<CloseFn>,
    pub call: Option<CallFn>,
    pub release: Option<ReleaseFn>,
    pub free_userdata: Option<FreeFn>,
}

// srpc_status values used here.
pub const STATUS_OK: u32 = 0;
pub const STATUS_ERR_PANIC: u32 = 9;
pub const STATUS_ERR_STATE: u32 = 10;
// srpc_call_kind.
pub const KIND_IMPORT_MODULE: u32 = 0;
pub const KIND_GET_BUILTIN: u32 = 1;
pub const KIND_GET_ATTR: u32 = 2;
pub const KIND_CALL: u32 = 3;
pub const KIND_GET_ITEM: u32 = 4;
pub const KIND_MATERIALIZE: u32 = 5;
pub const KIND_EVAL: u32 = 6;
pub const KIND_EXECUTE: u32 = 7;
pub const KIND_TELEPORT: u32 = 8;
pub const KIND_GET_NAMESPACE: u32 = 9;
/// SRPC_EXT_TUPLE.
pub const EXT_TUPLE: u32 = 8;
/// SRPC_NO_OBJECT.
pub const NO_OBJECT: u64 = u64::MAX;

type ClientSendFn = unsafe extern "C" fn(*const c_void, *const Call, *mut u64) -> u32;

/// The library functions this module calls.
pub struct Table {
    pub client_request: unsafe extern "C" fn(*const c_void, *const Call, *mut Response) -> u32,
    pub client_send: ClientSendFn,
    pub client_send_pipelined: ClientSendFn,
    pub client_wait: unsafe extern "C" fn(*const c_void, u64, *mut Response) -> u32,
    pub trail: unsafe extern "C" fn(u32, Bytes, Bytes, Bytes, *mut Buf) -> u32,
    pub buf_free: unsafe extern "C" fn(*mut Buf),
    pub reply_handle: unsafe extern "C" fn(*mut c_void, u64) -> u32,
    pub reply_extensions: unsafe extern "C" fn(*const c_void) -> u32,
    pub reply_value: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> u32,
    pub reply_value_parts: unsafe extern "C" fn(*mut c_void, *const Bytes, usize) -> u32,
    pub reply_value_lent: unsafe extern "C" fn(
        *mut c_void,
        *const Bytes,
        usize,
        Option<LentReleaseFn>,
        *mut c_void,
    ) -> u32,
    pub reply_error: unsafe extern "C" fn(*mut c_void, Bytes, Bytes, Bytes, Bytes) -> u32,
}

static TABLE: OnceLock<Table> = OnceLock::new();

/// The bound functions; an error (telling the package to call `bind`) before.
pub fn table() -> PyResult<&'static Table> {
    TABLE.get().ok_or_else(|| {
        PyRuntimeError::new_err(
            "simplerpc._speedups is not bound to libsimplerpc: call bind() first",
        )
    })
}

/// Bind the module to the loaded libsimplerpc: `addresses` maps each
/// function's C name (`srpc_client_request`, ...) to its address
/// (`ctypes.cast(lib.NAME, ctypes.c_void_p).value`). The first binding stays
/// for the life of the process; a later one must name the same library.
// The target of each transmute is the type of the Table field it fills.
#[allow(clippy::missing_transmute_annotations)]
#[pyfunction]
pub fn bind(addresses: &Bound<'_, PyDict>) -> PyResult<()> {
    let get = |name: &str| -> PyResult<usize> {
        let v = addresses.get_item(name)?.ok_or_else(|| {
            PyKeyError::new_err(format!("bind(): the address of {name} is missing"))
        })?;
        let addr: usize = v.extract()?;
        if addr == 0 {
            return Err(PyKeyError::new_err(format!(
                "bind(): {name} has a NULL address"
            )));
        }
        Ok(addr)
    };
    macro_rules! f {
        ($name:literal) => {{
            let addr = get($name)?;
            // SAFETY: `addr` is the address of the libsimplerpc function
            // `$name` (the package reads it from its ctypes handle of the
            // library, which stays loaded for the life of the process), whose
            // C signature in include/simplerpc.h is the one of the field it
            // is stored in.
            unsafe { std::mem::transmute::<usize, _>(addr) }
        }};
    }
    let table = Table {
        client_request: f!("srpc_client_request"),
        client_send: f!("srpc_client_send"),
        client_send_pipelined: f!("srpc_client_send_pipelined"),
        client_wait: f!("srpc_client_wait"),
        trail: f!("srpc_trail"),
        buf_free: f!("srpc_buf_free"),
        reply_handle: f!("srpc_reply_handle"),
        reply_extensions: f!("srpc_reply_extensions"),
        reply_value: f!("srpc_reply_value"),
        reply_value_parts: f!("srpc_reply_value_parts"),
        reply_value_lent: f!("srpc_reply_value_lent"),
        reply_error: f!("srpc_reply_error"),
    };
    let first = table.client_request as usize;
    let bound = TABLE.get_or_init(|| table);
    if bound.client_request as usize != first {
        return Err(PyRuntimeError::new_err(
            "simplerpc._speedups is already bound to another libsimplerpc (SIMPLERPC_LIBRARY changed?)",
        ));
    }
    Ok(())
}
