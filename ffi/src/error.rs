//! Status codes, the per-thread last error, and the panic boundary.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use simplerpc_core::RemoteError;

/// The result of every fallible function. `SRPC_OK` is 0.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum srpc_status {
    /// Success.
    SrpcOk = 0,
    /// A required pointer argument was NULL.
    SrpcErrNullArgument = 1,
    /// A string argument was not valid UTF-8.
    SrpcErrInvalidUtf8 = 2,
    /// An argument was invalid (bad msgpack, bad length, wrong kind).
    SrpcErrInvalidArgument = 3,
    /// A network or OS error (cannot bind, cannot connect).
    SrpcErrIo = 4,
    /// The server refused the token.
    SrpcErrUnauthorized = 5,
    /// The connection is closed or the peer went away.
    SrpcErrClosed = 6,
    /// The remote side raised an exception: see srpc_last_error_type() and friends.
    SrpcErrRemote = 7,
    /// The peer broke the protocol.
    SrpcErrProtocol = 8,
    /// A Rust panic was caught at the boundary (a bug: please report it).
    SrpcErrPanic = 9,
    /// The object is in the wrong state for this call (e.g. already stopped).
    SrpcErrState = 10,
    /// A request got no answer within the client's timeout; the connection is closed.
    SrpcErrTimeout = 11,
}

pub use srpc_status::*;

#[derive(Default)]
struct LastError {
    status: u32,
    message: Option<CString>,
    exception_type: Option<CString>,
    traceback: Option<CString>,
    payload: Vec<u8>,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError::default());
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).expect("NULs replaced")
}

/// An error on its way out through the ABI.
#[derive(Debug)]
pub struct FfiError {
    pub status: srpc_status,
    pub message: String,
    pub remote: Option<Box<RemoteError>>,
}

impl FfiError {
    pub fn new(status: srpc_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
            remote: None,
        }
    }

    pub fn remote(e: RemoteError) -> Self {
        FfiError {
            status: SrpcErrRemote,
            message: e.message.clone(),
            remote: Some(Box::new(e)),
        }
    }

    pub fn null(what: &str) -> Self {
        FfiError::new(SrpcErrNullArgument, format!("{what} must not be NULL"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        FfiError::new(SrpcErrInvalidArgument, message)
    }
}

/// Record `e` as this thread's last error and return its status.
pub fn set_last(e: FfiError) -> srpc_status {
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        l.status = e.status as u32;
        l.message = Some(cstring(&e.message));
        match e.remote {
            Some(r) => {
                l.exception_type = Some(cstring(&r.exception_type));
                l.traceback = Some(cstring(&r.traceback));
                l.payload = r.payload.as_ref().map(|p| p.to_vec()).unwrap_or_default();
            }
            None => {
                l.exception_type = None;
                l.traceback = None;
                l.payload.clear();
            }
        }
    });
    e.status
}

/// Run `f` at the ABI boundary: its error becomes the last error, a panic
/// becomes `SRPC_ERR_PANIC`.
pub fn guard(f: impl FnOnce() -> Result<(), FfiError>) -> srpc_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => SrpcOk,
        Ok(Err(e)) => set_last(e),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last(FfiError::new(
                SrpcErrPanic,
                format!("internal error (Rust panic caught at the C boundary): {what}"),
            ))
        }
    }
}

fn ptr_of(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// The status of the last failed call on this thread (0 if none yet).
#[no_mangle]
pub extern "C" fn srpc_last_error_status() -> u32 {
    LAST.with(|l| l.borrow().status)
}

/// A message describing the last failed call on this thread, or NULL if none
/// (for SRPC_ERR_REMOTE: the remote exception's message, without its type).
/// Borrowed: valid until the next srpc_ call on this thread. Do not free.
#[no_mangle]
pub extern "C" fn srpc_last_error_message() -> *const c_char {
    LAST.with(|l| ptr_of(&l.borrow().message))
}

/// For SRPC_ERR_REMOTE: the remote exception's qualified type name
/// ("builtins.ValueError"), else NULL. Borrowed like srpc_last_error_message().
#[no_mangle]
pub extern "C" fn srpc_last_error_type() -> *const c_char {
    LAST.with(|l| ptr_of(&l.borrow().exception_type))
}

/// For SRPC_ERR_REMOTE: the remote traceback text (possibly empty), else NULL.
/// Borrowed like srpc_last_error_message().
#[no_mangle]
pub extern "C" fn srpc_last_error_traceback() -> *const c_char {
    LAST.with(|l| ptr_of(&l.borrow().traceback))
}

/// For SRPC_ERR_REMOTE: the opaque error payload (the reference server's
/// pickle of the exception; never unpickle it from an untrusted server).
/// Writes its length to `*len` (0 when there is none) and returns a borrowed
/// pointer valid like srpc_last_error_message(). `len` may be NULL.
///
/// # Safety
/// `len` is NULL or a valid pointer to a size_t.
#[no_mangle]
pub unsafe extern "C" fn srpc_last_error_payload(len: *mut usize) -> *const u8 {
    LAST.with(|l| {
        let l = l.borrow();
        if !len.is_null() {
            // SAFETY: the caller passes a valid pointer to a size_t or NULL (checked).
            unsafe { *len = l.payload.len() };
        }
        l.payload.as_ptr()
    })
}

/// A static description of a status code. Never NULL; do not free.
#[no_mangle]
pub extern "C" fn srpc_status_str(status: u32) -> *const c_char {
    let s: &'static [u8] = match status {
        0 => b"ok\0",
        1 => b"a required pointer argument was NULL\0",
        2 => b"a string argument was not valid UTF-8\0",
        3 => b"invalid argument\0",
        4 => b"network or OS error\0",
        5 => b"the server refused the token\0",
        6 => b"the connection is closed\0",
        7 => b"the remote side raised an exception\0",
        8 => b"protocol error\0",
        9 => b"internal error (Rust panic)\0",
        10 => b"wrong state for this call\0",
        11 => b"no answer within the timeout\0",
        _ => b"unknown status\0",
    };
    s.as_ptr().cast()
}
