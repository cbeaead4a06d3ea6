//! Golden frames made by the stock `simplerpyc` 0.0.1a3 (see tests/golden/generate.py):
//! each must decode, and re-encode to the very same bytes.

use simplerpc_registry::NdArrayExt;
use std::path::PathBuf;

use simplerpc_core::codec;
use simplerpc_core::message::{self, FrameError};
use simplerpc_core::{Bytes, DType, Extensions, ObjId, Request, Response, Value};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn frame(name: &str) -> Bytes {
    Bytes::from(std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// `(file, kind)` pairs from manifest.json, read without a JSON dependency.
fn manifest() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    let field = |chunk: &str, key: &str| -> String {
        let at = chunk.find(&format!("\"{key}\": \"")).unwrap() + key.len() + 5;
        chunk[at..].split('"').next().unwrap().to_owned()
    };
    text.split('{')
        .filter(|c| c.contains("\"file\""))
        .map(|c| (field(c, "file"), field(c, "kind")))
        .collect()
}

#[test]
fn every_golden_frame_round_trips_byte_for_byte() {
    let entries = manifest();
    assert!(
        entries.len() > 400,
        "manifest lists {} frames",
        entries.len()
    );
    let mut counts = [0usize; 3];
    for (file, kind) in &entries {
        let bytes = frame(file);
        let again = match kind.as_str() {
            "request" => match message::decode_request(&bytes) {
                Ok(r) => {
                    counts[0] += 1;
                    message::encode_request(&r.request, r.id, &r.release, Extensions::NONE).unwrap()
                }
                Err(FrameError::UnknownType(_)) | Err(FrameError::MissingField { .. })
                    if file.contains("unknown_type") || file.contains("missing_fields") =>
                {
                    continue
                }
                Err(e) => panic!("{file}: {e}"),
            },
            "response" => {
                counts[1] += 1;
                let r = message::decode_response(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
                message::encode_response(&r, Extensions::NONE).unwrap()
            }
            "value" => {
                counts[2] += 1;
                let v = codec::from_bytes(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
                codec::to_vec(&v).unwrap()
            }
            other => panic!("unknown kind {other}"),
        };
        assert!(again == bytes[..], "{file} re-encodes differently");
    }
    assert!(counts.iter().all(|&c| c > 20), "{counts:?}");
}

fn value(name: &str) -> Value {
    codec::from_bytes(&frame(name)).unwrap()
}

#[test]
fn arrays_decode_to_the_numbers_numpy_wrote() {
    let Value::Array(a) = value("val_ndarray_i4be_5.msgpack") else {
        panic!()
    };
    assert_eq!(a.dtype(), DType::Int32);
    assert_eq!(
        a.to_vec::<i32>().unwrap(),
        vec![i32::MIN, -1, 0, 1, i32::MAX]
    );
    let Value::Array(a) = value("val_ndarray_f8le_2x3x4.msgpack") else {
        panic!()
    };
    assert_eq!(a.shape(), &[2, 3, 4]);
    let v = a.to_ndarray::<f64>().unwrap();
    assert_eq!(v[[0, 0, 0]], -6.0);
    assert_eq!(v[[1, 2, 3]], 5.5);
    // Every numeric dtype in both byte orders is recognised as an array.
    for (file, _) in manifest() {
        if file.starts_with("val_ndarray_")
            && !["bytes", "unicode", "struct", "datetime", "timedelta", "U5"]
                .iter()
                .any(|s| file.contains(s))
        {
            assert!(matches!(value(&file), Value::Array(_)), "{file}");
        }
    }
    // Non-numeric dtypes stay plain maps, and re-encode unchanged.
    assert!(matches!(
        value("val_ndarray_struct_simple.msgpack"),
        Value::Map(_)
    ));
}

#[test]
fn scalars_complex_and_markers() {
    let Value::Scalar(s) = value("val_npscalar_float32.msgpack") else {
        panic!()
    };
    assert_eq!(s.dtype, DType::Float32);
    assert_eq!(s.data.as_ref(), 1.5f32.to_le_bytes());
    assert_eq!(value("val_complex_1p2j.msgpack"), Value::Complex(1.0, 2.0));
    let r = message::decode_request(&frame("req_call_proxy_refs.msgpack")).unwrap();
    let Request::Call {
        obj_id,
        args,
        kwargs,
        ..
    } = r.request
    else {
        panic!()
    };
    assert_eq!(obj_id, Some(ObjId(16)));
    assert_eq!(args[0], Value::Proxy(ObjId(12)));
    assert_eq!(kwargs[1].0, "t");
    let r = message::decode_request(&frame("req_getitem_tuple_slices.msgpack")).unwrap();
    let Request::GetItem {
        key: Value::List(k),
        ..
    } = r.request
    else {
        panic!()
    };
    assert_eq!(
        k[0],
        Value::slice(Value::UInt(1), Value::UInt(3), Value::Nil)
    );
}

#[test]
fn error_responses() {
    let r = message::decode_response(&frame("resp_error_getattr_missing.msgpack")).unwrap();
    let Response::Error(e) = r.response else {
        panic!()
    };
    assert_eq!(e.exception_type, "builtins.AttributeError");
    assert!(e.traceback.contains("Traceback"));
    assert!(e.payload.is_some());
    let r = message::decode_response(&frame("resp_unknown_type.msgpack")).unwrap();
    let Response::Error(e) = r.response else {
        panic!()
    };
    assert!(e.brief && e.message.starts_with("Unknown message type"));
}
