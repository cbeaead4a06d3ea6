//! The handshake (token, extensions) and what raw WebSocket peers see.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use common::{config, connect, start, start_with, wait_until, with_deadline};
use simplerpc_core::extensions::HEADER;
use simplerpc_core::message::{decode_response, encode_request};
use simplerpc_core::server::PROTOCOL_ERROR;
use simplerpc_ws::{
    Client, ClientConfig, Error, Extensions, Request, Response, ServerConfig, Value,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

type Raw = WebSocket<TcpStream>;

/// A raw tungstenite client; `offer` goes into the extensions header.
fn raw_client(
    port: u16,
    token: &str,
    offer: Option<&str>,
) -> (Raw, tungstenite::handshake::client::Response) {
    let mut req = format!("ws://127.0.0.1:{port}/?token={token}")
        .into_client_request()
        .unwrap();
    if let Some(o) = offer {
        req.headers_mut().insert(HEADER, o.parse().unwrap());
    }
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    tungstenite::client::client(req, stream).unwrap()
}

fn read_binary(ws: &mut Raw) -> Response {
    loop {
        match ws.read().unwrap() {
            Message::Binary(b) => return decode_response(&b).unwrap().response,
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn frame(req: &Request) -> Message {
    Message::Binary(
        encode_request(req, None, &[], Extensions::NONE)
            .unwrap()
            .into(),
    )
}

/// Send a raw upgrade request and read everything the server answers.
fn raw_http(port: u16, target: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn wrong_or_missing_token_is_refused_before_the_upgrade() {
    let (server, state) = start();
    let port = server.local_addr().port();

    let wrong = ClientConfig {
        token: Some("not-the-token".into()),
        ..config(&server)
    };
    assert!(matches!(
        Client::connect(&wrong),
        Err(Error::Unauthorized { .. })
    ));
    let missing = ClientConfig {
        token: None,
        ..config(&server)
    };
    let err = Client::connect(&missing).unwrap_err();
    assert!(matches!(err, Error::MissingToken { .. }), "{err:?}");
    assert!(err.to_string().contains("SIMPLERPC_TOKEN"));

    for target in ["/?token=wrong", "/", "/?other=1"] {
        let answer = raw_http(port, target);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(!answer.contains("101"), "{answer}");
        assert!(!answer.to_ascii_lowercase().contains("sec-websocket-accept"));
        assert!(answer.ends_with("invalid or missing token\n"), "{answer}");
    }
    // A stock client sees a failed connection.
    let req = format!("ws://127.0.0.1:{port}/")
        .into_client_request()
        .unwrap();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    match tungstenite::client::client(req, stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            assert_eq!(resp.status(), 401)
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(state.executors.load(Ordering::SeqCst), 0);

    // The right token still works, percent-encoded or not.
    let (mut ws, _) = raw_client(port, server.token(), None);
    ws.send(frame(&Request::ImportModule { module: "m".into() }))
        .unwrap();
    assert!(matches!(read_binary(&mut ws), Response::Object(_)));
}

#[test]
fn tokens_with_reserved_characters_work() {
    let (server, _state) = start_with(ServerConfig {
        token: Some("a b&c=d/é".into()),
        ..ServerConfig::default()
    });
    let client = connect(&server);
    client.module("m").unwrap();
}

#[test]
fn extensions_are_negotiated() {
    let (server, _state) = start();
    let port = server.local_addr().port();
    assert_eq!(connect(&server).extensions(), Extensions::ALL);

    let (_, resp) = raw_client(port, server.token(), None);
    assert!(resp.headers().get(HEADER).is_none());

    let (_, resp) = raw_client(port, server.token(), Some("release, future-thing"));
    assert_eq!(resp.headers().get(HEADER).unwrap(), "release");

    let (_, resp) = raw_client(port, server.token(), Some("future-thing"));
    assert!(resp.headers().get(HEADER).is_none());

    // A server that accepts only `release`.
    let (server, _state) = start_with(ServerConfig {
        extensions: Extensions::RELEASE,
        ..ServerConfig::default()
    });
    assert_eq!(connect(&server).extensions(), Extensions::RELEASE);
}

#[test]
fn garbage_frames_get_error_responses() {
    let (server, _state) = start();
    let (mut ws, _) = raw_client(server.local_addr().port(), server.token(), None);
    for garbage in [
        &b"\xc1\xff\x00"[..],
        b"",
        b"\x93\x01\x02\x03",
        b"\x81\xa4type\xa4nope",
    ] {
        ws.send(Message::Binary(garbage.to_vec().into())).unwrap();
        let Response::Error(e) = read_binary(&mut ws) else {
            panic!()
        };
        assert_eq!(e.exception_type, PROTOCOL_ERROR);
    }
    ws.send(Message::text("{\"type\": \"import_module\"}"))
        .unwrap();
    assert!(matches!(read_binary(&mut ws), Response::Error(_)));

    ws.send(frame(&Request::ImportModule { module: "m".into() }))
        .unwrap();
    assert!(matches!(read_binary(&mut ws), Response::Object(_)));
}

#[test]
fn pings_are_answered_during_a_slow_call() {
    let (server, state) = start();
    let (mut ws, _) = raw_client(server.local_addr().port(), server.token(), None);
    ws.send(frame(&Request::Call {
        path: "m.block".into(),
        obj_id: None,
        args: vec![],
        kwargs: vec![],
    }))
    .unwrap();
    wait_until("the call is running", || {
        state.blocked.load(Ordering::SeqCst) == 1
    });
    // A pipelined request is taken while the slow call runs.
    ws.send(frame(&Request::Eval { expr: "7".into() })).unwrap();
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong while the call is blocked, got {other:?}"),
    }
    connect(&server)
        .module("m")
        .unwrap()
        .getattr("unblock")
        .unwrap()
        .call0()
        .unwrap();
    assert!(matches!(read_binary(&mut ws), Response::Object(_)));
    assert!(matches!(read_binary(&mut ws), Response::Object(_)));
}

/// A fake server that accepts the upgrade, then behaves as `act` says.
fn fake_server(act: impl FnOnce(&mut Raw) + Send + 'static) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        act(&mut ws);
    });
    (port, handle)
}

#[test]
fn reference_server_token_refusal_is_unauthorized() {
    // The reference server reads the token only from the URL's query: it
    // accepts the upgrade, then closes with 1008. Our client, which sent
    // the token in a header, tries once more with it in the URL too.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = thread::spawn(move || {
        let mut targets = Vec::new();
        // Two attempts at most: the first, and the one with the query.
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut target = String::new();
            // tungstenite's callback type fixes the error type.
            #[allow(clippy::result_large_err)]
            let mut ws = tungstenite::accept_hdr(
                stream,
                |req: &tungstenite::handshake::server::Request, resp| {
                    target = req.uri().to_string();
                    Ok(resp)
                },
            )
            .unwrap();
            targets.push(target);
            ws.close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "Invalid token".into(),
            }))
            .unwrap();
            while ws.read().is_ok() {}
            if targets.last().is_some_and(|t| t.contains("token=")) {
                break;
            }
        }
        targets
    });
    // Reported by connect, which waits briefly for exactly this; on a slow
    // machine the close may come later and then the first request reports it.
    let err = match Client::connect(&ClientConfig::new("127.0.0.1", port, "whatever")) {
        Err(e) => e,
        Ok(client) => {
            assert_eq!(client.extensions(), Extensions::NONE);
            with_deadline("the first request", move || {
                client.eval("1").map(|_| ()).unwrap_err()
            })
        }
    };
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let targets = fake.join().unwrap();
    assert!(!targets[0].contains("token="), "{targets:?}");
    if targets.len() == 2 {
        assert!(targets[1].ends_with("?token=whatever"), "{targets:?}");
    }
}

