//! The stream transport end to end over a Unix socketpair, with the Rust
//! registry executor on the server side.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ndarray::Array1;
use simplerpc_core::{NdArray, ObjId, Request, Response, Value};
use simplerpc_registry::{Array, Module, Registry};
use simplerpc_stream::{serve, Client, ClientConfig, Error, Extensions, ServerConfig, StopHandle};

fn registry() -> Arc<Registry> {
    Arc::new(
        Registry::new().module(
            Module::new("sim")
                .function("echo", |v: Value| v)
                .function("ramp", |n: usize| {
                    Array(Array1::<f64>::from_iter((0..n).map(|i| i as f64)))
                })
                .function("sum", |a: NdArray| {
                    a.data().iter().map(|&b| b as u64).sum::<u64>()
                })
                .function("nap", |ms: u64| {
                    thread::sleep(Duration::from_millis(ms));
                    ms
                }),
        ),
    )
}

type ServerThread = thread::JoinHandle<Result<simplerpc_stream::Served, Error>>;

fn start(config: ServerConfig) -> (UnixStream, ServerThread) {
    let (a, b) = UnixStream::pair().unwrap();
    let reg = registry();
    let t = thread::spawn(move || serve(b, reg.executor(), &config));
    (a, t)
}

fn object(r: Response) -> ObjId {
    match r {
        Response::Object(id) => id,
        other => panic!("expected an object, got {other:?}"),
    }
}

fn call(client: &Client, f: ObjId, args: Vec<Value>) -> ObjId {
    object(
        client
            .request(&Request::Call {
                path: String::new(),
                obj_id: Some(f),
                args,
                kwargs: vec![],
            })
            .unwrap(),
    )
}

fn value(client: &Client, obj: ObjId) -> Value {
    match client
        .request(&Request::Materialize { obj_id: obj })
        .unwrap()
    {
        Response::Value(v) => v,
        other => panic!("expected a value, got {other:?}"),
    }
}

fn attr(client: &Client, obj: ObjId, name: &str) -> ObjId {
    object(
        client
            .request(&Request::GetAttr {
                path: String::new(),
                obj_id: Some(obj),
                attr: name.into(),
            })
            .unwrap(),
    )
}

#[test]
fn calls_large_arrays_both_ways_and_a_clean_end() {
    let (a, server) = start(ServerConfig::default());
    let client = Client::connect(a, &ClientConfig::default()).unwrap();
    assert_eq!(client.extensions(), Extensions::ALL);
    let sim = object(
        client
            .request(&Request::ImportModule {
                module: "sim".into(),
            })
            .unwrap(),
    );
    let echo = attr(&client, sim, "echo");
    let e = call(&client, echo, vec![Value::Str("hi".into())]);
    assert_eq!(value(&client, e), Value::Str("hi".into()));
    // Server to client: 4 Mi float64 = 32 MiB, in one frame.
    let ramp = attr(&client, sim, "ramp");
    let n = 4 << 20;
    let r = call(&client, ramp, vec![Value::from(n)]);
    let Value::Array(arr) = value(&client, r) else {
        panic!("not an array")
    };
    assert_eq!(arr.data().len(), n * 8);
    let last = f64::from_le_bytes(arr.data()[n * 8 - 8..].try_into().unwrap());
    assert_eq!(last, (n - 1) as f64);
    // Client to server: 24 MiB of ones.
    let sum = attr(&client, sim, "sum");
    let big = Value::from(Array(Array1::<u8>::from_elem(24 << 20, 1)));
    let s = call(&client, sum, vec![big]);
    assert_eq!(value(&client, s), Value::UInt(24 << 20));
    client.release(s);
    client.close();
    let served = server.join().unwrap().unwrap();
    assert!(served.requests >= 9, "{served:?}");
}

