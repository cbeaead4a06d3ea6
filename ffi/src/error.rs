//! Status codes, the per-thread last error, and the panic boundary.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use simplerpc_core::RemoteError;

/// The result of every fallible function. `SRPC_STATUS_OK` is 0.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum srpc_status {
    /// Success.
    SrpcStatusOk = 0,
    /// A required pointer argument was NULL.
    SrpcStatusErrNullArgument = 1,
    /// A string argument was not valid UTF-8.
    SrpcStatusErrInvalidUtf8 = 2,
    /// An argument was invalid (bad msgpack, bad length, wrong kind).
    SrpcStatusErrInvalidArgument = 3,
    /// A network or OS error (cannot bind, cannot connect).
    SrpcStatusErrIo = 4,
    /// The server refused the token.
    SrpcStatusErrUnauthorized = 5,
    /// The connection is closed or the peer went away.
    SrpcStatusErrClosed = 6,
    /// The remote side raised an exception: see srpc_last_error_type() and friends.
    SrpcStatusErrRemote = 7,
    /// The peer broke the protocol.
    SrpcStatusErrProtocol = 8,
    /// A Rust panic was caught at the boundary (a bug: please report it).
    SrpcStatusErrPanic = 9,
    /// The object is in the wrong state for this call (e.g. already stopped).
    SrpcStatusErrState = 10,
    /// A request got no answer within the client's timeout, or the server
    /// stopped answering even pings (frozen, or the network is gone); the
    /// connection is closed.
    SrpcStatusErrTimeout = 11,
    /// A signal interrupted the wait of a client made interruptible with
    /// srpc_client_set_interruptible(): the request is still in flight (its
    /// id is in `response->request_id`). Run the host's signal handlers,
    /// then wait for it again with srpc_client_wait(), or give it up with
    /// srpc_client_abandon().
    SrpcStatusInterrupted = 12,
    /// Nothing listens at the address connected to (the connection was
    /// refused): the server is not running there, or on another port.
    SrpcStatusErrRefused = 13,
}

pub use srpc_status::*;

/// An srpc_status as C hands it in (a callback's result, an argument): any
/// `uint32_t`, so a value that is no status cannot be undefined behaviour in
/// Rust. The header calls it `srpc_status` (see cbindgen.toml).
pub type srpc_status_in = u32;

impl srpc_status {
    /// Every status with its C name and a description, in order.
    const TABLE: [(srpc_status, &'static str, &'static str); 14] = [
        (SrpcStatusOk, "SRPC_STATUS_OK\0", "ok\0"),
        (
            SrpcStatusErrNullArgument,
            "SRPC_STATUS_ERR_NULL_ARGUMENT\0",
            "a required pointer argument was NULL\0",
        ),
        (
            SrpcStatusErrInvalidUtf8,
            "SRPC_STATUS_ERR_INVALID_UTF8\0",
            "a string argument was not valid UTF-8\0",
        ),
        (
            SrpcStatusErrInvalidArgument,
            "SRPC_STATUS_ERR_INVALID_ARGUMENT\0",
            "invalid argument\0",
        ),
        (
            SrpcStatusErrIo,
            "SRPC_STATUS_ERR_IO\0",
            "network or OS error\0",
        ),
        (
            SrpcStatusErrUnauthorized,
            "SRPC_STATUS_ERR_UNAUTHORIZED\0",
            "the server refused the token\0",
        ),
        (
            SrpcStatusErrClosed,
            "SRPC_STATUS_ERR_CLOSED\0",
            "the connection is closed\0",
        ),
        (
            SrpcStatusErrRemote,
            "SRPC_STATUS_ERR_REMOTE\0",
            "the remote side raised an exception\0",
        ),
        (
            SrpcStatusErrProtocol,
            "SRPC_STATUS_ERR_PROTOCOL\0",
            "protocol error\0",
        ),
        (
            SrpcStatusErrPanic,
            "SRPC_STATUS_ERR_PANIC\0",
            "internal error (Rust panic)\0",
        ),
        (
            SrpcStatusErrState,
            "SRPC_STATUS_ERR_STATE\0",
            "wrong state for this call\0",
        ),
        (
            SrpcStatusErrTimeout,
            "SRPC_STATUS_ERR_TIMEOUT\0",
            "no answer within the timeout\0",
        ),
        (
            SrpcStatusInterrupted,
            "SRPC_STATUS_INTERRUPTED\0",
            "a signal interrupted the wait; the request is still in flight\0",
        ),
        (
            SrpcStatusErrRefused,
            "SRPC_STATUS_ERR_REFUSED\0",
            "nothing listens at the address (connection refused)\0",
        ),
    ];

    /// The status with this number, if there is one.
    pub fn from_u32(n: srpc_status_in) -> Option<srpc_status> {
        Self::TABLE
            .iter()
            .map(|(s, _, _)| *s)
            .find(|s| *s as u32 == n)
    }

    /// How a message names status `n`: `"3 (SRPC_STATUS_ERR_INVALID_ARGUMENT)"`.
    pub fn describe(n: srpc_status_in) -> String {
        match Self::from_u32(n) {
            Some(s) => format!("{n} ({})", s.name()),
            None => format!("{n} (not an srpc_status)"),
        }
    }

    /// The C name, `"SRPC_STATUS_OK"`.
    pub fn name(self) -> &'static str {
        let name = Self::TABLE[self as usize].1;
        &name[..name.len() - 1]
    }
}

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
    /// The status the function returns.
    pub status: srpc_status,
    /// What srpc_last_error_message() says.
    pub message: String,
    /// For SRPC_STATUS_ERR_REMOTE: the remote exception.
    pub remote: Option<Box<RemoteError>>,
}

