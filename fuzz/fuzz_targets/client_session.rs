//! A client session sending requests (waited for and pipelined, built and
//! raw), releasing objects and promises, and fed arbitrary response frames
//! through `receive`, `handle_frame_raw`, `take` and `take_failure`. Nothing
//! a server sends may make it panic, and each frame answers the oldest
//! request in flight, decodable or not.
//!
//! Input: one byte of extension bits, then operations, each an opcode byte
//! (its low three bits pick the operation, the rest is its argument) and,
//! for the two that read a frame, a length-prefixed frame (see
//! `simplerpc_fuzz`).

#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use simplerpc_core::{
    Bytes, ClientError, ClientSession, Extensions, ObjId, Raw, RawRequest, Request, RequestId,
    Value,
};

/// An object id from an argument byte: a promise of an earlier request
/// (perhaps one never sent) when the high bit is set, else a plain id.
fn obj(b: u8) -> ObjId {
    if b & 0x80 != 0 {
        ObjId::promise(u64::from(b & 0x7f))
    } else {
        ObjId(u64::from(b))
    }
}

fn request(kind: u8, target: ObjId) -> Request {
    match kind % 5 {
        0 => Request::Materialize { obj_id: target },
        1 => Request::GetAttr {
            path: "env".into(),
            obj_id: Some(target),
            attr: "step".into(),
        },
        2 => Request::Call {
            path: "env.step".into(),
            obj_id: Some(target),
            args: vec![Value::Proxy(target), Value::Float(0.5)],
            kwargs: vec![("k".into(), Value::Proxy(target))],
        },
        3 => Request::GetItem {
            obj_id: target,
            key: Value::slice(Value::UInt(1), Value::Nil, Value::Int(-1)),
        },
        _ => Request::ImportModule {
            module: "sim".into(),
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = simplerpc_fuzz::Input::new(data);
    let ext = Extensions::from_bits(u32::from(input.byte().unwrap_or(0)));
    let mut client = ClientSession::new(ext);
    // The requests in flight, oldest first, as the session must see them.
    let mut in_flight: VecDeque<RequestId> = VecDeque::new();
    while let Some(op) = input.byte() {
        let arg = op >> 3;
        match op & 7 {
            0 | 1 => {
                let target = obj(input.byte().unwrap_or(0));
                let r = request(arg, target);
                let sent = if op & 7 == 0 {
                    client.send(&r).map(|(id, _)| id).ok()
                } else {
                    match client.send_pipelined(&r) {
                        Ok((id, promise, _)) => {
                            assert_eq!(promise, ObjId::promise(id.0));
                            Some(id)
                        }
                        Err(_) => None,
                    }
                };
                if let Some(id) = sent {
                    if let Some(last) = in_flight.back() {
                        assert!(last.0 < id.0, "request ids count up");
                    }
                    in_flight.push_back(id);
                }
            }
            2 | 3 => {
                let frame = Bytes::copy_from_slice(input.frame().unwrap_or_default());
                let oldest = in_flight.pop_front();
                let answered = if op & 7 == 2 {
                    client.receive(frame)
                } else {
                    match client.handle_frame_raw(frame) {
                        Ok((id, _, _)) => Ok(id),
                        // A bad frame still answers the oldest request.
                        Err(e) => oldest.ok_or(e),
                    }
                };
                match (oldest, answered) {
                    (Some(want), Ok(got)) => assert_eq!(want, got),
                    (None, Err(ClientError::Unsolicited)) => {}
                    (want, got) => panic!("expected an answer to {want:?}, got {got:?}"),
                }
            }
            4 => {
                let id = RequestId(u64::from(input.byte().unwrap_or(arg)));
                if client.take(id).is_some() {
                    assert!(client.take(id).is_none(), "an answer was taken twice");
                }
            }
            5 => client.release(obj(input.byte().unwrap_or(0))),
            6 => {
                let _ = client.take_failure();
            }
            _ => {
                let target = obj(input.byte().unwrap_or(0));
                let r = if arg & 1 == 0 {
                    RawRequest::GetItem {
                        obj_id: target,
                        key: Raw::One(&[0x01]),
                    }
                } else {
                    RawRequest::Call {
                        path: "sim.add",
                        obj_id: Some(target),
                        args: Raw::Parts(&[&[0x92], &[0x01, 0x02]]),
                        kwargs: Raw::One(&[]),
                    }
                };
                let sent = if arg & 2 == 0 {
                    client.send_raw(&r).map(|(id, _)| id).ok()
                } else {
                    client.send_raw_pipelined(&r).map(|(id, _, _)| id).ok()
                };
                if let Some(id) = sent {
                    in_flight.push_back(id);
                }
            }
        }
        assert_eq!(client.in_flight(), in_flight.len());
        for id in &in_flight {
            assert!(!client.is_answered(*id), "request {id:?} is in flight");
        }
    }
});