#[test]
fn a_long_pipeline_of_large_answers_does_not_deadlock() {
    // 40 answers of 4 MiB each, 40 requests of 1 MiB each sent before any
    // answer is read: more than either socket buffer holds, both ways.
    let (a, server) = start(ServerConfig::default());
    let client = Client::connect(a, &ClientConfig::default()).unwrap();
    let sim = object(
        client
            .request(&Request::ImportModule {
                module: "sim".into(),
            })
            .unwrap(),
    );
    let ramp = attr(&client, sim, "ramp");
    let echo = attr(&client, sim, "echo");
    let payload = Value::Bin(bytes::Bytes::from(vec![7u8; 1 << 20]));
    let mut ids = Vec::new();
    for _ in 0..40 {
        let p = client
            .send_pipelined(&Request::Call {
                path: String::new(),
                obj_id: Some(ramp),
                args: vec![Value::from(512usize << 10)],
                kwargs: vec![],
            })
            .unwrap();
        ids.push(client.send(&Request::Materialize { obj_id: p }).unwrap());
        let q = client
            .send_pipelined(&Request::Call {
                path: String::new(),
                obj_id: Some(echo),
                args: vec![payload.clone()],
                kwargs: vec![],
            })
            .unwrap();
        client.release(p);
        client.release(q);
    }
    for id in ids {
        match client.wait(id).unwrap().0 {
            Response::Value(Value::Array(a)) => assert_eq!(a.data().len(), 4 << 20),
            other => panic!("{other:?}"),
        }
    }
    assert!(client.take_failure().is_none());
    drop(client);
    server.join().unwrap().unwrap();
}

#[test]
fn an_oversized_length_is_refused_without_allocating() {
    let (mut a, server) = start(ServerConfig {
        max_message_size: 1 << 20,
        ..ServerConfig::default()
    });
    a.write_all(b"simplerpc-stream/1 release\n").unwrap();
    let mut hello = [0u8; 27];
    a.read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"simplerpc-stream/1 release\n");
    // 1 TiB announced: refused from the prefix alone.
    a.write_all(&(1u64 << 40).to_le_bytes()).unwrap();
    let e = server.join().unwrap().unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { size, limit } if size == 1 << 40 && limit == 1 << 20),
        "{e}"
    );
    assert!(e.to_string().contains("max_message_size"), "{e}");
    // The server closed its end.
    let mut rest = Vec::new();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(a.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn a_peer_that_is_no_server_is_named_and_a_dead_server_is_an_error() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let t = thread::spawn(move || {
        b.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        let mut sink = [0u8; 64];
        let _ = b.read(&mut sink);
    });
    let e = Client::connect(a, &ClientConfig::default()).unwrap_err();
    assert!(matches!(e, Error::Handshake(_)), "{e}");
    assert!(e.to_string().contains("HTTP/1.1 400"), "{e}");
    t.join().unwrap();

    // A server that goes away mid-call: the wait fails, and so does the next request.
    let (a, server) = start(ServerConfig::default());
    let stop = StopHandle::new(&a).unwrap();
    let client = Client::connect(a.try_clone().unwrap(), &ClientConfig::default()).unwrap();
    let sim = object(
        client
            .request(&Request::ImportModule {
                module: "sim".into(),
            })
            .unwrap(),
    );
    let nap = attr(&client, sim, "nap");
    let id = client
        .send(&Request::Call {
            path: String::new(),
            obj_id: Some(nap),
            args: vec![Value::from(200usize)],
            kwargs: vec![],
        })
        .unwrap();
    stop.stop();
    let e = client.wait(id).unwrap_err();
    assert!(matches!(e, Error::Closed(_)), "{e}");
    let e = client
        .request(&Request::ImportModule {
            module: "sim".into(),
        })
        .unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
    server.join().unwrap().unwrap();
}

