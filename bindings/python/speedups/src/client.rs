//! The client's requests without ctypes: the `srpc_call` built here, the
//! library called with the GIL released.

use std::ffi::c_void;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::abi::{self, Buf, Bytes, Call, Response};
use crate::buffer::Borrowed;

/// Which library function [`client_call`] calls.
const OP_REQUEST: u32 = 0;
const OP_SEND: u32 = 1;
const OP_SEND_PIPELINED: u32 = 2;

/// A msgpack field of a call as Python hands it in: bytes-like, or a list
/// of buffers that make it when joined (each passed to the library as it is,
/// so that a large array's own memory goes to the socket from where it lies).
struct Field<'py> {
    one: Option<Borrowed<'py>>,
    // Holds the parts' buffers while `slices` points into them.
    _parts: Vec<Borrowed<'py>>,
    slices: Vec<Bytes>,
}

impl<'py> Field<'py> {
    fn new(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let Ok(list) = obj.cast::<PyList>() else {
            return Ok(Field {
                one: Some(Borrowed::new(obj)?),
                _parts: Vec::new(),
                slices: Vec::new(),
            });
        };
        let mut parts = Vec::with_capacity(list.len());
        for p in list.iter() {
            parts.push(Borrowed::new(&p)?);
        }
        let slices = parts.iter().map(Borrowed::bytes).collect();
        Ok(Field {
            one: None,
            _parts: parts,
            slices,
        })
    }

    /// The one buffer (empty when in parts).
    fn one(&self) -> Bytes {
        self.one.as_ref().map_or(Bytes::EMPTY, Borrowed::bytes)
    }

    /// The parts and their number (NULL when in one buffer); valid while
    /// `self` lives.
    fn parts(&self) -> (*const Bytes, usize) {
        if self.one.is_some() {
            (std::ptr::null(), 0)
        } else {
            (self.slices.as_ptr(), self.slices.len())
        }
    }
}

/// One request: `op` 0 is `srpc_client_request` (`out` is the address of
/// an `srpc_response`), 1 `srpc_client_send` and 2
/// `srpc_client_send_pipelined` (`out`: the address of a `uint64_t`).
/// `handle` is the `srpc_client*`; `args`, `kwargs` and `key` are each
/// bytes, or a list of buffers that make them when joined (each passed to
/// the library as it is); `payload` is bytes-like. Returns the srpc_status;
/// the caller turns an error into an exception as for a ctypes call.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (op, handle, out, kind, obj, name, path, args, kwargs, key, payload))]
pub fn client_call(
    py: Python<'_>,
    op: u32,
    handle: usize,
    out: usize,
    kind: u32,
    obj: u64,
    name: &str,
    path: &str,
    args: &Bound<'_, PyAny>,
    kwargs: &Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
    payload: &Bound<'_, PyAny>,
) -> PyResult<u32> {
    let t = abi::table()?;
    if handle == 0 || out == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "client_call(): a NULL client or output",
        ));
    }
    let args = Field::new(args)?;
    let kwargs = Field::new(kwargs)?;
    let key = Field::new(key)?;
    let payload = Borrowed::new(payload)?;
    let (args_parts, args_parts_len) = args.parts();
    let (kwargs_parts, kwargs_parts_len) = kwargs.parts();
    let (key_parts, key_parts_len) = key.parts();
    let call = Call {
        kind,
        obj,
        name: Bytes::of(name.as_bytes()),
        path: Bytes::of(path.as_bytes()),
        args: args.one(),
        kwargs: kwargs.one(),
        key: key.one(),
        payload: payload.bytes(),
        args_parts,
        args_parts_len,
        kwargs_parts,
        kwargs_parts_len,
        key_parts,
        key_parts_len,
        refs: std::ptr::null(),
        refs_len: 0,
    };
    let call_addr = &call as *const Call as usize;
    let status = py.detach(move || {
        let call = call_addr as *const Call;
        let client = handle as *const c_void;
        // SAFETY: `handle` is a live srpc_client* (the package checks it is
        // not closed), `call` points at the Call above whose buffers (and
        // lists of parts) stay borrowed until this returns, and `out` at the
        // caller's srpc_response or uint64_t, matching `op`.
        unsafe {
            match op {
                OP_REQUEST => (t.client_request)(client, call, out as *mut Response),
                OP_SEND => (t.client_send)(client, call, out as *mut u64),
                OP_SEND_PIPELINED => (t.client_send_pipelined)(client, call, out as *mut u64),
                _ => u32::MAX,
            }
        }
    });
    drop((args, kwargs, key, payload));
    if status == u32::MAX {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "client_call(): unknown op {op}"
        )));
    }
    Ok(status)
}

/// `srpc_client_wait(handle, request, out)` with the GIL released; `out` is
/// the address of an `srpc_response`. Returns the srpc_status.
#[pyfunction]
pub fn client_wait(py: Python<'_>, handle: usize, request: u64, out: usize) -> PyResult<u32> {
    let t = abi::table()?;
    if handle == 0 || out == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "client_wait(): a NULL client or output",
        ));
    }
    // SAFETY: `handle` is a live srpc_client*, `out` the caller's srpc_response.
    Ok(py.detach(move || unsafe {
        (t.client_wait)(handle as *const c_void, request, out as *mut Response)
    }))
}

/// `srpc_trail`: the path trail core prescribes, or None when the library
/// refuses (the caller then asks through ctypes, which raises its error).
#[pyfunction]
pub fn trail(kind: u32, parent: &str, a: &str, key: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let t = abi::table()?;
    let key = Borrowed::new(key)?;
    let mut out = Buf {
        data: std::ptr::null(),
        len: 0,
        owner: std::ptr::null_mut(),
    };
    // SAFETY: the strings and key live across the call; `out` is written by
    // the library and freed below with srpc_buf_free.
    let status = unsafe {
        (t.trail)(
            kind,
            Bytes::of(parent.as_bytes()),
            Bytes::of(a.as_bytes()),
            key.bytes(),
            &mut out,
        )
    };
    if status != abi::STATUS_OK {
        return Ok(None);
    }
    // SAFETY: on success `out` holds `len` bytes at `data` until freed.
    let text = unsafe {
        Bytes {
            ptr: out.data,
            len: out.len,
        }
        .as_slice()
    };
    let text = String::from_utf8_lossy(text).into_owned();
    // SAFETY: `out` came from srpc_trail and is freed once.
    unsafe { (t.buf_free)(&mut out) };
    Ok(Some(text))
}
