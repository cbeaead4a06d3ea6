//! The value model: everything the protocol can carry.
//!
//! [`Value`] mirrors what the reference implementation puts on the wire with
//! msgpack and msgpack-numpy. Byte payloads ([`Value::Bin`], array and scalar
//! data) are [`Bytes`], so a value decoded from a frame shares the frame's
//! buffer instead of copying out of it.

use bytes::Bytes;

use crate::array::{ByteOrder, DType, NdArray};
use crate::codec::{self, DecodeError};

/// A protocol object id: the number a server session hands its client for one
/// object the executor holds. Allocated by the server only, counting from 0.
///
/// With the `promise` extension an `ObjId` may instead name a *promise*: the
/// object that request `n` of the connection returns, before its answer has
/// arrived ([`ObjId::promise`]). Promises have [`ObjId::PROMISE_BIT`] set, a
/// range a server never allocates, and travel as `{"__rpc_promise__": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjId(pub u64);

impl ObjId {
    /// The bit that marks a promise. Ids from the wire never have it: the
    /// codec refuses such ints as object ids.
    pub const PROMISE_BIT: u64 = 1 << 63;

    /// The object request `request` will return (see the `promise` extension).
    pub fn promise(request: u64) -> ObjId {
        ObjId(Self::PROMISE_BIT | (request & !Self::PROMISE_BIT))
    }

    /// The request whose result this names, when it is a promise.
    pub fn as_promise(self) -> Option<u64> {
        (self.0 & Self::PROMISE_BIT != 0).then_some(self.0 & !Self::PROMISE_BIT)
    }
}

/// An executor's own handle for an object it holds. Opaque to the protocol;
/// the server session maps [`ObjId`]s to handles and never sends a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub u64);

/// One protocol value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// msgpack nil (Python `None`).
    Nil,
    /// msgpack bool.
    Bool(bool),
    /// A signed integer (negative values, and non-negative values that fit `i64`
    /// when built by hand). The codec always picks the smallest msgpack encoding.
    Int(i64),
    /// An unsigned integer; the decoder produces this for every non-negative
    /// msgpack integer, so the full `u64` range survives.
    UInt(u64),
    /// A msgpack float32 (Python never sends one, other peers may).
    F32(f32),
    /// A msgpack float64 (Python `float`, and numpy `float64` scalars).
    Float(f64),
    /// msgpack str: UTF-8 text.
    Str(String),
    /// msgpack bin: bytes, shared with the frame they were decoded from.
    Bin(Bytes),
    /// msgpack array (Python lists, and tuples from a peer that did not
    /// negotiate the `tuple` extension).
    List(Vec<Value>),
    /// A tuple (the `tuple` extension): travels as the marker map
    /// `{"__tuple__": [items...]}` when the connection negotiated `tuple`,
    /// else as a plain msgpack array (a stock peer never sees the marker).
    /// Decoded from the marker only on a connection that negotiated it.
    Tuple(Vec<Value>),
    /// msgpack map with keys of any type, in wire order.
    Map(Vec<(Value, Value)>),
    /// A numeric n-d array in msgpack-numpy form.
    Array(NdArray),
    /// A numpy scalar other than `float64` (`np.float32(1.5)`, `np.int64(3)`).
    Scalar(Scalar),
    /// A Python `complex`, travelling as `{b"complex": true, b"data": "(re+imj)"}`.
    Complex(f64, f64),
    /// A Python `slice`.
    Slice(Box<Slice>),
    /// A reference to an object on the server, inside call arguments or keys.
    Proxy(ObjId),
    /// Server side only: the executor handle a [`Value::Proxy`] resolved to.
    /// Never decoded from or encoded into a frame.
    Handle(Handle),
    /// A value given as its msgpack encoding, already checked: written into a
    /// frame byte for byte. The decoder never produces it; hosts that hold
    /// their values as msgpack (C, Python) answer with it.
    Raw(RawValue),
}

/// One msgpack value, checked once ([`codec::validate`]) and then passed on
/// as it is, never decoded and encoded again. Two are equal when their bytes are.
#[derive(Clone)]
pub struct RawValue(RawRepr);

