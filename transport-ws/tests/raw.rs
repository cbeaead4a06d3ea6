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
