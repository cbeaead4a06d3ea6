use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use ndarray::{array, Array0, Array1, Array2, Array3, ArrayD, Ix2};
use serde::{Deserialize, Serialize};

use super::*;
use crate::array::ByteOrder;
use crate::value::Scalar;

fn scalar<const N: usize>(dtype: DType, order: ByteOrder, data: [u8; N]) -> Value {
    Value::Scalar(Scalar {
        dtype,
        order,
        data: Bytes::copy_from_slice(&data),
    })
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Info {
    name: String,
    lives: Option<u8>,
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Step {
    obs: Array2<u8>,
    reward: f64,
    done: bool,
    info: Info,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Action {
    Noop,
    Move(i32),
    Turn(f32, f32),
    Jump { height: u16 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Pair(i32, String);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Meters(f64);

fn info() -> Info {
    Info {
        name: "cart".into(),
        lives: None,
        tags: vec!["a".into(), "b".into()],
    }
}

#[test]
fn structs_are_maps_with_str_keys_and_round_trip() {
    let v = to_value(&info()).unwrap();
    assert_eq!(
        v,
        Value::Map(vec![
            (Value::str("name"), Value::str("cart")),
            (Value::str("lives"), Value::Nil),
            (
                Value::str("tags"),
                Value::List(vec![Value::str("a"), Value::str("b")])
            ),
        ])
    );
    assert_eq!(from_value::<Info>(v).unwrap(), info());
    // Python sends the keys in any order, and may send more.
    let v = Value::map([
        ("tags", Value::List(vec![])),
        ("extra", Value::Nil),
        ("lives", Value::UInt(3)),
        ("name", Value::str("x")),
    ]);
    let i: Info = from_value(v).unwrap();
    assert_eq!(i.lives, Some(3));
}

#[test]
fn a_struct_with_arrays_round_trips_and_its_array_is_an_array_value() {
    let step = Step {
        obs: array![[1u8, 2, 3], [4, 5, 6]],
        reward: 0.5,
        done: false,
        info: info(),
    };
    let v = to_value(&step).unwrap();
    let Value::Array(obs) = v.get("obs").unwrap() else {
        panic!("obs is not an array: {:?}", v.get("obs"))
    };
    assert_eq!(obs.dtype(), DType::UInt8);
    assert_eq!(obs.shape(), &[2, 3]);
    assert_eq!(from_value::<Step>(v).unwrap(), step);
}

#[test]
fn enums_are_externally_tagged() {
    let cases = [
        (Action::Noop, Value::str("Noop")),
        (Action::Move(-3), Value::map([("Move", -3i32)])),
        (
            Action::Turn(0.5, 1.0),
            Value::map([("Turn", Value::Tuple(vec![Value::F32(0.5), Value::F32(1.0)]))]),
        ),
        (
            Action::Jump { height: 2 },
            Value::map([("Jump", Value::map([("height", 2u16)]))]),
        ),
    ];
    for (a, want) in cases {
        let v = to_value(&a).unwrap();
        assert_eq!(v, want);
        assert_eq!(from_value::<Action>(v).unwrap(), a);
    }
    // A tuple variant from a Python list.
    let v = Value::map([("Turn", Value::List(vec![Value::Float(1.0), Value::UInt(2)]))]);
    assert_eq!(from_value::<Action>(v).unwrap(), Action::Turn(1.0, 2.0));
    let err = from_value::<Action>(Value::str("Fly")).unwrap_err();
    assert!(err.to_string().contains("unknown variant `Fly`"), "{err}");
    let err = from_value::<Action>(Value::str("Move")).unwrap_err();
    assert!(err.to_string().contains("needs data"), "{err}");
    let err = from_value::<Action>(Value::map([("Move", "x")])).unwrap_err();
    assert_eq!(err.path(), "Move");
}

#[test]
fn options_tuples_newtypes_and_units() {
    assert_eq!(to_value(&None::<i32>).unwrap(), Value::Nil);
    assert_eq!(to_value(&Some(3u8)).unwrap(), Value::UInt(3));
    assert_eq!(from_value::<Option<u8>>(Value::Nil).unwrap(), None);
    assert_eq!(from_value::<Option<u8>>(Value::UInt(4)).unwrap(), Some(4));
    assert_eq!(to_value(&()).unwrap(), Value::Nil);
    from_value::<()>(Value::Nil).unwrap();
    assert!(from_value::<()>(Value::UInt(1)).is_err());

    let t = (1u8, "a".to_owned(), 2.5f64);
    let v = to_value(&t).unwrap();
    assert_eq!(
        v,
        Value::Tuple(vec![Value::UInt(1), Value::str("a"), Value::Float(2.5)])
    );
    assert_eq!(from_value::<(u8, String, f64)>(v.clone()).unwrap(), t);
    // Lists and tuples read alike.
    let Value::Tuple(items) = v else {
        unreachable!()
    };
    assert_eq!(
        from_value::<(u8, String, f64)>(Value::List(items)).unwrap(),
        t
    );
    let err = from_value::<(u8, u8)>(Value::List(vec![Value::UInt(1)])).unwrap_err();
    assert!(err.to_string().contains("invalid length 1"), "{err}");

    assert_eq!(
        to_value(&Pair(1, "x".into())).unwrap(),
        Value::Tuple(vec![Value::Int(1), Value::str("x")])
    );
    assert_eq!(
        from_value::<Pair>(Value::List(vec![Value::UInt(1), Value::str("x")])).unwrap(),
        Pair(1, "x".into())
    );
    assert_eq!(to_value(&Meters(2.0)).unwrap(), Value::Float(2.0));
    assert_eq!(from_value::<Meters>(Value::UInt(2)).unwrap(), Meters(2.0));
    // A struct from a Python tuple of its fields, in order.
    let v = Value::Tuple(vec![Value::str("n"), Value::Nil, Value::List(vec![])]);
    assert_eq!(from_value::<Info>(v).unwrap().name, "n");
}

#[test]
fn maps_and_sequences() {
    let mut m = BTreeMap::new();
    m.insert("a".to_owned(), vec![1i64, 2]);
    m.insert("b".to_owned(), vec![]);
    let v = to_value(&m).unwrap();
    assert_eq!(
        from_value::<BTreeMap<String, Vec<i64>>>(v.clone()).unwrap(),
        m
    );
    let h: HashMap<String, Vec<i64>> = v.try_into().unwrap();
    assert_eq!(h["a"], vec![1, 2]);
    // Integer keys.
    let v = Value::Map(vec![(Value::UInt(1), Value::str("x"))]);
    let h: HashMap<u32, String> = v.try_into().unwrap();
    assert_eq!(h[&1], "x");
    // The path names a map key.
    let v = Value::map([("a", Value::List(vec![Value::UInt(1), Value::str("no")]))]);
    let err = from_value::<HashMap<String, Vec<i64>>>(v).unwrap_err();
    assert_eq!(err.path(), "a.1");
    assert_eq!(err.to_string(), "a.1: expected i64, found string \"no\"");
}

#[test]
fn bytes_are_bin() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Blob {
        #[serde(with = "serde_bytes_like")]
        data: Vec<u8>,
    }
    // serde_bytes is not a dependency: the same thing by hand.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
            }
            d.deserialize_bytes(V)
        }
    }
    let b = Blob {
        data: vec![0, 1, 255],
    };
    let v = to_value(&b).unwrap();
    assert_eq!(
        v.get("data"),
        Some(&Value::Bin(Bytes::from_static(&[0, 1, 255])))
    );
    assert_eq!(from_value::<Blob>(v).unwrap(), b);
    // A plain Vec<u8> reads from Python bytes too.
    let v = Value::Bin(Bytes::from_static(b"hi"));
    assert_eq!(from_value::<Vec<u8>>(v.clone()).unwrap(), b"hi".to_vec());
    assert_eq!(Bytes::try_from(v).unwrap(), Bytes::from_static(b"hi"));
}

#[test]
fn numpy_scalars_read_as_numbers() {
    let i = scalar(DType::Int64, ByteOrder::Little, 7i64.to_le_bytes());
    let f = scalar(DType::Float32, ByteOrder::Big, 1.5f32.to_be_bytes());
    let u = scalar(DType::UInt8, ByteOrder::NotApplicable, [200]);
    let b = scalar(DType::Bool, ByteOrder::NotApplicable, [1]);
    let h = scalar(DType::Float16, ByteOrder::Little, [0x00, 0x3e]); // 1.5
    assert_eq!(i.as_i64(), Some(7));
    assert_eq!(i.as_u64(), Some(7));
    assert_eq!(i.as_f64(), Some(7.0));
    assert_eq!(f.as_f64(), Some(1.5));
    assert_eq!(f.as_i64(), None);
    assert_eq!(u.as_i64(), Some(200));
    assert_eq!(b.as_bool(), Some(true));
    assert_eq!(h.as_f64(), Some(1.5));
    assert_eq!(i64::try_from(i.clone()).unwrap(), 7);
    assert_eq!(f64::try_from(i.clone()).unwrap(), 7.0);
    assert_eq!(f32::try_from(f.clone()).unwrap(), 1.5);
    assert_eq!(u8::try_from(u.clone()).unwrap(), 200);
    assert!(bool::try_from(b).unwrap());
    let err = i8::try_from(u).unwrap_err();
    assert!(err.to_string().contains("200"), "{err}");
    let err = i64::try_from(f.clone()).unwrap_err();
    assert!(err.to_string().contains("expected i64"), "{err}");
    // A scalar is a 0-d array too.
    let a: Array0<i64> = i.try_into().unwrap();
    assert_eq!(a.into_scalar(), 7);
    let c = scalar(DType::Complex128, ByteOrder::Little, {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&1.0f64.to_le_bytes());
        d[8..].copy_from_slice(&(-2.0f64).to_le_bytes());
        d
    });
    assert_eq!(from_value::<(f64, f64)>(c).unwrap(), (1.0, -2.0));
    assert_eq!(
        from_value::<(f64, f64)>(Value::Complex(0.5, 1.0)).unwrap(),
        (0.5, 1.0)
    );
}