impl PartialEq for RawValue {
    fn eq(&self, other: &RawValue) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

#[derive(Clone)]
enum RawRepr {
    /// Bytes shared with the frame (or buffer) they came in.
    Shared(Bytes),
    /// [`RawValue::FRAME_ROOM`] bytes of room, then the value: a response
    /// frame is written around it without moving it.
    Framed(Vec<u8>),
    /// Buffers that make the value when joined, large ones (an array's own
    /// memory) spliced into a frame rather than copied; joined only if
    /// someone asks for the bytes in one piece.
    Parts(Vec<Bytes>, std::sync::OnceLock<Vec<u8>>),
}

/// An empty buffer with room for a frame around `len` bytes of value: the
/// header in front ([`RawValue::FRAME_ROOM`]) and the request-id field
/// behind. Fallible: an executor's answer too large for the memory left is
/// an error, not an abort.
fn frame_buffer(len: usize) -> Result<Vec<u8>, DecodeError> {
    let room = len
        .checked_add(RawValue::FRAME_ROOM + 12)
        .ok_or(DecodeError::OutOfMemory(usize::MAX))?;
    let mut v = Vec::new();
    v.try_reserve_exact(room)
        .map_err(|_| DecodeError::OutOfMemory(room))?;
    Ok(v)
}

impl RawValue {
    /// Room kept in front of a value copied in by [`RawValue::copy_from_slice`]:
    /// exactly the header of a success response carrying a value
    /// (`{"type": "success", "value": ` as fixmap, fixstr, fixstr, fixstr).
    pub const FRAME_ROOM: usize = 20;

    /// Check `bytes` and keep them as they are.
    pub fn new(bytes: Bytes) -> Result<RawValue, DecodeError> {
        codec::validate(&bytes)?;
        Ok(RawValue(RawRepr::Shared(bytes)))
    }

    /// Bytes already checked (a field of a frame the decoder read).
    pub(crate) fn trusted(bytes: Bytes) -> RawValue {
        RawValue(RawRepr::Shared(bytes))
    }

    /// Check borrowed bytes and copy them once, into a buffer that becomes
    /// the response frame carrying them (no further copy when a server
    /// session sends it as a `materialize` result).
    pub fn copy_from_slice(data: &[u8]) -> Result<RawValue, DecodeError> {
        codec::validate(data)?;
        // Room for the header in front and the request-id field behind.
        let mut v = frame_buffer(data.len())?;
        v.resize(Self::FRAME_ROOM, 0);
        v.extend_from_slice(data);
        Ok(RawValue(RawRepr::Framed(v)))
    }

    /// As [`RawValue::copy_from_slice`], for a value given in parts (say a
    /// header and an array's own memory): each part is copied once, straight
    /// into the buffer that becomes the frame, never joined first; the whole
    /// is checked there.
    pub fn copy_from_parts(parts: &[&[u8]]) -> Result<RawValue, DecodeError> {
        RawValue::copy_from_parts_into(parts, None)
    }

    /// As [`RawValue::copy_from_parts`], building the frame in `spare` (a
    /// frame written earlier, see [`Executor::recycle`](crate::Executor::recycle))
    /// when it is about the size the value needs; else in a new buffer.
    pub fn copy_from_parts_into(
        parts: &[&[u8]],
        spare: Option<Vec<u8>>,
    ) -> Result<RawValue, DecodeError> {
        let len = parts
            .iter()
            .try_fold(0usize, |n, p| n.checked_add(p.len()))
            .ok_or(DecodeError::OutOfMemory(usize::MAX))?;
        let need = len.saturating_add(Self::FRAME_ROOM + 12);
        let mut v = crate::message::spare_for(&mut { spare }, need);
        v.clear();
        if v.try_reserve_exact(need).is_err() {
            return Err(DecodeError::OutOfMemory(need));
        }
        v.resize(Self::FRAME_ROOM, 0);
        for part in parts {
            v.extend_from_slice(part);
        }
        codec::validate(&v[Self::FRAME_ROOM..])?;
        Ok(RawValue(RawRepr::Framed(v)))
    }

