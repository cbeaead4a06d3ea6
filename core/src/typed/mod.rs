//! Typed values: Rust types to and from [`Value`]s.
//!
//! - Any serde type: [`to_value`] and [`from_value`] (a [`Value`] is itself
//!   `Serialize` and `Deserialize`, and passes through unchanged, so a
//!   struct may keep a field as a `Value` or an [`NdArray`] without a copy).
//! - `TryFrom<Value>` for primitives, `String`, `Vec<T>`, tuples, `HashMap`
//!   and `ndarray::Array<T, D>` of any dimension; `From<Array<T, D>>` for
//!   [`Value`].
//!
//! How Rust types map to values (what a Python peer sees):
//!
//! | Rust | value | Python |
//! |------|-------|--------|
//! | `bool`, integers, floats | `Bool`, `Int`/`UInt`, `F32`/`Float` | `bool`, `int`, `float` |
//! | `String`, `&str`, `char` | `Str` | `str` |
//! | `serde_bytes` bytes | `Bin` | `bytes` |
//! | `Option<T>` | `Nil` or the value | `None` or the value |
//! | `()`, unit struct | `Nil` | `None` |
//! | `Vec<T>`, slices, sets | `List` | `list` |
//! | tuples, tuple structs | `Tuple` | `tuple` (a `list` without the `tuple` extension) |
//! | structs | `Map` with `Str` keys | `dict` |
//! | maps | `Map` | `dict` |
//! | newtype structs | the inner value | |
//! | enums | externally tagged: a unit variant is its name (`"Left"`), any other variant a map of one entry, `{"Move": payload}` | |
//! | `ndarray::Array<T, D>` | `Array` (dtype from `T`) | `numpy.ndarray` |
//! | [`Value`], [`NdArray`] | themselves (no copy of array data) | |
//!
//! Reading is lenient where Python is: lists and tuples are read alike (a
//! tuple, a tuple struct or a struct from a list or tuple of its fields in
//! order), numpy scalars ([`Value::Scalar`]) are read as numbers, an
//! integer as a float, a 1-d or n-d array as a sequence (of rows), `bytes`
//! as a sequence of `u8`. An `ndarray::Array<T, D>` is read only from an
//! array of exactly `T`'s dtype and `D`'s dimension count.
//!
//! Errors ([`ConvertError`]) name the path of the value that did not fit:
//!
//! ```
//! use serde::Deserialize;
//! use simplerpc_core::{from_value, ndarray::Array1, Value};
//!
//! #[derive(Deserialize, Debug)]
//! struct Step { obs: Array1<u8>, reward: f64 }
//!
//! let obs = Value::from(Array1::from(vec![0.5f32, 1.5]));
//! let step = Value::map([("obs", obs), ("reward", Value::from(1.0))]);
//! let steps = Value::List(vec![Value::Nil, step]);
//! let err = from_value::<(Option<Step>, Step)>(steps).unwrap_err();
//! assert_eq!(err.to_string(), "1.obs: expected an array of u8, found an array of float32");
//! assert_eq!(err.path(), "1.obs");
//! ```

mod args;
mod de;
mod ser;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use bytes::Bytes;
use ndarray::{Array, Dimension, IxDyn};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::array::{ArrayError, ByteOrder, DType, NdArray};
use crate::element::{Element, NdArrayExt};
use crate::value::{Scalar, Value};

pub use args::{IntoArgs, IntoKwargs};
pub use de::ValueDeserializer;
pub use ser::ValueSerializer;

/// Convert any serde type into a [`Value`] (see the [module docs](self)
/// for the mapping).
///
/// ```
/// use serde::Serialize;
/// use simplerpc_core::{to_value, Value};
///
/// #[derive(Serialize)]
/// struct Point { x: i32, y: i32 }
///
/// let v = to_value(&Point { x: 1, y: -2 }).unwrap();
/// assert_eq!(v, Value::map([("x", 1i32), ("y", -2i32)]));
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ConvertError> {
    value.serialize(ValueSerializer)
}