#[test]
fn primitives_and_strings() {
    assert_eq!(i32::try_from(Value::Int(-5)).unwrap(), -5);
    assert_eq!(u64::try_from(Value::UInt(u64::MAX)).unwrap(), u64::MAX);
    assert_eq!(f64::try_from(Value::UInt(2)).unwrap(), 2.0);
    assert_eq!(f32::try_from(Value::F32(0.25)).unwrap(), 0.25);
    assert_eq!(String::try_from(Value::str("x")).unwrap(), "x");
    assert!(bool::try_from(Value::Bool(true)).unwrap());
    let err = u8::try_from(Value::Int(-1)).unwrap_err();
    assert_eq!(err.to_string(), "expected u8, found integer `-1`");
    let err = String::try_from(Value::UInt(1)).unwrap_err();
    assert_eq!(err.to_string(), "expected a string, found integer `1`");
    let err = i64::try_from(Value::Proxy(crate::ObjId(3))).unwrap_err();
    assert!(err.to_string().contains("materialize it first"), "{err}");
    assert_eq!(
        to_value(&u128::from(u64::MAX)).unwrap(),
        Value::UInt(u64::MAX)
    );
    assert!(to_value(&u128::MAX).is_err());
    assert_eq!(to_value(&'x').unwrap(), Value::str("x"));
}

