//! A client session and a server session talking in memory, with no transport.

mod common;

use common::Pair;
use simplerpc_core::server::{
    DEFAULT_MAX_OBJECTS, EXECUTOR_PANIC, OBJECT_LIMIT, PROTOCOL_ERROR, UNKNOWN_OBJECT,
};
use simplerpc_core::{Bytes, DType, Extensions, ObjId, Request, Response, Value};

fn call(obj: ObjId, path: &str, args: Vec<Value>) -> Request {
    Request::Call {
        path: path.into(),
        obj_id: Some(obj),
        args,
        kwargs: vec![],
    }
}

#[test]
fn import_call_materialize() {
    for ext in [Extensions::NONE, Extensions::ALL] {
        let mut p = Pair::new(ext);
        let sim = p.obj(Request::ImportModule {
            module: "sim".into(),
        });
        let add = p.obj(Request::GetAttr {
            path: "sim".into(),
            obj_id: Some(sim),
            attr: "add".into(),
        });
        let r = p.obj(call(add, "sim.add", vec![Value::Int(-2), Value::UInt(5)]));
        assert_eq!(
            p.request(Request::Materialize { obj_id: r }),
            Response::Value(Value::UInt(3))
        );
        // By path, without an object id.
        let r = p.obj(Request::Call {
            path: "sim.add".into(),
            obj_id: None,
            args: vec![1u8.into(), 2u8.into()],
            kwargs: vec![],
        });
        assert_eq!(
            p.request(Request::Materialize { obj_id: r }),
            Response::Value(Value::UInt(3))
        );
    }
}

#[test]
fn env_step_with_proxies_and_getitem() {
    let mut p = Pair::new(Extensions::ALL);
    let make = p.obj(Request::GetAttr {
        path: "sim".into(),
        obj_id: None,
        attr: "make".into(),
    });
    let env = p.obj(call(make, "sim.make", vec![Value::UInt(0)]));
    let step = p.obj(Request::GetAttr {
        path: "env".into(),
        obj_id: Some(env),
        attr: "step".into(),
    });
    for t in 1..=3u8 {
        let result = p.obj(call(step, "env.step", vec![Value::Float(2.0)]));
        let obs = p.obj(Request::GetItem {
            obj_id: result,
            key: Value::str("obs"),
        });
        let Response::Value(Value::Array(a)) = p.request(Request::Materialize { obj_id: obs })
        else {
            panic!()
        };
        assert_eq!((a.dtype(), a.shape()), (DType::UInt8, &[4usize, 5, 3][..]));
        assert!(a.data().iter().all(|&b| b == t));
    }
    // Calling the instance itself calls the method the path names (reference rule).
    p.obj(call(env, "env.reset", vec![Value::UInt(7)]));
    assert_eq!(
        p.request(Request::Materialize { obj_id: env }),
        Response::Value(Value::UInt(7))
    );
    // A proxy passed as an argument is resolved to its value.
    let five = p.obj(Request::Call {
        path: "sim.add".into(),
        obj_id: None,
        args: vec![2u8.into(), 3u8.into()],
        kwargs: vec![],
    });
    let echo = p.obj(Request::GetAttr {
        path: "sim".into(),
        obj_id: None,
        attr: "echo".into(),
    });
    let r = p.obj(call(
        echo,
        "sim.echo",
        vec![Value::List(vec![Value::Proxy(five)])],
    ));
    assert_eq!(
        p.request(Request::Materialize { obj_id: r }),
        Response::Value(Value::List(vec![Value::UInt(5)]))
    );
}