/// Read a [`Value`] as any serde type (see the [module docs](self) for
/// what is accepted).
///
/// ```
/// use serde::Deserialize;
/// use simplerpc_core::{from_value, Value};
///
/// #[derive(Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
///
/// let v = Value::map([("x", 1i32), ("y", -2i32)]);
/// assert_eq!(from_value::<Point>(v).unwrap(), Point { x: 1, y: -2 });
/// // A Python tuple (or list) reads as a Rust tuple.
/// let t = Value::List(vec![Value::from(2u8), Value::str("a")]);
/// assert_eq!(from_value::<(u64, String)>(t).unwrap(), (2, "a".to_owned()));
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ConvertError> {
    T::deserialize(ValueDeserializer::new(value))
}

/// One step of the path to a value inside another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A struct field or a map key.
    Field(String),
    /// A position in a sequence or tuple.
    Index(usize),
}

/// A value that did not fit the Rust type asked for (or a Rust value that
/// has no protocol value), with the path to it: `1.obs` is field `obs` of
/// the second item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// Innermost first: segments are added as the error travels out.
    path: Vec<PathSegment>,
    message: String,
}

impl ConvertError {
    /// An error at the top (no path yet).
    pub fn new(message: impl Into<String>) -> ConvertError {
        ConvertError {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// What did not fit, without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path to the value that did not fit, dotted (`"step.1.obs"`);
    /// empty for the top value.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for (i, seg) in self.path.iter().rev().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match seg {
                PathSegment::Field(f) => out.push_str(f),
                PathSegment::Index(n) => out.push_str(&n.to_string()),
            }
        }
        out
    }

    /// The path as segments, outermost first.
    pub fn segments(&self) -> impl Iterator<Item = &PathSegment> {
        self.path.iter().rev()
    }

    /// The same error, inside field or key `name` of an outer value.
    pub fn in_field(mut self, name: impl Into<String>) -> ConvertError {
        self.path.push(PathSegment::Field(name.into()));
        self
    }

    /// The same error, at position `index` of an outer sequence.
    pub fn at_index(mut self, index: usize) -> ConvertError {
        self.path.push(PathSegment::Index(index));
        self
    }

    fn mismatch(expected: impl fmt::Display, found: &Value) -> ConvertError {
        ConvertError::new(format!("expected {expected}, found {}", describe(found)))
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path(), self.message)
        }
    }
}

impl std::error::Error for ConvertError {}

impl serde::de::Error for ConvertError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvertError::new(msg.to_string())
    }

    fn invalid_value(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        ConvertError::new(format!("expected {exp}, found {unexp}"))
    }

    fn invalid_type(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        ConvertError::new(format!("expected {exp}, found {unexp}"))
    }
}

impl serde::ser::Error for ConvertError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConvertError::new(msg.to_string())
    }
}

impl From<ArrayError> for ConvertError {
    fn from(e: ArrayError) -> Self {
        ConvertError::new(e.to_string())
    }
}

/// A value's kind for messages: `"str"`, `"an array of float32"`.
fn describe(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("an array of {}", a.dtype()),
        Value::Scalar(s) => format!("a numpy {} scalar", s.dtype),
        other => other.type_name().to_owned(),
    }
}

/// One number as a dtype holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    Float(f64),
    Complex(f64, f64),
}

