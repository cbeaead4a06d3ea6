//! msgpack encoding and decoding of [`Value`]s, byte-compatible with the
//! reference (`msgpack.packb(..., use_bin_type=True)` plus msgpack-numpy).
//!
//! Encoding reserves the exact frame size first, so a large array is copied
//! once into the frame and never again by a growing buffer. Decoding takes the
//! frame as [`Bytes`] and hands out sub-slices of it for bin data, so array
//! payloads are never copied out of an incoming frame.

use bytes::Bytes;
use rmp::Marker;

use crate::array::{DType, NdArray};
use crate::complex;
use crate::value::{ObjId, Scalar, Value};

/// Deepest nesting the decoder accepts; deeper frames are refused, not stack-overflowed.
pub const MAX_DEPTH: usize = 128;

/// Most values one frame may hold (list items, map keys and values, scalars).
/// Each decoded value takes tens of bytes, so a frame of a billion one-byte
/// nils would need tens of GiB: such frames are refused. Arrays and bytes are
/// one value each, whatever their size.
pub const MAX_VALUES: usize = 1 << 24;

/// Why bytes could not be decoded as msgpack.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ended inside a value.
    #[error("frame ends early: needed {needed} more bytes at offset {offset}")]
    UnexpectedEof {
        /// where the read started
        offset: usize,
        /// how many bytes were missing
        needed: usize,
    },
    /// 0xc1 (never used by msgpack).
    #[error("invalid msgpack marker 0x{marker:02x} at offset {offset}")]
    InvalidMarker {
        /// the byte
        marker: u8,
        /// where
        offset: usize,
    },
    /// msgpack ext types are not part of the protocol.
    #[error("msgpack ext type {0} is not part of the protocol")]
    UnsupportedExt(i8),
    /// A str that is not UTF-8.
    #[error("msgpack str at offset {0} is not valid UTF-8")]
    InvalidUtf8(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_VALUES`] values.
    #[error(
        "frame holds more than {MAX_VALUES} values; send large data as a numpy array or bytes"
    )]
    TooManyValues,
    /// Bytes left over after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// Memory for the decoded value could not be had: the allocation
    /// failed, and the decoder says so rather than aborting the process.
    #[error("out of memory decoding the frame: {0} bytes could not be allocated")]
    OutOfMemory(usize),
}

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// An executor handle is server-internal and never travels.
    #[error("an executor handle cannot be sent; return an object id or a value instead")]
    Handle,
    /// A promise this connection cannot send: the peer did not accept the
    /// `promise` extension, or the request it names was not sent on it.
    #[error("promise {0} cannot be sent on this connection (a promise from another connection, or a peer without the promise extension)")]
    Promise(u64),
    /// A request of an extension the peer did not accept (a stock
    /// `simplerpyc` peer accepts none), so it is never sent.
    #[error("the server did not accept the `{extension}` extension, so it cannot answer a {request} request (a stock simplerpyc server has none): connect to a simplerpc server for it")]
    NotNegotiated {
        /// the request's wire name
        request: &'static str,
        /// the extension it needs
        extension: &'static str,
    },
    /// The frame would exceed the connection's message limit; nothing was built.
    #[error("the request would be about {size} bytes, over the message limit of {limit} bytes; send the data in smaller parts, or raise max_message_size on both ends")]
    TooLarge {
        /// an upper bound of the frame's size
        size: usize,
        /// the limit
        limit: usize,
    },
    /// msgpack lengths stop at 2^32 - 1.
    #[error("{what} of length {len} is longer than msgpack allows (2^32 - 1)")]
    TooLong {
        /// what was too long
        what: &'static str,
        /// its length
        len: usize,
    },
}

// ---------------------------------------------------------------- encoding

/// Encode a value into a new buffer of exactly the right size.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(encoded_len(value));
    encode(&mut buf, value)?;
    Ok(buf)
}

/// An upper bound of the encoded size of `value` (exact for everything but
/// floats and complex numbers), used to reserve a frame once.
pub fn encoded_len(value: &Value) -> usize {
    match value {
        Value::Nil | Value::Bool(_) => 1,
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => 9,
        Value::F32(_) => 5,
        Value::Str(s) => 5 + s.len(),
        Value::Bin(b) => 5 + b.len(),
        Value::List(items) => 5 + items.iter().map(encoded_len).sum::<usize>(),
        // The marker map's header and key, then the array.
        Value::Tuple(items) => 16 + items.iter().map(encoded_len).sum::<usize>(),
        Value::Map(pairs) => {
            5 + pairs
                .iter()
                .map(|(k, v)| encoded_len(k) + encoded_len(v))
                .sum::<usize>()
        }
        Value::Array(a) => 64 + 9 * a.shape().len() + a.data().len(),
        Value::Scalar(s) => 32 + s.data.len(),
        // 19 bytes of keys and headers plus the repr: two floats of at most
        // 24 characters each, a sign, "j" and parentheses.
        Value::Complex(..) => 19 + 2 * 24 + 4,
        Value::Slice(s) => 40 + encoded_len(&s.start) + encoded_len(&s.stop) + encoded_len(&s.step),
        Value::Proxy(_) => 32,
        Value::Handle(_) => 0,
        Value::Raw(r) => r.len(),
    }
}

/// The exact size of `value`'s encoding, without building it (the size
/// checks of requests use it: an upper bound would refuse a request that
/// fits when it holds many small numbers). A [`Value::Tuple`] counts as its
/// marker map, so for a connection without the `tuple` extension (tuples
/// as plain arrays) this is 11 bytes per tuple over.
pub fn exact_len(value: &Value) -> usize {
    fn uint(u: u64) -> usize {
        match u {
            0..=0x7f => 1,
            0x80..=0xff => 2,
            0x100..=0xffff => 3,
            0x1_0000..=0xffff_ffff => 5,
            _ => 9,
        }
    }
    fn int(i: i64) -> usize {
        if i >= 0 {
            uint(i as u64)
        } else if i >= -32 {
            1
        } else if i >= i8::MIN as i64 {
            2
        } else if i >= i16::MIN as i64 {
            3
        } else if i >= i32::MIN as i64 {
            5
        } else {
            9
        }
    }
    fn str_len(n: usize) -> usize {
        n + match n {
            0..=31 => 1,
            32..=0xff => 2,
            0x100..=0xffff => 3,
            _ => 5,
        }
    }
    fn bin_len(n: usize) -> usize {
        n + match n {
            0..=0xff => 2,
            0x100..=0xffff => 3,
            _ => 5,
        }
    }
    fn container(n: usize) -> usize {
        match n {
            0..=15 => 1,
            16..=0xffff => 3,
            _ => 5,
        }
    }
    match value {
        Value::Nil | Value::Bool(_) => 1,
        Value::Int(i) => int(*i),
        Value::UInt(u) => uint(*u),
        Value::F32(_) => 5,
        Value::Float(_) => 9,
        Value::Str(s) => str_len(s.len()),
        Value::Bin(b) => bin_len(b.len()),
        Value::List(items) => container(items.len()) + items.iter().map(exact_len).sum::<usize>(),
        Value::Tuple(items) => {
            1 + str_len(TUPLE_KEY.len())
                + container(items.len())
                + items.iter().map(exact_len).sum::<usize>()
        }
        Value::Map(pairs) => {
            container(pairs.len())
                + pairs
                    .iter()
                    .map(|(k, v)| exact_len(k) + exact_len(v))
                    .sum::<usize>()
        }
        Value::Array(a) => {
            1 + bin_len(2)
                + 1
                + bin_len(4)
                + str_len(a.typestr().len())
                + bin_len(4)
                + bin_len(0)
                + bin_len(5)
                + container(a.shape().len())
                + a.shape().iter().map(|&d| uint(d as u64)).sum::<usize>()
                + bin_len(4)
                + bin_len(a.data().len())
        }
        Value::Scalar(sc) => {
            1 + bin_len(2)
                + 1
                + bin_len(4)
                + str_len(sc.dtype.typestr(sc.order).len())
                + bin_len(4)
                + bin_len(sc.data.len())
        }
        Value::Complex(re, im) => {
            1 + bin_len(7) + 1 + bin_len(4) + str_len(complex::python_repr(*re, *im).len())
        }
        Value::Slice(sl) => {
            1 + str_len(9)
                + 1
                + str_len(5)
                + exact_len(&sl.start)
                + str_len(4)
                + exact_len(&sl.stop)
                + str_len(4)
                + exact_len(&sl.step)
        }
        Value::Proxy(id) => match id.as_promise() {
            Some(n) => 1 + str_len(15) + uint(n),
            None => 1 + str_len(13) + 1 + str_len(6) + uint(id.0),
        },
        Value::Handle(_) => 0,
        Value::Raw(r) => r.len(),
    }
}

/// The key of the `tuple` extension's marker map, `{"__tuple__": [items...]}`.
pub const TUPLE_KEY: &str = "__tuple__";

/// Bins of at least this many bytes (an array's data, `bytes`) are not
/// copied into a frame built with splices ([`crate::message::OutFrame`]):
/// their memory is spliced in by reference and written to the socket from
/// where it lies. Smaller ones are cheaper to copy than to write apart.
pub const SPLICE_MIN: usize = 64 << 10;

/// Payloads left out of a frame's buffer: `(offset in the buffer, bytes)`,
/// in order; the frame is the buffer with each one inserted at its offset.
pub(crate) type Splices = Vec<(usize, Bytes)>;

/// How many bytes of `value`'s encoding [`encode_spliced`] splices in rather
/// than writes into the buffer.
pub(crate) fn spliced_len(value: &Value) -> usize {
    let big = |n: usize| if n >= SPLICE_MIN { n } else { 0 };
    match value {
        Value::Bin(b) => big(b.len()),
        Value::Array(a) => big(a.data().len()),
        Value::Raw(r) => r
            .parts()
            .map_or(0, |parts| parts.iter().map(|p| big(p.len())).sum()),
        Value::List(items) | Value::Tuple(items) => items.iter().map(spliced_len).sum(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| spliced_len(k) + spliced_len(v))
            .sum(),
        _ => 0,
    }
}

/// Append the msgpack encoding of `value` to `buf`, tuples as the `tuple`
/// extension's marker map (see [`encode_with`] for a peer without it).
pub fn encode(buf: &mut Vec<u8>, value: &Value) -> Result<(), EncodeError> {
    encode_with(buf, value, true)
}

/// Append the msgpack encoding of `value` to `buf`. With `tuples` (the
/// connection negotiated the `tuple` extension) a [`Value::Tuple`] is written
/// as the marker map `{"__tuple__": [items...]}`; without, as a plain array,
/// so a stock peer never sees the marker. Raw values are copied as they are.
pub fn encode_with(buf: &mut Vec<u8>, value: &Value, tuples: bool) -> Result<(), EncodeError> {
    encode_spliced(buf, value, tuples, None)
}

/// [`encode_with`], and with `splices` the payloads of large bins are noted
/// there instead of copied into `buf` (see [`SPLICE_MIN`]).
pub(crate) fn encode_spliced(
    buf: &mut Vec<u8>,
    value: &Value,
    tuples: bool,
    mut splices: Option<&mut Splices>,
) -> Result<(), EncodeError> {
    let encode = |buf: &mut Vec<u8>, v: &Value| encode_with(buf, v, tuples);
    match value {
        Value::Nil => buf.push(0xc0),
        Value::Bool(b) => buf.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => write_int(buf, *i),
        Value::UInt(u) => write_uint(buf, *u),
        Value::F32(f) => {
            buf.push(0xca);
            buf.extend_from_slice(&f.to_be_bytes());
        }
        Value::Float(f) => write_f64(buf, *f),
        Value::Str(s) => write_str(buf, s)?,
        Value::Bin(b) => write_bin_shared(buf, b, splices)?,
        Value::List(items) => {
            write_array_len(buf, items.len())?;
            for v in items {
                encode_spliced(buf, v, tuples, splices.as_deref_mut())?;
            }
        }
        Value::Tuple(items) => {
            if tuples {
                write_map_len(buf, 1)?;
                write_str(buf, TUPLE_KEY)?;
            }
            write_array_len(buf, items.len())?;
            for v in items {
                encode_spliced(buf, v, tuples, splices.as_deref_mut())?;
            }
        }
        Value::Map(pairs) => {
            write_map_len(buf, pairs.len())?;
            for (k, v) in pairs {
                encode_spliced(buf, k, tuples, splices.as_deref_mut())?;
                encode_spliced(buf, v, tuples, splices.as_deref_mut())?;
            }
        }
        Value::Array(a) => write_ndarray(buf, a, splices)?,
        Value::Scalar(s) => {
            write_map_len(buf, 3)?;
            write_bin(buf, b"nd")?;
            buf.push(0xc2);
            write_bin(buf, b"type")?;
            write_str(buf, &s.dtype.typestr(s.order))?;
            write_bin(buf, b"data")?;
            write_bin(buf, &s.data)?;
        }
        Value::Complex(re, im) => {
            write_map_len(buf, 2)?;
            write_bin(buf, b"complex")?;
            buf.push(0xc3);
            write_bin(buf, b"data")?;
            write_str(buf, &complex::python_repr(*re, *im))?;
        }
        Value::Slice(s) => {
            write_map_len(buf, 4)?;
            write_str(buf, "__slice__")?;
            buf.push(0xc3);
            write_str(buf, "start")?;
            encode(buf, &s.start)?;
            write_str(buf, "stop")?;
            encode(buf, &s.stop)?;
            write_str(buf, "step")?;
            encode(buf, &s.step)?;
        }
        Value::Proxy(id) => write_proxy(buf, *id)?,
        Value::Handle(_) => return Err(EncodeError::Handle),
        Value::Raw(r) => match (r.parts(), splices) {
            (Some(parts), Some(sp)) => {
                for p in parts {
                    if p.len() >= SPLICE_MIN {
                        sp.push((buf.len(), p.clone()));
                    } else {
                        buf.extend_from_slice(p);
                    }
                }
            }
            (Some(parts), None) => parts.iter().for_each(|p| buf.extend_from_slice(p)),
            (None, _) => buf.extend_from_slice(r.as_bytes()),
        },
    }
    Ok(())
}

/// The reference's proxy reference marker: `{"__rpc_proxy__": true, "obj_id": N}`,
/// or for a promise the `promise` extension's `{"__rpc_promise__": n}`.
pub(crate) fn write_proxy(buf: &mut Vec<u8>, id: ObjId) -> Result<(), EncodeError> {
    if let Some(n) = id.as_promise() {
        write_map_len(buf, 1)?;
        write_str(buf, "__rpc_promise__")?;
        write_uint(buf, n);
        return Ok(());
    }
    write_map_len(buf, 2)?;
    write_str(buf, "__rpc_proxy__")?;
    buf.push(0xc3);
    write_str(buf, "obj_id")?;
    write_uint(buf, id.0);
    Ok(())
}

fn write_ndarray(
    buf: &mut Vec<u8>,
    a: &NdArray,
    splices: Option<&mut Splices>,
) -> Result<(), EncodeError> {
    write_ndarray_fields(buf, &a.typestr(), a.shape().iter().map(|&d| d as u64))?;
    write_bin(buf, b"data")?;
    write_bin_shared(buf, a.data(), splices)
}

/// Everything of a numpy array's msgpack-numpy encoding but its data's
/// bytes: the map `{b"nd": true, b"type": typestr, b"kind": b"", b"shape":
/// [...], b"data": ` up to and including the bin header of `data_len`
/// bytes. The caller writes the data after it (or sends it from where it
/// lies): the C ABI's `srpc_ndarray_header` does.
pub fn write_ndarray_header(
    buf: &mut Vec<u8>,
    typestr: &str,
    shape: impl ExactSizeIterator<Item = u64>,
    data_len: usize,
) -> Result<(), EncodeError> {
    write_ndarray_fields(buf, typestr, shape)?;
    write_bin(buf, b"data")?;
    write_bin_header(buf, data_len)
}

/// The map header and the four keys before `data`.
fn write_ndarray_fields(
    buf: &mut Vec<u8>,
    typestr: &str,
    shape: impl ExactSizeIterator<Item = u64>,
) -> Result<(), EncodeError> {
    write_map_len(buf, 5)?;
    write_bin(buf, b"nd")?;
    buf.push(0xc3);
    write_bin(buf, b"type")?;
    write_str(buf, typestr)?;
    write_bin(buf, b"kind")?;
    write_bin(buf, b"")?;
    write_bin(buf, b"shape")?;
    write_array_len(buf, shape.len())?;
    for d in shape {
        write_uint(buf, d);
    }
    Ok(())
}

/// A bin whose payload is spliced in (see [`SPLICE_MIN`]) when it is large
/// and `splices` is given, else copied.
fn write_bin_shared(
    buf: &mut Vec<u8>,
    b: &Bytes,
    splices: Option<&mut Splices>,
) -> Result<(), EncodeError> {
    match splices {
        Some(sp) if b.len() >= SPLICE_MIN => {
            write_bin_header(buf, b.len())?;
            sp.push((buf.len(), b.clone()));
            Ok(())
        }
        _ => write_bin(buf, b),
    }
}

/// Smallest msgpack encoding of a non-negative integer, as msgpack-python picks it.
pub(crate) fn write_uint(buf: &mut Vec<u8>, u: u64) {
    if u < 0x80 {
        buf.push(u as u8);
    } else if u <= 0xff {
        buf.extend_from_slice(&[0xcc, u as u8]);
    } else if u <= 0xffff {
        buf.push(0xcd);
        buf.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u <= 0xffff_ffff {
        buf.push(0xce);
        buf.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        buf.push(0xcf);
        buf.extend_from_slice(&u.to_be_bytes());
    }
}

fn write_int(buf: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        write_uint(buf, i as u64);
    } else if i >= -32 {
        buf.push(i as i8 as u8);
    } else if i >= i8::MIN as i64 {
        buf.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= i16::MIN as i64 {
        buf.push(0xd1);
        buf.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i32::MIN as i64 {
        buf.push(0xd2);
        buf.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&i.to_be_bytes());
    }
}

fn write_f64(buf: &mut Vec<u8>, f: f64) {
    buf.push(0xcb);
    buf.extend_from_slice(&f.to_be_bytes());
}

fn len_u32(what: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong { what, len })
}

/// msgpack str with the smallest length header.
pub(crate) fn write_str(buf: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    let n = len_u32("str", s.len())?;
    if n < 32 {
        buf.push(0xa0 | n as u8);
    } else if n <= 0xff {
        buf.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&n.to_be_bytes());
    }
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// msgpack bin with the smallest length header.
pub(crate) fn write_bin(buf: &mut Vec<u8>, b: &[u8]) -> Result<(), EncodeError> {
    write_bin_header(buf, b.len())?;
    buf.extend_from_slice(b);
    Ok(())
}

/// The header of a msgpack bin of `len` bytes, the smallest that fits.
fn write_bin_header(buf: &mut Vec<u8>, len: usize) -> Result<(), EncodeError> {
    let n = len_u32("bytes", len)?;
    if n <= 0xff {
        buf.extend_from_slice(&[0xc4, n as u8]);
    } else if n <= 0xffff {
        buf.push(0xc5);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xc6);
        buf.extend_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

/// msgpack array header.
pub(crate) fn write_array_len(buf: &mut Vec<u8>, len: usize) -> Result<(), EncodeError> {
    let n = len_u32("list", len)?;
    if n < 16 {
        buf.push(0x90 | n as u8);
    } else if n <= 0xffff {
        buf.push(0xdc);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdd);
        buf.extend_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

/// msgpack map header.
pub(crate) fn write_map_len(buf: &mut Vec<u8>, len: usize) -> Result<(), EncodeError> {
    let n = len_u32("map", len)?;
    if n < 16 {
        buf.push(0x80 | n as u8);
    } else if n <= 0xffff {
        buf.push(0xde);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(0xdf);
        buf.extend_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

// ---------------------------------------------------------------- decoding

/// Decode one value that fills `frame` entirely. Bin data and array payloads
/// in the result share `frame`'s buffer. The `tuple` extension's marker
/// `{"__tuple__": [...]}` decodes to [`Value::Tuple`] (see [`from_bytes_with`]).
pub fn from_bytes(frame: &Bytes) -> Result<Value, DecodeError> {
    from_bytes_with(frame, true)
}

/// As [`from_bytes`]; with `tuples` false (a connection without the `tuple`
/// extension) a map `{"__tuple__": [...]}` stays a map.
pub fn from_bytes_with(frame: &Bytes, tuples: bool) -> Result<Value, DecodeError> {
    let mut d = Decoder::new(frame, Some(frame));
    d.tuples = tuples;
    let v = d.value(0)?;
    d.finish()?;
    Ok(v)
}

/// Check that `data` is exactly one well-formed msgpack value the protocol
/// accepts as a *field of a frame* (no ext types, UTF-8 strings, nesting
/// and size within the limits a frame holding it must meet: the field sits
/// one level below the frame's map), without keeping anything. Used where
/// bytes from a host are passed on as they are, so that a peer can always
/// decode the frame they go into.
pub fn validate(data: &[u8]) -> Result<(), DecodeError> {
    decode_field(data).map(|_| ())
}

/// How many levels deep `value`'s encoding nests, as the decoder counts
/// them: a scalar is one level, a list of scalars two, a marker map one more
/// than what it holds (an array with a shape three). Counted no further than
/// `limit + 1`, so the walk stays as shallow as the limit. A value fits a
/// frame's field (see [`validate`]) when this is at most [`MAX_DEPTH`].
/// An executor that builds values out of other values a client sent (one
/// spliced into an argument) uses it to keep them within what a frame can
/// carry.
pub fn nesting(value: &Value, limit: usize) -> usize {
    if limit == 0 {
        return 1;
    }
    let below = |items: &mut dyn Iterator<Item = &Value>| {
        let mut deepest = 0;
        for v in items {
            deepest = deepest.max(nesting(v, limit - 1));
            if deepest >= limit {
                break;
            }
        }
        1 + deepest
    };
    let n = match value {
        Value::List(items) => below(&mut items.iter()),
        // The marker map, then the array.
        Value::Tuple(items) => 1 + below(&mut items.iter()),
        Value::Map(pairs) => below(&mut pairs.iter().flat_map(|(k, v)| [k, v])),
        Value::Slice(s) => below(&mut [&s.start, &s.stop, &s.step].into_iter()).max(2),
        Value::Array(a) if a.shape().is_empty() => 2,
        Value::Array(_) => 3,
        Value::Scalar(_) | Value::Complex(..) | Value::Proxy(_) => 2,
        // Checked as a field when it was made, so it decodes as one.
        Value::Raw(r) => decode_field(r.as_bytes()).map_or(limit + 1, |v| nesting(&v, limit)),
        _ => 1,
    };
    n.min(limit + 1)
}

/// Decode bytes as a frame's field (see [`validate`]) without sharing them:
/// bin data comes out empty. For checks of shape, not for the values.
pub(crate) fn decode_field(data: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder::new(data, None);
    let v = d.value(1)?;
    d.finish()?;
    Ok(v)
}

/// As [`decode_field`], for a field whose large bin payloads were left out
/// of `skeleton`: each `(offset, len)` of `holes` (ascending offsets into
/// `skeleton`) says that `len` bytes stood at `offset`, and they must be
/// exactly the payload of a bin, which the decoder then skips without its
/// bytes. The value is the one [`decode_field`] gives for the joined bytes
/// (bin data comes out empty either way). An `Err` says only that the
/// skeleton is not that: a hole read as anything but a whole bin payload,
/// or the joined bytes are malformed; the caller checks the joined bytes
/// for the error to report.
pub(crate) fn decode_field_elided(
    skeleton: &[u8],
    holes: &[(usize, usize)],
) -> Result<Value, DecodeError> {
    let mut d = Decoder::new(skeleton, None);
    d.holes = holes;
    let v = d.value(1)?;
    d.finish()?;
    Ok(v)
}

/// Where the payload of the first bin of at least `min` bytes begins, in the
/// msgpack value that `prefix` starts with (the first bytes of a message are
/// enough), or `None` if the prefix ends first or is not msgpack. A
/// transport reading a large message uses it to place the message in memory
/// so that this payload, typically an array's data, lands aligned: an array
/// can then be made over it in place.
pub fn first_large_bin(prefix: &[u8], min: usize) -> Option<usize> {
    let be = |at: usize, n: usize| -> Option<usize> {
        let b = prefix.get(at..at.checked_add(n)?)?;
        usize::try_from(b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))).ok()
    };
    let mut pos = 0usize;
    // Values still to walk; a prefix holds at most one per byte.
    let mut pending = 1usize;
    while pending > 0 {
        let m = *prefix.get(pos)?;
        pos += 1;
        pending -= 1;
        let skip = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
            0x80..=0x8f => {
                pending = pending.checked_add(2 * usize::from(m & 0x0f))?;
                0
            }
            0x90..=0x9f => {
                pending = pending.checked_add(usize::from(m & 0x0f))?;
                0
            }
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xc4..=0xc6 => {
                let n: usize = 1 << (m - 0xc4);
                let len = be(pos, n)?;
                pos += n;
                if len >= min {
                    return Some(pos);
                }
                len
            }
            0xc7..=0xc9 => {
                let n: usize = 1 << (m - 0xc7);
                let len = be(pos, n)?;
                n.checked_add(1)?.checked_add(len)?
            }
            0xca | 0xd2 => 4,
            0xcb | 0xd3 => 8,
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xce => 4,
            0xcf => 8,
            0xd4..=0xd8 => 1 + (1 << (m - 0xd4)),
            0xd9..=0xdb => {
                let n: usize = 1 << (m - 0xd9);
                n.checked_add(be(pos, n)?)?
            }
            0xdc | 0xdd => {
                let n = if m == 0xdc { 2 } else { 4 };
                pending = pending.checked_add(be(pos, n)?)?;
                n
            }
            0xde | 0xdf => {
                let n = if m == 0xde { 2 } else { 4 };
                pending = pending.checked_add(be(pos, n)?.checked_mul(2)?)?;
                n
            }
            0xc1 => return None,
        };
        pos = pos.checked_add(skip)?;
        if pending > prefix.len() {
            // More values than bytes left: not a prefix of a real value.
            return None;
        }
    }
    None
}

/// The ext type [`split_bins`] writes in place of a large bin: 4 bytes, the
/// big-endian index of the bin among the ones taken out. Never on the wire.
pub const SPLIT_BIN_EXT: i8 = 43;

/// Copy a msgpack value without the data of its large numpy arrays: the
/// `data` bin of each array marker map, when it has at least `min` bytes, is
/// replaced by `fixext4(SPLIT_BIN_EXT, index)` and its payload's place in
/// `data` is returned, in order. Other bins stay. A host that decodes msgpack itself
/// (Python) decodes the small rest, and copies each large payload once,
/// straight from the frame into memory of its own (a numpy array), instead
/// of into a bytes object first.
pub fn split_bins(
    data: &[u8],
    min: usize,
) -> Result<(Vec<u8>, Vec<std::ops::Range<usize>>), DecodeError> {
    validate(data)?;
    let mut out = Vec::new();
    let mut bins = Vec::new();
    let mut pos = 0;
    split_value(data, &mut pos, min, &mut out, &mut bins);
    Ok((out, bins))
}

/// The header length, payload length and number of nested values of the
/// value starting at `start` in checked msgpack.
fn layout(data: &[u8], start: usize) -> (usize, usize, usize) {
    let be = |at: usize, n: usize| -> usize {
        data[at..at + n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize)
    };
    let m = data[start];
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
        0x80..=0x8f => (1, 0, 2 * (m & 0x0f) as usize),
        0x90..=0x9f => (1, 0, (m & 0x0f) as usize),
        0xa0..=0xbf => (1, (m & 0x1f) as usize, 0),
        0xc4 | 0xd9 => (2, be(start + 1, 1), 0),
        0xc5 | 0xda => (3, be(start + 1, 2), 0),
        0xc6 | 0xdb => (5, be(start + 1, 4), 0),
        0xcc | 0xd0 => (2, 0, 0),
        0xcd | 0xd1 => (3, 0, 0),
        0xca | 0xce | 0xd2 => (5, 0, 0),
        0xcb | 0xcf | 0xd3 => (9, 0, 0),
        0xdc => (3, 0, be(start + 1, 2)),
        0xdd => (5, 0, be(start + 1, 4)),
        0xde => (3, 0, 2 * be(start + 1, 2)),
        0xdf => (5, 0, 2 * be(start + 1, 4)),
        // ext types never pass validation; 0xc1 neither.
        _ => (1, 0, 0),
    }
}

/// Whether a bin value starts at each of `at` (ascending offsets) in
/// `data`, checked msgpack holding one value.
pub(crate) fn bins_start_at(data: &[u8], at: &[usize]) -> bool {
    let mut want = at.iter().copied().peekable();
    let mut pos = 0;
    let mut pending = 1usize;
    while pending > 0 && pos < data.len() {
        match want.peek() {
            Some(&p) if p < pos => return false,
            Some(&p) if p == pos => {
                if !matches!(data[pos], 0xc4..=0xc6) {
                    return false;
                }
                want.next();
            }
            _ => {}
        }
        let (head, payload, items) = layout(data, pos);
        pending = pending - 1 + items;
        pos += head + payload;
    }
    want.peek().is_none()
}

/// Where the value starting at `start` ends.
fn value_end(data: &[u8], start: usize) -> usize {
    let (head, payload, items) = layout(data, start);
    let mut pos = start + head + payload;
    for _ in 0..items {
        pos = value_end(data, pos);
    }
    pos
}

/// Whether the value at `at` is the bin `key`.
fn is_bin_key(data: &[u8], at: usize, key: &[u8]) -> bool {
    data.get(at) == Some(&(0xc4))
        && data.get(at + 1) == Some(&(key.len() as u8))
        && data.get(at + 2..at + 2 + key.len()) == Some(key)
}

/// Walk one value of checked msgpack at `*pos`, copying it to `out` (see
/// [`split_bins`]): only the data of a numpy array marker map (one with the
/// bin keys `nd` and `data`) is taken out.
fn split_value(
    data: &[u8],
    pos: &mut usize,
    min: usize,
    out: &mut Vec<u8>,
    bins: &mut Vec<std::ops::Range<usize>>,
) {
    let start = *pos;
    let (head, payload, items) = layout(data, start);
    let is_map = matches!(data[start], 0x80..=0x8f | 0xde | 0xdf);
    out.extend_from_slice(&data[start..start + head + payload]);
    *pos = start + head + payload;
    if !is_map {
        for _ in 0..items {
            split_value(data, pos, min, out, bins);
        }
        return;
    }
    // A map: an array's marker map has the bin keys "nd" and "data".
    let mut keys = Vec::with_capacity(items / 2);
    let mut at = *pos;
    for _ in 0..items / 2 {
        keys.push(at);
        at = value_end(data, at);
        at = value_end(data, at);
    }
    let nd = keys.iter().any(|&k| is_bin_key(data, k, b"nd"));
    for k in keys {
        let take = nd && is_bin_key(data, k, b"data");
        split_value(data, pos, min, out, bins); // the key
        let v = *pos;
        let (vh, vp, _) = layout(data, v);
        if take && matches!(data[v], 0xc4..=0xc6) && vp >= min {
            let index = bins.len() as u32;
            bins.push(v + vh..v + vh + vp);
            out.extend_from_slice(&[0xd6, SPLIT_BIN_EXT as u8]);
            out.extend_from_slice(&index.to_be_bytes());
            *pos = v + vh + vp;
        } else {
            split_value(data, pos, min, out, bins);
        }
    }
}

/// A frame's top level: a map whose values are decoded together with the
/// byte range each occupies in the frame, or any other value.
pub(crate) enum TopLevel {
    /// `(key, value, range of the value's bytes)` in wire order.
    Map(Vec<(Value, Value, std::ops::Range<usize>)>),
    /// Not a map.
    Other(Value),
}

/// Decode a frame, remembering where each top-level map value lies, so a
/// field can be handed on as the frame's own bytes.
pub(crate) fn top_level(frame: &Bytes, tuples: bool) -> Result<TopLevel, DecodeError> {
    let mut d = Decoder::new(frame, Some(frame));
    d.tuples = tuples;
    let n = match frame.first() {
        Some(&m @ 0x80..=0x8f) => {
            d.pos = 1;
            (m & 0x0f) as usize
        }
        Some(0xde) => {
            d.pos = 1;
            d.len16()?
        }
        Some(0xdf) => {
            d.pos = 1;
            d.len32()?
        }
        _ => {
            let v = d.value(0)?;
            d.finish()?;
            return Ok(TopLevel::Other(v));
        }
    };
    d.values = 1;
    let mut fields = with_room(n.min(64))?;
    for _ in 0..n {
        let k = d.value(1)?;
        let start = d.pos;
        let v = d.value(1)?;
        push(&mut fields, (k, v, start..d.pos))?;
    }
    d.finish()?;
    Ok(TopLevel::Map(fields))
}

/// An empty `Vec` with room for `n` items, or [`DecodeError::OutOfMemory`]
/// where `Vec::with_capacity` would abort the process. What a peer sends
/// decides `n`, so it must not be trusted with an abort.
fn with_room<T>(n: usize) -> Result<Vec<T>, DecodeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| DecodeError::OutOfMemory(n.saturating_mul(std::mem::size_of::<T>())))?;
    Ok(v)
}