#[test]
fn vecs_and_tuples_via_try_from() {
    let v = Value::List(vec![Value::UInt(1), Value::Int(-2)]);
    let x: Vec<i64> = v.try_into().unwrap();
    assert_eq!(x, vec![1, -2]);
    let t: (i64, String) = Value::Tuple(vec![Value::UInt(1), Value::str("a")])
        .try_into()
        .unwrap();
    assert_eq!(t, (1, "a".into()));
    let err =
        <(i64, String)>::try_from(Value::Tuple(vec![Value::UInt(1), Value::UInt(2)])).unwrap_err();
    assert_eq!(err.path(), "1");
    // An array reads as a sequence (of rows), numbers of any dtype.
    let a = Value::from(array![[1i32, 2], [3, 4]]);
    let rows: Vec<Vec<f64>> = a.clone().try_into().unwrap();
    assert_eq!(rows, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    let rows: Vec<(i64, i64)> = a.try_into().unwrap();
    assert_eq!(rows, vec![(1, 2), (3, 4)]);
}

#[test]
fn ndarrays_of_any_dimension_and_their_errors() {
    let a3 = Array3::<f32>::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
    let v = Value::from(a3.clone());
    let back: Array3<f32> = v.clone().try_into().unwrap();
    assert_eq!(back, a3);
    let d: ArrayD<f32> = v.clone().try_into().unwrap();
    assert_eq!(d, a3.clone().into_dyn());
    // And through serde.
    assert_eq!(from_value::<Array3<f32>>(v.clone()).unwrap(), a3);
    assert_eq!(
        from_value::<ArrayD<f32>>(v.clone()).unwrap(),
        a3.clone().into_dyn()
    );

    let err = Array2::<f32>::try_from(v.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected a 2-d array of f32, found a 3-d array of shape [2, 3, 4]"
    );
    let err = Array3::<u8>::try_from(v.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected an array of u8, found an array of float32"
    );
    let err = Array1::<f32>::try_from(Value::List(vec![])).unwrap_err();
    assert_eq!(err.to_string(), "expected an array of f32, found list");
    let err = from_value::<Array2<f32>>(v.clone()).unwrap_err();
    assert!(err.to_string().contains("shape [2, 3, 4]"), "{err}");
    let err = from_value::<Array3<u8>>(v).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected an array of u8, found an array of float32"
    );

    // Big-endian data (from a peer of the other order) is swapped.
    let be = NdArray::new(
        DType::Int32,
        ByteOrder::Big,
        vec![2],
        Bytes::from_static(&[0, 0, 0, 1, 0, 0, 1, 0]),
    )
    .unwrap();
    let x: Array1<i32> = Value::Array(be.clone()).try_into().unwrap();
    assert_eq!(x, array![1, 256]);
    assert_eq!(
        from_value::<Array1<i32>>(Value::Array(be)).unwrap(),
        array![1, 256]
    );

    // A non-standard layout is copied into C order.
    let t = array![[1i64, 2, 3], [4, 5, 6]].reversed_axes();
    let back: Array2<i64> = Value::from(t.clone()).try_into().unwrap();
    assert_eq!(back, t);
    // Serialized through serde too (ndarray's own form becomes an array).
    let v = to_value(&t).unwrap();
    let Value::Array(nd) = &v else {
        panic!("{v:?}")
    };
    assert_eq!((nd.dtype(), nd.shape()), (DType::Int64, &[3usize, 2][..]));
    assert_eq!(Array2::<i64>::try_from(v).unwrap(), t);
    let e: Array1<f64> = Array1::from(vec![]);
    let v = to_value(&e).unwrap();
    assert!(matches!(&v, Value::Array(a) if a.is_empty()));
    assert_eq!(from_value::<Array1<f64>>(v).unwrap(), e);
}

