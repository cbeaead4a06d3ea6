//! Typed values over WebSocket: the Rust client and the Rust registry with
//! serde types and arrays, the example binary run as a test.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use simplerpc_registry::{Module, Registry, Serde};
use simplerpc_ws::ndarray::{array, Array1, Array2, Array3, ArrayD};
use simplerpc_ws::{
    Client, ClientConfig, Error, NdArray, NdArrayExt, RunningServer, Server, ServerConfig, Value,
};

#[allow(dead_code)]
#[path = "../examples/typed_client.rs"]
mod typed_client;

#[test]
fn the_typed_client_example_runs() {
    let summary = typed_client::run().unwrap();
    assert_eq!(summary.steps.len(), 3);
    assert_eq!(summary.steps[0].obs, array![[0u8, 1, 0], [0, 0, 0]]);
    assert_eq!(summary.steps[0].info.pos, (0, 1));
    assert!(!summary.steps[1].done);
    let last = &summary.steps[2];
    assert!(last.done);
    assert_eq!(last.reward, 1.0);
    assert_eq!(last.info.counts["Jump"], 1);
    assert_eq!(last.info.counts["Right"], 1);
    assert_eq!(summary.scaled, array![2.0, 4.0, 6.0]);
    assert_eq!(
        summary.wrong_type,
        "grid.make().step() cannot be read as WrongStep: \
         obs: expected an array of f32, found an array of uint8"
    );
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Point {
    x: i64,
    y: i64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Batch {
    name: String,
    points: Vec<Point>,
    weights: Array1<f32>,
    image: Array3<u8>,
    raw: NdArray,
    tag: Option<String>,
}

fn start() -> RunningServer {
    let registry = Arc::new(
        Registry::new().module(
            Module::new("t")
                .function("echo", |v: Value| v)
                .function("norm2", |Serde(p): Serde<Point>| p.x * p.x + p.y * p.y)
                .function("flip", |Serde(b): Serde<Batch>| {
                    Serde(Batch {
                        name: b.name.to_uppercase(),
                        points: b.points.iter().rev().cloned().collect(),
                        weights: b.weights.mapv(|w| -w),
                        image: b.image.mapv(|p| 255 - p),
                        raw: b.raw,
                        tag: b.tag.or(Some("flipped".into())),
                    })
                })
                .function("add", |a: i64, b: i64| a + b)
                // ndarray arrays of a fixed dimension, in and out, no wrapper.
                .function("transpose", |a: Array2<f32>| a.reversed_axes())
                .function("pair", || (7u8, "seven"))
                .function("grid", |n: usize| {
                    Serde(Array2::<i32>::from_shape_fn((n, n + 1), |(i, j)| {
                        (i * 10 + j) as i32
                    }))
                }),
        ),
    );
    Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ..ServerConfig::default()
        },
        move |_| registry.executor(),
    )
    .unwrap()
    .spawn()
    .unwrap()
}

fn connect(s: &RunningServer) -> Client {
    Client::connect(&ClientConfig::new(
        "127.0.0.1",
        s.local_addr().port(),
        s.token(),
    ))
    .unwrap()
}

fn batch() -> Batch {
    Batch {
        name: "b".into(),
        points: vec![Point { x: 1, y: 2 }, Point { x: -3, y: 4 }],
        weights: array![0.5, 1.5],
        image: Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 12 + j * 4 + k) as u8),
        raw: NdArray::from_vec(vec![3], vec![1u64, 2, 3]).unwrap(),
        tag: None,
    }
}

