//! Call arguments from Rust values: tuples of serde types, and keyword
//! arguments as pairs.

use serde::Serialize;

use super::{to_value, ConvertError};
use crate::value::Value;

/// The positional arguments of a call: a tuple of serde types (`(2, 5)`,
/// `(&step, "x")`; a [`Value`] or an `NdArray` passes as it is, without a
/// copy of its data), `()` for none, or a `Vec<Value>` built by hand.
///
/// ```
/// use simplerpc_core::{typed::IntoArgs, Value};
///
/// assert_eq!((2, "a").into_args().unwrap(), vec![Value::Int(2), Value::str("a")]);
/// assert_eq!(().into_args().unwrap(), vec![]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the positional arguments of a call",
    label = "not call arguments",
    note = "pass a tuple of serde types (`(2, 5)`, `(x,)` for one), `()` for none, or a `Vec<Value>`"
)]
pub trait IntoArgs {
    /// The arguments as values, or the first that cannot be one (its
    /// position in the error's path).
    fn into_args(self) -> Result<Vec<Value>, ConvertError>;
}

impl IntoArgs for Vec<Value> {
    fn into_args(self) -> Result<Vec<Value>, ConvertError> {
        Ok(self)
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Result<Vec<Value>, ConvertError> {
        Ok(Vec::new())
    }
}

macro_rules! args_tuple {
    ($(($($t:ident $i:tt),+)),*) => {$(
        impl<$($t: Serialize),+> IntoArgs for ($($t,)+) {
            fn into_args(self) -> Result<Vec<Value>, ConvertError> {
                Ok(vec![$(to_value(&self.$i).map_err(|e| e.at_index($i))?),+])
            }
        }
    )*};
}
args_tuple!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
);

/// The keyword arguments of a call: pairs of a name and a serde value, as
/// a `Vec` or an array (`[("seed", 3)]`) of one value type, or a tuple of
/// pairs (`(("seed", 3), ("name", "cart"))`); `()` for none.
///
/// ```
/// use simplerpc_core::{typed::IntoKwargs, Value};
///
/// let kw = (("seed", 3u8), ("name", "cart")).into_kwargs().unwrap();
/// assert_eq!(kw, vec![("seed".into(), Value::UInt(3)), ("name".into(), Value::str("cart"))]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the keyword arguments of a call",
    label = "not keyword arguments",
    note = "pass pairs of a name and a serde value: `[(\"seed\", 3)]`, `vec![(name, value)]`, a tuple of pairs `((\"a\", 1), (\"b\", \"x\"))`, or `()` for none"
)]
pub trait IntoKwargs {
    /// The keyword arguments as names and values, or the first that cannot
    /// be one (its name in the error's path).
    fn into_kwargs(self) -> Result<Vec<(String, Value)>, ConvertError>;
}

impl IntoKwargs for () {
    fn into_kwargs(self) -> Result<Vec<(String, Value)>, ConvertError> {
        Ok(Vec::new())
    }
}

fn kwarg<K: AsRef<str>, V: Serialize>(k: K, v: &V) -> Result<(String, Value), ConvertError> {
    let k = k.as_ref();
    Ok((k.to_owned(), to_value(v).map_err(|e| e.in_field(k))?))
}

impl<K: AsRef<str>, V: Serialize> IntoKwargs for Vec<(K, V)> {
    fn into_kwargs(self) -> Result<Vec<(String, Value)>, ConvertError> {
        self.into_iter().map(|(k, v)| kwarg(k, &v)).collect()
    }
}

impl<K: AsRef<str>, V: Serialize, const N: usize> IntoKwargs for [(K, V); N] {
    fn into_kwargs(self) -> Result<Vec<(String, Value)>, ConvertError> {
        self.into_iter().map(|(k, v)| kwarg(k, &v)).collect()
    }
}

macro_rules! kwargs_tuple {
    ($(($($k:ident $t:ident $i:tt),+)),*) => {$(
        impl<$($k: AsRef<str>, $t: Serialize),+> IntoKwargs for ($(($k, $t),)+) {
            fn into_kwargs(self) -> Result<Vec<(String, Value)>, ConvertError> {
                Ok(vec![$(kwarg(&self.$i.0, &self.$i.1)?),+])
            }
        }
    )*};
}
kwargs_tuple!(
    (KA A 0),
    (KA A 0, KB B 1),
    (KA A 0, KB B 1, KC C 2),
    (KA A 0, KB B 1, KC C 2, KD D 3),
    (KA A 0, KB B 1, KC C 2, KD D 3, KE E 4),
    (KA A 0, KB B 1, KC C 2, KD D 3, KE E 4, KF F 5)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::NdArray;
    use crate::element::NdArrayExt;

    #[test]
    fn tuples_and_pairs() {
        let nd = NdArray::from_vec(vec![2], vec![1u16, 2]).unwrap();
        let ptr = nd.data().as_ptr();
        let args = (1u8, Value::Array(nd), vec![1.5f64]).into_args().unwrap();
        assert_eq!(args[0], Value::UInt(1));
        let Value::Array(a) = &args[1] else { panic!() };
        assert_eq!(a.data().as_ptr(), ptr, "no copy");
        assert_eq!(args[2], Value::List(vec![Value::Float(1.5)]));
        let err = (1u8, u128::MAX).into_args().unwrap_err();
        assert_eq!(err.path(), "1");

        let kw = [("a", 1i32), ("b", 2)].into_kwargs().unwrap();
        assert_eq!(
            kw,
            vec![("a".into(), Value::Int(1)), ("b".into(), Value::Int(2))]
        );
        let kw = vec![("x".to_owned(), Value::Nil)].into_kwargs().unwrap();
        assert_eq!(kw, vec![("x".into(), Value::Nil)]);
        let err = (("ok", 1u8), ("big", u128::MAX)).into_kwargs().unwrap_err();
        assert_eq!(err.path(), "big");
        assert!(().into_kwargs().unwrap().is_empty());
    }
}