#[test]
fn errors_name_the_path_of_the_field_that_did_not_fit() {
    #[derive(Deserialize, Debug)]
    struct Episode {
        #[allow(dead_code)]
        step: (u32, Step),
    }
    let obs = Value::from(array![[0.5f32]]);
    let step = Value::map([
        ("obs", obs),
        ("reward", Value::Float(1.0)),
        ("done", Value::Bool(false)),
        ("info", to_value(&info()).unwrap()),
    ]);
    let ep = Value::map([("step", Value::Tuple(vec![Value::UInt(1), step.clone()]))]);
    let err = from_value::<Episode>(ep).unwrap_err();
    assert_eq!(
        err.to_string(),
        "step.1.obs: expected an array of u8, found an array of float32"
    );
    assert_eq!(
        err.segments().cloned().collect::<Vec<_>>(),
        vec![
            PathSegment::Field("step".into()),
            PathSegment::Index(1),
            PathSegment::Field("obs".into())
        ]
    );
    assert_eq!(
        err.message(),
        "expected an array of u8, found an array of float32"
    );

    let Value::Map(mut pairs) = step else {
        unreachable!()
    };
    pairs[0].1 = Value::from(array![[1u8]]);
    pairs[3].1 = Value::map([("name", Value::UInt(3))]);
    let err = from_value::<Step>(Value::Map(pairs.clone())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "info.name: expected a string, found integer `3`"
    );
    pairs[3].1 = Value::map([("name", "x")]);
    let err = from_value::<Step>(Value::Map(pairs)).unwrap_err();
    assert_eq!(err.to_string(), "info: missing field `tags`");

    // Serializing names the path too.
    #[derive(Serialize)]
    struct Big {
        n: Vec<u128>,
    }
    let err = to_value(&Big {
        n: vec![0, u128::MAX],
    })
    .unwrap_err();
    assert_eq!(err.path(), "n.1");
}

