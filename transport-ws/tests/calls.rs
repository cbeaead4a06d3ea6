//! Calls over real sockets: every request kind, errors, big arrays,
//! concurrency, pipelining, releases.

mod common;

use simplerpc_registry::NdArrayExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::{connect, start, wait_until, with_deadline};
use simplerpc_core::server::EXECUTOR_PANIC;
use simplerpc_core::{NdArray, ObjId};
use simplerpc_ws::{Client, ClientConfig, Error, Extensions, Request, Response, Value};

#[test]
fn every_request_kind_round_trips() {
    let (server, _state) = start();
    let client = connect(&server);

    let m = client.module("m").unwrap();
    assert_eq!(m.path(), "m");
    let echo = m.getattr("echo").unwrap();
    assert_eq!(echo.path(), "m.echo");

    let arg = Value::List(vec![
        Value::from(1i64),
        Value::from("two"),
        Value::from(3.5),
        Value::Nil,
        Value::map([("k", Value::from(true))]),
        Value::Bin(bytes::Bytes::from_static(b"\x00\x01")),
    ]);
    let r = echo.call_args(vec![arg.clone()]).unwrap();
    assert_eq!(r.materialize().unwrap(), unsigned(arg));

    // kwargs
    let r = echo
        .call_kw(vec![], vec![("x".to_owned(), Value::from(7i64))])
        .unwrap();
    assert_eq!(r.materialize().unwrap(), Value::UInt(7));

    // a proxy as an argument and as a key
    let list = echo
        .call_args(vec![Value::from(vec![10i64, 20, 30])])
        .unwrap();
    let again = echo.call_args(vec![list.as_value()]).unwrap();
    assert_eq!(
        again.materialize().unwrap(),
        Value::List(vec![Value::UInt(10), Value::UInt(20), Value::UInt(30)])
    );
    let one = client.eval("1").unwrap();
    assert_eq!(
        list.getitem(one.as_value()).unwrap().materialize().unwrap(),
        Value::UInt(20)
    );
    assert_eq!(
        list.getitem(2i64).unwrap().materialize().unwrap(),
        Value::UInt(30)
    );

    // builtin
    let len = client.builtin("len").unwrap();
    assert_eq!(
        len.call_args(vec![list.as_value()])
            .unwrap()
            .materialize()
            .unwrap(),
        Value::UInt(3)
    );

    // eval, execute, namespace, teleport
    assert_eq!(
        client.eval("41").unwrap().materialize().unwrap(),
        Value::UInt(41)
    );
    client.execute("answer = 42").unwrap();
    assert_eq!(
        client.eval("answer").unwrap().materialize().unwrap(),
        Value::UInt(42)
    );
    let f = client.teleport(&b"pickled"[..], "f").unwrap();
    assert_eq!(
        f.materialize().unwrap(),
        Value::Bin(bytes::Bytes::from_static(b"pickled"))
    );
    let ns = client.namespace().unwrap();
    assert!(ns.contains(&("answer".to_string(), "<class 'int'>".to_string())));
    assert!(ns.iter().any(|(k, _)| k == "f"));

    // call and getattr by path, with no object id
    let r = client
        .call(&Request::Call {
            path: "m.echo".into(),
            obj_id: None,
            args: vec![Value::from("by path")],
            kwargs: vec![],
        })
        .unwrap();
    let Response::Object(id) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        client.proxy(id, "r").materialize().unwrap(),
        Value::from("by path")
    );
    let r = client
        .call(&Request::GetAttr {
            path: "m".into(),
            obj_id: None,
            attr: "zeros".into(),
        })
        .unwrap();
    assert!(matches!(r, Response::Object(_)));

    // zeros(n): an array
    let z = m
        .getattr("zeros")
        .unwrap()
        .call_args(vec![Value::from(4u64)])
        .unwrap();
    let Value::Array(a) = z.materialize().unwrap() else {
        panic!()
    };
    assert_eq!(a.to_vec::<f64>().unwrap(), vec![0.0; 4]);
}