/// IEEE half precision to f64.
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Read one item of `dtype` from `bytes` (exactly its item size) in `order`.
pub(crate) fn read_item(dtype: DType, order: ByteOrder, bytes: &[u8]) -> Num {
    let big = order == ByteOrder::Big;
    macro_rules! rd {
        ($t:ty) => {{
            let arr: [u8; std::mem::size_of::<$t>()] =
                bytes.try_into().expect("item size checked by the caller");
            if big {
                <$t>::from_be_bytes(arr)
            } else if order == ByteOrder::Little {
                <$t>::from_le_bytes(arr)
            } else {
                <$t>::from_ne_bytes(arr)
            }
        }};
    }
    match dtype {
        DType::Bool => Num::Bool(bytes[0] != 0),
        DType::Int8 => Num::Int(i64::from(rd!(i8))),
        DType::Int16 => Num::Int(i64::from(rd!(i16))),
        DType::Int32 => Num::Int(i64::from(rd!(i32))),
        DType::Int64 => Num::Int(rd!(i64)),
        DType::UInt8 => Num::UInt(u64::from(rd!(u8))),
        DType::UInt16 => Num::UInt(u64::from(rd!(u16))),
        DType::UInt32 => Num::UInt(u64::from(rd!(u32))),
        DType::UInt64 => Num::UInt(rd!(u64)),
        DType::Float16 => Num::Float(f16_to_f64(rd!(u16))),
        DType::Float32 => Num::F32(rd!(f32)),
        DType::Float64 => Num::Float(rd!(f64)),
        DType::Complex64 => {
            let (re, im) = bytes.split_at(4);
            let (Num::F32(re), Num::F32(im)) = (
                read_item(DType::Float32, order, re),
                read_item(DType::Float32, order, im),
            ) else {
                unreachable!("float32 halves")
            };
            Num::Complex(f64::from(re), f64::from(im))
        }
        DType::Complex128 => {
            let (re, im) = bytes.split_at(8);
            let (Num::Float(re), Num::Float(im)) = (
                read_item(DType::Float64, order, re),
                read_item(DType::Float64, order, im),
            ) else {
                unreachable!("float64 halves")
            };
            Num::Complex(re, im)
        }
    }
}

impl Scalar {
    /// The scalar's number, when its data is one item of its dtype.
    pub(crate) fn number(&self) -> Option<Num> {
        (self.data.len() == self.dtype.itemsize())
            .then(|| read_item(self.dtype, self.order, &self.data))
    }

    /// The scalar as a signed integer: an integer dtype whose value fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self.number()? {
            Num::Int(i) => Some(i),
            Num::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The scalar as an unsigned integer: a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self.number()? {
            Num::Int(i) => u64::try_from(i).ok(),
            Num::UInt(u) => Some(u),
            _ => None,
        }
    }

    /// The scalar as a float: float and integer dtypes.
    pub fn as_f64(&self) -> Option<f64> {
        match self.number()? {
            Num::Int(i) => Some(i as f64),
            Num::UInt(u) => Some(u as f64),
            Num::F32(f) => Some(f64::from(f)),
            Num::Float(f) => Some(f),
            Num::Bool(_) | Num::Complex(..) => None,
        }
    }

    /// The scalar as a bool, for a `bool` dtype.
    pub fn as_bool(&self) -> Option<bool> {
        match self.number()? {
            Num::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// An `ndarray` array as an [`Value::Array`]: no copy when it is in
/// standard (C) layout, one copy otherwise.
///
/// ```
/// use simplerpc_core::{ndarray::array, Value};
///
/// let v = Value::from(array![[1i64, 2], [3, 4]]);
/// let Value::Array(a) = &v else { unreachable!() };
/// assert_eq!(a.shape(), &[2, 2]);
/// ```
impl<T: Element, D: Dimension> From<Array<T, D>> for Value {
    fn from(a: Array<T, D>) -> Value {
        Value::Array(NdArray::from_array(a))
    }
}

/// An `ndarray` array from an [`Value::Array`] of exactly `T`'s dtype and
/// `D`'s number of dimensions (any, for `IxDyn`); a numpy scalar reads as a
/// 0-d array. One copy (byte-swapped if the sender's order is not ours).
///
/// ```
/// use simplerpc_core::{ndarray::{array, Array2}, Value};
///
/// let v = Value::from(array![[1i64, 2], [3, 4]]);
/// let a: Array2<i64> = v.clone().try_into().unwrap();
/// assert_eq!(a, array![[1, 2], [3, 4]]);
/// let err = Array2::<f32>::try_from(v).unwrap_err();
/// assert_eq!(err.to_string(), "expected an array of f32, found an array of int64");
/// ```
impl<T: Element, D: Dimension> TryFrom<Value> for Array<T, D> {
    type Error = ConvertError;

    fn try_from(v: Value) -> Result<Self, ConvertError> {
        let a = match v {
            Value::Array(a) => a,
            Value::Scalar(s) => NdArray::new(s.dtype, s.order, Vec::new(), s.data)?,
            other => {
                return Err(ConvertError::mismatch(
                    format_args!("an array of {}", element_name::<T>()),
                    &other,
                ))
            }
        };
        array_from(&a)
    }
}

/// The Rust name of an element type, for messages (`"f32"`).
pub(crate) fn element_name<T: Element>() -> &'static str {
    rust_name(T::DTYPE)
}

pub(crate) fn rust_name(d: DType) -> &'static str {
    match d {
        DType::Bool => "bool",
        DType::Int8 => "i8",
        DType::Int16 => "i16",
        DType::Int32 => "i32",
        DType::Int64 => "i64",
        DType::UInt8 => "u8",
        DType::UInt16 => "u16",
        DType::UInt32 => "u32",
        DType::UInt64 => "u64",
        DType::Float16 => "f16",
        DType::Float32 => "f32",
        DType::Float64 => "f64",
        DType::Complex64 => "Complex<f32>",
        DType::Complex128 => "Complex<f64>",
    }
}

