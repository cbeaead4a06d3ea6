//! The `tuple` extension between a client session and a server session:
//! tuples stay tuples when both negotiated it, and a peer without it sees
//! plain arrays only (and keeps its own `{"__tuple__": ...}` maps as maps).

use std::sync::Arc;

use ndarray::Array2;
use simplerpc_core::{
    Bytes, ClientSession, Extensions, ObjId, Request, Response, ServerSession, Value,
};
use simplerpc_registry::{Array, Module, NdArrayExt, Registry, RegistryExecutor};

fn registry() -> Arc<Registry> {
    Arc::new(
        Registry::new().module(
            Module::new("sim")
                .function("echo", |v: Value| v)
                // A Rust tuple: (obs, reward, terminated, truncated, info).
                .function("step", |n: usize| {
                    (
                        Array(Array2::<f32>::from_elem((n, 3), 1.5)),
                        0.25f64,
                        false,
                        true,
                        Value::map([("pos", (1u8, 2u8))]),
                    )
                })
                // A tuple argument arrives as a Rust tuple (or a list of two).
                .function("area", |shape: (u64, u64)| shape.0 * shape.1),
        ),
    )
}

struct Pair {
    client: ClientSession,
    server: ServerSession<RegistryExecutor>,
    /// Every frame that crossed, both ways.
    wire: Vec<Vec<u8>>,
}

impl Pair {
    fn new(client: Extensions, server: Extensions) -> Pair {
        // What the handshake would settle on.
        let ext = Extensions::negotiate(Some(&client.header_value()), server);
        Pair {
            client: ClientSession::new(ext),
            server: ServerSession::new(registry().executor(), ext),
            wire: Vec::new(),
        }
    }

    fn request(&mut self, r: Request) -> Response {
        let (_, frame) = self.client.send(&r).unwrap();
        self.wire.push(frame.clone());
        let resp = self.server.handle_frame(Bytes::from(frame));
        self.wire.push(resp.clone());
        self.client.handle_frame(Bytes::from(resp)).unwrap().1
    }

    fn call(&mut self, f: &str, args: Vec<Value>) -> Value {
        let Response::Object(id) = self.request(Request::Call {
            path: format!("sim.{f}"),
            obj_id: None,
            args,
            kwargs: vec![],
        }) else {
            panic!("sim.{f} failed")
        };
        self.materialize(id)
    }

    fn materialize(&mut self, obj_id: ObjId) -> Value {
        match self.request(Request::Materialize { obj_id }) {
            Response::Value(v) => v,
            other => panic!("{other:?}"),
        }
    }

    fn saw_marker(&self) -> bool {
        self.wire
            .iter()
            .any(|f| f.windows(9).any(|w| w == b"__tuple__"))
    }
}

fn nested() -> Value {
    Value::Tuple(vec![
        Value::UInt(1),
        Value::Tuple(vec![Value::str("a"), Value::Tuple(vec![])]),
        Value::List(vec![Value::Tuple(vec![Value::Nil])]),
        Value::Map(vec![(
            Value::Tuple(vec![Value::UInt(2), Value::UInt(3)]),
            Value::Tuple(vec![Value::Bool(true)]),
        )]),
    ])
}

/// `v` with every tuple a list: what a peer without the extension gets.
fn listed(mut v: Value) -> Value {
    let _ = v.walk_mut(&mut |x: &mut Value| {
        if let Value::Tuple(items) = x {
            *x = Value::List(std::mem::take(items));
        }
        Ok::<(), ()>(())
    });
    v
}

#[test]
fn tuples_stay_tuples_both_ways_when_both_speak_it() {
    let mut p = Pair::new(Extensions::ALL, Extensions::ALL);
    assert!(p.client.extensions().tuples());
    assert_eq!(p.call("echo", vec![nested()]), nested());
    assert_eq!(
        p.call("area", vec![Value::Tuple(vec![6u8.into(), 7u8.into()])]),
        Value::UInt(42)
    );
    let Value::Tuple(step) = p.call("step", vec![Value::UInt(200)]) else {
        panic!("a Rust tuple comes back a tuple")
    };
    let Value::Array(obs) = &step[0] else {
        panic!()
    };
    assert_eq!(obs.shape(), &[200, 3]);
    assert_eq!(obs.to_vec::<f32>().unwrap(), vec![1.5f32; 600]);
    assert_eq!(
        step[1..4],
        [Value::Float(0.25), Value::Bool(false), Value::Bool(true)]
    );
    assert_eq!(
        step[4],
        Value::map([("pos", Value::Tuple(vec![1u8.into(), 2u8.into()]))])
    );
    assert!(p.saw_marker());
}

#[test]
fn a_peer_without_the_extension_never_sees_the_marker() {
    // Our client with a server that leaves `tuple` out, a stock client
    // (offers nothing), and our server with an older client: the same.
    for (client, server) in [
        (Extensions::ALL, Extensions::ALL.without(Extensions::TUPLE)),
        (Extensions::NONE, Extensions::ALL),
        (Extensions::ALL.without(Extensions::TUPLE), Extensions::ALL),
    ] {
        let mut p = Pair::new(client, server);
        assert!(!p.client.extensions().tuples());
        assert_eq!(p.call("echo", vec![nested()]), listed(nested()));
        assert_eq!(
            p.call("area", vec![Value::Tuple(vec![6u8.into(), 7u8.into()])]),
            Value::UInt(42)
        );
        let Value::List(step) = p.call("step", vec![Value::UInt(2)]) else {
            panic!("a tuple is a list for a peer without the extension")
        };
        assert_eq!(step.len(), 5);
        assert!(matches!(step[0], Value::Array(_)));
        assert!(!p.saw_marker(), "{client:?} {server:?}");
        // The peer's own map with the key "__tuple__" stays that map.
        let theirs = Value::map([("__tuple__", Value::List(vec![1u8.into()]))]);
        assert_eq!(p.call("echo", vec![theirs.clone()]), theirs);
    }
}