#[test]
fn idle_clients_answer_pings() {
    let (ponged_tx, ponged_rx) = std::sync::mpsc::channel();
    let (port, fake) = fake_server(move |ws| {
        ws.send(Message::Ping(b"idle?".to_vec().into())).unwrap();
        match ws.read().unwrap() {
            Message::Pong(p) => assert_eq!(&p[..], b"idle?"),
            other => panic!("{other:?}"),
        }
        ponged_tx.send(()).unwrap();
        // Then serve one reference-protocol request.
        let Message::Binary(req) = ws.read().unwrap() else {
            panic!()
        };
        let req = simplerpc_core::message::decode_request(&req).unwrap();
        assert_eq!(req.id, None, "no extensions against a stock server");
        let resp = simplerpc_core::message::encode_response(
            &simplerpc_core::message::ResponseFrame {
                id: None,
                response: Response::Value(Value::from("pong")),
            },
            Extensions::NONE,
        )
        .unwrap();
        ws.send(Message::Binary(resp.into())).unwrap();
        while ws.read().is_ok() {}
    });
    let client = Client::connect(&ClientConfig::new("127.0.0.1", port, "t")).unwrap();
    // Nobody calls: the keepalive thread must answer the ping.
    ponged_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("an idle client answers pings");
    let v = with_deadline("the request", move || {
        let v = client
            .request(&Request::Materialize {
                obj_id: simplerpc_ws::ObjId(0),
            })
            .unwrap();
        client.close();
        v
    });
    assert_eq!(v, Response::Value(Value::from("pong")));
    fake.join().unwrap();
}