/// Non-negative ints come back as `UInt`.
fn unsigned(v: Value) -> Value {
    match v {
        Value::Int(i) if i >= 0 => Value::UInt(i as u64),
        Value::List(items) => Value::List(items.into_iter().map(unsigned).collect()),
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (unsigned(k), unsigned(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn remote_errors_leave_the_connection_usable() {
    let (server, _state) = start();
    let client = connect(&server);
    let m = client.module("m").unwrap();

    // Pipelined: the call's error comes back from the wait that needs it.
    let err = m
        .getattr("boom")
        .unwrap()
        .call0()
        .unwrap()
        .materialize()
        .unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(remote.exception_type, "builtins.RuntimeError");
    assert_eq!(remote.message, "boom");
    assert!(remote.traceback.contains("in boom"));
    assert!(err.to_string().contains("Remote traceback"));

    // The raw request returns the error as a response.
    let raw = client
        .request(&Request::ImportModule {
            module: "nope".into(),
        })
        .unwrap();
    let Response::Error(e) = raw else {
        panic!("{raw:?}")
    };
    assert_eq!(e.exception_type, "builtins.ModuleNotFoundError");

    let err = m.getattr("missing").unwrap().materialize().unwrap_err();
    assert_eq!(
        err.remote().unwrap().exception_type,
        "builtins.AttributeError"
    );

    // An executor panic is an error too.
    let err = m
        .getattr("panic")
        .unwrap()
        .call0()
        .unwrap()
        .materialize()
        .unwrap_err();
    assert_eq!(err.remote().unwrap().exception_type, EXECUTOR_PANIC);

    // Unknown object id.
    let err = client
        .proxy(ObjId(9999), "ghost")
        .materialize()
        .unwrap_err();
    assert!(err.remote().is_some());

    let echo = m.getattr("echo").unwrap();
    let r = echo.call_args(vec![Value::from("still here")]).unwrap();
    assert_eq!(r.materialize().unwrap(), Value::from("still here"));
}

#[test]
fn arrays_of_64_mib_both_ways() {
    let (server, _state) = start();
    let client = connect(&server);
    let m = client.module("m").unwrap();
    let n = 64 << 20 >> 3;
    let data: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
    let sent = NdArray::from_vec(vec![n], data).unwrap();
    let echoed = m
        .getattr("echo")
        .unwrap()
        .call_args(vec![Value::Array(sent.clone())])
        .unwrap();
    let Value::Array(back) = echoed.materialize().unwrap() else {
        panic!()
    };
    assert_eq!(back.shape(), &[n]);
    assert_eq!(back.data(), sent.data());

    let zeros = m
        .getattr("zeros")
        .unwrap()
        .call_args(vec![Value::from(n)])
        .unwrap();
    let Value::Array(z) = zeros.materialize().unwrap() else {
        panic!()
    };
    assert_eq!(z.shape(), &[n]);
    assert!(z.data().iter().all(|&b| b == 0));
}

#[test]
fn sixteen_concurrent_clients() {
    let (server, _state) = start();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let client = connect(&server);
            thread::spawn(move || {
                let echo = client.module("m").unwrap().getattr("echo").unwrap();
                for i in 0..200u64 {
                    let v = Value::List(vec![Value::UInt(t), Value::UInt(i)]);
                    let r = echo.call_args(vec![v.clone()]).unwrap();
                    assert_eq!(r.materialize().unwrap(), v);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn one_client_shared_by_threads() {
    let (server, _state) = start();
    let client = connect(&server);
    let echo = client.module("m").unwrap().getattr("echo").unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let echo = echo.clone();
            thread::spawn(move || {
                for i in 0..100u64 {
                    let v = Value::UInt(t * 1000 + i);
                    let r = echo.call_args(vec![v.clone()]).unwrap();
                    assert_eq!(r.materialize().unwrap(), v);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn pipelined_requests_answer_in_order() {
    let (server, _state) = start();
    let client = connect(&server);
    let echo = client.module("m").unwrap().getattr("echo").unwrap();
    let calls: Vec<Request> = (0..100u64)
        .map(|i| Request::Call {
            path: "m.echo".into(),
            obj_id: Some(echo.id()),
            args: vec![Value::UInt(i)],
            kwargs: vec![],
        })
        .collect();
    let ids: Vec<ObjId> = client
        .pipeline(&calls)
        .unwrap()
        .into_iter()
        .map(|r| match r {
            Response::Object(id) => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 100);
    let reads: Vec<Request> = ids
        .iter()
        .map(|&obj_id| Request::Materialize { obj_id })
        .collect();
    let values = client.pipeline(&reads).unwrap();
    for (i, v) in values.into_iter().enumerate() {
        assert_eq!(v, Response::Value(Value::UInt(i as u64)));
    }
    assert!(client.pipeline(&[]).unwrap().is_empty());
}

#[test]
fn pipelined_large_requests_do_not_deadlock() {
    // Requests and responses each far larger than the socket buffers.
    let (server, _state) = start();
    let client = connect(&server);
    let echo = client.module("m").unwrap().getattr("echo").unwrap();
    let blob = Value::Bin(vec![7u8; 4 << 20].into());
    let calls: Vec<Request> = (0..8)
        .map(|_| Request::Call {
            path: "m.echo".into(),
            obj_id: Some(echo.id()),
            args: vec![blob.clone()],
            kwargs: vec![],
        })
        .collect();
    let ids = with_deadline("pipeline", {
        let client = client.clone();
        move || client.pipeline(&calls).unwrap()
    });
    let reads: Vec<Request> = ids
        .iter()
        .map(|r| match r {
            Response::Object(obj_id) => Request::Materialize { obj_id: *obj_id },
            other => panic!("{other:?}"),
        })
        .collect();
    let values = with_deadline("pipeline", move || client.pipeline(&reads).unwrap());
    assert!(values.iter().all(|v| *v == Response::Value(blob.clone())));
}

#[test]
fn dropped_proxies_are_released_with_the_next_request() {
    let (server, state) = start();
    let client = connect(&server);
    assert_eq!(client.extensions(), Extensions::ALL);
    let m = client.module("m").unwrap();
    let echo = m.getattr("echo").unwrap();
    let live = || state.live.load(Ordering::SeqCst);
    // The getattr is pipelined: a wait brings it through.
    client.namespace().unwrap();
    assert_eq!(live(), 2);

    let proxies: Vec<_> = (0..10i64)
        .map(|i| echo.call_args(vec![Value::from(i)]).unwrap())
        .collect();
    // The calls are pipelined: one wait brings them all through.
    assert_eq!(proxies[9].materialize().unwrap(), Value::UInt(9));
    assert_eq!(live(), 12);
    let kept = proxies[3].clone();
    drop(proxies);
    // The releases ride on the next request, handled before its response.
    let r = client.eval("5").unwrap();
    assert_eq!(r.materialize().unwrap(), Value::UInt(5));
    assert_eq!(
        live(),
        2 + 1 + 1,
        "m, echo, the kept proxy, the eval result"
    );
    assert_eq!(kept.materialize().unwrap(), Value::UInt(3));
    drop(r);
    drop(kept);
    client.namespace().unwrap();
    assert_eq!(live(), 2);

    // Disconnecting releases everything, and the executor with it.
    drop((m, echo));
    drop(client);
    wait_until("the session is released", || {
        live() == 0 && state.executors.load(Ordering::SeqCst) == 0
    });
}

#[test]
fn without_the_release_extension_objects_live_until_disconnect() {
    let (server, state) = start();
    let client = Client::connect(&ClientConfig {
        extensions: Extensions::NONE,
        ..common::config(&server)
    })
    .unwrap();
    assert_eq!(client.extensions(), Extensions::NONE);
    let m = client.module("m").unwrap();
    let p = client.eval("1").unwrap();
    drop(p);
    client.namespace().unwrap();
    assert_eq!(state.live.load(Ordering::SeqCst), 2);
    client.close();
    drop(m);
    assert!(matches!(client.namespace(), Err(Error::Closed(_))));
    wait_until("the session is released", || {
        state.live.load(Ordering::SeqCst) == 0
    });
}

#[test]
fn a_slow_call_does_not_delay_other_clients() {
    let (server, state) = start();
    let a = connect(&server);
    let b = connect(&server);
    let a_done = Arc::new(AtomicBool::new(false));
    let slow = {
        let a_done = a_done.clone();
        thread::spawn(move || {
            let m = a.module("m").unwrap();
            let r = m.getattr("block").unwrap().call0().unwrap();
            let v = r.materialize().unwrap();
            a_done.store(true, Ordering::SeqCst);
            v
        })
    };
    wait_until("A's call is running", || {
        state.blocked.load(Ordering::SeqCst) == 1
    });
    // A waits until B unblocks it: B's calls can only complete while A's
    // call is still running, or this test hangs (and the deadline fails it).
    with_deadline("client B's calls", move || {
        let m = b.module("m").unwrap();
        let echo = m.getattr("echo").unwrap();
        for i in 0..20u64 {
            let r = echo.call_args(vec![Value::UInt(i)]).unwrap();
            assert_eq!(r.materialize().unwrap(), Value::UInt(i));
        }
        assert!(
            !a_done.load(Ordering::SeqCst),
            "A finished before B's calls"
        );
        m.getattr("unblock")
            .unwrap()
            .call0()
            .unwrap()
            .materialize()
            .unwrap();
    });
    assert_eq!(
        with_deadline("client A's call", move || slow.join().unwrap()),
        Value::from("unblocked")
    );
}

#[test]
fn sleep_calls_complete() {
    let (server, _state) = start();
    let client = connect(&server);
    let sleep = client.module("m").unwrap().getattr("sleep").unwrap();
    let r = sleep.call_args(vec![Value::UInt(120)]).unwrap();
    assert_eq!(r.materialize().unwrap(), Value::Nil);
}

#[test]
fn a_panicking_connection_does_not_stop_the_server() {
    use std::sync::atomic::AtomicUsize;
    let state = Arc::new(common::State::default());
    let clients = Arc::new(AtomicUsize::new(0));
    let s = state.clone();
    let server = simplerpc_ws::Server::bind(
        simplerpc_ws::ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ..Default::default()
        },
        move |_: &simplerpc_ws::ClientInfo| {
            if clients.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the factory fails for the first client");
            }
            common::TestExecutor::new(s.clone())
        },
    )
    .unwrap()
    .spawn()
    .unwrap();
    let first = connect(&server);
    let err = first.eval("1").and_then(|p| p.materialize()).unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    let second = connect(&server);
    assert_eq!(
        second.eval("2").unwrap().materialize().unwrap(),
        Value::UInt(2)
    );
}

#[test]
fn a_request_past_its_timeout_fails_and_ends_the_connection() {
    let (server, _) = start();
    let mut cfg = common::config(&server);
    cfg.timeout = Some(std::time::Duration::from_millis(300));
    let client = Client::connect(&cfg).unwrap();
    let m = client.module("m").unwrap();
    // A quick call is within the limit.
    assert_eq!(
        m.getattr("echo")
            .unwrap()
            .call_args(vec![Value::UInt(7)])
            .unwrap()
            .materialize()
            .unwrap(),
        Value::UInt(7)
    );
    let sleep = m.getattr("sleep").unwrap();
    let err = with_deadline("the timed-out call", move || {
        sleep
            .call_args(vec![Value::UInt(1500)])
            .and_then(|r| r.materialize())
            .unwrap_err()
    });
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        matches!(client.eval("1"), Err(Error::Closed(_))),
        "the connection ended"
    );
    // Raising the limit on a fresh connection lets the slow call through.
    let client = connect(&server);
    client.set_timeout(Some(std::time::Duration::from_secs(30)));
    let r = client
        .module("m")
        .unwrap()
        .getattr("sleep")
        .unwrap()
        .call_args(vec![Value::UInt(400)]);
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn messages_over_the_limit_are_refused_clearly_on_both_sides() {
    // The server refuses an incoming message over its limit with close
    // code 1009 and a reason, and the client reports that reason.
    let (server, _state) = common::start_with(simplerpc_ws::ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        max_message_size: 64 << 10,
        ..Default::default()
    });
    let mut cfg = common::config(&server);
    let client = Client::connect(&cfg).unwrap();
    let echo = client.module("m").unwrap().getattr("echo").unwrap();
    let big = Value::Bin(vec![7u8; 256 << 10].into());
    let err = echo
        .call_args(vec![big.clone()])
        .and_then(|r| r.materialize())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("1009") && text.contains("over the limit of 65536"),
        "{text}"
    );
    // A client with a limit refuses to build a request over it, saying
    // its size and the limit, and the connection goes on.
    cfg.max_message_size = 64 << 10;
    let client = Client::connect(&cfg).unwrap();
    let echo = client.module("m").unwrap().getattr("echo").unwrap();
    let err = echo.call_args(vec![big]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("65536") && text.contains("limit"), "{text}");
    assert_eq!(
        echo.call_args(vec![Value::UInt(1)])
            .unwrap()
            .materialize()
            .unwrap(),
        Value::UInt(1)
    );
}
