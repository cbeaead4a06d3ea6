//! Path trails and tuple keys, as core decides them (`simplerpc_core::trail`),
//! for C and Python clients: every client sends the same frames for the same
//! code because none of them computes these itself.

use simplerpc_core::{codec, trail, Bytes};

use crate::error::{guard, srpc_status, FfiError};
use crate::types::{srpc_buf, srpc_slice, srpc_str};

/// An srpc_trail_kind as C hands it in: read as a plain number and checked,
/// so a value that is no variant cannot be undefined behaviour.
pub type srpc_trail_kind_in = u32;

/// Which trail to build with srpc_trail().
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum srpc_trail_kind {
    /// `name`: an imported module's trail (`a` is the module name).
    SrpcTrailKindModule = 0,
    /// `builtins.name` (`a` is the builtin's name).
    SrpcTrailKindBuiltin = 1,
    /// `eval('expr')` (`a` is the expression).
    SrpcTrailKindEval = 2,
    /// a teleported function's name (`a`).
    SrpcTrailKindTeleport = 3,
    /// `parent.attr` (`parent`, `a` is the attribute).
    SrpcTrailKindGetattr = 4,
    /// `parent()` (`parent`).
    SrpcTrailKindCall = 5,
    /// `parent[key]` (`parent`, `key` msgpack).
    SrpcTrailKindGetitem = 6,
    /// `parent[k1, k2]`: `key` is a msgpack array of the tuple's items.
    SrpcTrailKindGetitemTuple = 7,
}

/// The path trail of an object, as every simplerpc client writes it
/// (`"numpy.zeros()"`, `"frames[0, ::2]"`). Clients send a proxy's trail
/// with each getattr and call (the reference protocol needs it); build it
/// here rather than by hand so all clients agree. `kind` is an
/// srpc_trail_kind; unused inputs may be empty. On success `*out` holds the
/// UTF-8 trail (free with srpc_buf_free()).
///
/// A tuple key has no wire form of its own: build it on the server by
/// calling the builtin named by srpc_trail_tuple_builtin() with the items as
/// one list, and index with a reference to the result.
///
/// # Safety
/// Each srpc_str/srpc_slice is NULL with length 0 or valid for its length;
/// `out` is NULL or points to writable memory for an srpc_buf.
#[no_mangle]
pub unsafe extern "C" fn srpc_trail(
    kind: srpc_trail_kind_in,
    parent: srpc_str,
    a: srpc_str,
    key: srpc_slice,
    out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: forwarded preconditions on the borrowed inputs.
        let parent = unsafe { parent.as_str("parent")? };
        // SAFETY: as above.
        let a = unsafe { a.as_str("a")? };
        let key = || -> Result<simplerpc_core::Value, FfiError> {
            // SAFETY: as above.
            let bytes = unsafe { key.as_bytes("key")? };
            codec::from_bytes(&Bytes::copy_from_slice(bytes))
                .map_err(|e| FfiError::invalid(format!("key is not valid msgpack: {e}")))
        };
        let text = match kind {
            0 => trail::module(a),
            1 => trail::builtin(a),
            2 => trail::eval(a),
            3 => trail::teleport(a),
            4 => trail::getattr(parent, a),
            5 => trail::call(parent),
            6 => trail::getitem(parent, &key()?, false),
            7 => trail::getitem(parent, &key()?, true),
            other => {
                return Err(FfiError::invalid(format!(
                    "trail kind {other} is not an srpc_trail_kind"
                )))
            }
        };
        // SAFETY: checked non-NULL; the caller provides writable memory.
        unsafe { out.write(srpc_buf::from_vec(text.into_bytes())) };
        Ok(())
    })
}

/// The name of the builtin a tuple key is built with (`"tuple"`), static
/// and NUL-terminated.
#[no_mangle]
pub extern "C" fn srpc_trail_tuple_builtin() -> *const std::ffi::c_char {
    c"tuple".as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> srpc_str {
        srpc_str {
            ptr: t.as_ptr().cast(),
            len: t.len(),
        }
    }

    fn trail_of(kind: u32, parent: &str, a: &str, key: &[u8]) -> String {
        let mut out = srpc_buf::empty();
        let key = srpc_slice {
            ptr: key.as_ptr(),
            len: key.len(),
        };
        // SAFETY: borrowed inputs valid for the call, `out` writable.
        let st = unsafe { srpc_trail(kind, s(parent), s(a), key, &mut out) };
        assert_eq!(st, srpc_status::SrpcStatusOk);
        // SAFETY: the library filled `out`.
        let text = unsafe { std::slice::from_raw_parts(out.data, out.len) }.to_vec();
        // SAFETY: `out` came from the library and is freed once.
        unsafe { crate::types::srpc_buf_free(&mut out) };
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn trails_match_core() {
        assert_eq!(trail_of(4, "np", "zeros", &[]), "np.zeros");
        assert_eq!(trail_of(5, "np.zeros", "", &[]), "np.zeros()");
        assert_eq!(trail_of(6, "x", "", &[0x00]), "x[0]");
        assert_eq!(trail_of(7, "x", "", &[0x92, 0x01, 0x02]), "x[1, 2]");
        assert_eq!(trail_of(6, "x", "", &[0x92, 0x01, 0x02]), "x[[1, 2]]");
        assert_eq!(trail_of(2, "", "a", &[]), "eval('a')");
        assert_eq!(trail_tuple(), "tuple");
    }

    fn trail_tuple() -> &'static str {
        // SAFETY: a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(srpc_trail_tuple_builtin()) }
            .to_str()
            .unwrap()
    }
}
