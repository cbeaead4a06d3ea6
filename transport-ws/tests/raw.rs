//! Requests whose values the caller holds as msgpack, and answers handed
//! back as the frame's own bytes (`Client::request_raw`,
//! `Client::request_raw_fields`): what the C ABI builds on.

mod common;

use common::{connect, start};
use simplerpc_core::{codec, ObjId, Raw, RawRequest};
use simplerpc_ws::{Error, Request, Response, Value};

fn object(r: (Response, Option<simplerpc_core::RawValue>)) -> ObjId {
    match r {
        (Response::Object(id), None) => id,
        other => panic!("expected an object, got {other:?}"),
    }
}

#[test]
fn msgpack_arguments_go_out_as_they_are_and_values_come_back_as_bytes() {
    let (server, _state) = start();
    let client = connect(&server);
    let m = object(
        client
            .request_raw(&Request::ImportModule { module: "m".into() })
            .unwrap(),
    );
    // m.echo({"b": 5, "a": 1}) with 5 written as a uint8 (0xcc 0x05).
    let args = [
        0x91, 0x82, 0xa1, b'b', 0xcc, 0x05, 0xa1, b'a', 0x01, //
    ];
    let echoed = object(
        client
            .request_raw_fields(&RawRequest::Call {
                path: "m.echo",
                obj_id: None,
                args: Raw::from(&args),
                kwargs: Raw::One(&[]),
            })
            .unwrap(),
    );
    let (resp, raw) = client
        .request_raw(&Request::Materialize { obj_id: echoed })
        .unwrap();
    let expected = Value::map([("b", Value::UInt(5)), ("a", Value::UInt(1))]);
    assert_eq!(resp, Response::Value(expected.clone()));
    // The Rust executor re-encodes its value (canonically); the raw bytes are
    // the frame's, exactly as that encoding wrote them.
    assert_eq!(
        raw.expect("a value answer has bytes").as_bytes(),
        codec::to_vec(&expected).unwrap().as_slice()
    );

    // An empty args slice means no arguments.
    let (resp, _) = client
        .request_raw_fields(&RawRequest::Call {
            path: "m.echo",
            obj_id: None,
            args: Raw::One(&[]),
            kwargs: Raw::One(&[]),
        })
        .unwrap();
    assert!(
        matches!(&resp, Response::Error(e) if e.message.contains("needs argument 0")),
        "{resp:?}"
    );

    // Bytes that are not what the request needs are refused before sending,
    // and the connection stays usable.
    let bad = client.request_raw_fields(&RawRequest::Call {
        path: "m.echo",
        obj_id: None,
        args: Raw::One(&[0x01]),
        kwargs: Raw::One(&[]),
    });
    assert!(matches!(bad, Err(Error::InvalidRequest(_))), "{bad:?}");
    let bad = client.request_raw_fields(&RawRequest::GetItem {
        obj_id: m,
        key: Raw::One(&[0x92, 0x01]),
    });
    assert!(matches!(bad, Err(Error::InvalidRequest(_))), "{bad:?}");
    assert!(matches!(
        client.request(&Request::GetNamespace).unwrap(),
        Response::Namespace(_)
    ));
}

/// `encoded` cut as the Python package cuts a call's arguments: each large
/// array's data a part of its own, its bin header ending the part before.
fn cut(encoded: &[u8]) -> Vec<&[u8]> {
    let (_, ranges) = codec::split_bins(encoded, 1 << 16).unwrap();
    let mut parts = Vec::new();
    let mut at = 0;
    for r in ranges {
        parts.push(&encoded[at..r.start]);
        parts.push(&encoded[r.clone()]);
        at = r.end;
    }
    parts.push(&encoded[at..]);
    parts
}

#[test]
fn a_64_mib_argument_in_parts_arrives_byte_exact() {
    use simplerpc_core::{ByteOrder, DType, NdArray};
    let (server, _state) = start();
    let client = connect(&server);
    let n = 64 << 20;
    let data: Vec<u8> = (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761) as u8)
        .collect();
    let arr = Value::Array(
        NdArray::new(DType::UInt8, ByteOrder::NotApplicable, vec![n], data.into()).unwrap(),
    );
    let small = Value::Bin(vec![5u8; 100].into());
    let encoded = codec::to_vec(&Value::List(vec![
        arr.clone(),
        Value::List(vec![small.clone(), arr.clone()]),
    ]))
    .unwrap();
    let parts = cut(&encoded);
    assert_eq!(parts.len(), 5);
    let call = RawRequest::Call {
        path: "m.echo",
        obj_id: None,
        args: Raw::Parts(&parts),
        kwargs: Raw::One(&[]),
    };
    let echoed = object(client.request_raw_fields(&call).unwrap());
    let (resp, _) = client
        .request_raw(&Request::Materialize { obj_id: echoed })
        .unwrap();
    assert_eq!(resp, Response::Value(arr.clone()));
    // Sent without waiting, and pipelined on a promise.
    let id = client.send_raw(&call).unwrap();
    assert!(matches!(client.wait(id).unwrap(), (Response::Object(_), _)));
    let p = client.send_raw_pipelined(&call).unwrap();
    let (resp, _) = client
        .request_raw(&Request::Materialize { obj_id: p })
        .unwrap();
    assert_eq!(resp, Response::Value(arr));
}
