//! Promise pipelining between a client session and a server session in
//! memory: chains cost one round trip, errors keep their type and are never
//! lost, released promises free their objects, and nothing of it reaches a
//! peer that did not negotiate it.

#[allow(dead_code)] // each test file uses a part of it
mod common;

use common::registry;
use simplerpc_core::message::decode_request;
use simplerpc_core::server::PROTOCOL_ERROR;
use simplerpc_core::{
    Bytes, ClientError, ClientSession, Extensions, ObjId, Raw, Request, RequestId, Response,
    ServerSession, Value,
};

/// A client and a server, with the frames between them queued so that a
/// test counts round trips: frames the client writes wait in `wire` until
/// `round_trip` carries them all to the server and all answers back.
struct Link {
    client: ClientSession,
    server: ServerSession<simplerpc_registry::RegistryExecutor>,
    wire: Vec<Vec<u8>>,
    round_trips: usize,
}

impl Link {
    fn new(ext: Extensions) -> Link {
        Link {
            client: ClientSession::new(ext),
            server: ServerSession::new(registry().executor(), ext),
            wire: Vec::new(),
            round_trips: 0,
        }
    }

    fn pipelined(&mut self, r: Request) -> ObjId {
        let (_, promise, frame) = self.client.send_pipelined(&r).unwrap();
        self.wire.push(frame);
        promise
    }

    fn send(&mut self, r: Request) -> RequestId {
        let (id, frame) = self.client.send(&r).unwrap();
        self.wire.push(frame);
        id
    }

    /// Everything written goes to the server; every answer comes back.
    fn round_trip(&mut self) {
        self.round_trips += 1;
        for frame in std::mem::take(&mut self.wire) {
            let answer = self.server.handle_frame(Bytes::from(frame));
            self.client.receive(Bytes::from(answer)).unwrap();
        }
    }

    /// Wait for `id`: one round trip if its answer is not here yet.
    fn wait(&mut self, id: RequestId) -> Response {
        if !self.client.is_answered(id) || !self.wire.is_empty() {
            self.round_trip();
        }
        self.client.take(id).unwrap().unwrap().0
    }
}

fn getattr(obj: ObjId, path: &str, attr: &str) -> Request {
    Request::GetAttr {
        path: path.into(),
        obj_id: Some(obj),
        attr: attr.into(),
    }
}

fn call(obj: ObjId, path: &str, args: Vec<Value>) -> Request {
    Request::Call {
        path: path.into(),
        obj_id: Some(obj),
        args,
        kwargs: vec![],
    }
}

#[test]
fn a_call_and_its_materialize_are_one_round_trip() {
    let mut l = Link::new(Extensions::ALL);
    let sim = l.send(Request::ImportModule {
        module: "sim".into(),
    });
    let Response::Object(sim) = l.wait(sim) else {
        panic!()
    };
    let before = l.round_trips;
    // materialize(sim.add(2, 3)): getattr and call pipelined, one wait.
    let add = l.pipelined(getattr(sim, "sim", "add"));
    let r = l.pipelined(call(add, "sim.add", vec![2u8.into(), 3u8.into()]));
    let m = l.send(Request::Materialize { obj_id: r });
    assert_eq!(l.wait(m), Response::Value(Value::UInt(5)));
    assert_eq!(l.round_trips - before, 1);
}

#[test]
fn an_env_step_with_a_promise_argument_is_one_round_trip() {
    let mut l = Link::new(Extensions::ALL);
    let make = l.send(Request::GetAttr {
        path: "sim".into(),
        obj_id: None,
        attr: "make".into(),
    });
    let Response::Object(make) = l.wait(make) else {
        panic!()
    };
    let env = l.pipelined(call(make, "sim.make", vec![Value::UInt(0)]));
    let echo = l.pipelined(Request::GetAttr {
        path: "sim".into(),
        obj_id: None,
        attr: "echo".into(),
    });
    let before = l.round_trips;
    // materialize(env.step(0.5)) and materialize(echo(env)): the promise of
    // env as the target, and as an argument.
    let step = l.pipelined(getattr(env, "env", "step"));
    let out = l.pipelined(call(step, "env.step", vec![Value::Float(0.5)]));
    let m = l.send(Request::Materialize { obj_id: out });
    let Response::Value(v) = l.wait(m) else {
        panic!()
    };
    assert_eq!(v.get("reward"), Some(&Value::Float(0.25)));
    assert_eq!(l.round_trips - before, 1);
    let step2 = l.pipelined(call(step, "env.step", vec![Value::Float(1.0)]));
    let same = l.pipelined(call(echo, "sim.echo", vec![Value::Proxy(step2)]));
    let m = l.send(Request::Materialize { obj_id: same });
    let Response::Value(v) = l.wait(m) else {
        panic!()
    };
    assert_eq!(
        v.get("reward"),
        Some(&Value::Float(0.5)),
        "a promise as an argument"
    );
    assert_eq!(l.round_trips - before, 2);
}