#[test]
fn serde_types_and_arrays_both_ways() {
    let server = start();
    let client = connect(&server);
    let t = client.module("t").unwrap();

    let n: i64 = t
        .getattr("norm2")
        .unwrap()
        .call((Point { x: 3, y: 4 },))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(n, 25);
    let sum: i64 = t
        .getattr("add")
        .unwrap()
        .call((2, 5))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(sum, 7);
    // call_args keeps working.
    let sum: u8 = t
        .getattr("add")
        .unwrap()
        .call_args(vec![Value::from(1u8), Value::from(2u8)])
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(sum, 3);

    let b = batch();
    let flipped: Batch = t
        .getattr("flip")
        .unwrap()
        .call((&b,))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(flipped.name, "B");
    assert_eq!(
        flipped.points,
        vec![b.points[1].clone(), b.points[0].clone()]
    );
    assert_eq!(flipped.weights, array![-0.5, -1.5]);
    assert_eq!(flipped.image, b.image.mapv(|p| 255 - p));
    assert_eq!(flipped.raw.to_vec::<u64>().unwrap(), vec![1, 2, 3]);
    assert_eq!(flipped.tag.as_deref(), Some("flipped"));

    // A Rust tuple result, read as a tuple; an array as ndarray or rows.
    let pair: (u8, String) = t
        .getattr("pair")
        .unwrap()
        .call0()
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(pair, (7, "seven".to_owned()));
    let g = t.getattr("grid").unwrap().call((2,)).unwrap();
    let a: Array2<i32> = g.materialize_as().unwrap();
    assert_eq!(a, array![[0, 1, 2], [10, 11, 12]]);
    let d: ArrayD<i32> = g.materialize_as().unwrap();
    assert_eq!(d.shape(), &[2, 3]);
    let rows: Vec<Vec<i64>> = g.materialize_as().unwrap();
    assert_eq!(rows, vec![vec![0, 1, 2], vec![10, 11, 12]]);
    let v = g.materialize().unwrap();
    let tf: Array2<i32> = v.try_into().unwrap();
    assert_eq!(tf, a);

    // A registry function on an Array2, given a zero-copy Value.
    let tr: Array2<f32> = t
        .getattr("transpose")
        .unwrap()
        .call((Value::from(array![[1.0f32, 2.0, 3.0]]),))
        .unwrap()
        .materialize_as()
        .unwrap();
    assert_eq!(tr, array![[1.0], [2.0], [3.0]]);

    // A proxy as an argument (inside a tuple) travels as its reference.
    let e: Vec<i64> = t
        .getattr("echo")
        .unwrap()
        .call((&g,))
        .unwrap()
        .materialize_as()
        .map(|rows: Vec<Vec<i64>>| rows.concat())
        .unwrap();
    assert_eq!(e, vec![0, 1, 2, 10, 11, 12]);
    server.shutdown();
}

#[test]
fn what_does_not_fit_is_named() {
    let server = start();
    let client = connect(&server);
    let t = client.module("t").unwrap();

    // On the client: the path of the field, and the proxy it came from.
    let g = t.getattr("grid").unwrap().call((2,)).unwrap();
    let err = g.materialize_as::<Array2<u8>>().unwrap_err();
    assert!(matches!(err, Error::Convert { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "t.grid() cannot be read as ArrayBase<OwnedRepr<u8>, Dim<[usize; 2]>, u8>: \
         expected an array of u8, found an array of int32"
    );
    let echoed = t
        .getattr("echo")
        .unwrap()
        .call((vec![Value::Nil, Value::map([("x", 1.5)])],))
        .unwrap();
    let err = echoed
        .materialize_as::<(Option<Point>, Point)>()
        .unwrap_err();
    let Error::Convert { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.path(), "1.x");

    // On the server: a TypeError naming the argument and the field.
    let mut bad = batch();
    bad.points.clear();
    let mut v = simplerpc_ws::to_value(&bad).unwrap();
    if let Value::Map(pairs) = &mut v {
        pairs[2].1 = Value::from(array![1.0f64]);
    }
    let err = t
        .getattr("flip")
        .unwrap()
        .call((v,))
        .unwrap()
        .materialize()
        .unwrap_err();
    let remote = err.remote().expect("a remote error");
    assert_eq!(remote.exception_type, "builtins.TypeError");
    assert_eq!(
        remote.message,
        "argument 1: weights: expected an array of f32, found an array of float64"
    );

    // A registry function on an Array2 given a 1-d array, and the wrong dtype.
    let tr = t.getattr("transpose").unwrap();
    let err = tr
        .call((array![1.0f32],))
        .unwrap()
        .materialize()
        .unwrap_err();
    assert_eq!(
        err.remote().unwrap().message,
        "argument 1: expected a 2-d array of f32, found a 1-d array of shape [1]"
    );
    let err = tr
        .call((array![[1i64]],))
        .unwrap()
        .materialize()
        .unwrap_err();
    assert_eq!(
        err.remote().unwrap().message,
        "argument 1: expected an array of f32, found an array of int64"
    );

    // An argument that has no value fails before anything is sent.
    let err = t.getattr("add").unwrap().call((1, u128::MAX)).unwrap_err();
    assert!(matches!(err, Error::Convert { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("argument 1 has no protocol value"),
        "{err}"
    );
    server.shutdown();
}
