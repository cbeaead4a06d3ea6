//! Registry functions that take and return serde types.

use serde::de::DeserializeOwned;
use serde::Serialize;
use simplerpc_core::executor::{ExecError, ExecResult};
use simplerpc_core::value::Value;
use simplerpc_core::{from_value, to_value};

use crate::convert::FromValue;
use crate::object::{IntoObject, Object};

/// A serde type as a registry function's argument or result: the argument
/// is read with [`simplerpc_core::from_value`] (a `TypeError` naming the
/// field that did not fit otherwise), the result written with
/// [`simplerpc_core::to_value`] (a struct goes to a Python client as a
/// `dict`, a tuple as a `tuple`, an `ndarray` array as a numpy array).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use simplerpc_registry::{Module, Serde};
///
/// #[derive(Deserialize)]
/// struct Config { seed: u64, name: String }
/// #[derive(Serialize)]
/// struct Reset { obs: Vec<f32>, info: String }
///
/// let m = Module::new("env").function("reset", |Serde(c): Serde<Config>| {
///     Serde(Reset { obs: vec![c.seed as f32; 4], info: c.name })
/// });
/// # let _ = m;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serde<T>(pub T);

impl<T> Serde<T> {
    /// The value inside.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Serde<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Serde<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: DeserializeOwned> FromValue for Serde<T> {
    const EXPECTED: &'static str = "a value of the declared type";
    fn from_value(v: Value) -> ExecResult<Self> {
        from_value(v)
            .map(Serde)
            .map_err(|e| ExecError::type_error(e.to_string()))
    }
}

impl<T: Serialize> IntoObject for Serde<T> {
    fn into_object(self) -> ExecResult<Object> {
        to_value(&self.0)
            .map(Object::Value)
            .map_err(|e| ExecError::type_error(format!("the result cannot be sent: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Serialize, Debug, PartialEq)]
    struct Config {
        seed: u64,
        sizes: Vec<u32>,
    }

    #[test]
    fn arguments_and_results_and_their_errors() {
        let v = Value::map([
            ("seed", Value::UInt(3)),
            ("sizes", Value::List(vec![Value::UInt(1)])),
        ]);
        let Serde(c) = Serde::<Config>::from_value(v.clone()).unwrap();
        assert_eq!(
            c,
            Config {
                seed: 3,
                sizes: vec![1]
            }
        );
        let Ok(Object::Value(back)) = Serde(c).into_object() else {
            panic!("not a value")
        };
        assert_eq!(back, v);

        let bad = Value::map([
            ("seed", Value::UInt(3)),
            ("sizes", Value::List(vec![Value::str("x")])),
        ]);
        let e = Serde::<Config>::from_value(bad).unwrap_err();
        assert_eq!(e.exception_type, "builtins.TypeError");
        assert_eq!(e.message, "sizes.0: expected u32, found string \"x\"");
        let Err(e) = Serde(u128::MAX).into_object() else {
            panic!("sent")
        };
        assert!(
            e.message.starts_with("the result cannot be sent"),
            "{}",
            e.message
        );
    }

    #[test]
    fn numpy_scalars_as_plain_arguments() {
        use simplerpc_core::{ByteOrder, Bytes, DType, Scalar};
        let int = Value::Scalar(Scalar {
            dtype: DType::Int64,
            order: ByteOrder::Little,
            data: Bytes::copy_from_slice(&300i64.to_le_bytes()),
        });
        assert_eq!(i64::from_value(int.clone()).unwrap(), 300);
        assert_eq!(f64::from_value(int.clone()).unwrap(), 300.0);
        let e = u8::from_value(int).unwrap_err();
        assert_eq!(e.exception_type, "builtins.OverflowError");
        let flag = Value::Scalar(Scalar {
            dtype: DType::Bool,
            order: ByteOrder::NotApplicable,
            data: Bytes::from_static(&[1]),
        });
        assert!(bool::from_value(flag).unwrap());
        let half = Value::Scalar(Scalar {
            dtype: DType::Float32,
            order: ByteOrder::Little,
            data: Bytes::copy_from_slice(&0.5f32.to_le_bytes()),
        });
        let e = i64::from_value(half).unwrap_err();
        assert_eq!(e.message, "expected int, got numpy scalar");
    }
}