#[test]
fn a_failed_request_fails_what_is_built_on_it_with_its_own_error() {
    let mut l = Link::new(Extensions::ALL);
    let sim = l.send(Request::ImportModule {
        module: "sim".into(),
    });
    let Response::Object(sim) = l.wait(sim) else {
        panic!()
    };
    let missing = l.pipelined(getattr(sim, "sim", "missing"));
    let r = l.pipelined(call(missing, "sim.missing", vec![]));
    let m = l.send(Request::Materialize { obj_id: r });
    let Response::Error(e) = l.wait(m) else {
        panic!("the materialize of a chain on a failed request fails")
    };
    assert_eq!(e.exception_type, "builtins.AttributeError");
    assert_eq!(e.cause.get(), Some(missing.as_promise().unwrap()));
    // Reported by that answer: not again.
    assert_eq!(l.client.take_failure(), None);
}

#[test]
fn an_error_nobody_waits_for_is_kept_for_the_next_wait() {
    let mut l = Link::new(Extensions::ALL);
    let sim = l.send(Request::ImportModule {
        module: "sim".into(),
    });
    let Response::Object(sim) = l.wait(sim) else {
        panic!()
    };
    let fail = l.pipelined(getattr(sim, "sim", "fail"));
    let failed = l.pipelined(call(fail, "sim.fail", vec![]));
    let also = l.pipelined(getattr(failed, "sim.fail()", "x"));
    let v = l.send(Request::Materialize { obj_id: sim });
    // The wait itself succeeds ...
    assert!(matches!(l.wait(v), Response::Error(_) | Response::Value(_)));
    // ... and the unrelated failure is there to raise, once, with its type;
    // the request built on it did not add a second one.
    let (id, e) = l.client.take_failure().unwrap();
    assert_eq!(id.0, failed.as_promise().unwrap());
    assert_eq!(e.exception_type, "builtins.ValueError");
    assert_eq!(l.client.take_failure(), None);
    let _ = also;
}