impl FfiError {
    /// An error with a status and a message.
    pub fn new(status: srpc_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
            remote: None,
        }
    }

    /// The remote side raised `e`.
    pub fn remote(e: RemoteError) -> Self {
        FfiError {
            status: SrpcStatusErrRemote,
            message: e.message.clone(),
            remote: Some(Box::new(e)),
        }
    }

    /// A required pointer argument was NULL.
    pub fn null(what: &str) -> Self {
        FfiError::new(
            SrpcStatusErrNullArgument,
            format!("{what} must not be NULL"),
        )
    }

    /// The message, as srpc_last_error_message() would give it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        FfiError::new(SrpcStatusErrInvalidArgument, message)
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

/// Forget this thread's last error: a success leaves none behind.
fn clear_last() {
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        if l.status != 0 {
            *l = LastError::default();
        }
    });
}

/// As [`guard`], but a success leaves the last error as it was: for calls a
/// host makes from finalisers (releases), which may run between a failed
/// call and the host's reading of that failure's details.
pub fn guard_keep(f: impl FnOnce() -> Result<(), FfiError>) -> srpc_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => SrpcStatusOk,
        Ok(Err(e)) => set_last(e),
        Err(_) => set_last(FfiError::new(
            SrpcStatusErrPanic,
            "internal error (Rust panic caught at the C boundary)",
        )),
    }
}

/// Run `f` at the ABI boundary: its error becomes the last error, a panic
/// becomes `SRPC_STATUS_ERR_PANIC`, and a success clears the last error.
pub fn guard(f: impl FnOnce() -> Result<(), FfiError>) -> srpc_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            clear_last();
            SrpcStatusOk
        }
        Ok(Err(e)) => set_last(e),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last(FfiError::new(
                SrpcStatusErrPanic,
                format!("internal error (Rust panic caught at the C boundary): {what}"),
            ))
        }
    }
}

fn ptr_of(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// The status of the last call on this thread that returns an srpc_status:
/// SRPC_STATUS_OK if it succeeded (or none was made yet). Functions that
/// cannot fail (they return no srpc_status) leave it as it is.
#[no_mangle]
pub extern "C" fn srpc_last_error_status() -> srpc_status {
    LAST.with(|l| srpc_status::from_u32(l.borrow().status).unwrap_or(SrpcStatusErrPanic))
}

/// A message describing the last call on this thread that returned an
/// srpc_status, if it failed; NULL if it succeeded (a success clears the
/// previous error) or none was made yet. For SRPC_STATUS_ERR_REMOTE: the
/// remote exception's message, without its type. Borrowed: valid until the
/// next srpc_ call on this thread. Do not free.
#[no_mangle]
pub extern "C" fn srpc_last_error_message() -> *const c_char {
    LAST.with(|l| ptr_of(&l.borrow().message))
}

/// For SRPC_STATUS_ERR_REMOTE: the remote exception's qualified type name
/// ("builtins.ValueError"), else NULL. Borrowed like srpc_last_error_message().
#[no_mangle]
pub extern "C" fn srpc_last_error_type() -> *const c_char {
    LAST.with(|l| ptr_of(&l.borrow().exception_type))
}

/// For SRPC_STATUS_ERR_REMOTE: the remote traceback text (possibly empty),
/// else NULL. Borrowed like srpc_last_error_message().
#[no_mangle]
pub extern "C" fn srpc_last_error_traceback() -> *const c_char {
    LAST.with(|l| ptr_of(&l.borrow().traceback))
}

/// For SRPC_STATUS_ERR_REMOTE: the opaque error payload (the reference
/// server's pickle of the exception; never unpickle it from an untrusted
/// server). Writes its length to `*len` (0 when there is none) and returns a
/// borrowed pointer valid like srpc_last_error_message(). `len` may be NULL.
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

/// A static description of a status ("invalid argument"; "unknown status"
/// for a number that is no srpc_status). Never NULL; do not free.
#[no_mangle]
pub extern "C" fn srpc_status_str(status: srpc_status_in) -> *const c_char {
    let s = match srpc_status::from_u32(status) {
        Some(s) => srpc_status::TABLE[s as usize].2,
        None => "unknown status\0",
    };
    s.as_ptr().cast()
}

/// The C name of a status ("SRPC_STATUS_ERR_INVALID_ARGUMENT"; "unknown
/// status" for a number that is no srpc_status). Never NULL; do not free.
#[no_mangle]
pub extern "C" fn srpc_status_name(status: srpc_status_in) -> *const c_char {
    let s = match srpc_status::from_u32(status) {
        Some(s) => srpc_status::TABLE[s as usize].1,
        None => "unknown status\0",
    };
    s.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_order_and_names_match_the_header() {
        for (i, (s, name, text)) in srpc_status::TABLE.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert!(name.starts_with("SRPC_STATUS_") && name.ends_with('\0'));
            assert!(text.ends_with('\0'));
        }
        assert_eq!(SrpcStatusErrIo.name(), "SRPC_STATUS_ERR_IO");
        assert_eq!(
            srpc_status::describe(3),
            "3 (SRPC_STATUS_ERR_INVALID_ARGUMENT)"
        );
        assert_eq!(srpc_status::describe(42), "42 (not an srpc_status)");
    }

    #[test]
    fn a_success_clears_the_last_error() {
        assert_eq!(
            guard(|| Err(FfiError::invalid("bad"))),
            SrpcStatusErrInvalidArgument
        );
        assert_eq!(srpc_last_error_status(), SrpcStatusErrInvalidArgument);
        assert!(!srpc_last_error_message().is_null());
        assert_eq!(guard(|| Ok(())), SrpcStatusOk);
        assert_eq!(srpc_last_error_status(), SrpcStatusOk);
        assert!(srpc_last_error_message().is_null());
    }
}