/// `v.push(item)`, growing `v` fallibly (amortized, as `push` would).
fn push<T>(v: &mut Vec<T>, item: T) -> Result<(), DecodeError> {
    if v.len() == v.capacity() {
        v.try_reserve(1).map_err(|_| {
            DecodeError::OutOfMemory(v.len().saturating_mul(2 * std::mem::size_of::<T>()))
        })?;
    }
    v.push(item);
    Ok(())
}

struct Decoder<'a> {
    buf: &'a [u8],
    /// The buffer as shared bytes, for zero-copy bin values; `None` when only
    /// validating (bin values are then left empty).
    owner: Option<&'a Bytes>,
    pos: usize,
    values: usize,
    /// Whether `{"__tuple__": [...]}` decodes to [`Value::Tuple`].
    tuples: bool,
    /// Bin payloads left out of `buf` (see [`decode_field_elided`]):
    /// `(offset in buf, len)`, ascending; `hole` is the next one to meet.
    holes: &'a [(usize, usize)],
    hole: usize,
}

impl<'a> Decoder<'a> {
    fn new(buf: &'a [u8], owner: Option<&'a Bytes>) -> Self {
        Decoder {
            buf,
            owner,
            pos: 0,
            values: 0,
            tuples: false,
            holes: &[],
            hole: 0,
        }
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(DecodeError::TrailingBytes(self.buf.len() - self.pos));
        }
        // A left-out payload not met exactly where a bin's payload began
        // (`take_bytes`): the walk read past it as if it were not there,
        // so what it decoded is not what the joined bytes hold. (A hole is
        // met only at its offset, and the walk never goes back, so one it
        // passed stays unmet.) The caller then checks the joined bytes,
        // so this error is never shown.
        if let Some(&(_, len)) = self.holes.get(self.hole) {
            return Err(DecodeError::TrailingBytes(len));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::UnexpectedEof {
                offset: self.pos,
                needed: n.saturating_sub(self.buf.len() - self.pos),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn take_bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.holes.get(self.hole) == Some(&(self.pos, n)) && self.owner.is_none() {
            // A bin payload left out of the skeleton: skipped, as checking
            // would skip its bytes (its data comes out empty).
            self.hole += 1;
            return Ok(Bytes::new());
        }
        let start = self.pos;
        self.take(n)?;
        Ok(match self.owner {
            Some(b) => b.slice(start..self.pos),
            None => Bytes::new(),
        })
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len8(&mut self) -> Result<usize, DecodeError> {
        Ok(self.be::<1>()?[0] as usize)
    }
    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn len32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn string(&mut self, n: usize) -> Result<Value, DecodeError> {
        let at = self.pos;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::InvalidUtf8(at))?;
        let mut owned = String::new();
        owned
            .try_reserve_exact(s.len())
            .map_err(|_| DecodeError::OutOfMemory(s.len()))?;
        owned.push_str(s);
        Ok(Value::Str(owned))
    }

    fn list(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        // Every element takes at least one byte: never trust a claimed length
        // further than the bytes that remain.
        let mut items = with_room(n.min(self.buf.len() - self.pos).min(MAX_VALUES))?;
        for _ in 0..n {
            let v = self.value(depth + 1)?;
            push(&mut items, v)?;
        }
        Ok(Value::List(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut pairs = with_room(n.min((self.buf.len() - self.pos) / 2).min(MAX_VALUES))?;
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            push(&mut pairs, (k, v))?;
        }
        Ok(recognise(pairs, self.tuples))
    }

    fn ext(&mut self, n: usize) -> Result<Value, DecodeError> {
        let t = self.be::<1>()?[0] as i8;
        self.take(n)?;
        Err(DecodeError::UnsupportedExt(t))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(DecodeError::TooManyValues);
        }
        let at = self.pos;
        let m = self.be::<1>()?[0];
        Ok(match Marker::from_u8(m) {
            Marker::FixPos(v) => Value::UInt(v as u64),
            Marker::FixNeg(v) => Value::Int(v as i64),
            Marker::Null => Value::Nil,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::U8 => Value::UInt(self.be::<1>()?[0] as u64),
            Marker::U16 => Value::UInt(u16::from_be_bytes(self.be()?) as u64),
            Marker::U32 => Value::UInt(u32::from_be_bytes(self.be()?) as u64),
            Marker::U64 => Value::UInt(u64::from_be_bytes(self.be()?)),
            Marker::I8 => int(i8::from_be_bytes(self.be()?) as i64),
            Marker::I16 => int(i16::from_be_bytes(self.be()?) as i64),
            Marker::I32 => int(i32::from_be_bytes(self.be()?) as i64),
            Marker::I64 => int(i64::from_be_bytes(self.be()?)),
            Marker::F32 => Value::F32(f32::from_be_bytes(self.be()?)),
            Marker::F64 => Value::Float(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(n) => self.string(n as usize)?,
            Marker::Str8 => {
                let n = self.len8()?;
                self.string(n)?
            }
            Marker::Str16 => {
                let n = self.len16()?;
                self.string(n)?
            }
            Marker::Str32 => {
                let n = self.len32()?;
                self.string(n)?
            }
            Marker::Bin8 => {
                let n = self.len8()?;
                Value::Bin(self.take_bytes(n)?)
            }
            Marker::Bin16 => {
                let n = self.len16()?;
                Value::Bin(self.take_bytes(n)?)
            }
            Marker::Bin32 => {
                let n = self.len32()?;
                Value::Bin(self.take_bytes(n)?)
            }
            Marker::FixArray(n) => self.list(n as usize, depth)?,
            Marker::Array16 => {
                let n = self.len16()?;
                self.list(n, depth)?
            }
            Marker::Array32 => {
                let n = self.len32()?;
                self.list(n, depth)?
            }
            Marker::FixMap(n) => self.map(n as usize, depth)?,
            Marker::Map16 => {
                let n = self.len16()?;
                self.map(n, depth)?
            }
            Marker::Map32 => {
                let n = self.len32()?;
                self.map(n, depth)?
            }
            Marker::FixExt1 => self.ext(1)?,
            Marker::FixExt2 => self.ext(2)?,
            Marker::FixExt4 => self.ext(4)?,
            Marker::FixExt8 => self.ext(8)?,
            Marker::FixExt16 => self.ext(16)?,
            Marker::Ext8 => {
                let n = self.len8()?;
                self.ext(n)?
            }
            Marker::Ext16 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            Marker::Ext32 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            Marker::Reserved => {
                return Err(DecodeError::InvalidMarker {
                    marker: m,
                    offset: at,
                })
            }
        })
    }
}

/// msgpack-python decodes every integer to one `int`; we keep non-negative
/// ones as `UInt` whatever width carried them, so equal numbers compare equal.
fn int(i: i64) -> Value {
    if i >= 0 {
        Value::UInt(i as u64)
    } else {
        Value::Int(i)
    }
}

fn bin_key<'a>(pairs: &'a [(Value, Value)], key: &[u8]) -> Option<&'a Value> {
    pairs.iter().find_map(|(k, v)| match k {
        Value::Bin(b) if b.as_ref() == key => Some(v),
        _ => None,
    })
}

