//! Liveness over a slow link. A large message that takes longer than
//! `dead_after` to cross the link must not make its sender declare the peer
//! dead: the receiver, busy receiving, sends nothing meanwhile, but reading
//! our bytes is a sign of life too (found by a review).
//!
//! A throttling TCP proxy (about 8 MB/s each way) sits between client and server.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ndarray::Array1;
use simplerpc_core::NdArray;
use simplerpc_registry::{Array, Module, NdArrayExt, Registry};
use simplerpc_ws::{Client, ClientConfig, ClientInfo, RunningServer, Server, ServerConfig, Value};

const RATE: usize = 8 << 20; // bytes per second, each direction

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    let start = Instant::now();
    let mut moved = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        moved += n;
        let due = Duration::from_secs_f64(moved as f64 / RATE as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A proxy to `target` that moves at most RATE bytes/s each way.
fn slow_proxy(target: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { break };
            let s = TcpStream::connect(target).unwrap();
            let (c2, s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
            thread::spawn(move || pump(c, s));
            thread::spawn(move || pump(s2, c2));
        }
    });
    addr
}

fn server(dead_after: Option<Duration>) -> RunningServer {
    let registry = Arc::new(
        Registry::new().module(
            Module::new("big")
                .function("ramp", |n: usize| {
                    Array(Array1::<f64>::from_iter((0..n).map(|i| i as f64)))
                })
                .function("slow_len", |a: NdArray, ms: u64| {
                    thread::sleep(Duration::from_millis(ms));
                    a.data().len() as u64
                })
                .function("one", || 1u64),
        ),
    );
    Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ping_interval: Duration::from_millis(300),
            dead_after,
            ..ServerConfig::default()
        },
        move |_: &ClientInfo| registry.executor(),
    )
    .unwrap()
    .spawn()
    .unwrap()
}

fn client(server: &RunningServer, dead_after: Option<Duration>) -> Client {
    let via = slow_proxy(server.local_addr());
    Client::connect(&ClientConfig {
        ping_interval: Duration::from_millis(300),
        dead_after,
        ..ClientConfig::new("127.0.0.1", via.port(), server.token())
    })
    .unwrap()
}

/// Server -> client: a 32 MiB answer takes ~4 s over the link; the server
/// (dead_after 1 s) hears nothing from the client meanwhile and drops it
/// right after the answer is out, session and objects with it.
#[test]
fn server_keeps_a_client_that_took_long_to_read_a_large_answer() {
    let server = server(Some(Duration::from_secs(1)));
    let client = client(&server, None);
    let big = client.module("big").unwrap();
    let started = Instant::now();
    let Value::Array(a) = big
        .getattr("ramp")
        .unwrap()
        .call_args(vec![Value::from(4usize << 20)])
        .unwrap()
        .materialize()
        .unwrap()
    else {
        panic!("not an array")
    };
    eprintln!("32 MiB answer read in {:?}", started.elapsed());
    assert_eq!(a.data().len(), 32 << 20);
    // The connection, and the module proxy on it, must still work.
    let one = big.getattr("one").unwrap().call0().unwrap().materialize();
    assert!(
        one.is_ok(),
        "the server dropped a healthy client after sending it a large answer: {one:?}"
    );
}

/// Client -> server: a 32 MiB argument takes ~4 s over the link; the client
/// (dead_after 1 s) hears nothing from the server meanwhile, and the first
/// liveness check of the wait that follows calls the server dead although
/// it is running the call and answers pings.
#[test]
fn client_keeps_a_server_that_took_long_to_read_a_large_request() {
    let server = server(None);
    let client = client(&server, Some(Duration::from_secs(1)));
    let big = client.module("big").unwrap();
    let slow_len = big.getattr("slow_len").unwrap();
    let arg = NdArray::from_vec(vec![32 << 20], vec![7u8; 32 << 20]).unwrap();
    let started = Instant::now();
    let r = slow_len
        .call_args(vec![Value::Array(arg), Value::from(1500u64)])
        .and_then(|p| p.materialize());
    eprintln!("after {:?}: {r:?}", started.elapsed());
    assert!(
        matches!(r, Ok(Value::UInt(n)) if n == 32 << 20),
        "a healthy server was given up on after a large upload: {r:?}"
    );
}
