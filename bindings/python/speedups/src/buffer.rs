//! Reading Python buffers (bytes, bytearray, memoryview, numpy arrays)
//! without a copy.
//!
//! pyo3 offers the buffer protocol under the limited API only from Python
//! 3.11 on, where `PyObject_GetBuffer` joined the stable ABI. The function and
//! `Py_buffer` have existed with this layout in every CPython 3 (the layout
//! is documented and has not changed since 3.3), so they are declared here.

use std::ffi::{c_char, c_int, c_void};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::abi::Bytes;

/// `Py_buffer`.
#[repr(C)]
struct PyBufferView {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: isize,
    itemsize: isize,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut isize,
    strides: *mut isize,
    suboffsets: *mut isize,
    internal: *mut c_void,
}

extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBufferView, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBufferView);
}

/// PyBUF_SIMPLE: a contiguous run of bytes.
const PYBUF_SIMPLE: c_int = 0;

/// The bytes of a Python object, held (and readable) while this lives; the
/// GIL must be held when it is dropped.
pub struct Borrowed<'py> {
    bytes: Bytes,
    view: Option<Box<PyBufferView>>,
    // What the bytes belong to: the object itself, or a copy of it made
    // when it offered no contiguous buffer.
    _keep: Bound<'py, PyAny>,
}

impl<'py> Borrowed<'py> {
    /// The bytes of `obj`: bytes objects directly, anything else through the
    /// buffer protocol, and what has no contiguous buffer as `bytes(obj)`.
    pub fn new(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Borrowed {
                bytes: Bytes::of(b.as_bytes()),
                view: None,
                _keep: obj.clone(),
            });
        }
        let mut view = Box::new(PyBufferView {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        });
        // SAFETY: `obj` is a live object (we hold the GIL through `'py`) and
        // `view` a writable Py_buffer; on success it is released in Drop.
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, PYBUF_SIMPLE) };
        if rc == 0 {
            let len = usize::try_from(view.len).unwrap_or(0);
            let bytes = if len == 0 {
                Bytes::EMPTY
            } else {
                Bytes {
                    ptr: view.buf as *const u8,
                    len,
                }
            };
            return Ok(Borrowed {
                bytes,
                view: Some(view),
                _keep: obj.clone(),
            });
        }
        // Not contiguous (or no buffer of bytes): a copy in C order.
        let _ = PyErr::take(obj.py());
        let copy = obj.py().get_type::<PyBytes>().call1((obj,))?;
        let b = copy.cast::<PyBytes>()?;
        Ok(Borrowed {
            bytes: Bytes::of(b.as_bytes()),
            view: None,
            _keep: copy.clone(),
        })
    }

    /// The pointer and length (NULL and 0 when empty).
    pub fn bytes(&self) -> Bytes {
        self.bytes
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let Some(view) = self.view.as_mut() {
            // SAFETY: the view was filled by a successful PyObject_GetBuffer
            // and is released once; the GIL is held ('py).
            unsafe { PyBuffer_Release(&mut **view) };
        }
    }
}

impl<'py> Borrowed<'py> {
    /// What keeps the bytes valid, held past this GIL scope (see [`Held`]);
    /// the pointer [`Borrowed::bytes`] gave stays valid until it is released.
    pub fn into_held(mut self) -> Held {
        let view = self.view.take();
        let keep = self._keep.clone().unbind();
        // `self` no longer has a view to release when it drops here.
        Held {
            view,
            keep: Some(keep),
        }
    }
}

/// The bytes of a Python object, held beyond the GIL scope they were taken in
/// (an answer lent to the library until it calls back). Give them back with
/// [`Held::release`], with the GIL held. Dropped without it, the buffer is
/// never released (the object stays alive and its memory valid): a leak,
/// never a use after free.
pub struct Held {
    view: Option<Box<PyBufferView>>,
    keep: Option<Py<PyAny>>,
}

impl Held {
    /// Release the buffer and the object; `_py` proves the GIL is held.
    pub fn release(mut self, _py: Python<'_>) {
        if let Some(mut view) = self.view.take() {
            // SAFETY: the view was filled by a successful PyObject_GetBuffer
            // and is released once (taken out of `self`); the GIL is held.
            unsafe { PyBuffer_Release(&mut *view) };
        }
        // Dropped with the GIL held: the reference goes now.
        drop(self.keep.take());
    }
}
