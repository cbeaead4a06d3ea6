//! Values handed on as msgpack: arguments reach an executor as the frame's own
//! bytes with the handles of their references in order; an executor's msgpack
//! answer becomes the response frame without being decoded; a client sends
//! msgpack it already holds and reads a result's bytes as the frame has them.

use std::sync::{Arc, Mutex};

use simplerpc_core::message::{self, Raw, RawRequest};
use simplerpc_core::{
    codec, Arguments, Bytes, ClientSession, ExecResult, Executor, Extensions, Handle, Key, ObjId,
    RawValue, Request, Response, ServerSession, Target, Value,
};

/// What one call or getitem received: raw args (or key), raw kwargs, refs.
type Seen = (Vec<u8>, Vec<u8>, Vec<Handle>);

/// Records what it was given; `materialize` answers raw msgpack.
#[derive(Default, Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    next: u64,
}

impl Executor for Recorder {
    fn import_module(&mut self, _: &str) -> ExecResult<Handle> {
        self.next += 1;
        Ok(Handle(100 + self.next))
    }
    fn getattr(&mut self, _: Target<'_>, _: &str) -> ExecResult<Handle> {
        self.import_module("")
    }
    fn call(&mut self, _: Target<'_>, a: Arguments) -> ExecResult<Handle> {
        // The decoded form carries the same handles, in the same order.
        let mut decoded = Vec::new();
        for v in a.args.iter().chain(a.kwargs.iter().map(|(_, v)| v)) {
            let mut v = v.clone();
            let _ = v.walk_mut(&mut |x: &mut Value| {
                if let Value::Handle(h) = x {
                    decoded.push(*h);
                }
                Ok::<(), ()>(())
            });
        }
        assert_eq!(decoded, a.refs);
        self.seen.lock().unwrap().push((
            a.raw_args.as_bytes().to_vec(),
            a.raw_kwargs.as_bytes().to_vec(),
            a.refs.clone(),
        ));
        self.import_module("")
    }
    fn getitem(&mut self, _: Handle, k: Key) -> ExecResult<Handle> {
        self.seen
            .lock()
            .unwrap()
            .push((k.raw.as_bytes().to_vec(), vec![], k.refs.clone()));
        self.import_module("")
    }
    fn materialize(&mut self, _: Handle) -> ExecResult<Value> {
        // [1, b"xyz"] as a host would hand it over.
        let raw = RawValue::copy_from_slice(&[0x92, 0x01, 0xc4, 3, b'x', b'y', b'z']).unwrap();
        Ok(Value::Raw(raw))
    }
    fn release(&mut self, _: Handle) {}
}

fn proxy(id: u64) -> Value {
    Value::Proxy(ObjId(id))
}

#[test]
fn call_arguments_arrive_as_frame_bytes_with_refs_in_order() {
    for ext in [Extensions::NONE, Extensions::ALL] {
        let rec = Recorder::default();
        let mut server = ServerSession::new(rec.clone(), ext);
        let mut client = ClientSession::new(ext);
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (_, f) = client
                .send(&Request::ImportModule { module: "m".into() })
                .unwrap();
            let resp = server.handle_frame(Bytes::from(f));
            match client.handle_frame(Bytes::from(resp)).unwrap().1 {
                Response::Object(id) => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        let args = vec![
            proxy(ids[2].0),
            Value::List(vec![Value::UInt(7), proxy(ids[0].0)]),
        ];
        let kwargs = vec![("k".to_owned(), proxy(ids[1].0))];
        let req = Request::Call {
            path: "m.f".into(),
            obj_id: Some(ids[0]),
            args: args.clone(),
            kwargs: kwargs.clone(),
        };
        let (_, f) = client.send(&req).unwrap();
        let frame = Bytes::from(f);
        let resp = server.handle_frame(frame.clone());
        assert!(matches!(
            client.handle_frame(Bytes::from(resp)).unwrap().1,
            Response::Object(_)
        ));
        let seen = rec.seen.lock().unwrap().clone();
        let (raw_args, raw_kwargs, refs) = &seen[0];
        // The bytes are exactly what the client encoded, markers included.
        assert_eq!(raw_args, &codec::to_vec(&Value::List(args)).unwrap());
        assert_eq!(raw_kwargs, &codec::to_vec(&Value::map(kwargs)).unwrap());
        assert_eq!(refs, &vec![Handle(103), Handle(101), Handle(102)]);
    }
}

#[test]
fn getitem_key_arrives_as_frame_bytes() {
    let rec = Recorder::default();
    let mut server = ServerSession::new(rec.clone(), Extensions::ALL);
    let mut client = ClientSession::new(Extensions::ALL);
    let (_, f) = client
        .send(&Request::ImportModule { module: "m".into() })
        .unwrap();
    let Response::Object(m) = client
        .handle_frame(Bytes::from(server.handle_frame(Bytes::from(f))))
        .unwrap()
        .1
    else {
        panic!()
    };
    let key = Value::List(vec![
        Value::slice(Value::UInt(1), Value::Nil, Value::Nil),
        proxy(m.0),
    ]);
    let (_, f) = client
        .send(&Request::GetItem {
            obj_id: m,
            key: key.clone(),
        })
        .unwrap();
    let _ = client.handle_frame(Bytes::from(server.handle_frame(Bytes::from(f))));
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, codec::to_vec(&key).unwrap());
    assert_eq!(seen[0].2, vec![Handle(101)]);
}