    /// A value given in parts that are kept as they are (say a header and
    /// an array's memory lent by its owner): a response frame carrying it
    /// splices each large part in (see [`crate::message::OutFrame`]), so the
    /// value is never copied. Checked without joining the parts: a part of
    /// [`codec::SPLICE_MIN`] bytes or more that is exactly the payload of a
    /// bin (the usual case) is not looked at, as no bin payload is; other
    /// parts are copied aside for the check.
    pub fn from_parts(parts: Vec<Bytes>) -> Result<RawValue, DecodeError> {
        let mut skeleton = Vec::new();
        for p in &parts {
            let n = p.len();
            let header = u32::try_from(n).ok().map(|n| {
                let mut h = [0xc6, 0, 0, 0, 0];
                h[1..].copy_from_slice(&n.to_be_bytes());
                h
            });
            match header {
                Some(h) if n >= codec::SPLICE_MIN && skeleton.ends_with(&h) => {
                    // The bin's payload: checked as an empty one.
                    skeleton.truncate(skeleton.len() - h.len());
                    skeleton.extend_from_slice(&[0xc4, 0]);
                }
                _ => {
                    if skeleton.try_reserve(n).is_err() {
                        return Err(DecodeError::OutOfMemory(n));
                    }
                    skeleton.extend_from_slice(p);
                }
            }
        }
        codec::validate(&skeleton)?;
        Ok(RawValue(RawRepr::Parts(parts, std::sync::OnceLock::new())))
    }

    /// The parts, when the value was made by [`RawValue::from_parts`].
    pub(crate) fn parts(&self) -> Option<&[Bytes]> {
        match &self.0 {
            RawRepr::Parts(parts, _) => Some(parts),
            _ => None,
        }
    }

    /// The msgpack bytes (a value in parts is joined, once, for this).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            RawRepr::Shared(b) => b,
            RawRepr::Framed(v) => &v[Self::FRAME_ROOM..],
            RawRepr::Parts(parts, joined) => joined.get_or_init(|| parts.concat()),
        }
    }

    /// Length of the msgpack bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            RawRepr::Parts(parts, _) => parts.iter().map(|p| p.len()).sum(),
            _ => self.as_bytes().len(),
        }
    }

    /// Whether there are no bytes (never, for a checked value).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decode into a [`Value`] (bin data shares the bytes when they are shared).
    pub fn decode(&self) -> Result<Value, DecodeError> {
        match &self.0 {
            RawRepr::Shared(b) => codec::from_bytes(b),
            RawRepr::Framed(v) => {
                codec::from_bytes(&Bytes::copy_from_slice(&v[Self::FRAME_ROOM..]))
            }
            RawRepr::Parts(..) => codec::from_bytes(&Bytes::copy_from_slice(self.as_bytes())),
        }
    }

    /// The buffer with room in front, when this value was copied in by
    /// [`RawValue::copy_from_slice`].
    pub(crate) fn into_framed(self) -> Result<Vec<u8>, RawValue> {
        match self.0 {
            RawRepr::Framed(v) => Ok(v),
            shared => Err(RawValue(shared)),
        }
    }
}

impl std::fmt::Debug for RawValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawValue({} bytes)", self.len())
    }
}

/// A Python `slice(start, stop, step)`; each part is usually nil or an integer.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// `slice.start`
    pub start: Value,
    /// `slice.stop`
    pub stop: Value,
    /// `slice.step`
    pub step: Value,
}

/// A numpy scalar: a dtype and its item bytes in the dtype's byte order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The scalar's dtype.
    pub dtype: DType,
    /// Byte order marker as numpy wrote it.
    pub order: ByteOrder,
    /// The item's bytes (`dtype.itemsize()` of them).
    pub data: Bytes,
}

