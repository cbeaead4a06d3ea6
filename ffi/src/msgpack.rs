//! msgpack for C hosts: a small writer, a pull reader, and numpy arrays in
//! the msgpack-numpy form, so that a C or C++ program needs no msgpack
//! library of its own to build `args` or read a materialized value.
//!
//! The writer is opaque and grows its own buffer; writing never fails on the
//! spot (a value that cannot be written, such as a malformed array, is kept
//! as the writer's error and reported by srpc_mp_writer_finish()). The reader
//! is a plain struct over borrowed bytes: it allocates nothing and every
//! string, bin and array's data it hands out points into those bytes.

use std::ffi::c_char;

use simplerpc_core::array::DType;

use crate::error::{guard, srpc_status, FfiError};
use crate::types::{cstr, srpc_buf, srpc_slice, srpc_str};

/// A msgpack writer: create with srpc_mp_writer_new(), write values with
/// the srpc_mp_write_* functions (arrays and maps as a header followed by
/// their items, keys and values alternating), take the bytes with
/// srpc_mp_writer_finish(), free with srpc_mp_writer_free(). Opaque.
pub struct srpc_mp_writer {
    buf: Vec<u8>,
    error: Option<String>,
}

impl srpc_mp_writer {
    fn fail(&mut self, why: String) {
        if self.error.is_none() {
            self.error = Some(why);
        }
    }
}

/// Borrow the writer behind `w`, or None for NULL.
///
/// # Safety
/// `w` is NULL or a live writer.
unsafe fn writer<'a>(w: *mut srpc_mp_writer) -> Option<&'a mut srpc_mp_writer> {
    // SAFETY: the caller's contract.
    unsafe { w.as_mut() }
}

/// A new, empty writer. Never NULL; free with srpc_mp_writer_free().
#[no_mangle]
pub extern "C" fn srpc_mp_writer_new() -> *mut srpc_mp_writer {
    Box::into_raw(Box::new(srpc_mp_writer {
        buf: Vec::new(),
        error: None,
    }))
}

/// Free a writer and what it holds. NULL does nothing.
///
/// # Safety
/// `w` is NULL or from srpc_mp_writer_new() and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_writer_free(w: *mut srpc_mp_writer) {
    if !w.is_null() {
        // SAFETY: from Box::into_raw in srpc_mp_writer_new(), freed once.
        drop(unsafe { Box::from_raw(w) });
    }
}

/// Move what was written into `*out` (free it with srpc_buf_free()) and
/// empty the writer for reuse. If a write failed (see the srpc_mp_write_*
/// functions), returns SRPC_STATUS_ERR_INVALID_ARGUMENT naming the first
/// failure, writes nothing and empties the writer all the same.
///
/// # Safety
/// `w` is a live writer; `out` is valid for writing an srpc_buf.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_writer_finish(
    w: *mut srpc_mp_writer,
    out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        // SAFETY: forwarded precondition.
        let w = unsafe { writer(w) }.ok_or_else(|| FfiError::null("writer"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let buf = std::mem::take(&mut w.buf);
        if let Some(why) = w.error.take() {
            return Err(FfiError::invalid(why));
        }
        // SAFETY: checked non-NULL; valid for writing (the caller's contract).
        unsafe { out.write(srpc_buf::from_vec(buf)) };
        Ok(())
    })
}

/// Empty the writer for reuse, dropping what was written and a failed
/// write's error. NULL does nothing.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_writer_clear(w: *mut srpc_mp_writer) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        w.buf.clear();
        w.error = None;
    }
}

/// The bytes written so far, borrowed: valid until the next write,
/// srpc_mp_writer_finish() or srpc_mp_writer_free(). Handy as a call's
/// `args` without taking a buffer. Empty for NULL. Does not report a
/// failed write (srpc_mp_writer_finish() does).
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_writer_data(w: *const srpc_mp_writer) -> srpc_slice {
    // SAFETY: the caller's contract.
    match unsafe { w.as_ref() } {
        Some(w) if !w.buf.is_empty() => srpc_slice {
            ptr: w.buf.as_ptr(),
            len: w.buf.len(),
        },
        _ => srpc_slice {
            ptr: std::ptr::null(),
            len: 0,
        },
    }
}

/// Write nil (None). NULL `w` does nothing, here and in every srpc_mp_write_*.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_nil(w: *mut srpc_mp_writer) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        w.buf.push(0xc0);
    }
}

/// Write a bool.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_bool(w: *mut srpc_mp_writer, v: bool) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        w.buf.push(if v { 0xc3 } else { 0xc2 });
    }
}

/// Write a signed integer, in the smallest form.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_int(w: *mut srpc_mp_writer, v: i64) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_sint(&mut w.buf, v);
    }
}

/// Write an unsigned integer, in the smallest form.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_uint(w: *mut srpc_mp_writer, v: u64) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        let _ = rmp::encode::write_uint(&mut w.buf, v);
    }
}

