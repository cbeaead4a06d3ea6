//! Typed conversions between protocol [`Value`]s and Rust types, used by
//! registry functions for their arguments and results.

use bytes::Bytes;
use ndarray::Dimension;

use crate::array::{Element, NdArrayExt, NdView};
use simplerpc_core::executor::{ExecError, ExecResult};
use simplerpc_core::value::Value;
use simplerpc_core::{ArrayError, NdArray};

/// A Rust type a registry function can take as an argument.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a registry function's argument",
    label = "this argument type has no `FromValue`",
    note = "arguments may be primitives, String, Bytes, Vec<T>, tuples, Option<T>, Value, NdArray, ndarray arrays (ArrayD<T>, Array2<T>, ...); wrap a serde type as `Serde<{Self}>`"
)]
pub trait FromValue: Sized {
    /// What the type is called in error messages (`"int"`, `"list"`).
    const EXPECTED: &'static str;
    /// Convert, or say why not (a `TypeError`).
    fn from_value(v: Value) -> ExecResult<Self>;
}

fn mismatch(expected: &str, got: &Value) -> ExecError {
    ExecError::type_error(format!("expected {expected}, got {}", got.type_name()))
}

impl FromValue for Value {
    const EXPECTED: &'static str = "any value";
    fn from_value(v: Value) -> ExecResult<Self> {
        Ok(v)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            const EXPECTED: &'static str = "int";
            fn from_value(v: Value) -> ExecResult<Self> {
                let out = match &v {
                    Value::Int(i) => <$t>::try_from(*i).ok(),
                    Value::UInt(u) => <$t>::try_from(*u).ok(),
                    Value::Bool(b) => Some(*b as $t),
                    // A numpy integer scalar (`np.int64(3)`).
                    Value::Scalar(s) => match (s.as_i64(), s.as_u64()) {
                        (Some(i), _) => <$t>::try_from(i).ok(),
                        (None, Some(u)) => <$t>::try_from(u).ok(),
                        (None, None) => return Err(mismatch("int", &v)),
                    },
                    _ => return Err(mismatch("int", &v)),
                };
                out.ok_or_else(|| ExecError::new(
                    "builtins.OverflowError",
                    format!("{v:?} does not fit {}", stringify!($t)),
                ))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl FromValue for f64 {
    const EXPECTED: &'static str = "float";
    fn from_value(v: Value) -> ExecResult<Self> {
        // Floats, ints, and numpy float and int scalars.
        v.as_f64().ok_or_else(|| mismatch("float", &v))
    }
}

impl FromValue for f32 {
    const EXPECTED: &'static str = "float";
    fn from_value(v: Value) -> ExecResult<Self> {
        f64::from_value(v).map(|f| f as f32)
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "bool";
    fn from_value(v: Value) -> ExecResult<Self> {
        v.as_bool().ok_or_else(|| mismatch("bool", &v))
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "str";
    fn from_value(v: Value) -> ExecResult<Self> {
        match v {
            Value::Str(s) => Ok(s),
            other => Err(mismatch("str", &other)),
        }
    }
}

impl FromValue for Bytes {
    const EXPECTED: &'static str = "bytes";
    fn from_value(v: Value) -> ExecResult<Self> {
        match v {
            Value::Bin(b) => Ok(b),
            other => Err(mismatch("bytes", &other)),
        }
    }
}

impl FromValue for NdArray {
    const EXPECTED: &'static str = "ndarray";
    fn from_value(v: Value) -> ExecResult<Self> {
        match v {
            Value::Array(a) => Ok(a),
            other => Err(mismatch("ndarray", &other)),
        }
    }
}

impl<T: Element> FromValue for NdView<T> {
    const EXPECTED: &'static str = "ndarray";
    fn from_value(v: Value) -> ExecResult<Self> {
        let a = NdArray::from_value(v)?;
        // A copy is made only of data that cannot be read in place: as
        // large as the client decided.
        let in_place = a.view::<T>().is_ok();
        if !in_place {
            crate::alloc::check_alloc(a.data().len())?;
        }
        NdView::new(a).map_err(|e| match e {
            ArrayError::OutOfMemory(n) => crate::alloc::out_of_memory(n),
            e => ExecError::type_error(e.to_string()),
        })
    }
}

/// An `ndarray` array of any dimension (`ArrayD<T>`, `Array2<T>`, ...) from
/// an array of exactly `T`'s dtype and `D`'s number of dimensions.
impl<T: Element, D: Dimension> FromValue for ndarray::Array<T, D> {
    const EXPECTED: &'static str = "ndarray";
    fn from_value(v: Value) -> ExecResult<Self> {
        let a = NdArray::from_value(v)?;
        // A copy of the client's array: as large as the client decided.
        crate::alloc::check_alloc(a.data().len())?;
        if a.dtype() != T::DTYPE || D::NDIM.is_some_and(|n| n != a.shape().len()) {
            // The wrong dtype or dimensions: core's error says which.
            let e = ndarray::Array::<T, D>::try_from(Value::Array(a))
                .err()
                .map_or_else(|| "the wrong array".to_owned(), |e| e.to_string());
            return Err(ExecError::type_error(e));
        }
        let shape = a.shape().to_vec();
        a.to_ndarray::<T>()
            .map_err(|e| match e {
                ArrayError::OutOfMemory(n) => crate::alloc::out_of_memory(n),
                e => ExecError::type_error(e.to_string()),
            })?
            .into_dimensionality::<D>()
            .map_err(|_| ExecError::type_error(format!("an array of shape {shape:?}")))
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    const EXPECTED: &'static str = "list";
    fn from_value(v: Value) -> ExecResult<Self> {
        match v {
            Value::List(items) | Value::Tuple(items) => {
                items.into_iter().map(T::from_value).collect()
            }
            other => Err(mismatch("list", &other)),
        }
    }
}

/// A Rust tuple from a tuple, or from a list of the same length (what a
/// client without the `tuple` extension sends for a tuple).
macro_rules! from_tuple {
    ($(($n:expr; $($t:ident),+)),*) => {$(
        impl<$($t: FromValue),+> FromValue for ($($t,)+) {
            const EXPECTED: &'static str = "tuple";
            fn from_value(v: Value) -> ExecResult<Self> {
                match v {
                    Value::List(items) | Value::Tuple(items) if items.len() == $n => {
                        let mut it = items.into_iter();
                        Ok(($($t::from_value(it.next().unwrap_or(Value::Nil))?,)+))
                    }
                    other => Err(ExecError::type_error(format!(
                        "expected a tuple of {} items, got {}",
                        $n,
                        match &other {
                            Value::List(items) | Value::Tuple(items) => {
                                format!("{} of {} items", other.type_name(), items.len())
                            }
                            _ => other.type_name().to_owned(),
                        }
                    ))),
                }
            }
        }
    )*};
}
from_tuple!(
    (1; A),
    (2; A, B),
    (3; A, B, C),
    (4; A, B, C, D),
    (5; A, B, C, D, E),
    (6; A, B, C, D, E, F),
    (7; A, B, C, D, E, F, G),
    (8; A, B, C, D, E, F, G, H)
);

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = "value or None";
    fn from_value(v: Value) -> ExecResult<Self> {
        match v {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A Rust type a registry function can return as a plain value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a protocol value",
    label = "no `Into<Value>` for this type",
    note = "implement `From<{Self}> for Value`, or return a serde type as `Serde<{Self}>`"
)]
pub trait IntoValue {
    /// Convert into a protocol value.
    fn into_value(self) -> Value;
}

impl<T: Into<Value>> IntoValue for T {
    fn into_value(self) -> Value {
        self.into()
    }
}

/// An owned `ndarray` array as a result value (no copy in standard layout).
pub struct Array<T: Element, D: Dimension>(pub ndarray::Array<T, D>);

impl<T: Element, D: Dimension> From<Array<T, D>> for Value {
    fn from(a: Array<T, D>) -> Value {
        Value::Array(NdArray::from_array(a.0))
    }
}
