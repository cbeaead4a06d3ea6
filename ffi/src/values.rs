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