#[test]
fn a_silent_listener_is_a_connect_timeout_and_no_listener_a_refusal() {
    // Accepts TCP (the backlog), never answers the upgrade.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = ClientConfig {
        connect_timeout: Some(Duration::from_millis(200)),
        ..ClientConfig::new("127.0.0.1", port, "t")
    };
    let err = with_deadline("connecting to a silent listener", move || {
        Client::connect(&cfg).map(|_| ())
    })
    .unwrap_err();
    assert!(
        matches!(err, Error::ConnectTimeout { after, .. } if after == Duration::from_millis(200)),
        "{err:?}"
    );
    drop(silent);

    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = ClientConfig {
        connect_timeout: Some(Duration::from_secs(30)),
        ..ClientConfig::new("127.0.0.1", free, "t")
    };
    match Client::connect(&cfg) {
        Err(Error::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused connection, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_server_that_drips_its_answer_is_a_connect_timeout() {
    // A listener that reads the upgrade request and then answers a byte
    // every 50 ms: each read of the client is quick, the whole answer is not.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dripper = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(n @ 1..) => head.extend_from_slice(&b[..n]),
                _ => return,
            }
        }
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" {
            thread::sleep(Duration::from_millis(50));
            if s.write_all(&[*byte]).is_err() {
                return;
            }
        }
    });
    let cfg = ClientConfig {
        connect_timeout: Some(Duration::from_millis(500)),
        ..ClientConfig::new("127.0.0.1", port, "t")
    };
    let got = with_deadline("connecting to a server that drips its answer", move || {
        Client::connect(&cfg).map(|_| ())
    });
    assert!(
        matches!(got, Err(Error::ConnectTimeout { after, .. }) if after == Duration::from_millis(500)),
        "{got:?}"
    );
    dripper.join().unwrap();
}

#[test]
fn over_loopback_the_client_masks_with_the_zero_key() {
    // A hand-made server: the upgrade by hand, then the first frame's bytes
    // as they came. Over 127.0.0.1 the client's frames carry the all-zero
    // key (the mask bit set, the payload as it is); elsewhere a random one.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "the request ended early");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_owned())
            })
            .expect("a Sec-WebSocket-Key");
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n{HEADER}: {}\r\n\r\n",
            Extensions::ALL.header_value()
        )
        .unwrap();
        // The first frame: 2 bytes, the length, the key, the payload.
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let ext = match h[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mut len = [0u8; 8];
        s.read_exact(&mut len[8 - ext..]).unwrap();
        let len = if ext == 0 {
            u64::from(h[1] & 0x7f)
        } else {
            u64::from_be_bytes(len)
        };
        let mut key = [0u8; 4];
        s.read_exact(&mut key).unwrap();
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload).unwrap();
        (h[1] & 0x80, key, payload)
    });
    let mut config = ClientConfig::new("127.0.0.1", port, "t");
    config.timeout = Some(Duration::from_secs(5));
    let client = Client::connect(&config).unwrap();
    // The answer never comes: the fake server hangs up after the frame.
    let _ = client.eval("40 + 2");
    let (mask_bit, key, payload) = fake.join().unwrap();
    assert_eq!(mask_bit, 0x80, "the frame is masked");
    assert_eq!(key, [0; 4]);
    // The payload is readable as it came: the request, unmasked.
    let text = String::from_utf8_lossy(&payload);
    assert!(text.contains("40 + 2"), "{text}");
}