#[test]
fn values_and_ndarrays_pass_through_without_a_copy() {
    #[derive(Serialize, Deserialize)]
    struct Raw {
        any: Value,
        arr: NdArray,
    }
    let nd = NdArray::from_vec(vec![4], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
    let ptr = nd.data().as_ptr();
    let any = Value::Tuple(vec![
        Value::Proxy(crate::ObjId(9)),
        Value::Complex(1.0, 2.0),
    ]);
    let v = to_value(&Raw {
        any: any.clone(),
        arr: nd.clone(),
    })
    .unwrap();
    let Some(Value::Array(a)) = v.get("arr") else {
        panic!()
    };
    assert_eq!(a.data().as_ptr(), ptr, "serialized without a copy");
    assert_eq!(v.get("any"), Some(&any));
    let back: Raw = from_value(v).unwrap();
    assert_eq!(back.arr.data().as_ptr(), ptr, "deserialized without a copy");
    assert_eq!(back.any, any);
    assert_eq!(from_value::<Value>(any.clone()).unwrap(), any);
    assert_eq!(to_value(&any).unwrap(), any);
    let nd2 = NdArray::try_from(Value::Array(nd)).unwrap();
    assert_eq!(nd2.data().as_ptr(), ptr);
    let err = from_value::<NdArray>(Value::UInt(1)).unwrap_err();
    assert_eq!(err.to_string(), "expected an ndarray, found int");
}

#[test]
fn from_ndarray_into_value_is_zero_copy() {
    let a = Array2::<f64>::zeros((3, 5).f());
    let b = Array2::<f64>::ones((3, 5));
    let ptr = b.as_ptr();
    let Value::Array(nd) = Value::from(b) else {
        unreachable!()
    };
    assert_eq!(nd.data().as_ptr().cast::<f64>(), ptr);
    let Value::Array(nd) = Value::from(a) else {
        unreachable!()
    };
    assert_eq!(nd.shape(), &[3, 5]);
    let _: ndarray::Array<f64, Ix2> = Value::Array(nd).try_into().unwrap();
}

use ndarray::ShapeBuilder as _;

#[test]
fn values_through_other_formats_and_serde_buffers() {
    // Through serde_json: structurally, and back without looping.
    let v = Value::map([
        (
            "a",
            Value::List(vec![Value::UInt(1), Value::Nil, Value::Float(0.5)]),
        ),
        ("b", Value::str("x")),
    ]);
    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(json, r#"{"a":[1,null,0.5],"b":"x"}"#);
    let back: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back, v);
    let a = Value::from(array![1u8, 2]);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r#"{"dtype":"uint8","shape":[2],"data":[1,2]}"#
    );

    // serde buffers values for untagged enums and flattened structs: a
    // Value inside still reads (structurally), and no path loops.
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Either {
        Num(i64),
        Other(Value),
    }
    assert_eq!(from_value::<Either>(Value::Int(3)).unwrap(), Either::Num(3));
    assert_eq!(
        from_value::<Either>(Value::str("s")).unwrap(),
        Either::Other(Value::str("s"))
    );
    #[derive(Deserialize, Serialize, Debug, PartialEq)]
    struct Outer {
        id: u32,
        #[serde(flatten)]
        rest: HashMap<String, Value>,
    }
    let v = Value::map([
        ("id", Value::UInt(1)),
        ("x", Value::List(vec![Value::Bool(true)])),
    ]);
    let o: Outer = from_value(v.clone()).unwrap();
    assert_eq!(o.id, 1);
    assert_eq!(o.rest["x"], Value::List(vec![Value::Bool(true)]));
    assert_eq!(to_value(&o).unwrap(), v);
}

#[test]
fn bool_and_complex_arrays() {
    let b = array![true, false, true];
    let v = to_value(&b).unwrap();
    let Value::Array(nd) = &v else {
        panic!("{v:?}")
    };
    assert_eq!(nd.dtype(), DType::Bool);
    assert_eq!(from_value::<Array1<bool>>(v.clone()).unwrap(), b);
    assert_eq!(Array1::<bool>::try_from(v).unwrap(), b);
    let bad = Value::Array(
        NdArray::new(
            DType::Bool,
            ByteOrder::NotApplicable,
            vec![1],
            Bytes::from_static(&[2]),
        )
        .unwrap(),
    );
    assert!(from_value::<Array1<bool>>(bad.clone()).is_err());
    assert!(Array1::<bool>::try_from(bad).is_err());

    use num_complex::Complex;
    let c = array![Complex::new(1.0f64, -1.0), Complex::new(0.5, 2.0)];
    let v = Value::from(c.clone());
    assert_eq!(Array1::<Complex<f64>>::try_from(v.clone()).unwrap(), c);
    // As rows: each element a (re, im) pair.
    assert_eq!(
        from_value::<Vec<(f64, f64)>>(v).unwrap(),
        vec![(1.0, -1.0), (0.5, 2.0)]
    );
}