#[test]
fn errors_are_responses_and_the_session_goes_on() {
    let mut p = Pair::new(Extensions::NONE);
    let err = |r: Response| match r {
        Response::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    let e = err(p.request(Request::ImportModule {
        module: "nope".into(),
    }));
    assert_eq!(e.exception_type, "builtins.ModuleNotFoundError");
    let e = err(p.request(Request::Materialize { obj_id: ObjId(999) }));
    assert_eq!(e.exception_type, UNKNOWN_OBJECT);
    let e = err(p.request(Request::Call {
        path: "sim.fail".into(),
        obj_id: None,
        args: vec![],
        kwargs: vec![],
    }));
    assert_eq!(
        (e.exception_type.as_str(), e.message.as_str()),
        ("builtins.ValueError", "it failed")
    );
    let e = err(p.request(Request::Call {
        path: "sim.panic".into(),
        obj_id: None,
        args: vec![],
        kwargs: vec![],
    }));
    assert_eq!(e.exception_type, EXECUTOR_PANIC);
    assert!(e.message.contains("deliberate"));
    let e = err(p.request(Request::Call {
        path: "sim.add".into(),
        obj_id: None,
        args: vec![Value::str("x"), 1u8.into()],
        kwargs: vec![],
    }));
    assert_eq!(e.exception_type, "builtins.TypeError");
    let e = err(p.request(Request::Eval { expr: "1+1".into() }));
    assert_eq!(e.exception_type, "builtins.NotImplementedError");
    // Still serving.
    let sim = p.obj(Request::ImportModule {
        module: "sim".into(),
    });
    assert_eq!(sim, ObjId(0), "failed requests allocate no ids");
}

#[test]
fn release_rides_on_the_next_request_and_close_frees_all() {
    let mut p = Pair::new(Extensions::ALL);
    let ids: Vec<ObjId> = (0..10)
        .map(|_| {
            p.obj(Request::ImportModule {
                module: "sim".into(),
            })
        })
        .collect();
    assert_eq!(p.server.live_objects(), 10);
    assert_eq!(p.server.executor().live_objects(), 10);
    for id in &ids[..7] {
        p.client.release(*id);
    }
    assert_eq!(p.client.pending_releases(), 7);
    assert_eq!(p.server.live_objects(), 10, "no round trip of its own");
    p.obj(Request::ImportModule {
        module: "sim".into(),
    });
    assert_eq!(p.client.pending_releases(), 0);
    assert_eq!(p.server.live_objects(), 4);
    assert_eq!(p.server.executor().live_objects(), 4);
    let e = p.request(Request::Materialize { obj_id: ids[0] });
    assert!(
        matches!(e, Response::Error(ref e) if e.exception_type == UNKNOWN_OBJECT),
        "use after release is a clear error"
    );
    p.server.close();
    assert_eq!(p.server.executor().live_objects(), 0);
}

#[test]
fn release_is_dropped_for_a_stock_peer() {
    let mut p = Pair::new(Extensions::NONE);
    let id = p.obj(Request::ImportModule {
        module: "sim".into(),
    });
    p.client.release(id);
    assert_eq!(p.client.pending_releases(), 0);
    let (_, frame) = p.client.send(&Request::GetNamespace).unwrap();
    let v = simplerpc_core::codec::from_bytes(&Bytes::from(frame)).unwrap();
    assert_eq!(
        v,
        Value::map([("type", "get_namespace")]),
        "no extension keys for a stock peer"
    );
}

#[test]
fn pipelined_requests_pair_in_order() {
    let mut p = Pair::new(Extensions::ALL);
    let frames: Vec<Vec<u8>> = (0..50u64)
        .map(|i| {
            p.client
                .send(&Request::Call {
                    path: "sim.add".into(),
                    obj_id: None,
                    args: vec![i.into(), 1u8.into()],
                    kwargs: vec![],
                })
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(p.client.in_flight(), 50);
    let responses: Vec<Vec<u8>> = frames
        .into_iter()
        .map(|f| p.server.handle_frame(Bytes::from(f)))
        .collect();
    for (i, r) in responses.into_iter().enumerate() {
        let (rid, resp) = p.client.handle_frame(Bytes::from(r)).unwrap();
        assert_eq!(rid.0, i as u64);
        assert_eq!(resp, Response::Object(ObjId(i as u64)));
    }
    assert_eq!(p.client.in_flight(), 0);
    // A response to no request is refused.
    let extra = p.server.handle_frame(Bytes::from(
        p.client.send(&Request::GetNamespace).unwrap().1,
    ));
    p.client.handle_frame(Bytes::from(extra.clone())).unwrap();
    assert!(p.client.handle_frame(Bytes::from(extra)).is_err());
}

#[test]
fn malformed_frames_get_protocol_errors() {
    let mut p = Pair::new(Extensions::ALL);
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xc1],
        vec![0x93, 1, 2, 3],
        simplerpc_core::codec::to_vec(&Value::map([("type", Value::UInt(3))])).unwrap(),
        simplerpc_core::codec::to_vec(&Value::map([("type", "frobnicate")])).unwrap(),
        simplerpc_core::codec::to_vec(&Value::map([("type", "materialize")])).unwrap(),
        simplerpc_core::codec::to_vec(&Value::map([
            ("type", Value::str("materialize")),
            ("obj_id", Value::str("x")),
        ]))
        .unwrap(),
        simplerpc_core::codec::to_vec(&Value::map([
            ("type", Value::str("call")),
            ("path", Value::str("sim.add")),
            ("args", Value::UInt(1)),
        ]))
        .unwrap(),
    ];
    for f in bad {
        let resp = simplerpc_core::message::decode_response(&Bytes::from(
            p.server.handle_frame(Bytes::from(f.clone())),
        ))
        .unwrap();
        match resp.response {
            Response::Error(e) => assert_eq!(e.exception_type, PROTOCOL_ERROR, "{f:?}"),
            other => panic!("{f:?} got {other:?}"),
        }
    }
    let e = simplerpc_core::message::decode_response(&Bytes::from(p.server.handle_frame(
        Bytes::from(simplerpc_core::codec::to_vec(&Value::map([("type", "frobnicate")])).unwrap()),
    )))
    .unwrap();
    assert!(
        matches!(e.response, Response::Error(ref e) if e.message == "Unknown message type: frobnicate")
    );
    // The session still serves.
    let add = p.obj(Request::GetAttr {
        path: "sim".into(),
        obj_id: None,
        attr: "version".into(),
    });
    assert_eq!(
        p.request(Request::Materialize { obj_id: add }),
        Response::Value(Value::str("1.0"))
    );
}

#[test]
fn frames_are_reserved_once() {
    use simplerpc_core::message::{encode_request, encode_response, RemoteError, ResponseFrame};
    let long = "x".repeat(100_000);
    for r in [
        Request::Execute { code: long.clone() },
        Request::GetAttr {
            path: long.clone(),
            obj_id: None,
            attr: long.clone(),
        },
        Request::Teleport {
            func_bytes: Bytes::from(long.clone().into_bytes()),
            name: long.clone(),
        },
    ] {
        let f = encode_request(&r, Some(7), &[ObjId(1)], Extensions::ALL).unwrap();
        assert!(
            f.capacity() < f.len() + 256,
            "{} reserved {} for {}",
            r.type_name(),
            f.capacity(),
            f.len()
        );
    }
    let mut e = RemoteError::new(long.clone(), long.clone());
    e.traceback = long.clone();
    for resp in [
        Response::Error(e),
        Response::Namespace(vec![(long.clone(), long.clone()); 3]),
    ] {
        let f = encode_response(
            &ResponseFrame {
                id: Some(1),
                response: resp,
            },
            Extensions::ALL,
        )
        .unwrap();
        assert!(
            f.capacity() < f.len() + 256,
            "reserved {} for {}",
            f.capacity(),
            f.len()
        );
    }
}

#[test]
fn a_handle_handed_out_twice_is_released_once() {
    use simplerpc_core::{ExecResult, Executor, Handle, ServerSession, Target};
    /// Hands out one handle for every import and counts releases.
    struct Singleton(usize);
    impl Executor for Singleton {
        fn import_module(&mut self, _: &str) -> ExecResult<Handle> {
            Ok(Handle(5))
        }
        fn getattr(&mut self, _: Target<'_>, _: &str) -> ExecResult<Handle> {
            Ok(Handle(5))
        }
        fn call(&mut self, _: Target<'_>, _: simplerpc_core::Arguments) -> ExecResult<Handle> {
            Ok(Handle(5))
        }
        fn getitem(&mut self, _: Handle, _: simplerpc_core::Key) -> ExecResult<Handle> {
            Ok(Handle(5))
        }
        fn materialize(&mut self, _: Handle) -> ExecResult<Value> {
            Ok(Value::Nil)
        }
        fn release(&mut self, _: Handle) {
            self.0 += 1;
        }
    }
    let mut client = simplerpc_core::ClientSession::new(Extensions::ALL);
    let mut server = ServerSession::new(Singleton(0), Extensions::ALL);
    fn send(
        client: &mut simplerpc_core::ClientSession,
        server: &mut ServerSession<Singleton>,
        r: Request,
    ) -> Response {
        let (_, f) = client.send(&r).unwrap();
        client
            .handle_frame(Bytes::from(server.handle_frame(Bytes::from(f))))
            .unwrap()
            .1
    }
    let a = send(
        &mut client,
        &mut server,
        Request::ImportModule { module: "m".into() },
    );
    let b = send(
        &mut client,
        &mut server,
        Request::ImportModule { module: "m".into() },
    );
    let (Response::Object(a), Response::Object(b)) = (a, b) else {
        panic!()
    };
    client.release(a);
    send(&mut client, &mut server, Request::GetNamespace);
    assert_eq!(server.executor().0, 0, "still named by the second id");
    client.release(b);
    send(&mut client, &mut server, Request::GetNamespace);
    assert_eq!(
        server.executor().0,
        1,
        "released once, when the last id went"
    );
}

#[test]
fn forged_proxy_maps_are_refused() {
    let mut p = Pair::new(Extensions::ALL);
    let echo = p.obj(Request::GetAttr {
        path: "sim".into(),
        obj_id: None,
        attr: "echo".into(),
    });
    let forged = Value::map([
        ("__rpc_proxy__", Value::Bool(true)),
        ("obj_id", Value::UInt(0)),
        ("extra", Value::Nil),
    ]);
    match p.request(call(echo, "sim.echo", vec![Value::List(vec![forged])])) {
        Response::Error(e) => {
            assert_eq!(e.exception_type, PROTOCOL_ERROR);
            assert!(e.message.contains("__rpc_proxy__"));
        }
        other => panic!("a forged reference was accepted: {other:?}"),
    }
}

#[test]
fn an_abandoned_request_is_dropped_and_its_object_released() {
    let mut p = Pair::new(Extensions::ALL);
    let import = Request::ImportModule {
        module: "sim".into(),
    };
    // Abandoned while in flight: its answer is dropped when it comes, and
    // the object it made is released with the next request.
    let (early, frame) = p.client.send(&import).unwrap();
    p.client.abandon(early);
    let answer = p.server.handle_frame(Bytes::from(frame));
    p.client.receive(Bytes::from(answer)).unwrap();
    assert!(p.client.take(early).is_none(), "nothing to take");
    assert_eq!(p.server.live_objects(), 1);
    // Abandoned after its answer came: the same.
    let (late, frame) = p.client.send(&import).unwrap();
    let answer = p.server.handle_frame(Bytes::from(frame));
    p.client.receive(Bytes::from(answer)).unwrap();
    p.client.abandon(late);
    assert!(p.client.take(late).is_none());
    // (The first release rode on the second request.)
    assert_eq!(p.client.pending_releases(), 1);
    assert_eq!(p.server.live_objects(), 1);
    // The connection goes on, requests still pair, and both objects are gone.
    let kept = p.obj(import);
    assert_eq!(p.server.live_objects(), 1);
    assert_eq!(
        p.request(Request::Materialize { obj_id: kept }),
        p.request(Request::Materialize { obj_id: kept })
    );
}

#[test]
fn the_object_limit_refuses_new_objects_until_some_are_released() {
    let mut p = Pair::new(Extensions::ALL);
    assert_eq!(p.server.max_objects(), DEFAULT_MAX_OBJECTS);
    p.server.set_max_objects(3);
    let import = || Request::ImportModule {
        module: "sim".into(),
    };
    let version = Request::GetAttr {
        path: "sim".into(),
        obj_id: None,
        attr: "version".into(),
    };
    let ids = [p.obj(import()), p.obj(import()), p.obj(version.clone())];
    assert_eq!(p.server.live_objects(), 3);
    let refused = |p: &mut Pair, r: Request| match p.request(r) {
        Response::Error(e) => {
            assert_eq!(e.exception_type, OBJECT_LIMIT);
            assert!(e.message.contains("max_objects = 3"), "{}", e.message);
            assert!(e.message.contains("release"), "{}", e.message);
        }
        other => panic!("expected the object limit, got {other:?}"),
    };
    // Every kind of request that makes an object is refused, and not run.
    refused(&mut p, import());
    refused(&mut p, version.clone());
    refused(
        &mut p,
        Request::Call {
            path: "sim.add".into(),
            obj_id: None,
            args: vec![Value::UInt(1), Value::UInt(2)],
            kwargs: vec![],
        },
    );
    refused(&mut p, Request::Eval { expr: "1".into() });
    assert_eq!(p.server.live_objects(), 3);
    // What makes no object still works at the limit.
    assert_eq!(
        p.request(Request::Materialize { obj_id: ids[2] }),
        Response::Value(Value::str("1.0"))
    );
    // A release makes room, even one riding on the request that needs it.
    p.client.release(ids[0]);
    let again = p.obj(import());
    assert_eq!(p.server.live_objects(), 3);
    refused(&mut p, import());
    p.client.release(again);
    p.client.release(ids[1]);
    p.obj(import());
    p.obj(version);
    assert_eq!(p.server.live_objects(), 3);
}

#[test]
fn stats_counts_live_objects_after_the_releases_it_carries() {
    use simplerpc_core::SessionStats;
    let mut p = Pair::new(Extensions::ALL);
    let stats = |p: &mut Pair| SessionStats::from_response(p.request(Request::Stats)).unwrap();
    assert_eq!(stats(&mut p).live_objects, 0);
    let sim = p.obj(Request::ImportModule {
        module: "sim".into(),
    });
    let add = p.obj(Request::GetAttr {
        path: "sim".into(),
        obj_id: Some(sim),
        attr: "add".into(),
    });
    let s = stats(&mut p);
    assert_eq!(s.live_objects, 2);
    assert_eq!(s.requests, 4, "two objects, two stats requests");
    // The release rides on the stats request and counts already.
    p.client.release(add);
    assert_eq!(stats(&mut p).live_objects, 1);
    assert_eq!(p.server.live_objects(), 1);
}

#[test]
fn stats_is_never_sent_to_nor_answered_by_a_peer_without_it() {
    use simplerpc_core::codec::EncodeError;
    // A client that did not negotiate it refuses to build the request.
    let mut client = simplerpc_core::ClientSession::new(Extensions::ALL.without(Extensions::STATS));
    let err = client.send(&Request::Stats).unwrap_err();
    assert!(matches!(err, EncodeError::NotNegotiated { .. }), "{err:?}");
    assert!(err.to_string().contains("stats"), "{err}");
    assert_eq!(client.in_flight(), 0, "nothing counted in flight");
    // A server without it answers as the reference does, unknown type.
    let mut p = Pair::new(Extensions::ALL);
    let mut plain = simplerpc_core::ServerSession::new(
        common::registry().executor(),
        Extensions::ALL.without(Extensions::STATS),
    );
    let (_, frame) = p.client.send(&Request::Stats).unwrap();
    let resp = plain.handle_frame(Bytes::from(frame));
    match p.client.handle_frame(Bytes::from(resp)).unwrap().1 {
        Response::Error(e) => {
            assert_eq!(e.exception_type, PROTOCOL_ERROR);
            assert!(
                e.message.contains("Unknown message type: stats"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
}