/// Write a float64 (a Python float).
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_double(w: *mut srpc_mp_writer, v: f64) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        let _ = rmp::encode::write_f64(&mut w.buf, v);
    }
}

/// Write a UTF-8 string given with its length (a Python str).
///
/// # Safety
/// `w` is NULL or a live writer; `s` is valid for its length.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_str(w: *mut srpc_mp_writer, s: srpc_str) {
    // SAFETY: forwarded precondition.
    let Some(w) = (unsafe { writer(w) }) else {
        return;
    };
    // SAFETY: `s` is valid for its length (the caller's contract).
    match unsafe { s.as_str("str") } {
        Ok(s) => write_str_checked(w, s),
        Err(e) => w.fail(e.message().to_owned()),
    }
}

/// Write a NUL-terminated UTF-8 string (a Python str).
///
/// # Safety
/// `w` is NULL or a live writer; `s` is NULL (written as nil) or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_cstr(w: *mut srpc_mp_writer, s: *const c_char) {
    // SAFETY: forwarded precondition.
    let Some(w) = (unsafe { writer(w) }) else {
        return;
    };
    if s.is_null() {
        w.buf.push(0xc0);
        return;
    }
    // SAFETY: `s` is NUL-terminated (the caller's contract).
    match unsafe { cstr(s, "str") } {
        Ok(s) => write_str_checked(w, s),
        Err(e) => w.fail(e.message().to_owned()),
    }
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    let _ = rmp::encode::write_str_len(buf, s.len() as u32);
    buf.extend_from_slice(s.as_bytes());
}

/// Write `s`, or keep the writer's error for one over msgpack's 4 GiB.
fn write_str_checked(w: &mut srpc_mp_writer, s: &str) {
    if u32::try_from(s.len()).is_ok() {
        write_str(&mut w.buf, s);
    } else {
        w.fail(format!(
            "a str of {} bytes is over msgpack's 4 GiB",
            s.len()
        ));
    }
}

fn write_bin(buf: &mut Vec<u8>, b: &[u8]) {
    let _ = rmp::encode::write_bin_len(buf, b.len() as u32);
    buf.extend_from_slice(b);
}

/// Write bytes as a bin (a Python bytes).
///
/// # Safety
/// `w` is NULL or a live writer; `b` is valid for its length.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_bin(w: *mut srpc_mp_writer, b: srpc_slice) {
    // SAFETY: forwarded precondition.
    let Some(w) = (unsafe { writer(w) }) else {
        return;
    };
    // SAFETY: `b` is valid for its length (the caller's contract).
    match unsafe { b.as_bytes("bin") } {
        Ok(b) if u32::try_from(b.len()).is_ok() => write_bin(&mut w.buf, b),
        Ok(b) => w.fail(format!(
            "a bin of {} bytes is over msgpack's 4 GiB",
            b.len()
        )),
        Err(e) => w.fail(e.message().to_owned()),
    }
}

/// Write an array header: the next `n` values written are its items.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_array(w: *mut srpc_mp_writer, n: u32) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        let _ = rmp::encode::write_array_len(&mut w.buf, n);
    }
}

/// Write a map header: the next `2 * n` values written are its keys and
/// values, alternating.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_map(w: *mut srpc_mp_writer, n: u32) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        let _ = rmp::encode::write_map_len(&mut w.buf, n);
    }
}

/// Write bytes that are already msgpack (one or more whole values), as
/// they are: a value read from a response, for instance.
///
/// # Safety
/// `w` is NULL or a live writer; `b` is valid for its length.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_raw(w: *mut srpc_mp_writer, b: srpc_slice) {
    // SAFETY: forwarded precondition.
    let Some(w) = (unsafe { writer(w) }) else {
        return;
    };
    // SAFETY: `b` is valid for its length (the caller's contract).
    match unsafe { b.as_bytes("raw") } {
        Ok(b) => w.buf.extend_from_slice(b),
        Err(e) => w.fail(e.message().to_owned()),
    }
}

/// Write a reference to the object `obj` of this client (an id from a
/// response), as an argument stands for a proxy:
/// `{"__rpc_proxy__": true, "obj_id": obj}`. The server passes its executor
/// the object itself.
///
/// # Safety
/// `w` is NULL or a live writer.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_proxy(w: *mut srpc_mp_writer, obj: u64) {
    // SAFETY: forwarded precondition.
    if let Some(w) = unsafe { writer(w) } {
        let _ = rmp::encode::write_map_len(&mut w.buf, 2);
        write_str(&mut w.buf, "__rpc_proxy__");
        w.buf.push(0xc3);
        write_str(&mut w.buf, "obj_id");
        let _ = rmp::encode::write_uint(&mut w.buf, obj);
    }
}

// ---- numpy arrays ----

/// The most dimensions an srpc_ndarray has (numpy's own limit).
pub const SRPC_NDARRAY_MAX_DIMS: usize = 64;

