//! Help for hosts that decode msgpack themselves (Python): take a value's
//! large bins out, so that each is copied once, from the frame straight into
//! memory of the host's own (a numpy array), rather than into a bytes object
//! first and then again.

use simplerpc_core::codec;

use crate::error::{guard, srpc_status, FfiError};
use crate::types::{srpc_buf, srpc_slice};

/// The ext type srpc_value_split() writes in place of a large bin.
pub const SRPC_SPLIT_BIN_EXT: i8 = 43;
const _: () = assert!(SRPC_SPLIT_BIN_EXT == codec::SPLIT_BIN_EXT);

/// Split msgpack `value` (one value, e.g. a response's `value` buffer) into
/// its large bins and the rest. Each bin of at least `min` bytes is replaced
/// in `*skeleton_out` by a fixext4 of type SRPC_SPLIT_BIN_EXT holding its
/// index (big-endian uint32); `*bins_out` holds, for each, two uint64 in
/// this machine's byte order: its payload's offset in `value` and its
/// length. Copy each payload out of `value` while it lives, and decode the
/// skeleton with an ext hook that returns the i-th payload. Free both
/// buffers with srpc_buf_free(). Invalid msgpack returns
/// SRPC_STATUS_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `value` is valid for its length; the out-pointers are valid for writing.
#[no_mangle]
pub unsafe extern "C" fn srpc_value_split(
    value: srpc_slice,
    min: usize,
    skeleton_out: *mut srpc_buf,
    bins_out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        if skeleton_out.is_null() {
            return Err(FfiError::null("skeleton_out"));
        }
        if bins_out.is_null() {
            return Err(FfiError::null("bins_out"));
        }
        // SAFETY: forwarded precondition.
        let data = unsafe { value.as_bytes("value")? };
        let (skeleton, bins) = codec::split_bins(data, min)
            .map_err(|e| FfiError::invalid(format!("value is not valid msgpack: {e}")))?;
        // u64s, so the table is aligned for them however the host reads it.
        let mut words: Vec<u64> = Vec::with_capacity(bins.len() * 2);
        for r in bins {
            words.push(r.start as u64);
            words.push(r.len() as u64);
        }
        let table: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        // SAFETY: both checked non-NULL; the caller provides writable memory.
        unsafe {
            skeleton_out.write(srpc_buf::from_vec(skeleton));
            bins_out.write(srpc_buf::from_vec(table));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::srpc_status;

    fn split(value: &[u8]) -> (srpc_status, Vec<u8>, Vec<u64>) {
        let (mut skeleton, mut bins) = (srpc_buf::empty(), srpc_buf::empty());
        let v = srpc_slice {
            ptr: value.as_ptr(),
            len: value.len(),
        };
        // SAFETY: `value` lives across the call; the out-pointers are valid.
        let st = unsafe { srpc_value_split(v, 4, &mut skeleton, &mut bins) };
        let read = |b: &srpc_buf| {
            if b.data.is_null() {
                Vec::new()
            } else {
                // SAFETY: filled by the library, valid until freed.
                unsafe { std::slice::from_raw_parts(b.data, b.len) }.to_vec()
            }
        };
        let (sk, table) = (read(&skeleton), read(&bins));
        // SAFETY: buffers from the library (or empty), freed once.
        unsafe {
            crate::types::srpc_buf_free(&mut skeleton);
            crate::types::srpc_buf_free(&mut bins);
        }
        let words = table
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        (st, sk, words)
    }

    #[test]
    fn an_array_s_data_is_taken_out_and_bad_msgpack_is_refused() {
        // {b"nd": true, b"data": b"abcdef"}
        let value = [
            0x82, 0xc4, 2, b'n', b'd', 0xc3, 0xc4, 4, b'd', b'a', b't', b'a', 0xc4, 6, b'a', b'b',
            b'c', b'd', b'e', b'f',
        ];
        let (st, skeleton, table) = split(&value);
        assert_eq!(st, srpc_status::SrpcStatusOk);
        assert_eq!(table, vec![14, 6]);
        assert_eq!(
            &skeleton[12..],
            &[0xd6, SRPC_SPLIT_BIN_EXT as u8, 0, 0, 0, 0]
        );
        let (st, _, _) = split(&[0xc1]);
        assert_eq!(st, srpc_status::SrpcStatusErrInvalidArgument);
        let msg = crate::error::srpc_last_error_message();
        // SAFETY: NUL-terminated, valid until the next call on this thread.
        let msg = unsafe { std::ffi::CStr::from_ptr(msg) }.to_str().unwrap();
        assert!(msg.contains("not valid msgpack"), "{msg}");
    }
}
