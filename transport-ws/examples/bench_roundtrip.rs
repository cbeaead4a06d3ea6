//! Round-trip latency of the Rust client and server over loopback.
//!
//! ```text
//! cargo run --release -p simplerpc-ws --example bench_roundtrip
//! ```
//! Prints the median time of `materialize` of arrays of several sizes, and of
//! a call with a small argument.

use std::sync::Arc;
use std::time::Instant;

use ndarray::Array1;
use simplerpc_core::Value;
use simplerpc_registry::{Array, Module, Registry};
use simplerpc_ws::{Client, ClientConfig, Server, ServerConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let registry = Arc::new(
        Registry::new().module(
            Module::new("b")
                .function("bytes", |n: usize| Array(Array1::<u8>::zeros(n)))
                .function("echo", |v: Value| v),
        ),
    );
    let server = Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ..ServerConfig::default()
        },
        move |_| registry.executor(),
    )
    .unwrap()
    .spawn()
    .unwrap();
    let client = Client::connect(&ClientConfig::new(
        "127.0.0.1",
        server.local_addr().port(),
        server.token(),
    ))
    .unwrap();
    let m = client.module("b").unwrap();
    let echo = m.getattr("echo").unwrap();
    let times: Vec<f64> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            echo.call_args(vec![Value::UInt(1)])
                .unwrap()
                .materialize()
                .unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    println!(
        "call + materialize of a small value: {:.0} µs",
        median(times)
    );
    for n in [1_000usize, 100_000, 921_600, 4_000_000, 64 << 20] {
        let a = m
            .getattr("bytes")
            .unwrap()
            .call_args(vec![Value::from(n)])
            .unwrap();
        let k = if n > 10_000_000 { 10 } else { 200 };
        let times: Vec<f64> = (0..k)
            .map(|_| {
                let t = Instant::now();
                let v = a.materialize().unwrap();
                assert!(matches!(v, Value::Array(ref x) if x.len() == n));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        println!("materialize {n:>9} bytes: {:>8.0} µs", median(times));
    }
    server.shutdown();
}