fn array_from<T: Element, D: Dimension>(a: &NdArray) -> Result<Array<T, D>, ConvertError> {
    if a.dtype() != T::DTYPE {
        return Err(ConvertError::new(format!(
            "expected an array of {}, found an array of {}",
            element_name::<T>(),
            a.dtype()
        )));
    }
    if let Some(n) = D::NDIM {
        if n != a.shape().len() {
            return Err(ConvertError::new(format!(
                "expected a {n}-d array of {}, found a {}-d array of shape {:?}",
                element_name::<T>(),
                a.shape().len(),
                a.shape()
            )));
        }
    }
    let data = a.to_vec::<T>()?;
    let dyn_array = Array::from_shape_vec(IxDyn(a.shape()), data)
        .map_err(|e| ConvertError::new(e.to_string()))?;
    dyn_array
        .into_dimensionality::<D>()
        .map_err(|e| ConvertError::new(e.to_string()))
}

/// `TryFrom<Value>` through serde for the common types.
macro_rules! try_from_serde {
    ($($t:ty),*) => {$(
        impl TryFrom<Value> for $t {
            type Error = ConvertError;
            fn try_from(v: Value) -> Result<Self, ConvertError> {
                from_value(v)
            }
        }
    )*};
}
try_from_serde!(
    bool, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, String
);

/// A list or tuple (or an array, row by row), item by item.
impl<T: DeserializeOwned> TryFrom<Value> for Vec<T> {
    type Error = ConvertError;
    fn try_from(v: Value) -> Result<Self, ConvertError> {
        from_value(v)
    }
}

/// A map (a Python `dict`).
impl<K, V, S> TryFrom<Value> for HashMap<K, V, S>
where
    K: DeserializeOwned + Eq + Hash,
    V: DeserializeOwned,
    S: BuildHasher + Default,
{
    type Error = ConvertError;
    fn try_from(v: Value) -> Result<Self, ConvertError> {
        from_value(v)
    }
}

/// A Rust tuple from a tuple or a list of the same length.
macro_rules! try_from_tuple {
    ($(($($t:ident),+)),*) => {$(
        impl<$($t: DeserializeOwned),+> TryFrom<Value> for ($($t,)+) {
            type Error = ConvertError;
            fn try_from(v: Value) -> Result<Self, ConvertError> {
                from_value(v)
            }
        }
    )*};
}
try_from_tuple!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H)
);

/// Bytes (a `Bin` value, shared, no copy).
impl TryFrom<Value> for Bytes {
    type Error = ConvertError;
    fn try_from(v: Value) -> Result<Self, ConvertError> {
        match v {
            Value::Bin(b) => Ok(b),
            other => Err(ConvertError::mismatch("bytes", &other)),
        }
    }
}

/// The protocol array itself (no copy); a numpy scalar is a 0-d array.
impl TryFrom<Value> for NdArray {
    type Error = ConvertError;
    fn try_from(v: Value) -> Result<Self, ConvertError> {
        match v {
            Value::Array(a) => Ok(a),
            Value::Scalar(s) => Ok(NdArray::new(s.dtype, s.order, Vec::new(), s.data)?),
            other => Err(ConvertError::mismatch("an ndarray", &other)),
        }
    }
}

#[cfg(test)]
mod tests;
