//! WebSocket end to end with the Rust registry executor: a 64 MiB array in
//! each direction, and 16 concurrent clients stepping their own environments.

use simplerpc_registry::NdArrayExt;
use std::sync::Arc;
use std::thread;

use ndarray::{Array1, Array3};
use simplerpc_core::{DType, NdArray, Value};
use simplerpc_registry::{Array, Class, Instance, Module, NdView, Registry};
use simplerpc_ws::{Client, ClientConfig, RunningServer, Server, ServerConfig};

struct Env {
    t: u64,
}

fn start() -> RunningServer {
    let env = Class::<Env>::new("Env")
        .method("step", |e: &mut Env, action: f64| {
            e.t += 1;
            Value::map([
                (
                    "obs",
                    Value::from(Array(Array3::<u8>::from_elem(
                        (48, 64, 3),
                        (e.t % 256) as u8,
                    ))),
                ),
                ("reward", Value::Float(action)),
            ])
        })
        .materialize(|e: &Env| e.t)
        .build();
    let registry = Arc::new(
        Registry::new().module(
            Module::new("sim")
                .function("make", move || Instance::new(&env, Env { t: 0 }))
                .function("echo", |v: Value| v)
                .function("checksum", |a: NdArray| {
                    a.data().iter().map(|&b| b as u64).sum::<u64>()
                })
                .function("total", |a: NdView<f64>| a.view().sum())
                .function("twice", |a: NdView<f64>| Array(a.view().mapv(|x| 2.0 * x)))
                // Whether a float64 argument can be read where it lies in the request.
                .function("in_place", |a: NdArray| {
                    let at = a.data().as_ptr();
                    NdView::<f64>::new(a)
                        .map(|v| v.as_slice().as_ptr().cast::<u8>() == at)
                        .unwrap_or(false)
                })
                .function("ramp", |n: usize| {
                    Array(Array1::<f64>::from_iter((0..n).map(|i| i as f64)))
                })
                // A gym-style step result as a Rust tuple.
                .function("step", |n: usize| {
                    (
                        Array(Array1::<f64>::from_iter((0..n).map(|i| i as f64))),
                        1.0f64,
                        false,
                        true,
                        Value::map([("pos", (3u8, 4u8))]),
                    )
                })
                .function("swap", |pair: (String, i64)| (pair.1, pair.0)),
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

#[test]
fn sixty_four_mib_each_way() {
    let server = start();
    let client = connect(&server);
    let sim = client.module("sim").unwrap();
    // Server to client: 8 Mi float64 = 64 MiB.
    let n = 8 << 20;
    let Value::Array(a) = sim
        .getattr("ramp")
        .unwrap()
        .call_args(vec![Value::from(n)])
        .unwrap()
        .materialize()
        .unwrap()
    else {
        panic!("not an array")
    };
    assert_eq!((a.dtype(), a.len()), (DType::Float64, n));
    // Array data sits at whatever offset the frame puts it, so it is rarely
    // aligned for a zero-copy view: to_ndarray copies (once).
    let v = a.to_ndarray::<f64>().unwrap();
    assert_eq!((v[0], v[n - 1], v[12345]), (0.0, (n - 1) as f64, 12345.0));
    // Client to server and back: 64 MiB of bytes with a pattern.
    let data: Vec<u8> = (0..64usize << 20).map(|i| (i * 7 % 251) as u8).collect();
    let want: u64 = data.iter().map(|&b| b as u64).sum();
    let arr = NdArray::from_vec(vec![data.len()], data).unwrap();
    let sum = sim
        .getattr("checksum")
        .unwrap()
        .call_args(vec![Value::Array(arr.clone())])
        .unwrap();
    assert_eq!(sum.materialize().unwrap(), Value::UInt(want));
    let back = sim
        .getattr("echo")
        .unwrap()
        .call_args(vec![Value::Array(arr.clone())])
        .unwrap()
        .materialize()
        .unwrap();
    assert_eq!(back, Value::Array(arr));
    server.shutdown();
}

#[test]
fn typed_views_read_arrays_where_they_lie_on_both_sides() {
    let server = start();
    let client = connect(&server);
    let sim = client.module("sim").unwrap();
    let n = 1 << 20;
    let Value::Array(a) = sim
        .getattr("ramp")
        .unwrap()
        .call_args(vec![Value::from(n)])
        .unwrap()
        .materialize()
        .unwrap()
    else {
        panic!("not an array")
    };
    // The client placed the array's data aligned in the frame: no copy.
    let at = a.data().as_ptr();
    let v = NdView::<f64>::new(a.clone()).unwrap();
    assert_eq!(v.as_slice().as_ptr().cast::<u8>(), at);
    assert_eq!(v.as_slice()[n - 1], (n - 1) as f64);
    let want = (n * (n - 1) / 2) as f64;
    let arg = || vec![Value::Array(a.clone())];
    let total = sim.getattr("total").unwrap().call_args(arg()).unwrap();
    assert_eq!(total.materialize().unwrap(), Value::Float(want));
    let in_place = sim.getattr("in_place").unwrap().call_args(arg()).unwrap();
    assert_eq!(in_place.materialize().unwrap(), Value::Bool(true));
    let Value::Array(b) = sim
        .getattr("twice")
        .unwrap()
        .call_args(arg())
        .unwrap()
        .materialize()
        .unwrap()
    else {
        panic!("not an array")
    };
    assert_eq!(b.to_vec::<f64>().unwrap()[n - 1], 2.0 * (n - 1) as f64);
    // The wrong dtype is a TypeError naming it.
    let ints = NdArray::from_vec(vec![3], vec![1i64, 2, 3]).unwrap();
    let err = sim
        .getattr("total")
        .unwrap()
        .call_args(vec![Value::Array(ints)])
        .and_then(|r| r.materialize())
        .unwrap_err()
        .to_string();
    assert!(err.contains("int64"), "{err}");
    server.shutdown();
}

#[test]
fn sixteen_clients_step_their_own_envs() {
    let server = start();
    let port = server.local_addr().port();
    let token = server.token().to_owned();
    let workers: Vec<_> = (0..16)
        .map(|k| {
            let token = token.clone();
            thread::spawn(move || {
                let client = Client::connect(&ClientConfig::new("127.0.0.1", port, token)).unwrap();
                let env = client
                    .module("sim")
                    .unwrap()
                    .getattr("make")
                    .unwrap()
                    .call0()
                    .unwrap();
                let step = env.getattr("step").unwrap();
                for t in 1..=60u64 {
                    let out = step.call_args(vec![Value::Float(k as f64)]).unwrap();
                    let Value::Array(obs) = out.getitem("obs").unwrap().materialize().unwrap()
                    else {
                        panic!()
                    };
                    assert!(
                        obs.data().iter().all(|&b| b as u64 == t % 256),
                        "client {k} step {t}"
                    );
                    assert_eq!(
                        out.getitem("reward").unwrap().materialize().unwrap(),
                        Value::Float(k as f64)
                    );
                }
                assert_eq!(
                    env.materialize().unwrap(),
                    Value::UInt(60),
                    "each client has its own env"
                );
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    server.shutdown();
}

/// The `tuple` extension over the socket: a Rust tuple comes back a tuple
/// to a client that negotiated it (its large array intact), and a list to
/// one that did not; a tuple argument converts to a Rust tuple either way.
#[test]
fn rust_tuples_stay_tuples_for_a_client_that_speaks_tuple() {
    use simplerpc_core::Extensions;
    use simplerpc_registry::NdArrayExt;
    let server = start();
    let n = 1 << 20; // 8 MiB of float64
    let want: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let pair = Value::Tuple(vec![Value::str("a"), Value::Int(-1)]);
    for offer in [Extensions::ALL, Extensions::ALL.without(Extensions::TUPLE)] {
        let mut config = ClientConfig::new("127.0.0.1", server.local_addr().port(), server.token());
        config.extensions = offer;
        let client = Client::connect(&config).unwrap();
        assert_eq!(client.extensions(), offer);
        let sim = client.module("sim").unwrap();
        let step = sim
            .getattr("step")
            .unwrap()
            .call_args(vec![Value::from(n)])
            .unwrap()
            .materialize()
            .unwrap();
        let swapped = sim
            .getattr("swap")
            .unwrap()
            .call_args(vec![pair.clone()])
            .unwrap()
            .materialize()
            .unwrap();
        let (items, pos, swapped_items) = match (offer.tuples(), step, swapped) {
            (true, Value::Tuple(items), Value::Tuple(s)) => {
                (items, Value::Tuple(vec![3u8.into(), 4u8.into()]), s)
            }
            (false, Value::List(items), Value::List(s)) => {
                (items, Value::List(vec![3u8.into(), 4u8.into()]), s)
            }
            (t, step, swapped) => panic!("tuples {t}: {step:?} {swapped:?}"),
        };
        let Value::Array(obs) = &items[0] else {
            panic!("{:?}", items[0])
        };
        assert_eq!(obs.to_vec::<f64>().unwrap(), want);
        assert_eq!(
            items[1..4],
            [Value::Float(1.0), Value::Bool(false), Value::Bool(true)]
        );
        assert_eq!(items[4], Value::map([("pos", pos)]));
        assert_eq!(swapped_items, vec![Value::Int(-1), Value::str("a")]);
    }
}