/// A numpy array as the protocol carries it (the msgpack-numpy form; see
/// the overview at the top of this header). Borrowed: `dtype` and `data`
/// point into the caller's memory (for srpc_ndarray_encode()) or into the
/// decoded bytes (for srpc_ndarray_decode()), which must outlive it.
///
/// `data` is the C-order elements in the byte order `dtype` names; when
/// decoded it points into a msgpack value and may be unaligned: memcpy it,
/// or check its alignment, before reading it as typed elements.
#[repr(C)]
pub struct srpc_ndarray {
    /// The numpy type string: byte order (`<` little, `>` big, `|` none,
    /// `=` this machine's) then kind and item size: `|b1`, `|i1`, `<i2`,
    /// `<i4`, `<i8`, `|u1`, `<u2`, `<u4`, `<u8`, `<f2`, `<f4`, `<f8`,
    /// `<c8`, `<c16`.
    pub dtype: srpc_str,
    /// The number of dimensions (0 for a numpy scalar, up to
    /// SRPC_NDARRAY_MAX_DIMS).
    pub ndim: usize,
    /// The extent of each dimension; entries past `ndim` are ignored.
    pub shape: [u64; SRPC_NDARRAY_MAX_DIMS],
    /// The elements: product(shape) * item size bytes.
    pub data: srpc_slice,
}

/// The item size in bytes of a numpy type string (`"<f8"` gives 8), or 0
/// for one this library does not carry (structured or object dtypes).
///
/// # Safety
/// `dtype` is valid for its length.
#[no_mangle]
pub unsafe extern "C" fn srpc_ndarray_itemsize(dtype: srpc_str) -> usize {
    // SAFETY: forwarded precondition.
    match unsafe { dtype.as_str("dtype") } {
        Ok(s) => DType::parse(s).map_or(0, |(d, _)| d.itemsize()),
        Err(_) => 0,
    }
}

/// Check `a` and return its dtype string and data.
///
/// # Safety
/// `a`'s slices are valid for their lengths.
unsafe fn checked(a: &srpc_ndarray) -> Result<(&str, &[u8]), FfiError> {
    // SAFETY: the caller's contract.
    let dtype = unsafe { a.dtype.as_str("dtype")? };
    // SAFETY: the caller's contract.
    let data = unsafe { a.data.as_bytes("data")? };
    let (d, _) = DType::parse(dtype).map_err(|_| {
        FfiError::invalid(format!(
            "dtype {dtype:?} is not a numpy type string this library carries \
             (one of |b1 |i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8 <f2 <f4 <f8 <c8 <c16, any byte order)"
        ))
    })?;
    if a.ndim > SRPC_NDARRAY_MAX_DIMS {
        return Err(FfiError::invalid(format!(
            "ndim {} is over SRPC_NDARRAY_MAX_DIMS ({SRPC_NDARRAY_MAX_DIMS})",
            a.ndim
        )));
    }
    let shape = &a.shape[..a.ndim];
    let want = shape
        .iter()
        .try_fold(d.itemsize() as u64, |n, &s| n.checked_mul(s))
        .ok_or_else(|| FfiError::invalid(format!("shape {shape:?} overflows")))?;
    if want != data.len() as u64 {
        return Err(FfiError::invalid(format!(
            "data has {} bytes, but shape {shape:?} of {dtype} needs {want}",
            data.len()
        )));
    }
    Ok((dtype, data))
}

/// Everything of an array's msgpack but its data's bytes (core's encoding).
/// The caller has checked the size with [`check_size`], so it cannot fail.
fn header(buf: &mut Vec<u8>, a: &srpc_ndarray, dtype: &str, data_len: usize) {
    let _ = simplerpc_core::codec::write_ndarray_header(
        buf,
        dtype,
        a.shape[..a.ndim].iter().copied(),
        data_len,
    );
}

fn check_size(data: &[u8]) -> Result<(), FfiError> {
    if u32::try_from(data.len()).is_err() {
        return Err(FfiError::invalid(format!(
            "an array of {} bytes is over msgpack's 4 GiB bin",
            data.len()
        )));
    }
    Ok(())
}

/// Encode `a` as one msgpack value (`{b"nd": true, b"type": dtype, b"kind":
/// b"", b"shape": [...], b"data": bin}`, as numpy's msgpack-numpy writes
/// it; a 0-dimensional array is a 0-d numpy array, not a scalar) into
/// `*out` (free with srpc_buf_free()). A dtype this library does not carry,
/// or data whose length does not match the shape, is
/// SRPC_STATUS_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `a` points to an srpc_ndarray whose slices are valid; `out` is valid
/// for writing an srpc_buf.
#[no_mangle]
pub unsafe extern "C" fn srpc_ndarray_encode(
    a: *const srpc_ndarray,
    out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        // SAFETY: forwarded precondition.
        let a = unsafe { a.as_ref() }.ok_or_else(|| FfiError::null("array"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: forwarded precondition.
        let (dtype, data) = unsafe { checked(a)? };
        check_size(data)?;
        let mut buf = Vec::with_capacity(64 + 9 * a.ndim + data.len());
        header(&mut buf, a, dtype, data.len());
        buf.extend_from_slice(data);
        // SAFETY: checked non-NULL; valid for writing (the caller's contract).
        unsafe { out.write(srpc_buf::from_vec(buf)) };
        Ok(())
    })
}

