//! The server's limits, over real sockets on 127.0.0.1: connections, objects
//! per connection, the handshake deadline and executor stack size.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{config, connect, start_with, with_deadline};
use simplerpc_core::server::OBJECT_LIMIT;
use simplerpc_registry::{Module, Registry};
use simplerpc_ws::config::{DEFAULT_MAX_CONNECTIONS, DEFAULT_STACK_SIZE, MIN_STACK_SIZE};
use simplerpc_ws::{Client, ClientInfo, Error, RunningServer, Server, ServerConfig, Value};

#[test]
fn one_connection_over_the_cap_is_refused_with_503_naming_it() {
    assert_eq!(
        ServerConfig::default().max_connections,
        DEFAULT_MAX_CONNECTIONS
    );
    let (server, _) = start_with(ServerConfig {
        max_connections: 3,
        ..ServerConfig::default()
    });
    let mut clients: Vec<Client> = (0..3).map(|_| connect(&server)).collect();
    for c in &clients {
        c.module("m").unwrap();
    }
    let refused = |server: &RunningServer| match Client::connect(&config(server)) {
        Err(Error::Handshake { reason, .. }) => reason,
        Err(other) => panic!("expected a refused handshake, got {other}"),
        Ok(_) => panic!("a fourth connection was let in past max_connections = 3"),
    };
    let reason = refused(&server);
    assert!(reason.contains("503"), "{reason}");
    assert!(reason.contains("limit of 3 connections"), "{reason}");
    assert!(reason.contains("max_connections"), "{reason}");
    // The refusal cost the three nothing.
    for c in &clients {
        c.module("m").unwrap();
    }
    // A connection still in its handshake counts: it holds a thread.
    clients.pop();
    let mut got_in = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got_in.is_none() {
        assert!(Instant::now() < deadline, "no room after a client left");
        match Client::connect(&config(&server)) {
            Ok(c) => got_in = Some(c),
            Err(Error::Handshake { .. }) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    }
    drop(got_in);
    // A connection that just closed may still hold its slot a moment: a
    // silent one arriving then is refused itself, and does not count.
    thread::sleep(Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(10);
    let silent = loop {
        let s = TcpStream::connect(server.local_addr()).unwrap();
        // Once the silent connection has taken the free slot, a client is refused.
        thread::sleep(Duration::from_millis(50));
        match Client::connect(&config(&server)) {
            Err(Error::Handshake { reason, .. }) if reason.contains("503") => break s,
            Ok(c) => {
                drop(c);
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}"),
        }
        assert!(
            Instant::now() < deadline,
            "a silent connection never counted"
        );
    };
    drop(silent);
}

#[test]
fn the_handshake_deadline_holds_against_a_trickling_client() {
    let (server, _) = start_with(ServerConfig {
        handshake_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    });
    let addr = server.local_addr();
    let (closed_after, sent) = with_deadline("the trickling client", move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let start = Instant::now();
        // A request that never ends: its first line, then 200 more bytes of
        // one long header every 100 ms, each packet well within the server's
        // read poll and big enough for tungstenite's check of tiny packets.
        let mut packets = std::iter::once(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec())
            .chain(std::iter::repeat(vec![b'a'; 200]));
        let mut sent = 0;
        loop {
            let ended = match s.write_all(&packets.next().unwrap()) {
                Ok(()) => {
                    sent += 1;
                    let mut buf = [0u8; 64];
                    match s.read(&mut buf) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            false
                        }
                        Err(_) => true,
                    }
                }
                Err(_) => true,
            };
            if ended || start.elapsed() > Duration::from_secs(15) {
                return (start.elapsed(), sent);
            }
        }
    });
    assert!(
        closed_after < Duration::from_secs(10),
        "a client trickling bytes kept its handshake open {closed_after:?} past a 1 s deadline"
    );
    // It was the deadline, not an early refusal.
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?} after {sent} bytes"
    );
    assert!(sent >= 5, "{sent} packets");
    // A prompt client is still served.
    connect(&server).module("m").unwrap();
}