#[test]
fn raw_reply_becomes_the_frame_and_reaches_the_client_as_bytes() {
    for ext in [Extensions::NONE, Extensions::ALL] {
        let mut server = ServerSession::new(Recorder::default(), ext);
        let mut client = ClientSession::new(ext);
        let (_, f) = client
            .send(&Request::ImportModule { module: "m".into() })
            .unwrap();
        let Response::Object(m) = client
            .handle_frame(Bytes::from(server.handle_frame(Bytes::from(f))))
            .unwrap()
            .1
        else {
            panic!()
        };
        let (_, f) = client.send(&Request::Materialize { obj_id: m }).unwrap();
        let resp = Bytes::from(server.handle_frame(Bytes::from(f)));
        // The frame is what encoding the decoded value would give.
        let expected_value =
            Value::List(vec![Value::UInt(1), Value::Bin(Bytes::from_static(b"xyz"))]);
        let expected = message::encode_response(
            &message::ResponseFrame {
                id: Some(1),
                response: Response::Value(expected_value.clone()),
            },
            ext,
        )
        .unwrap();
        assert_eq!(resp.as_ref(), expected.as_slice());
        let (_, r, raw) = client.handle_frame_raw(resp.clone()).unwrap();
        assert_eq!(r, Response::Value(expected_value));
        let raw = raw.unwrap();
        assert_eq!(raw.as_bytes(), &[0x92, 0x01, 0xc4, 3, b'x', b'y', b'z']);
        // Shared with the frame, not copied out of it.
        let span = resp.as_ptr() as usize..resp.as_ptr() as usize + resp.len();
        assert!(span.contains(&(raw.as_bytes().as_ptr() as usize)));
    }
}