/// As srpc_ndarray_encode(), but `*out` gets everything except the data's
/// own bytes, which follow it: pass `{header, a->data}` as two parts
/// (srpc_call.args_parts, kwargs_parts or key_parts, or
/// srpc_reply_value_parts()) so a large array is copied once, straight into
/// the frame.
///
/// # Safety
/// As srpc_ndarray_encode().
#[no_mangle]
pub unsafe extern "C" fn srpc_ndarray_header(
    a: *const srpc_ndarray,
    out: *mut srpc_buf,
) -> srpc_status {
    guard(|| {
        // SAFETY: forwarded precondition.
        let a = unsafe { a.as_ref() }.ok_or_else(|| FfiError::null("array"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: forwarded precondition.
        let (dtype, data) = unsafe { checked(a)? };
        check_size(data)?;
        let mut buf = Vec::with_capacity(64 + 9 * a.ndim);
        header(&mut buf, a, dtype, data.len());
        // SAFETY: checked non-NULL; valid for writing (the caller's contract).
        unsafe { out.write(srpc_buf::from_vec(buf)) };
        Ok(())
    })
}

/// Write `a` as srpc_ndarray_encode() encodes it. An invalid array is kept
/// as the writer's error (reported by srpc_mp_writer_finish()).
///
/// # Safety
/// `w` is NULL or a live writer; `a` as for srpc_ndarray_encode().
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_write_ndarray(w: *mut srpc_mp_writer, a: *const srpc_ndarray) {
    // SAFETY: forwarded precondition.
    let Some(w) = (unsafe { writer(w) }) else {
        return;
    };
    // SAFETY: forwarded precondition.
    let Some(a) = (unsafe { a.as_ref() }) else {
        return w.fail("array must not be NULL".into());
    };
    // SAFETY: forwarded precondition.
    match unsafe { checked(a) }.and_then(|(t, d)| check_size(d).map(|()| (t, d))) {
        Ok((dtype, data)) => {
            header(&mut w.buf, a, dtype, data.len());
            w.buf.extend_from_slice(data);
        }
        Err(e) => w.fail(e.message().to_owned()),
    }
}

// ---- reading ----

/// What an srpc_mp_item is.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum srpc_mp_type {
    /// nil (None)
    SrpcMpTypeNil = 0,
    /// a bool: `boolean`
    SrpcMpTypeBool = 1,
    /// a negative integer: `i`
    SrpcMpTypeInt = 2,
    /// a non-negative integer: `u` (and `i` too when it fits an int64_t)
    SrpcMpTypeUint = 3,
    /// a float32 or float64: `f`
    SrpcMpTypeFloat = 4,
    /// a UTF-8 string (not checked): `bytes`
    SrpcMpTypeStr = 5,
    /// a bin: `bytes`
    SrpcMpTypeBin = 6,
    /// an array of `count` items, which follow
    SrpcMpTypeArray = 7,
    /// a map of `count` pairs, which follow (key, value, key, value...)
    SrpcMpTypeMap = 8,
    /// an ext: `ext_type` and `bytes`
    SrpcMpTypeExt = 9,
}

/// One msgpack item read by srpc_mp_read(). Only the fields its `type`
/// names are set; the others are zero.
#[repr(C)]
pub struct srpc_mp_item {
    /// What was read.
    pub r#type: srpc_mp_type,
    /// SRPC_MP_TYPE_BOOL
    pub boolean: bool,
    /// SRPC_MP_TYPE_INT, and SRPC_MP_TYPE_UINT up to INT64_MAX
    pub i: i64,
    /// SRPC_MP_TYPE_UINT
    pub u: u64,
    /// SRPC_MP_TYPE_FLOAT
    pub f: f64,
    /// SRPC_MP_TYPE_STR, _BIN, _EXT: the payload, pointing into the
    /// reader's bytes.
    pub bytes: srpc_slice,
    /// SRPC_MP_TYPE_ARRAY: items; SRPC_MP_TYPE_MAP: pairs.
    pub count: u32,
    /// SRPC_MP_TYPE_EXT: the ext's type.
    pub ext_type: i8,
}

/// A pull reader over borrowed msgpack bytes (a response's `value`, a
/// call's `args`): make it with srpc_mp_reader_new(), read items with
/// srpc_mp_read(). Nothing to free. `pos` is the offset of the next item.
#[repr(C)]
pub struct srpc_mp_reader {
    /// The bytes (borrowed; they must outlive the reader and its items).
    pub data: *const u8,
    /// Their length.
    pub len: usize,
    /// Offset of the next item.
    pub pos: usize,
}

/// A reader at the start of `len` bytes at `data`.
#[no_mangle]
pub extern "C" fn srpc_mp_reader_new(data: *const u8, len: usize) -> srpc_mp_reader {
    srpc_mp_reader { data, len, pos: 0 }
}

impl srpc_mp_reader {
    /// The unread bytes.
    ///
    /// # Safety
    /// `data` is valid for `len` bytes, and `pos <= len` (checked).
    unsafe fn rest<'a>(&self) -> Result<&'a [u8], FfiError> {
        if self.pos > self.len {
            return Err(FfiError::invalid(format!(
                "reader pos {} is past its length {}",
                self.pos, self.len
            )));
        }
        // SAFETY: the caller's contract.
        let all = unsafe { crate::types::raw_slice(self.data, self.len, "reader.data")? };
        Ok(&all[self.pos..])
    }
}

fn ends_early(at: usize) -> FfiError {
    FfiError::invalid(format!("msgpack ends early (in the item at byte {at})"))
}

/// Parse one item at the start of `b`: the item and the bytes it took.
fn parse_item(b: &[u8], at: usize) -> Result<(srpc_mp_item, usize), FfiError> {
    let mut it = srpc_mp_item {
        r#type: srpc_mp_type::SrpcMpTypeNil,
        boolean: false,
        i: 0,
        u: 0,
        f: 0.0,
        bytes: srpc_slice {
            ptr: std::ptr::null(),
            len: 0,
        },
        count: 0,
        ext_type: 0,
    };
    let m = *b.first().ok_or_else(|| ends_early(at))?;
    let be = |off: usize, n: usize| -> Result<u64, FfiError> {
        let s = b.get(off..off + n).ok_or_else(|| ends_early(at))?; // off, n <= 9
        Ok(s.iter().fold(0u64, |v, &x| (v << 8) | x as u64))
    };
    let uint = |it: &mut srpc_mp_item, v: u64| {
        it.r#type = srpc_mp_type::SrpcMpTypeUint;
        it.u = v;
        it.i = i64::try_from(v).unwrap_or(0);
    };
    let sint = |it: &mut srpc_mp_item, v: i64| {
        if v >= 0 {
            uint(it, v as u64)
        } else {
            it.r#type = srpc_mp_type::SrpcMpTypeInt;
            it.i = v;
        }
    };
    // (header length, payload length) for str, bin and ext items.
    let mut payload: Option<(usize, usize)> = None;
    let used = match m {
        0x00..=0x7f => {
            uint(&mut it, m as u64);
            1
        }
        0xe0..=0xff => {
            sint(&mut it, m as i8 as i64);
            1
        }
        0x80..=0x9f => {
            it.r#type = if m < 0x90 {
                srpc_mp_type::SrpcMpTypeMap
            } else {
                srpc_mp_type::SrpcMpTypeArray
            };
            it.count = (m & 0x0f) as u32;
            1
        }
        0xa0..=0xbf => {
            it.r#type = srpc_mp_type::SrpcMpTypeStr;
            payload = Some((1, (m & 0x1f) as usize));
            0
        }
        0xc0 => 1,
        0xc2 | 0xc3 => {
            it.r#type = srpc_mp_type::SrpcMpTypeBool;
            it.boolean = m == 0xc3;
            1
        }
        0xc4..=0xc6 | 0xd9..=0xdb => {
            let (ty, n) = match m {
                0xc4 => (srpc_mp_type::SrpcMpTypeBin, 1),
                0xc5 => (srpc_mp_type::SrpcMpTypeBin, 2),
                0xc6 => (srpc_mp_type::SrpcMpTypeBin, 4),
                0xd9 => (srpc_mp_type::SrpcMpTypeStr, 1),
                0xda => (srpc_mp_type::SrpcMpTypeStr, 2),
                _ => (srpc_mp_type::SrpcMpTypeStr, 4),
            };
            it.r#type = ty;
            payload = Some((1 + n, be(1, n)? as usize));
            0
        }
        0xc7..=0xc9 => {
            let n = [1, 2, 4][(m - 0xc7) as usize];
            it.r#type = srpc_mp_type::SrpcMpTypeExt;
            it.ext_type = be(1 + n, 1)? as u8 as i8;
            payload = Some((2 + n, be(1, n)? as usize));
            0
        }
        0xd4..=0xd8 => {
            it.r#type = srpc_mp_type::SrpcMpTypeExt;
            it.ext_type = be(1, 1)? as u8 as i8;
            payload = Some((2, 1 << (m - 0xd4)));
            0
        }
        0xca => {
            it.r#type = srpc_mp_type::SrpcMpTypeFloat;
            it.f = f32::from_bits(be(1, 4)? as u32) as f64;
            5
        }
        0xcb => {
            it.r#type = srpc_mp_type::SrpcMpTypeFloat;
            it.f = f64::from_bits(be(1, 8)?);
            9
        }
        0xcc..=0xcf => {
            let n = 1 << (m - 0xcc);
            uint(&mut it, be(1, n)?);
            1 + n
        }
        0xd0..=0xd3 => {
            let n = 1usize << (m - 0xd0);
            let v = be(1, n)?;
            let shift = 64 - 8 * n as u32;
            sint(&mut it, ((v << shift) as i64) >> shift);
            1 + n
        }
        0xdc..=0xdf => {
            let n = if m & 1 == 0 { 2 } else { 4 };
            it.r#type = if m < 0xde {
                srpc_mp_type::SrpcMpTypeArray
            } else {
                srpc_mp_type::SrpcMpTypeMap
            };
            it.count = be(1, n)? as u32;
            1 + n
        }
        _ => {
            return Err(FfiError::invalid(format!(
                "byte 0x{m:02x} at offset {at} starts no msgpack item"
            )))
        }
    };
    if let Some((head, n)) = payload {
        let end = head.checked_add(n).ok_or_else(|| ends_early(at))?;
        let s = b.get(head..end).ok_or_else(|| ends_early(at))?;
        it.bytes = srpc_slice {
            ptr: s.as_ptr(),
            len: n,
        };
        return Ok((it, end));
    }
    Ok((it, used))
}

