//! Promise pipelining over a real WebSocket on 127.0.0.1: a lazy chain and
//! its materialize cost one round trip, errors keep their type and are never
//! lost, and dropped promises free their objects.

mod common;

use std::sync::atomic::Ordering;

use common::{connect, start};
use simplerpc_core::Extensions;
use simplerpc_ws::{Error, Value};

#[test]
fn a_chain_and_its_materialize_are_one_round_trip() {
    let (server, _state) = start();
    let client = connect(&server);
    assert!(client.promises(), "our server accepts promises");
    assert_eq!(client.extensions(), Extensions::ALL);
    let m = client.module("m").unwrap();
    let before = client.round_trips();
    // materialize(m.echo(1)): getattr, call and materialize in one wait.
    let v = m
        .getattr("echo")
        .unwrap()
        .call_args(vec![Value::UInt(1)])
        .unwrap()
        .materialize()
        .unwrap();
    assert_eq!(v, Value::UInt(1));
    assert_eq!(client.round_trips() - before, 1);
    // A promise as an argument: materialize(echo(echo(5))), one more.
    let echo = m.getattr("echo").unwrap();
    let inner = echo.call_args(vec![Value::UInt(5)]).unwrap();
    let outer = echo.call_args(vec![inner.as_value()]).unwrap();
    assert_eq!(outer.materialize().unwrap(), Value::UInt(5));
    assert_eq!(client.round_trips() - before, 2);
}

#[test]
fn errors_keep_their_type_and_are_never_lost() {
    let (server, _state) = start();
    let client = connect(&server);
    let m = client.module("m").unwrap();
    // The error of a chain comes back from its materialize, as its own type.
    let r = m.getattr("boom").unwrap().call0().unwrap();
    let err = r.getattr("x").unwrap().materialize().unwrap_err();
    let Error::Remote(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.exception_type, "builtins.RuntimeError");
    assert_eq!(e.message, "boom");
    // Reported once: the next wait is clean.
    assert_eq!(
        m.getattr("echo")
            .unwrap()
            .call_args(vec![Value::UInt(2)])
            .unwrap()
            .materialize()
            .unwrap(),
        Value::UInt(2)
    );
    // An error nobody waits for comes back from the next wait, named.
    let _ignored = m.getattr("missing").unwrap();
    let err = m
        .getattr("echo")
        .unwrap()
        .call_args(vec![Value::UInt(3)])
        .unwrap()
        .materialize()
        .unwrap_err();
    let Error::Remote(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.exception_type, "builtins.AttributeError");
    assert!(e.message.contains("m.missing"), "{}", e.message);
    // And the connection goes on.
    assert_eq!(
        m.getattr("echo")
            .unwrap()
            .call_args(vec![Value::UInt(4)])
            .unwrap()
            .materialize()
            .unwrap(),
        Value::UInt(4)
    );
}

#[test]
fn dropped_promises_free_their_objects() {
    let (server, state) = start();
    let client = connect(&server);
    let m = client.module("m").unwrap();
    let echo = m.getattr("echo").unwrap();
    assert_eq!(
        echo.call_args(vec![Value::UInt(0)])
            .unwrap()
            .materialize()
            .unwrap(),
        Value::UInt(0)
    );
    client.namespace().unwrap(); // carries the release of that result
    let base = state.live.load(Ordering::SeqCst);
    for i in 0..50u64 {
        // Dropped before its answer has come.
        drop(echo.call_args(vec![Value::UInt(i)]).unwrap());
    }
    let kept: Vec<_> = (0..50u64)
        .map(|i| echo.call_args(vec![Value::UInt(i)]).unwrap())
        .collect();
    assert_eq!(kept[49].materialize().unwrap(), Value::UInt(49));
    // Dropped after.
    drop(kept);
    client.namespace().unwrap();
    client.namespace().unwrap();
    assert_eq!(state.live.load(Ordering::SeqCst), base);
}

#[test]
fn every_wait_reports_a_failure_nobody_waited_for() {
    let (server, state) = start();
    let client = connect(&server);
    let m = client.module("m").unwrap();
    let _missing = m.getattr("missing").unwrap();
    // namespace() waits: it reports the failure ...
    let err = client.namespace().unwrap_err();
    assert_eq!(
        err.remote().unwrap().exception_type,
        "builtins.AttributeError"
    );
    // ... once.
    client.namespace().unwrap();
    // An object-returning wait holds its object before it reports one, so
    // nothing leaks: the module proxy is dropped with the error and freed.
    let _missing = m.getattr("missing").unwrap();
    client.namespace().unwrap_err();
    let _missing2 = m.getattr("missing").unwrap();
    let before = state.live.load(Ordering::SeqCst);
    assert!(client.module("m").is_err());
    client.namespace().unwrap();
    assert_eq!(state.live.load(Ordering::SeqCst), before);
}

#[test]
fn waiting_for_a_request_with_no_answer_says_so_and_keeps_the_connection() {
    use simplerpc_core::{Request, RequestId};
    let (server, _state) = start();
    let client = connect(&server);
    let id = client.send(&Request::Eval { expr: "x".into() }).unwrap();
    client.wait(id).unwrap();
    for never in [id, RequestId(999)] {
        assert!(matches!(client.wait(never), Err(Error::NoAnswer(n)) if n == never.0));
    }
    let m = client.module("m").unwrap();
    assert_eq!(
        m.getattr("echo")
            .unwrap()
            .call_args(vec![Value::UInt(5)])
            .unwrap()
            .materialize()
            .unwrap(),
        Value::UInt(5)
    );
}
