//! Property tests: values round-trip through the codec, and no frame,
//! however broken, makes a server session panic or fall silent.

#[allow(dead_code)]
mod common;

use proptest::prelude::*;
use simplerpc_core::{
    codec, message, ByteOrder, Bytes, DType, Extensions, NdArray, ObjId, Response, ServerSession,
    Value,
};

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY)
    ]
}

fn array() -> impl Strategy<Value = NdArray> {
    (
        0..DType::ALL.len(),
        prop::collection::vec(0usize..4, 0..4),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(d, shape, big, seed)| {
            let dtype = DType::ALL[d];
            let n: usize = shape.iter().product::<usize>() * dtype.itemsize();
            let data: Vec<u8> = (0..n)
                .map(|i| {
                    if dtype == DType::Bool {
                        (seed >> (i % 64)) as u8 & 1
                    } else {
                        (seed.wrapping_mul(i as u64 + 1) >> 7) as u8
                    }
                })
                .collect();
            let order = if dtype.itemsize() == 1 {
                ByteOrder::NotApplicable
            } else if big {
                ByteOrder::Big
            } else {
                ByteOrder::Little
            };
            NdArray::new(dtype, order, shape, Bytes::from(data)).unwrap()
        })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::UInt),
        (i64::MIN..0).prop_map(Value::Int),
        float().prop_map(Value::Float),
        any::<f32>()
            .prop_filter("no NaN", |f| !f.is_nan())
            .prop_map(Value::F32),
        ".{0,40}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Value::Bin(Bytes::from(b))),
        array().prop_map(Value::Array),
        (float(), float()).prop_map(|(a, b)| Value::Complex(a, b)),
        any::<u64>().prop_map(|i| Value::Proxy(ObjId(i))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..20).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Tuple),
            prop::collection::vec((inner.clone(), inner.clone()), 0..20).prop_map(Value::Map),
            (inner.clone(), inner.clone(), inner).prop_map(|(a, b, c)| Value::slice(a, b, c)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn values_round_trip(v in value()) {
        let bytes = Bytes::from(codec::to_vec(&v).unwrap());
        prop_assert!(bytes.len() <= codec::encoded_len(&v));
        let back = codec::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(codec::to_vec(&back).unwrap(), bytes.to_vec());
    }

    /// Without the tuple extension every tuple is written as a plain array:
    /// the value reads back with its tuples lists, and never holds the marker.
    #[test]
    fn tuples_are_arrays_for_a_peer_without_the_extension(v in value()) {
        let mut plain = Vec::new();
        codec::encode_with(&mut plain, &v, false).unwrap();
        prop_assert!(plain.len() <= codec::exact_len(&v));
        let back = codec::from_bytes_with(&Bytes::from(plain), false).unwrap();
        let mut want = v.clone();
        let _ = want.walk_mut(&mut |x: &mut Value| {
            if let Value::Tuple(items) = x {
                *x = Value::List(std::mem::take(items));
            }
            Ok::<(), ()>(())
        });
        prop_assert_eq!(back, want);
    }

    #[test]
    fn random_frames_get_one_response_each(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20)) {
        let mut s = ServerSession::new(common::registry().executor(), Extensions::ALL);
        for f in frames {
            let out = s.handle_frame(Bytes::from(f));
            prop_assert!(message::decode_response(&Bytes::from(out)).is_ok());
        }
        let ok = s.handle_frame(Bytes::from(message::encode_request(&simplerpc_core::Request::ImportModule { module: "sim".into() }, None, &[], Extensions::NONE).unwrap()));
        prop_assert!(matches!(message::decode_response(&Bytes::from(ok)).unwrap().response, Response::Object(_)));
    }

    #[test]
    fn mutated_golden_requests_never_panic(file in 0usize..33, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.starts_with("req_").then_some(n)
        }).collect();
        names.sort();
        let mut bytes = std::fs::read(dir.join(&names[file % names.len()])).unwrap();
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        let mut s = ServerSession::new(common::registry().executor(), Extensions::ALL);
        let out = s.handle_frame(Bytes::from(bytes));
        prop_assert!(message::decode_response(&Bytes::from(out)).is_ok());
    }
}