/// Read one item into `*out` and move past it. A string, bin or ext is read
/// whole (`out->bytes` points into the reader's bytes); an array or map is
/// only its header: its `count` items (or pairs) are the next items read.
/// At the end of the bytes, or at bytes that are no msgpack, returns
/// SRPC_STATUS_ERR_INVALID_ARGUMENT naming the offset, and does not move.
///
/// # Safety
/// `r` points to a reader whose bytes are valid; `out` is valid for
/// writing an srpc_mp_item.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_read(
    r: *mut srpc_mp_reader,
    out: *mut srpc_mp_item,
) -> srpc_status {
    guard(|| {
        // SAFETY: forwarded precondition.
        let r = unsafe { r.as_mut() }.ok_or_else(|| FfiError::null("reader"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: the reader's bytes are valid (the caller's contract).
        let rest = unsafe { r.rest()? };
        let (it, used) = parse_item(rest, r.pos)?;
        r.pos += used;
        // SAFETY: checked non-NULL; valid for writing (the caller's contract).
        unsafe { out.write(it) };
        Ok(())
    })
}

/// Skip one whole value in `b` (an array or map with all its items): the
/// bytes it took.
fn skip_value(b: &[u8], at: usize) -> Result<usize, FfiError> {
    let mut pos = 0usize;
    let mut pending: u64 = 1;
    while pending > 0 {
        let (it, used) = parse_item(&b[pos..], at + pos)?;
        pos += used;
        pending -= 1;
        pending += match it.r#type {
            srpc_mp_type::SrpcMpTypeArray => it.count as u64,
            srpc_mp_type::SrpcMpTypeMap => 2 * it.count as u64,
            _ => 0,
        };
    }
    Ok(pos)
}