fn str_key<'a>(pairs: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    pairs
        .iter()
        .find_map(|(k, v)| (k.as_str() == Some(key)).then_some(v))
}

/// Turn the marker maps of the protocol (arrays, numpy scalars, complex
/// numbers, slices, proxy references, and with `tuples` tuples) into their
/// values; any other map, and any marker map that does not fit its form,
/// stays a plain map.
fn recognise(mut pairs: Vec<(Value, Value)>, tuples: bool) -> Value {
    if tuples
        && pairs.len() == 1
        && matches!(&pairs[0], (Value::Str(k), Value::List(_)) if k == TUPLE_KEY)
    {
        if let Some((_, Value::List(items))) = pairs.pop() {
            return Value::Tuple(items);
        }
    }
    let first_is = |k: &[u8]| matches!(pairs.first(), Some((Value::Bin(b), _)) if b.as_ref() == k);
    let first_str = |k: &str| matches!(pairs.first(), Some((Value::Str(s), _)) if s == k);
    let special = if bin_key(&pairs, b"nd").is_some() {
        recognise_numpy(&pairs)
    } else if first_is(b"complex") || bin_key(&pairs, b"complex").is_some() {
        recognise_complex(&pairs)
    } else if pairs.len() == 2
        && (first_str("__rpc_proxy__") || str_key(&pairs, "__rpc_proxy__").is_some())
    {
        match (str_key(&pairs, "__rpc_proxy__"), str_key(&pairs, "obj_id")) {
            (Some(Value::Bool(true)), Some(id)) => id
                .as_u64()
                .filter(|&id| id < ObjId::PROMISE_BIT)
                .map(|id| Value::Proxy(ObjId(id))),
            _ => None,
        }
    } else if pairs.len() == 1 && first_str("__rpc_promise__") {
        pairs[0]
            .1
            .as_u64()
            .filter(|&n| n < ObjId::PROMISE_BIT)
            .map(|n| Value::Proxy(ObjId::promise(n)))
    } else if pairs.len() == 4 && str_key(&pairs, "__slice__") == Some(&Value::Bool(true)) {
        // Only in the order every client writes (and the encoder re-writes):
        // a slice is walked start, stop, step, and the references in it must
        // be met in the order their bytes stand in the frame.
        let keys: Vec<Option<&str>> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        if keys == [Some("__slice__"), Some("start"), Some("stop"), Some("step")] {
            Some(Value::slice(
                pairs[1].1.clone(),
                pairs[2].1.clone(),
                pairs[3].1.clone(),
            ))
        } else {
            None
        }
    } else {
        None
    };
    special.unwrap_or(Value::Map(pairs))
}