impl Value {
    /// Text value from anything string-like.
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(s.into())
    }

    /// A map from `(key, value)` pairs.
    pub fn map<K: Into<Value>, V: Into<Value>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// A slice value.
    pub fn slice(start: Value, stop: Value, step: Value) -> Self {
        Value::Slice(Box::new(Slice { start, stop, step }))
    }

    /// The value as a signed integer, if it is an integer that fits (numpy
    /// integer scalars, as `np.add` returns, included).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            Value::Scalar(s) => s.as_i64(),
            _ => None,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer
    /// (numpy integer scalars included).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::UInt(u) => Some(*u),
            Value::Scalar(s) => s.as_u64(),
            _ => None,
        }
    }

    /// The value as a float: floats, and integers converted (numpy float
    /// and integer scalars included).
    ///
    /// ```
    /// use simplerpc_core::{Bytes, ByteOrder, DType, Scalar, Value};
    ///
    /// // np.int64(7), as `np.add(3, 4)` returns it.
    /// let v = Value::Scalar(Scalar {
    ///     dtype: DType::Int64,
    ///     order: ByteOrder::Little,
    ///     data: Bytes::copy_from_slice(&7i64.to_le_bytes()),
    /// });
    /// assert_eq!(v.as_i64(), Some(7));
    /// assert_eq!(v.as_f64(), Some(7.0));
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::F32(f) => Some(f64::from(*f)),
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Scalar(s) => s.as_f64(),
            _ => None,
        }
    }

    /// The value as text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool (a numpy `bool_` scalar included).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Scalar(s) => s.as_bool(),
            _ => None,
        }
    }

    /// Look a string key up in a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::F32(_) | Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Map(_) => "map",
            Value::Array(_) => "ndarray",
            Value::Scalar(_) => "numpy scalar",
            Value::Complex(..) => "complex",
            Value::Slice(_) => "slice",
            Value::Proxy(_) => "proxy",
            Value::Handle(_) => "handle",
            Value::Raw(_) => "msgpack",
        }
    }

    /// Visit every value nested in this one (this one included), in the
    /// order they are encoded.
    pub fn walk<E>(&self, f: &mut impl FnMut(&Value) -> Result<(), E>) -> Result<(), E> {
        f(self)?;
        match self {
            Value::List(items) | Value::Tuple(items) => items.iter().try_for_each(|v| v.walk(f)),
            Value::Map(pairs) => pairs.iter().try_for_each(|(k, v)| {
                k.walk(f)?;
                v.walk(f)
            }),
            Value::Slice(s) => [&s.start, &s.stop, &s.step]
                .into_iter()
                .try_for_each(|v| v.walk(f)),
            _ => Ok(()),
        }
    }

    /// Visit every value nested in this one (this one included), mutably.
    pub fn walk_mut<E>(
        &mut self,
        f: &mut impl FnMut(&mut Value) -> Result<(), E>,
    ) -> Result<(), E> {
        f(self)?;
        match self {
            Value::List(items) | Value::Tuple(items) => {
                for v in items {
                    v.walk_mut(f)?;
                }
            }
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    k.walk_mut(f)?;
                    v.walk_mut(f)?;
                }
            }
            Value::Slice(s) => {
                s.start.walk_mut(f)?;
                s.stop.walk_mut(f)?;
                s.step.walk_mut(f)?;
            }
            _ => {}
        }
        Ok(())
    }
}

macro_rules! from_int {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Self { Value::$v(x.into()) }
        }
    )*};
}
from_int!(i8 => Int, i16 => Int, i32 => Int, i64 => Int, u8 => UInt, u16 => UInt, u32 => UInt, u64 => UInt);

impl From<usize> for Value {
    fn from(x: usize) -> Self {
        Value::UInt(x as u64)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<f32> for Value {
    fn from(f: f32) -> Self {
        Value::Float(f as f64)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bin(b)
    }
}
impl From<NdArray> for Value {
    fn from(a: NdArray) -> Self {
        Value::Array(a)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Nil
    }
}

/// Rust tuples become [`Value::Tuple`] (a tuple on the other side with the
/// `tuple` extension, a list for a peer without it).
macro_rules! from_tuple {
    ($(($($t:ident $i:tt),+)),*) => {$(
        impl<$($t: Into<Value>),+> From<($($t,)+)> for Value {
            fn from(t: ($($t,)+)) -> Self {
                Value::Tuple(vec![$(t.$i.into()),+])
            }
        }
    )*};
}
from_tuple!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
);