/// Move past one whole value (an array or map with all it holds).
/// Invalid or truncated msgpack returns SRPC_STATUS_ERR_INVALID_ARGUMENT and
/// does not move.
///
/// # Safety
/// `r` points to a reader whose bytes are valid.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_skip(r: *mut srpc_mp_reader) -> srpc_status {
    guard(|| {
        // SAFETY: forwarded precondition.
        let r = unsafe { r.as_mut() }.ok_or_else(|| FfiError::null("reader"))?;
        // SAFETY: the reader's bytes are valid (the caller's contract).
        let rest = unsafe { r.rest()? };
        r.pos += skip_value(rest, r.pos)?;
        Ok(())
    })
}

/// Whether `item` is a string or bin equal to the NUL-terminated `s` (map
/// keys of msgpack-numpy arrays are bins, the protocol's are strings).
///
/// # Safety
/// `item` is NULL or a valid item whose bytes are alive; `s` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_item_is(item: *const srpc_mp_item, s: *const c_char) -> bool {
    // SAFETY: the caller's contract.
    let (Some(it), false) = (unsafe { item.as_ref() }, s.is_null()) else {
        return false;
    };
    if !matches!(
        it.r#type,
        srpc_mp_type::SrpcMpTypeStr | srpc_mp_type::SrpcMpTypeBin
    ) {
        return false;
    }
    // SAFETY: `s` is NUL-terminated (the caller's contract).
    let want = unsafe { std::ffi::CStr::from_ptr(s) }.to_bytes();
    // SAFETY: the item's bytes are alive (the caller's contract).
    unsafe { it.bytes.as_bytes("item") }.is_ok_and(|b| b == want)
}