#[test]
fn a_client_without_extensions_gets_none() {
    let (a, server) = start(ServerConfig::default());
    let client = Client::connect(
        a,
        &ClientConfig {
            extensions: Extensions::NONE,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    assert_eq!(client.extensions(), Extensions::NONE);
    assert!(!client.promises());
    let sim = object(
        client
            .request(&Request::ImportModule {
                module: "sim".into(),
            })
            .unwrap(),
    );
    let e = client.send_pipelined(&Request::GetAttr {
        path: String::new(),
        obj_id: Some(sim),
        attr: "echo".into(),
    });
    assert!(e.is_err());
    client.close();
    assert_eq!(server.join().unwrap().unwrap().extensions, Extensions::NONE);
}

/// A timeout too long for a deadline (`Duration::MAX`) is no limit, not a
/// panic while the connection's lock is held.
#[test]
fn the_longest_timeout_is_no_limit() {
    let (a, server) = start(ServerConfig::default());
    let config = ClientConfig {
        timeout: Some(Duration::MAX),
        ..ClientConfig::default()
    };
    let client = Client::connect(a, &config).unwrap();
    let sim = object(
        client
            .request(&Request::ImportModule {
                module: "sim".into(),
            })
            .unwrap(),
    );
    client.set_timeout(Some(Duration::MAX));
    let echo = attr(&client, sim, "echo");
    let e = call(&client, echo, vec![Value::from(7u8)]);
    assert_eq!(value(&client, e), Value::from(7u8));
    client.close();
    server.join().unwrap().unwrap();
}

/// `encoded` cut as the Python package cuts a call's arguments: each large
/// array's data a part of its own, its bin header ending the part before.
fn cut(encoded: &[u8]) -> Vec<&[u8]> {
    let (_, ranges) = simplerpc_core::codec::split_bins(encoded, 1 << 16).unwrap();
    let mut parts = Vec::new();
    let mut at = 0;
    for r in ranges {
        parts.push(&encoded[at..r.start]);
        parts.push(&encoded[r.clone()]);
        at = r.end;
    }
    parts.push(&encoded[at..]);
    parts
}

#[test]
fn a_64_mib_argument_in_parts_arrives_byte_exact() {
    use simplerpc_core::{codec, Raw, RawRequest};
    let (a, server) = start(ServerConfig::default());
    let client = Client::connect(a, &ClientConfig::default()).unwrap();
    let sim = object(
        client
            .request(&Request::ImportModule {
                module: "sim".into(),
            })
            .unwrap(),
    );
    let n = 64 << 20;
    let data: Vec<u8> = (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761) as u8)
        .collect();
    let arr = Value::Array(
        NdArray::new(
            simplerpc_core::DType::UInt8,
            simplerpc_core::ByteOrder::NotApplicable,
            vec![n],
            data.into(),
        )
        .unwrap(),
    );
    let encoded = codec::to_vec(&Value::List(vec![arr.clone(), Value::Int(-1)])).unwrap();
    let parts = cut(&encoded);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1].len(), n);
    let (r, _) = client
        .request_raw_fields(&RawRequest::Call {
            path: "sim.echo",
            obj_id: Some(attr(&client, sim, "echo")),
            args: Raw::Parts(&parts),
            kwargs: Raw::One(&[]),
        })
        .unwrap();
    // echo takes one argument: the array arrived whole, or this is an error.
    let Response::Error(e) = r else {
        panic!("echo of two arguments answered {r:?}")
    };
    assert!(e.message.contains("argument"), "{e}");
    let encoded = codec::to_vec(&Value::List(vec![arr.clone()])).unwrap();
    let parts = cut(&encoded);
    let (r, _) = client
        .request_raw_fields(&RawRequest::Call {
            path: "sim.echo",
            obj_id: Some(attr(&client, sim, "echo")),
            args: Raw::Parts(&parts),
            kwargs: Raw::One(&[]),
        })
        .unwrap();
    let echoed = object(r);
    assert_eq!(value(&client, echoed), arr);
    // Pipelined: the sum of what arrived, through a promise.
    let sum = attr(&client, sim, "sum");
    let p = client
        .send_raw_pipelined(&RawRequest::Call {
            path: "sim.sum",
            obj_id: Some(sum),
            args: Raw::Parts(&parts),
            kwargs: Raw::One(&[]),
        })
        .unwrap();
    let Value::Array(a) = arr else { unreachable!() };
    let want: u64 = a.data().iter().map(|&b| u64::from(b)).sum();
    assert_eq!(value(&client, p), Value::UInt(want));
    client.close();
    server.join().unwrap().unwrap();
}
