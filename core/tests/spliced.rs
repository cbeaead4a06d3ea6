//! Frames with large payloads spliced in by reference ([`OutFrame`]): the
//! same bytes as a frame built in one buffer, with the array's own memory
//! among the parts rather than a copy of it.

use simplerpc_core::codec::SPLICE_MIN;
use simplerpc_core::message::{
    decode_request, decode_response, encode_request, encode_request_parts_in, encode_response,
    encode_response_parts_in, ResponseFrame,
};
use simplerpc_core::{
    ByteOrder, Bytes, DType, Extensions, NdArray, ObjId, OutFrame, Request, Response, Value,
};

fn array(len: usize, seed: u8) -> Value {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    Value::Array(
        NdArray::new(
            DType::UInt8,
            ByteOrder::NotApplicable,
            vec![len],
            data.into(),
        )
        .unwrap(),
    )
}

/// Whether some part of `frame` is `data`'s own memory.
fn holds(frame: &OutFrame, data: &Bytes) -> bool {
    frame
        .parts()
        .iter()
        .any(|p| p.as_ptr() == data.as_ptr() && p.len() == data.len())
}

fn data_of(v: &Value) -> &Bytes {
    match v {
        Value::Array(a) => a.data(),
        Value::Bin(b) => b,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_request_in_parts_is_the_request_in_one_buffer() {
    let big = array(SPLICE_MIN, 1);
    let bigger = array(3 * SPLICE_MIN + 7, 2);
    let small = array(SPLICE_MIN - 1, 3);
    let bin = Value::Bin(Bytes::from(vec![9u8; 2 * SPLICE_MIN]));
    let request = Request::Call {
        path: "m.f".into(),
        obj_id: Some(ObjId(4)),
        args: vec![
            big.clone(),
            Value::List(vec![small.clone(), bigger.clone(), Value::Int(-1)]),
            bin.clone(),
        ],
        kwargs: vec![("k".into(), Value::map([("a", big.clone())]))],
    };
    for ext in [Extensions::NONE, Extensions::ALL] {
        let release = [ObjId(7), ObjId(8)];
        let joined = encode_request(&request, Some(3), &release, ext).unwrap();
        let frame = encode_request_parts_in(&request, Some(3), &release, ext, Vec::new()).unwrap();
        assert!(!frame.is_one());
        assert_eq!(frame.len(), joined.len());
        for v in [&big, &bigger, &bin] {
            assert!(holds(&frame, data_of(v)), "spliced, not copied");
        }
        assert!(!holds(&frame, data_of(&small)), "a small array is copied");
        // Its own buffer holds only what is not spliced.
        let own = frame.clone().into_buffer().len();
        assert!(own < 2 * SPLICE_MIN, "{own}");
        let out = frame.into_vec();
        assert_eq!(out, joined);
        let back = decode_request(&Bytes::from(out)).unwrap();
        assert_eq!(back.request, request);
    }
}

#[test]
fn a_response_in_parts_is_the_response_in_one_buffer() {
    let value = Value::List(vec![
        array(SPLICE_MIN * 5, 4),
        Value::Float(1.0),
        array(10, 5),
        Value::map([("t", 3u64)]),
    ]);
    for ext in [Extensions::NONE, Extensions::ALL] {
        let rf = ResponseFrame {
            id: Some(11),
            response: Response::Value(value.clone()),
        };
        let joined = encode_response(&rf, ext).unwrap();
        let frame = encode_response_parts_in(rf, ext, Vec::new()).unwrap();
        let Value::List(items) = &value else {
            unreachable!()
        };
        assert!(holds(&frame, data_of(&items[0])));
        assert_eq!(frame.parts().concat(), joined);
        assert_eq!(
            decode_response(&Bytes::from(frame.into_vec()))
                .unwrap()
                .response,
            Response::Value(value.clone())
        );
    }
}

#[test]
fn a_frame_without_large_payloads_is_one_part() {
    let f = OutFrame::from(vec![1, 2, 3]);
    assert!(f.is_one());
    assert_eq!(f.parts(), vec![&[1u8, 2, 3][..]]);
    assert_eq!(OutFrame::default().parts().len(), 1);
    assert!(OutFrame::default().is_empty());
}

#[test]
fn a_raw_value_in_parts_is_checked_and_spliced_without_a_join() {
    use simplerpc_core::RawValue;
    let n = 3 * SPLICE_MIN + 1;
    let payload = Bytes::from((0..n).map(|i| (i % 241) as u8).collect::<Vec<u8>>());
    // [bin, "x"] with the bin's payload a part of its own.
    let mut head = vec![0x92, 0xc6];
    head.extend_from_slice(&(n as u32).to_be_bytes());
    let parts = vec![
        Bytes::from(head.clone()),
        payload.clone(),
        Bytes::from_static(b"\xa1x"),
    ];
    let raw = RawValue::from_parts(parts.clone()).unwrap();
    assert_eq!(raw.len(), 6 + n + 2);
    let rf = ResponseFrame {
        id: Some(5),
        response: Response::Value(Value::Raw(raw.clone())),
    };
    let frame = encode_response_parts_in(rf, Extensions::ALL, Vec::new()).unwrap();
    assert!(
        holds(&frame, &payload),
        "the payload is spliced, not copied"
    );
    let back = decode_response(&Bytes::from(frame.into_vec())).unwrap();
    assert_eq!(
        back.response,
        Response::Value(Value::List(vec![
            Value::Bin(payload.clone()),
            Value::str("x")
        ]))
    );
    // Joined on request only, and equal to the same bytes given whole.
    let whole = RawValue::new(Bytes::from(parts.concat())).unwrap();
    assert_eq!(raw, whole);
    // A large part that is not one bin's payload is checked too.
    let split = vec![
        Bytes::from(head.clone()),
        payload.slice(..SPLICE_MIN),
        payload.slice(SPLICE_MIN..),
        Bytes::from_static(b"\xa1x"),
    ];
    assert!(RawValue::from_parts(split).is_ok());
    // Bad msgpack is refused: a part missing, a stray byte, a short payload.
    for bad in [
        vec![Bytes::from(head.clone()), payload.clone()],
        vec![
            Bytes::from(head.clone()),
            payload.clone(),
            Bytes::from_static(b"\xa1x\xc1"),
        ],
        vec![
            Bytes::from(head.clone()),
            payload.slice(2..),
            Bytes::from_static(b"\xa1x"),
        ],
    ] {
        assert!(RawValue::from_parts(bad).is_err());
    }
}