/// Decode the array at the start of `b`: the array and the bytes it took.
fn decode_array(b: &[u8], at: usize) -> Result<(srpc_ndarray, usize), FfiError> {
    let not = |why: &str| {
        FfiError::invalid(format!(
            "the value at offset {at} is not a numpy array in the msgpack-numpy form: {why}"
        ))
    };
    let (head, mut pos) = parse_item(b, at)?;
    if head.r#type != srpc_mp_type::SrpcMpTypeMap {
        return Err(not("not a map"));
    }
    let mut a = srpc_ndarray {
        dtype: srpc_str {
            ptr: std::ptr::null(),
            len: 0,
        },
        ndim: 0,
        shape: [0; SRPC_NDARRAY_MAX_DIMS],
        data: srpc_slice {
            ptr: std::ptr::null(),
            len: 0,
        },
    };
    let (mut nd, mut dtype, mut data, mut shape_seen) = (None, None, None, false);
    let bytes_of = |it: &srpc_mp_item| -> &[u8] {
        // SAFETY: the slice points into `b` (parse_item made it so).
        unsafe { std::slice::from_raw_parts(it.bytes.ptr, it.bytes.len) }
    };
    for _ in 0..head.count {
        let (k, used) = parse_item(&b[pos..], at + pos)?;
        pos += used;
        let key: &[u8] = match k.r#type {
            srpc_mp_type::SrpcMpTypeStr | srpc_mp_type::SrpcMpTypeBin => bytes_of(&k),
            _ => b"",
        };
        match key {
            b"nd" | b"type" | b"kind" | b"data" => {
                let (v, used) = parse_item(&b[pos..], at + pos)?;
                pos += used;
                match (key, v.r#type) {
                    (b"nd", srpc_mp_type::SrpcMpTypeBool) => nd = Some(v.boolean),
                    (b"type", srpc_mp_type::SrpcMpTypeStr | srpc_mp_type::SrpcMpTypeBin) => {
                        dtype = Some(v.bytes)
                    }
                    (b"kind", srpc_mp_type::SrpcMpTypeStr | srpc_mp_type::SrpcMpTypeBin) => {
                        let kind = bytes_of(&v);
                        if !kind.is_empty() {
                            return Err(not(&format!(
                                "kind {:?} (a structured or object array) is not carried; \
                                 only plain numeric dtypes are",
                                String::from_utf8_lossy(kind)
                            )));
                        }
                    }
                    (b"data", srpc_mp_type::SrpcMpTypeBin) => data = Some(v.bytes),
                    _ => {
                        return Err(not(&format!(
                            "{} has the wrong type",
                            String::from_utf8_lossy(key)
                        )))
                    }
                }
            }
            b"shape" => {
                let (v, used) = parse_item(&b[pos..], at + pos)?;
                pos += used;
                if v.r#type != srpc_mp_type::SrpcMpTypeArray {
                    return Err(not("shape is not an array"));
                }
                if v.count as usize > SRPC_NDARRAY_MAX_DIMS {
                    return Err(not("more than SRPC_NDARRAY_MAX_DIMS dimensions"));
                }
                for i in 0..v.count as usize {
                    let (d, used) = parse_item(&b[pos..], at + pos)?;
                    pos += used;
                    if d.r#type != srpc_mp_type::SrpcMpTypeUint {
                        return Err(not("a dimension is not a non-negative integer"));
                    }
                    a.shape[i] = d.u;
                }
                a.ndim = v.count as usize;
                shape_seen = true;
            }
            _ => pos += skip_value(&b[pos..], at + pos)?,
        }
    }
    let nd = nd.ok_or_else(|| not("no b\"nd\" key"))?;
    if nd && !shape_seen {
        return Err(not("no b\"shape\" key"));
    }
    if !nd {
        a.ndim = 0; // a numpy scalar: {b"nd": false, b"type": ..., b"data": ...}
    }
    let dtype = dtype.ok_or_else(|| not("no b\"type\" key"))?;
    let dtype_str = std::str::from_utf8(
        // SAFETY: points into `b`.
        unsafe { std::slice::from_raw_parts(dtype.ptr, dtype.len) },
    )
    .map_err(|_| not("type is not UTF-8"))?;
    a.dtype = srpc_str {
        ptr: dtype_str.as_ptr().cast(),
        len: dtype_str.len(),
    };
    a.data = data.ok_or_else(|| not("no b\"data\" key"))?;
    // SAFETY: the slices point into `b`.
    unsafe { checked(&a)? };
    Ok((a, pos))
}