#[test]
fn invalid_msgpack_from_a_host_is_refused_before_it_is_sent() {
    for bad in [&[0xc1][..], &[0x92, 0x01], &[0x01, 0x02], &[]] {
        assert!(RawValue::copy_from_slice(bad).is_err(), "{bad:?}");
        assert!(
            RawValue::new(Bytes::copy_from_slice(bad)).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn raw_requests_encode_like_value_requests() {
    let args = Value::List(vec![Value::UInt(1), Value::str("a"), proxy(4)]);
    let kwargs = Value::map([("x", Value::Float(0.5))]);
    let a = codec::to_vec(&args).unwrap();
    let k = codec::to_vec(&kwargs).unwrap();
    for ext in [Extensions::NONE, Extensions::ALL] {
        let mut c1 = ClientSession::new(ext);
        let mut c2 = ClientSession::new(ext);
        c1.release(ObjId(9));
        c2.release(ObjId(9));
        let Value::List(items) = args.clone() else {
            unreachable!()
        };
        let (_, by_value) = c1
            .send(&Request::Call {
                path: "f".into(),
                obj_id: None,
                args: items,
                kwargs: vec![("x".into(), Value::Float(0.5))],
            })
            .unwrap();
        let (_, by_raw) = c2
            .send_raw(&RawRequest::Call {
                path: "f",
                obj_id: None,
                args: Raw::from(&a),
                kwargs: Raw::from(&k),
            })
            .unwrap();
        assert_eq!(by_value, by_raw);
        let (_, by_value) = c1
            .send(&Request::GetItem {
                obj_id: ObjId(3),
                key: Value::UInt(2),
            })
            .unwrap();
        let (_, by_raw) = c2
            .send_raw(&RawRequest::GetItem {
                obj_id: ObjId(3),
                key: Raw::One(&[0x02]),
            })
            .unwrap();
        assert_eq!(by_value, by_raw);
    }
    // Empty args and kwargs mean none; a non-array args is refused.
    let mut c = ClientSession::new(Extensions::NONE);
    let (_, f) = c
        .send_raw(&RawRequest::Call {
            path: "f",
            obj_id: None,
            args: Raw::One(&[]),
            kwargs: Raw::One(&[]),
        })
        .unwrap();
    let decoded = message::decode_request(&Bytes::from(f)).unwrap();
    assert_eq!(
        decoded.request,
        Request::Call {
            path: "f".into(),
            obj_id: None,
            args: vec![],
            kwargs: vec![]
        }
    );
    assert!(c
        .send_raw(&RawRequest::Call {
            path: "f",
            obj_id: None,
            args: Raw::One(&[0x01]),
            kwargs: Raw::One(&[]),
        })
        .is_err());
    assert!(c
        .send_raw(&RawRequest::GetItem {
            obj_id: ObjId(1),
            key: Raw::One(&[0x92]),
        })
        .is_err());
}

#[test]
fn host_msgpack_is_checked_at_the_depth_it_will_have_in_the_frame() {
    // A value nested as deep as a frame's field may be is accepted, and the
    // frame carrying it decodes; one level more is refused up front.
    let nested = |levels: usize| {
        let mut v = vec![0x91u8; levels];
        v.push(0xc0);
        v
    };
    let max = simplerpc_core::codec::MAX_DEPTH;
    assert!(RawValue::copy_from_slice(&nested(max)).is_err());
    let ok = RawValue::copy_from_slice(&nested(max - 1)).unwrap();
    let frame = message::encode_response_owned(
        message::ResponseFrame {
            id: Some(0),
            response: Response::Value(Value::Raw(ok)),
        },
        Extensions::ALL,
    )
    .unwrap();
    assert!(message::decode_response(&Bytes::from(frame)).is_ok());
    // Arguments a client sends are checked the same way.
    let mut c = ClientSession::new(Extensions::NONE);
    let mut deep_args = vec![0x91u8];
    deep_args.extend(nested(max - 1));
    assert!(c
        .send_raw(&RawRequest::Call {
            path: "f",
            obj_id: None,
            args: Raw::from(&deep_args),
            kwargs: Raw::One(&[]),
        })
        .is_err());
}

#[test]
fn a_spare_frame_is_reused_when_it_fits() {
    let value = [0xc5u8, 0x01, 0x00];
    let data = [7u8; 256];
    let parts: [&[u8]; 2] = [&value, &data];
    let spare = Vec::with_capacity(300);
    let at = spare.as_ptr();
    let raw = RawValue::copy_from_parts_into(&parts, Some(spare)).unwrap();
    assert_eq!(raw.as_bytes()[3..], data);
    assert_eq!(
        raw.as_bytes().as_ptr(),
        at.wrapping_add(RawValue::FRAME_ROOM),
        "built in the spare"
    );
    // Too small, or far too large: a new buffer.
    for cap in [10usize, 100_000] {
        let spare = Vec::with_capacity(cap);
        let at = spare.as_ptr();
        let raw = RawValue::copy_from_parts_into(&parts, Some(spare)).unwrap();
        assert_ne!(
            raw.as_bytes().as_ptr(),
            at.wrapping_add(RawValue::FRAME_ROOM),
            "{cap}"
        );
        assert_eq!(raw.as_bytes()[3..], data);
    }
}

#[test]
fn a_recycled_request_frame_is_reused_for_the_next_of_its_size() {
    let mut client = ClientSession::new(Extensions::ALL);
    let mut args = vec![0x91, 0xc6, 0, 1, 0, 0];
    args.extend(std::iter::repeat(9u8).take(1 << 16));
    let request = RawRequest::Call {
        path: "m.f",
        obj_id: None,
        args: Raw::from(&args),
        kwargs: Raw::One(&[]),
    };
    let (_, first) = client.send_raw(&request).unwrap();
    let at = first.as_ptr();
    client.recycle(first);
    let (_, second) = client.send_raw(&request).unwrap();
    assert_eq!(second.as_ptr(), at, "built in the recycled frame");
    // A small request does not take a large frame (it stays kept).
    client.recycle(second);
    let (_, small) = client.send(&Request::GetNamespace).unwrap();
    assert_ne!(small.as_ptr(), at);
    let (_, third) = client.send_raw(&request).unwrap();
    assert_eq!(third.as_ptr(), at);
    client.trim();
}

#[test]
fn a_huge_recycled_response_is_not_kept_for_small_answers() {
    // Found by a review: a 512 MiB answer's frame held every later answer.
    let mut server = ServerSession::new(Recorder::default(), Extensions::ALL);
    let mut client = ClientSession::new(Extensions::ALL);
    server.recycle(Vec::with_capacity(512 << 20)); // a 512 MiB answer was just written
    let (_, f) = client.send(&Request::GetNamespace).unwrap();
    let small = server.handle_frame(Bytes::from(f));
    assert!(small.len() < 1000);
    assert!(
        small.capacity() < (64 << 20),
        "a {}-byte answer was built in a {} MiB buffer",
        small.len(),
        small.capacity() >> 20
    );
}