fn recognise_numpy(pairs: &[(Value, Value)]) -> Option<Value> {
    let typestr = bin_key(pairs, b"type")?.as_str()?;
    let Value::Bin(data) = bin_key(pairs, b"data")? else {
        return None;
    };
    let (dtype, order) = DType::parse(typestr).ok()?;
    match bin_key(pairs, b"nd")? {
        Value::Bool(true) if pairs.len() == 5 => {
            match bin_key(pairs, b"kind")? {
                Value::Bin(k) if k.is_empty() => {}
                _ => return None,
            }
            let Value::List(dims) = bin_key(pairs, b"shape")? else {
                return None;
            };
            let shape = dims
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<Vec<_>>>()?;
            let a = NdArray::new(dtype, order, shape, data.clone()).ok()?;
            // Keep the '<' of one-byte dtypes a peer may have written.
            (a.order() == order).then_some(Value::Array(a))
        }
        Value::Bool(false) if pairs.len() == 3 && data.len() == dtype.itemsize() => {
            Some(Value::Scalar(Scalar {
                dtype,
                order,
                data: data.clone(),
            }))
        }
        _ => None,
    }
}

fn recognise_complex(pairs: &[(Value, Value)]) -> Option<Value> {
    if pairs.len() != 2 || bin_key(pairs, b"complex")? != &Value::Bool(true) {
        return None;
    }
    let text = bin_key(pairs, b"data")?.as_str()?;
    let (re, im) = complex::parse(text)?;
    // Only take it when it prints back the same, so frames re-encode exactly.
    (complex::python_repr(re, im) == text).then_some(Value::Complex(re, im))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_large_bin_finds_the_array_data_in_a_response() {
        let mut data = vec![0u8; 3 << 20];
        data[0] = 0xab;
        let array = Value::map([
            ("nd", Value::Bool(true)),
            ("type", Value::Str("<f8".into())),
            ("shape", Value::List(vec![Value::UInt(3 << 17)])),
            ("small", Value::Bin(vec![1u8; 100].into())),
            ("data", Value::Bin(data.into())),
        ]);
        let frame = to_vec(&Value::map([
            ("type", Value::Str("success".into())),
            ("value", Value::List(vec![Value::Float(0.5), array])),
        ]))
        .unwrap();
        let at = first_large_bin(&frame, 1 << 20).expect("found");
        assert_eq!(frame[at], 0xab);
        assert_eq!(frame.len() - at, 3 << 20);
        // A prefix that reaches the bin's header is enough.
        assert_eq!(first_large_bin(&frame[..at], 1 << 20), Some(at));
        // Not when it stops before; nor in a value with no large bin; nor in garbage.
        assert_eq!(first_large_bin(&frame[..at - 3], 1 << 20), None);
        assert_eq!(first_large_bin(&frame, 4 << 20), None);
        assert_eq!(first_large_bin(&[0xc1, 0, 0], 1), None);
        assert_eq!(first_large_bin(&[0xdf, 0xff, 0xff, 0xff, 0xff], 1), None);
    }

    fn rt(v: Value) {
        let bytes = Bytes::from(to_vec(&v).unwrap());
        assert_eq!(from_bytes(&bytes).unwrap(), v);
    }

    #[test]
    fn scalars_round_trip() {
        for v in [
            Value::Nil,
            Value::Bool(true),
            Value::UInt(u64::MAX),
            Value::Int(i64::MIN),
            Value::Int(-33),
            Value::Float(1.5),
            Value::F32(2.5),
            Value::str("héllo"),
            Value::Complex(1.0, -2.0),
            Value::Proxy(ObjId(70000)),
            Value::slice(Value::UInt(1), Value::Nil, Value::Int(-1)),
        ] {
            rt(v);
        }
    }

    #[test]
    fn array_payload_is_shared_with_frame() {
        let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = NdArray::new(
            crate::DType::Float64,
            crate::ByteOrder::Little,
            vec![2, 2],
            Bytes::from(data),
        )
        .unwrap();
        let frame = Bytes::from(to_vec(&Value::Array(a.clone())).unwrap());
        let Value::Array(b) = from_bytes(&frame).unwrap() else {
            panic!("not an array")
        };
        assert_eq!(a, b);
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(
            range.contains(&(b.data().as_ptr() as usize)),
            "payload not copied"
        );
    }

    #[test]
    fn hostile_input_is_an_error() {
        for bad in [
            &[0xc1][..],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0xc6, 0xff, 0xff, 0xff, 0xff, 1],
            &[0xd9, 2, 0xff, 0xfe],
            &[0xd4, 1, 0],
            &[0x91],
            &[0xc0, 0xc0],
        ] {
            assert!(from_bytes(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        let deep = Bytes::from(vec![0x91u8; 100_000]);
        assert_eq!(from_bytes(&deep), Err(DecodeError::TooDeep));
        let mut many = vec![0xdd, 0xff, 0xff, 0xff, 0xff];
        many.resize(5 + MAX_VALUES + 1, 0xc0);
        assert_eq!(
            from_bytes(&Bytes::from(many)),
            Err(DecodeError::TooManyValues)
        );
    }

    #[test]
    fn handle_is_not_encodable() {
        assert_eq!(
            to_vec(&Value::Handle(crate::Handle(1))),
            Err(EncodeError::Handle)
        );
    }

    #[test]
    fn nesting_counts_as_the_decoder_does() {
        let nest = |mut v: Value, levels: usize| {
            for _ in 0..levels {
                v = Value::List(vec![Value::Nil, v]);
            }
            v
        };
        assert_eq!(nesting(&nest(Value::Nil, 200), 1000), 201);
        assert_eq!(
            nesting(&nest(Value::Nil, 200), 10),
            11,
            "counted up to the limit"
        );
        let array = |shape: Vec<usize>| {
            let n = shape.iter().product::<usize>();
            Value::Array(
                NdArray::new(
                    crate::DType::UInt8,
                    crate::ByteOrder::NotApplicable,
                    shape,
                    Bytes::from(vec![0u8; n]),
                )
                .unwrap(),
            )
        };
        let leaves = [
            Value::Nil,
            Value::List(Vec::new()),
            Value::map([("k", Value::Nil)]),
            Value::Map(vec![(Value::List(vec![Value::Nil]), Value::Nil)]),
            array(vec![2, 3]),
            array(Vec::new()),
            Value::Scalar(crate::value::Scalar {
                dtype: crate::DType::Int8,
                order: crate::ByteOrder::NotApplicable,
                data: Bytes::from_static(&[1]),
            }),
            Value::Complex(1.0, 2.0),
            Value::Proxy(ObjId(3)),
            Value::Proxy(ObjId::promise(3)),
            Value::slice(Value::Nil, Value::Nil, Value::Nil),
            Value::slice(Value::Nil, Value::List(vec![Value::Nil]), Value::Nil),
            Value::Raw(crate::RawValue::new(Bytes::from_static(&[0x91, 0x91, 0xc0])).unwrap()),
        ];
        for leaf in leaves {
            for levels in 120..MAX_DEPTH + 2 {
                let v = nest(leaf.clone(), levels);
                let fits = validate(&to_vec(&v).unwrap()).is_ok();
                assert_eq!(
                    nesting(&v, MAX_DEPTH) <= MAX_DEPTH,
                    fits,
                    "{leaf:?} at {levels}"
                );
            }
        }
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn exact_len_is_exact() {
        let arr = NdArray::new(
            crate::DType::Int32,
            crate::ByteOrder::Big,
            vec![2, 300],
            Bytes::from(vec![1u8; 2400]),
        )
        .unwrap();
        let scalar = Value::Scalar(crate::value::Scalar {
            dtype: crate::DType::Float32,
            order: crate::ByteOrder::Little,
            data: Bytes::from_static(&[0, 0, 0, 0]),
        });
        let mut values = vec![
            Value::Nil,
            Value::Bool(true),
            Value::Array(arr),
            scalar,
            Value::Complex(1.5, -2.0),
            Value::slice(Value::UInt(1), Value::Nil, Value::Int(-300)),
            Value::Proxy(ObjId(70000)),
            Value::Proxy(ObjId::promise(5)),
            Value::str("x".repeat(40)),
            Value::str("y".repeat(300)),
            Value::Bin(Bytes::from(vec![0u8; 70000])),
            Value::F32(1.0),
            Value::Float(2.0),
        ];
        for i in [
            0i64,
            127,
            128,
            255,
            256,
            65535,
            65536,
            1 << 40,
            -1,
            -32,
            -33,
            -128,
            -129,
            -40000,
            -(1 << 40),
        ] {
            values.push(Value::Int(i));
        }
        values.push(Value::List(
            (0..1000).map(Value::from).collect::<Vec<Value>>(),
        ));
        values.push(Value::map(
            (0..20).map(|i| (format!("k{i}"), Value::from(i))),
        ));
        values.push(Value::Tuple(vec![]));
        values.push(Value::Tuple((0..20).map(Value::from).collect()));
        for v in values {
            assert_eq!(exact_len(&v), to_vec(&v).unwrap().len(), "{v:?}");
        }
    }

    #[test]
    fn split_bins_takes_out_large_array_data_only() {
        let big = vec![7u8; 300 * 8];
        let arr = NdArray::new(
            crate::DType::Float64,
            crate::ByteOrder::Little,
            vec![300],
            Bytes::from(big.clone()),
        )
        .unwrap();
        let v = Value::List(vec![
            Value::Bin(Bytes::from(vec![1u8; 5000])),
            Value::map([("k", Value::Array(arr)), ("s", Value::str("x"))]),
            Value::UInt(70000),
            Value::Int(-5),
            Value::Float(1.5),
        ]);
        let data = to_vec(&v).unwrap();
        let (skeleton, bins) = split_bins(&data, 100).unwrap();
        assert_eq!(bins.len(), 1, "the plain bin stays");
        assert_eq!(&data[bins[0].clone()], big.as_slice());
        let mut expected = Vec::new();
        expected.extend_from_slice(&data[..bins[0].start - 3]);
        expected.extend_from_slice(&[0xd6, SPLIT_BIN_EXT as u8, 0, 0, 0, 0]);
        expected.extend_from_slice(&data[bins[0].end..]);
        assert_eq!(skeleton, expected);
        let (same, none) = split_bins(&data, 100_000).unwrap();
        assert_eq!((same, none.len()), (data.clone(), 0));
        assert!(split_bins(&[0xc1], 1).is_err());
    }

    /// A step result: `(obs, reward, terminated, truncated, info)`, with a
    /// tuple inside and a tuple as a map key.
    fn step_tuple(obs: NdArray) -> Value {
        Value::Tuple(vec![
            Value::Array(obs),
            Value::Float(0.5),
            Value::Bool(false),
            Value::Bool(true),
            Value::Map(vec![
                (
                    Value::Tuple(vec![1u8.into(), 2u8.into()]),
                    Value::str("key"),
                ),
                (Value::str("pos"), Value::Tuple(vec![Value::Tuple(vec![])])),
            ]),
        ])
    }

    #[test]
    fn tuples_travel_as_the_marker_only_when_asked() {
        let obs = NdArray::new(
            crate::DType::UInt8,
            crate::ByteOrder::NotApplicable,
            vec![300, 400],
            Bytes::from(vec![7u8; 120_000]),
        )
        .unwrap();
        let v = step_tuple(obs.clone());
        let marked = to_vec(&v).unwrap();
        assert_eq!(marked.len(), exact_len(&v));
        assert!(marked.len() <= encoded_len(&v));
        // The marker: a one-entry map, the str key, then the array.
        assert_eq!(&marked[..13], b"\x81\xa9__tuple__\x95\x85");
        let back = from_bytes(&Bytes::from(marked.clone())).unwrap();
        assert_eq!(back, v);
        assert_eq!(codec_nesting(&marked), nesting(&v, 1000));
        // Without the extension: plain arrays, never the marker.
        let mut plain = Vec::new();
        encode_with(&mut plain, &v, false).unwrap();
        assert!(!plain.windows(9).any(|w| w == b"__tuple__"));
        assert_eq!(
            plain.len(),
            marked.len() - 4 * 11,
            "four tuples, 11 bytes each"
        );
        let Value::List(items) = from_bytes(&Bytes::from(plain)).unwrap() else {
            panic!("a tuple without the extension is a list")
        };
        assert_eq!(items[0], Value::Array(obs));
        // A peer without the extension means a map by `{"__tuple__": [...]}`.
        let as_map = from_bytes_with(&Bytes::from(marked.clone()), false).unwrap();
        let Value::Map(pairs) = &as_map else {
            panic!("{as_map:?}")
        };
        assert_eq!(pairs[0].0, Value::str("__tuple__"));
        assert_eq!(
            to_vec(&as_map).unwrap(),
            marked,
            "and it goes back as it came"
        );
        // Look-alikes are maps even with the extension: two entries, a bin
        // key, a value that is not an array.
        for other in [
            Value::map([("__tuple__", Value::List(vec![])), ("x", Value::Nil)]),
            Value::Map(vec![(
                Value::Bin(Bytes::from_static(b"__tuple__")),
                Value::List(vec![]),
            )]),
            Value::map([("__tuple__", Value::UInt(3))]),
        ] {
            let bytes = Bytes::from(to_vec(&other).unwrap());
            assert_eq!(from_bytes(&bytes).unwrap(), other);
        }
    }

    fn codec_nesting(bytes: &[u8]) -> usize {
        let mut depth = 0;
        while decode_field_at_depth(bytes, depth) {
            depth += 1;
        }
        // `depth` is the first start depth that fails: a value of nesting n
        // decodes from start depth d while d + n - 1 <= MAX_DEPTH.
        MAX_DEPTH + 2 - depth
    }

    fn decode_field_at_depth(bytes: &[u8], depth: usize) -> bool {
        let mut d = Decoder::new(bytes, None);
        d.value(depth).is_ok()
    }

    #[test]
    fn large_arrays_in_a_tuple_are_found_and_split() {
        let obs = NdArray::new(
            crate::DType::Float64,
            crate::ByteOrder::Little,
            vec![128, 128],
            Bytes::from(vec![1u8; 128 * 128 * 8]),
        )
        .unwrap();
        let v = step_tuple(obs);
        let frame = to_vec(&Value::map([("type", Value::str("success")), ("value", v)])).unwrap();
        let at = first_large_bin(&frame[..200], 1 << 16).expect("found through the marker");
        assert_eq!(&frame[at - 5..at], &[0xc6, 0, 2, 0, 0]);
        let (skeleton, bins) = split_bins(&frame, 1 << 16).unwrap();
        assert_eq!(bins, vec![at..at + (1 << 17)]);
        assert!(skeleton.len() < 300);
    }
}
