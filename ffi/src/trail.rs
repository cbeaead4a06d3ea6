//! Path trails and tuple keys, as core decides them (`simplerpc_core::trail`),
//! for C and Python clients: every client sends the same frames for the same
//! code because none of them computes these itself.

use simplerpc_core::{codec, trail, Bytes, Value};

use crate::error::{guard, srpc_status, FfiError};
use crate::types::{raw_parts, srpc_buf, srpc_slice, srpc_str};

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
        let key = || -> Result<Value, FfiError> {
            // SAFETY: `key` is valid for its length (the caller's contract).
            let bytes = unsafe { key.as_bytes("key")? };
            codec::from_bytes(&Bytes::copy_from_slice(bytes)).map_err(bad_key)
        };
        // SAFETY: forwarded preconditions.
        unsafe { write_trail(kind, parent, a, key, out) }
    })
}

/// As srpc_trail(), with the key in `key_len` parts that make it when
/// joined, cut as srpc_call.key_parts is: a part of at least 64 KiB that
/// is exactly a bin's payload (an array's data) is not read at all (a
/// trail never shows a large bin's bytes, `x[<ndarray>]`), so the trail of
/// a large array key costs no copy of it. Other parts are copied once.
///
/// # Safety
/// As srpc_trail(); `key` is NULL with `key_len` 0 or points to `key_len`
/// srpc_slices, each NULL with length 0 or valid for its length.
#[no_mangle]
pub unsafe extern "C" fn srpc_trail_parts(
    kind: srpc_trail_kind_in,
    parent: srpc_str,
    a: srpc_str,
    key: *const srpc_slice,
    key_len: usize,
    out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        let key = || -> Result<Value, FfiError> {
            // SAFETY: `key` points to `key_len` slices (the caller's contract).
            let slices = unsafe { raw_parts(key, key_len, "key")? };
            let mut parts = Vec::with_capacity(slices.len());
            for p in slices {
                // SAFETY: each part is valid for its length (the caller's contract).
                parts.push(unsafe { p.as_bytes("key")? });
            }
            trail::key_of_parts(&parts).map_err(bad_key)
        };
        // SAFETY: forwarded preconditions.
        unsafe { write_trail(kind, parent, a, key, out) }
    })
}

fn bad_key(e: codec::DecodeError) -> FfiError {
    FfiError::invalid(format!("key is not valid msgpack: {e}"))
}

/// The trail of `kind` into `*out`, the key decoded by `key` when the kind
/// has one.
///
/// # Safety
/// `parent` and `a` are NULL with length 0 or valid for their lengths;
/// `out` is NULL or points to writable memory for an srpc_buf.
unsafe fn write_trail(
    kind: srpc_trail_kind_in,
    parent: srpc_str,
    a: srpc_str,
    key: impl FnOnce() -> Result<Value, FfiError>,
    out: *mut srpc_buf,
) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out"));
    }
    // SAFETY: forwarded preconditions on the borrowed inputs.
    let parent = unsafe { parent.as_str("parent")? };
    // SAFETY: as above.
    let a = unsafe { a.as_str("a")? };
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

    fn trail_of_parts(kind: u32, parent: &str, parts: &[&[u8]]) -> (srpc_status, String) {
        let mut out = srpc_buf::empty();
        let slices: Vec<srpc_slice> = parts
            .iter()
            .map(|p| srpc_slice {
                ptr: p.as_ptr(),
                len: p.len(),
            })
            .collect();
        // SAFETY: borrowed inputs valid for the call, `out` writable.
        let st = unsafe {
            srpc_trail_parts(
                kind,
                s(parent),
                s(""),
                slices.as_ptr(),
                slices.len(),
                &mut out,
            )
        };
        // SAFETY: the library filled `out` (empty on failure).
        let text = unsafe { raw_slice_of(&out) };
        // SAFETY: `out` came from the library and is freed once.
        unsafe { crate::types::srpc_buf_free(&mut out) };
        (st, String::from_utf8(text).unwrap())
    }

    /// # Safety
    /// `b` is a buffer the library filled, or empty.
    unsafe fn raw_slice_of(b: &srpc_buf) -> Vec<u8> {
        if b.data.is_null() {
            return Vec::new();
        }
        // SAFETY: the library wrote `len` bytes at `data`.
        unsafe { std::slice::from_raw_parts(b.data, b.len) }.to_vec()
    }

    #[test]
    fn a_key_in_parts_has_the_trail_of_the_joined_key() {
        // [1, bin of 70,000 bytes], the payload a part of its own.
        let payload = vec![7u8; 70_000];
        let mut head = vec![0x92, 0x01, 0xc6];
        head.extend(70_000u32.to_be_bytes());
        let joined = [&head[..], &payload].concat();
        let want = trail_of(6, "x", "", &joined);
        assert_eq!(want, "x[[1, <bytes>]]");
        assert_eq!(
            trail_of_parts(6, "x", &[&head[..1], &head[1..], &payload]),
            (srpc_status::SrpcStatusOk, want)
        );
        assert_eq!(
            trail_of_parts(7, "x", &[&head, &payload]),
            (srpc_status::SrpcStatusOk, trail_of(7, "x", "", &joined))
        );
        // Parts that are no msgpack are refused as one buffer is.
        let (st, _) = trail_of_parts(6, "x", &[&[0x92], &[0x01]]);
        assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
        // No key at all.
        let (st, _) = trail_of_parts(6, "x", &[]);
        assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
    }

    fn trail_tuple() -> &'static str {
        // SAFETY: a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(srpc_trail_tuple_builtin()) }
            .to_str()
            .unwrap()
    }
}