#[test]
fn objects_over_the_limit_are_refused_until_released() {
    let (server, _) = start_with(ServerConfig {
        max_objects: 2,
        ..ServerConfig::default()
    });
    let client = connect(&server);
    let a = client.module("m").unwrap();
    let b = client.module("m").unwrap();
    let limited = |r: Result<Value, Error>| {
        let err = r.expect_err("an object past max_objects = 2");
        let remote = err.remote().expect("a remote error").clone();
        assert_eq!(remote.exception_type, OBJECT_LIMIT);
        assert!(
            remote.message.contains("max_objects = 2"),
            "{}",
            remote.message
        );
    };
    limited(client.module("m").map(|_| Value::Nil));
    // Pipelined: the promise's wait tells.
    limited(a.getattr("echo").unwrap().materialize());
    // A release (riding on the next request) makes room.
    drop(b);
    let echo = a.getattr("echo").unwrap();
    limited(echo.call_args(vec![Value::UInt(4)]).unwrap().materialize());
    drop(echo);
    client.module("m").unwrap();
}

/// Recurse, a KiB of locals a frame, until `bytes` of stack below `top`
/// are in use; returns how deep it went.
fn deep(bytes: usize, top: usize) -> u64 {
    let pad = std::hint::black_box([1u8; 1024]);
    let here = &pad as *const [u8; 1024] as usize;
    if top.saturating_sub(here) >= bytes {
        return 1;
    }
    std::hint::black_box(deep(bytes, top)) + pad[1023] as u64
}

/// Use `mib` MiB of the calling thread's stack.
fn use_stack(mib: usize) -> u64 {
    let top = 0u8;
    deep(mib << 20, std::hint::black_box(&top) as *const u8 as usize)
}

fn deep_server(stack_size: usize) -> RunningServer {
    let registry = Arc::new(
        Registry::new().module(Module::new("stack").function("use", |mib: usize| use_stack(mib))),
    );
    Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            stack_size,
            ..ServerConfig::default()
        },
        move |_: &ClientInfo| registry.executor(),
    )
    .unwrap()
    .spawn()
    .unwrap()
}

fn call_deep(server: &RunningServer, mib: usize) -> Value {
    let client = connect(server);
    let r = client
        .module("stack")
        .unwrap()
        .getattr("use")
        .unwrap()
        .call_args(vec![Value::UInt(mib as u64)])
        .unwrap();
    r.materialize().unwrap()
}

#[test]
fn executor_threads_have_deep_stacks_by_default_and_as_configured() {
    assert_eq!(ServerConfig::default().stack_size, DEFAULT_STACK_SIZE);
    // 5 MiB of stack: past the 2 MiB a Rust thread gets by default, which
    // would kill this process.
    let server = deep_server(DEFAULT_STACK_SIZE);
    assert!(matches!(call_deep(&server, 5), Value::UInt(n) if n > 1000));
    drop(server);
    let server = deep_server(32 << 20);
    assert!(matches!(call_deep(&server, 24), Value::UInt(n) if n > 5000));
}

#[test]
fn limits_that_cannot_work_are_refused_at_bind() {
    let cases = [
        (
            ServerConfig {
                max_connections: 0,
                ..ServerConfig::default()
            },
            "max_connections",
        ),
        (
            ServerConfig {
                max_objects: 0,
                ..ServerConfig::default()
            },
            "max_objects",
        ),
        (
            ServerConfig {
                stack_size: MIN_STACK_SIZE - 1,
                ..ServerConfig::default()
            },
            "stack_size",
        ),
        (
            ServerConfig {
                handshake_timeout: Duration::ZERO,
                ..ServerConfig::default()
            },
            "handshake_timeout",
        ),
    ];
    for (config, field) in cases {
        let registry = Arc::new(Registry::new());
        let bound = Server::bind(
            ServerConfig {
                host: "127.0.0.1".into(),
                port: 0,
                ..config
            },
            move |_: &ClientInfo| registry.executor(),
        );
        match bound {
            Err(Error::Config(why)) => assert!(why.contains(field), "{why}"),
            other => panic!("{field}: expected a config error, got {other:?}"),
        }
    }
}