#[test]
fn an_error_handed_out_by_handle_frame_is_not_kept_as_well() {
    let mut l = Link::new(Extensions::ALL);
    let sim = l.send(Request::ImportModule {
        module: "sim".into(),
    });
    let Response::Object(sim) = l.wait(sim) else {
        panic!()
    };
    // A caller that reads every answer itself (handle_frame) is handed the
    // pipelined request's error, and the one built on it: nothing is left
    // to report twice, and nothing piles up.
    let missing = l.pipelined(getattr(sim, "sim", "missing"));
    let r = l.pipelined(call(missing, "sim.missing", vec![]));
    let also = l.pipelined(getattr(sim, "sim", "also_missing"));
    let add = l.pipelined(getattr(sim, "sim", "add"));
    let mut errors = Vec::new();
    for frame in std::mem::take(&mut l.wire) {
        let answer = l.server.handle_frame(Bytes::from(frame));
        match l.client.handle_frame(Bytes::from(answer)).unwrap() {
            (id, Response::Error(e)) => errors.push((id.0, e.cause.get())),
            (_, Response::Object(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let n = |p: ObjId| p.as_promise().unwrap();
    assert_eq!(
        errors,
        vec![
            (n(missing), None),
            (n(r), Some(n(missing))),
            (n(also), None)
        ]
    );
    assert_eq!(l.client.take_failure(), None);
    // The object of the one that succeeded is still noted for its promise.
    assert_ne!(l.client.settle(add), add);
    assert_eq!(l.client.pipeline_state(), (1, 0));
}

#[test]
fn dropped_promises_free_their_objects_before_and_after_their_answer() {
    let mut l = Link::new(Extensions::ALL);
    let sim = l.send(Request::ImportModule {
        module: "sim".into(),
    });
    let Response::Object(sim) = l.wait(sim) else {
        panic!()
    };
    let base = l.server.live_objects();
    // Dropped after its answer came.
    let a = l.pipelined(getattr(sim, "sim", "add"));
    l.round_trip();
    assert_eq!(l.server.live_objects(), base + 1);
    l.client.release(a);
    // Dropped before its answer came.
    let b = l.pipelined(getattr(sim, "sim", "echo"));
    l.client.release(b);
    l.round_trip();
    // Both releases ride on the next request.
    let v = l.send(Request::Materialize { obj_id: sim });
    let _ = l.wait(v);
    assert_eq!(l.server.live_objects(), base);
    assert_eq!(l.client.pipeline_state(), (0, 0));
}

#[test]
fn without_the_extension_nothing_is_pipelined() {
    for ext in [
        Extensions::NONE,
        Extensions::RELEASE,
        Extensions::negotiate(Some("release, promise"), Extensions::ALL),
    ] {
        let mut c = ClientSession::new(ext);
        assert_eq!(
            c.send_pipelined(&Request::Eval { expr: "1".into() })
                .unwrap_err(),
            ClientError::NoPromises
        );
    }
    // A client never sends a promise its peer did not accept, nor one of
    // a request it did not send.
    let mut stock = ClientSession::new(Extensions::RELEASE);
    let materialize_p0 = Request::Materialize {
        obj_id: ObjId::promise(0),
    };
    assert!(matches!(
        stock.send(&materialize_p0),
        Err(simplerpc_core::codec::EncodeError::Promise(0))
    ));
    let mut ours = ClientSession::new(Extensions::ALL);
    assert!(
        ours.send(&materialize_p0).is_err(),
        "request 0 was not sent"
    );
    let echo = Request::Call {
        path: "f".into(),
        obj_id: None,
        args: vec![Value::List(vec![Value::Proxy(ObjId::promise(7))])],
        kwargs: vec![],
    };
    assert!(ours.send(&echo).is_err(), "nor as an argument");
    // A promise sent to a server that did not negotiate it is refused, clearly.
    let mut server = ServerSession::new(registry().executor(), Extensions::NONE);
    let mut c = ClientSession::new(Extensions::ALL);
    let _ = c
        .send_pipelined(&Request::Eval { expr: "1".into() })
        .unwrap();
    let (_, f) = c.send(&materialize_p0).unwrap();
    let resp = server.handle_frame(Bytes::from(f));
    let mut plain = ClientSession::new(Extensions::NONE);
    let _ = plain.send(&Request::GetNamespace).unwrap();
    let Response::Error(e) = plain.handle_frame(Bytes::from(resp)).unwrap().1 else {
        panic!()
    };
    assert_eq!(e.exception_type, PROTOCOL_ERROR);
    assert!(e.message.contains("reserved"), "{}", e.message);
}

#[test]
fn promises_travel_as_markers_and_wire_ids_never_look_like_promises() {
    let mut c = ClientSession::new(Extensions::ALL);
    let (_, p, _) = c
        .send_pipelined(&Request::Eval { expr: "f".into() })
        .unwrap();
    let (_, f) = c
        .send(&Request::Call {
            path: "f".into(),
            obj_id: Some(p),
            args: vec![Value::Proxy(p)],
            kwargs: vec![],
        })
        .unwrap();
    let text = String::from_utf8_lossy(&f).into_owned();
    assert!(text.contains("__rpc_promise__"), "{text}");
    let back = decode_request(&Bytes::from(f)).unwrap();
    assert_eq!(
        back.request,
        Request::Call {
            path: "f".into(),
            obj_id: Some(p),
            args: vec![Value::Proxy(p)],
            kwargs: vec![],
        }
    );
    // An int id at or above 2^63 is not an object id.
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0x82, 0xa4]);
    frame.extend_from_slice(b"type");
    frame.push(0xab);
    frame.extend_from_slice(b"materialize");
    frame.push(0xa6);
    frame.extend_from_slice(b"obj_id");
    frame.push(0xcf);
    frame.extend_from_slice(&(1u64 << 63).to_be_bytes());
    assert!(decode_request(&Bytes::from(frame)).is_err());
}

#[test]
fn a_malformed_request_still_answers_its_id_frees_its_releases_and_fails_its_chain() {
    use simplerpc_core::message::RawRequest;
    let mut l = Link::new(Extensions::ALL);
    let sim = l.send(Request::ImportModule {
        module: "sim".into(),
    });
    let Response::Object(sim) = l.wait(sim) else {
        panic!()
    };
    let kept = l.pipelined(getattr(sim, "sim", "add"));
    l.round_trip();
    let base = l.server.live_objects();
    // The client checks what it can: kwargs keys must be str.
    assert!(l
        .client
        .send_raw(&RawRequest::Call {
            path: "f",
            obj_id: None,
            args: Raw::One(&[0x90]),
            kwargs: Raw::One(&[0x81, 0x01, 0x02]),
        })
        .is_err());
    // A frame the server cannot read: a call without args, carrying a
    // release. Built by hand, as a foreign client would.
    l.client.release(kept);
    let (bad, frame) = l.client.send(&Request::Eval { expr: "x".into() }).unwrap();
    let mut broken = frame.clone();
    let at = broken
        .windows(4)
        .position(|w| w == b"eval")
        .expect("the type is in the frame");
    broken[at..at + 4].copy_from_slice(b"call");
    let answer = l.server.handle_frame(Bytes::from(broken));
    l.client.receive(Bytes::from(answer)).unwrap();
    let Some(Ok((Response::Error(e), _))) = l.client.take(bad) else {
        panic!("the malformed request is answered, paired by its id")
    };
    assert_eq!(e.exception_type, PROTOCOL_ERROR);
    assert_eq!(l.server.live_objects(), base - 1, "its release was applied");
    // What is built on it fails with its error, marked with its cause.
    let m = l.send(Request::Materialize {
        obj_id: ObjId::promise(bad.0),
    });
    let Response::Error(dependent) = l.wait(m) else {
        panic!()
    };
    assert_eq!(dependent.message, e.message);
    assert_eq!(dependent.cause.get(), Some(bad.0));
}

#[test]
fn the_size_limit_counts_the_frame_not_an_estimate() {
    // 1,000 small ints make a frame of about 1 KiB: under a 4 KiB limit.
    let mut c = ClientSession::new(Extensions::ALL);
    c.set_max_frame(4096);
    let small = Request::Call {
        path: "f".into(),
        obj_id: None,
        args: vec![Value::List(
            (0..1000u64).map(|i| Value::UInt(i % 100)).collect(),
        )],
        kwargs: vec![],
    };
    let (_, frame) = c.send(&small).unwrap();
    assert!(frame.len() < 4096);
    let big = Request::Call {
        path: "f".into(),
        obj_id: None,
        args: vec![Value::Bin(vec![0u8; 5000].into())],
        kwargs: vec![],
    };
    let err = c.send(&big).unwrap_err();
    assert!(err.to_string().contains("4096"), "{err}");
}

/// A session keeps the errors of failed requests for promises built on
/// them, the newest 4096, but never more than `FAILED_KEPT_BYTES` of them:
/// errors with large messages (or pickles) once stayed by the thousand,
/// megabytes each (a soak's server grew by gigabytes).
#[test]
fn kept_errors_are_bounded_in_bytes_and_the_newest_is_always_kept() {
    use simplerpc_core::server::FAILED_KEPT_BYTES;
    use simplerpc_core::ExecError;
    use simplerpc_registry::{Module, Registry};

    let registry = Registry::new().module(
        Module::new("big").function("fail", |n: usize| -> Result<Value, ExecError> {
            Err(ExecError::value_error("x".repeat(n)))
        }),
    );
    let mut l = Link {
        client: ClientSession::new(Extensions::ALL),
        server: ServerSession::new(std::sync::Arc::new(registry).executor(), Extensions::ALL),
        wire: Vec::new(),
        round_trips: 0,
    };
    let big = l.send(Request::ImportModule {
        module: "big".into(),
    });
    let Response::Object(big) = l.wait(big) else {
        panic!()
    };
    let fail = l.pipelined(getattr(big, "big", "fail"));
    const MIB: usize = 1 << 20;
    let failed: Vec<ObjId> = (0..24)
        .map(|_| l.pipelined(call(fail, "big.fail", vec![Value::from(MIB as u64)])))
        .collect();
    l.round_trip();
    let (count, bytes) = l.server.failures_kept();
    assert!(
        bytes <= FAILED_KEPT_BYTES,
        "{count} errors of 1 MiB kept, {bytes} bytes, over the {FAILED_KEPT_BYTES}-byte bound"
    );
    assert!((1..24).contains(&count), "{count} errors kept");
    // The newest still fails what is built on it with its own error...
    let m = l.send(Request::Materialize {
        obj_id: *failed.last().unwrap(),
    });
    let Response::Error(e) = l.wait(m) else {
        panic!("the newest failure resolves")
    };
    assert_eq!(e.exception_type, "builtins.ValueError");
    assert_eq!(e.message.len(), MIB);
    // ... and the oldest, forgotten, is named as such.
    let m = l.send(Request::Materialize { obj_id: failed[0] });
    let Response::Error(e) = l.wait(m) else {
        panic!("a forgotten failure answers an error")
    };
    assert_eq!(e.exception_type, PROTOCOL_ERROR, "{}", e.message);
    assert!(e.message.contains("MiB of them"), "{}", e.message);
    // One error larger than the whole bound is still kept, alone.
    let huge = l.pipelined(call(
        fail,
        "big.fail",
        vec![Value::from((FAILED_KEPT_BYTES + MIB) as u64)],
    ));
    l.round_trip();
    assert_eq!(l.server.failures_kept().0, 1);
    let m = l.send(Request::Materialize { obj_id: huge });
    let Response::Error(e) = l.wait(m) else {
        panic!("the newest failure resolves")
    };
    assert_eq!(e.message.len(), FAILED_KEPT_BYTES + MIB);
}

/// A client that reuses a request id for a new failure: that error is the
/// newest, so it is the one kept when the bound in bytes forgets the
/// others (it once kept the id's old place, at the front, and was the
/// first forgotten).
#[test]
fn a_reused_id_s_new_error_counts_as_the_newest() {
    use simplerpc_core::ExecError;
    use simplerpc_registry::{Module, Registry};

    let registry = std::sync::Arc::new(Registry::new().module(
        Module::new("big").function("fail", |n: usize| -> Result<Value, ExecError> {
            Err(ExecError::value_error("x".repeat(n)))
        }),
    ));
    let mut server = ServerSession::new(registry.executor(), Extensions::ALL);
    const MIB: usize = 1 << 20;
    // Two clients on one session: the second's ids are the first's again.
    let mut clients = [
        ClientSession::new(Extensions::ALL),
        ClientSession::new(Extensions::ALL),
    ];
    let mut run = |c: &mut ClientSession, r: Request| -> Response {
        let (id, frame) = c.send(&r).unwrap();
        let answer = server.handle_frame(Bytes::from(frame));
        c.receive(Bytes::from(answer)).unwrap();
        c.take(id).unwrap().unwrap().0
    };
    let mut fails = Vec::new();
    for c in clients.iter_mut() {
        let Response::Object(big) = run(
            c,
            Request::ImportModule {
                module: "big".into(),
            },
        ) else {
            panic!()
        };
        let Response::Object(fail) = run(c, getattr(big, "big", "fail")) else {
            panic!()
        };
        fails.push(fail);
    }
    // Client 0: its third request fails small, its fourth with 7 MiB.
    let [first, second] = &mut clients;
    for n in [10, 7 * MIB] {
        let r = run(
            first,
            call(fails[0], "big.fail", vec![Value::from(n as u64)]),
        );
        assert!(matches!(r, Response::Error(_)));
    }
    // Client 1: its third request (the same id) fails with 2 MiB, past the
    // 8 MiB bound with the 7 MiB one: the older goes, the newest stays.
    let (_, promise, frame) = second
        .send_pipelined(&call(
            fails[1],
            "big.fail",
            vec![Value::from(2 * MIB as u64)],
        ))
        .unwrap();
    let answer = server.handle_frame(Bytes::from(frame));
    second.receive(Bytes::from(answer)).unwrap();
    assert_eq!(server.failures_kept().0, 1);
    let (id, frame) = second
        .send(&Request::Materialize { obj_id: promise })
        .unwrap();
    let answer = server.handle_frame(Bytes::from(frame));
    second.receive(Bytes::from(answer)).unwrap();
    let Response::Error(e) = second.take(id).unwrap().unwrap().0 else {
        panic!("a failure resolves to an error")
    };
    assert_eq!(e.exception_type, "builtins.ValueError", "{}", e.message);
    assert_eq!(e.message.len(), 2 * MIB);
}