/// Read one whole value as a numpy array into `*out` (its `dtype` and
/// `data` point into the reader's bytes) and move past it. A numpy scalar
/// (`b"nd": false`) gives `ndim` 0. A value that is no such array, or one
/// of a dtype this library does not carry (structured, object), returns
/// SRPC_STATUS_ERR_INVALID_ARGUMENT saying why, and does not move.
///
/// # Safety
/// `r` points to a reader whose bytes are valid; `out` is valid for
/// writing an srpc_ndarray.
#[no_mangle]
pub unsafe extern "C" fn srpc_mp_read_ndarray(
    r: *mut srpc_mp_reader,
    out: *mut srpc_ndarray,
) -> srpc_status {
    guard(|| {
        // SAFETY: forwarded precondition.
        let r = unsafe { r.as_mut() }.ok_or_else(|| FfiError::null("reader"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: the reader's bytes are valid (the caller's contract).
        let rest = unsafe { r.rest()? };
        let (a, used) = decode_array(rest, r.pos)?;
        r.pos += used;
        // SAFETY: checked non-NULL; valid for writing (the caller's contract).
        unsafe { out.write(a) };
        Ok(())
    })
}

/// Decode `value`, exactly one msgpack value (a response's `value`), as a
/// numpy array, as srpc_mp_read_ndarray() does: `out->dtype` and
/// `out->data` point into `value`. Bytes after the value are
/// SRPC_STATUS_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `value` is valid for its length; `out` is valid for writing an srpc_ndarray.
#[no_mangle]
pub unsafe extern "C" fn srpc_ndarray_decode(
    value: srpc_slice,
    out: *mut srpc_ndarray,
) -> srpc_status {
    guard(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: forwarded precondition.
        let b = unsafe { value.as_bytes("value")? };
        let (a, used) = decode_array(b, 0)?;
        if used != b.len() {
            return Err(FfiError::invalid(format!(
                "{} bytes follow the array (value must be exactly one msgpack value)",
                b.len() - used
            )));
        }
        // SAFETY: checked non-NULL; valid for writing (the caller's contract).
        unsafe { out.write(a) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use simplerpc_core::codec;
    use simplerpc_core::value::Value;

    fn s(x: &str) -> srpc_str {
        srpc_str {
            ptr: x.as_ptr().cast(),
            len: x.len(),
        }
    }

    /// Skip, read and decode every prefix of `bytes`: each answers OK or
    /// SRPC_STATUS_ERR_INVALID_ARGUMENT, never a caught panic, and never
    /// moves past the end.
    fn never_panics_on_prefixes(bytes: &[u8]) {
        for n in 0..=bytes.len() {
            let b = &bytes[..n];
            let mut r = srpc_mp_reader_new(b.as_ptr(), b.len());
            // SAFETY: the reader is over `b`, alive for the loop.
            let st = unsafe { srpc_mp_skip(&mut r) };
            assert!(matches!(
                st,
                srpc_status::SrpcStatusOk | srpc_status::SrpcStatusErrInvalidArgument
            ));
            assert!(r.pos <= r.len);
            let mut a = std::mem::MaybeUninit::<srpc_ndarray>::uninit();
            let v = srpc_slice {
                ptr: b.as_ptr(),
                len: b.len(),
            };
            // SAFETY: valid slice and out-pointer.
            let st = unsafe { srpc_ndarray_decode(v, a.as_mut_ptr()) };
            assert!(matches!(
                st,
                srpc_status::SrpcStatusOk | srpc_status::SrpcStatusErrInvalidArgument
            ));
        }
    }

    #[test]
    fn bad_and_truncated_msgpack_is_refused_not_a_panic() {
        for x in 0..=255u8 {
            for y in [0u8, 1, 0x7f, 0x80, 0xff] {
                never_panics_on_prefixes(&[x, y, y, y, y, y, y, y, y, y]);
            }
        }
        // Every prefix of an array, and of one announcing 4 GiB of data.
        let golden = b"\x85\xc4\x02nd\xc3\xc4\x04type\xa3<f4\xc4\x04kind\xc4\x00\xc4\x05shape\x91\x03\xc4\x04data\xc4\x0c\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40";
        never_panics_on_prefixes(golden);
        never_panics_on_prefixes(b"\xdf\xff\xff\xff\xff\xc6\xff\xff\xff\xff\x00");
    }

    #[test]
    fn arange3_float32_is_the_documented_bytes() {
        let data: Vec<u8> = [0f32, 1.0, 2.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let mut a = srpc_ndarray {
            dtype: s("<f4"),
            ndim: 1,
            shape: [0; SRPC_NDARRAY_MAX_DIMS],
            data: srpc_slice {
                ptr: data.as_ptr(),
                len: data.len(),
            },
        };
        a.shape[0] = 3;
        let mut out = srpc_buf::empty();
        // SAFETY: valid array and out-pointer.
        assert_eq!(
            unsafe { srpc_ndarray_encode(&a, &mut out) },
            srpc_status::SrpcStatusOk
        );
        // SAFETY: a buffer from the library.
        let got = unsafe { std::slice::from_raw_parts(out.data, out.len) }.to_vec();
        // SAFETY: from the library.
        unsafe { crate::types::srpc_buf_free(&mut out) };
        let want = "85c4026e64c3c40474797065a33c6634c4046b696e64c400c4057368617065\
                    9103c40464617461c40c000000000000803f00000040";
        let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want);
        // And core's codec reads it as the same array.
        let v = codec::from_bytes(&simplerpc_core::Bytes::from(got)).unwrap();
        let Value::Array(nd) = v else {
            panic!("not an array: {v:?}")
        };
        assert_eq!(nd.shape(), &[3]);
    }
}
