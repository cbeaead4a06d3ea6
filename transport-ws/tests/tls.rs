//! TLS (`wss://`) and the token in the `Authorization` header: round trips
//! over TLS with certificates made here, refusals with clear errors, and a
//! plain client and a TLS one each meeting the other kind of server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{config, start, start_with, with_deadline};
use simplerpc_ws::{
    Client, ClientConfig, Error, Request, Response, RunningServer, ServerConfig, Value,
};

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "simplerpc-tls-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A lab CA of its own name and a server certificate for `names` signed by
/// it, written in `dir` as `ca.pem`, `cert.pem` and `key.pem`; returns
/// their paths (CA, certificate, key).
fn lab_ca(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("simplerpc test CA {}", dir.display()),
    );
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// A TLS server with a certificate for `names`; the path of its CA.
fn tls_server(names: &[&str]) -> (RunningServer, PathBuf) {
    let dir = scratch("server");
    let (ca, cert, key) = lab_ca(&dir, names);
    let (server, _state) = start_with(ServerConfig {
        certfile: Some(cert),
        keyfile: Some(key),
        ..ServerConfig::default()
    });
    (server, ca)
}

fn tls_config(server: &RunningServer, host: &str, ca: &Path) -> ClientConfig {
    ClientConfig {
        host: host.into(),
        tls: true,
        cafile: Some(ca.to_owned()),
        ..config(server)
    }
}

#[test]
fn calls_and_large_arrays_go_over_tls() {
    let (server, ca) = tls_server(&["localhost", "127.0.0.1"]);
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    let client = with_deadline("connect", {
        let cfg = tls_config(&server, "127.0.0.1", &ca);
        move || Client::connect(&cfg).unwrap()
    });
    let m = client.module("m").unwrap();
    let echo = m.getattr("echo").unwrap();
    let r = echo.call_args(vec![Value::from("over tls")]).unwrap();
    assert_eq!(r.materialize().unwrap(), Value::from("over tls"));
    // Large both ways, pipelined: requests and responses far larger than
    // the socket buffers and TLS's own.
    let blob: Vec<u8> = (0..(5usize << 20)).map(|i| (i % 251) as u8).collect();
    let blob = Value::Bin(blob.into());
    let calls: Vec<Request> = (0..4)
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
    let back = with_deadline("materialize", {
        let client = client.clone();
        move || client.pipeline(&reads).unwrap()
    });
    assert_eq!(back.len(), 4);
    for r in back {
        match r {
            Response::Value(v) => assert!(v == blob, "the blob came back changed"),
            other => panic!("{other:?}"),
        }
    }
    // An array made on the server: 8 MB of float64 zeros.
    let zeros = m
        .getattr("zeros")
        .unwrap()
        .call_args(vec![Value::Int(1 << 20)])
        .unwrap()
        .materialize()
        .unwrap();
    match zeros {
        Value::Array(a) => assert_eq!(a.data().len(), 8 << 20),
        other => panic!("{other:?}"),
    }
    // A host name the certificate lists works too.
    let by_name = Client::connect(&tls_config(&server, "localhost", &ca)).unwrap();
    let r = by_name.module("m").unwrap().getattr("echo").unwrap();
    let v = r
        .call_args(vec![Value::from("by name")])
        .unwrap()
        .materialize();
    assert_eq!(v.unwrap(), Value::from("by name"));
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_naming_the_host() {
    let (server, _ca) = tls_server(&["localhost", "127.0.0.1"]);
    let other = scratch("other");
    let (wrong_ca, _, _) = lab_ca(&other, &["localhost", "127.0.0.1"]);
    let err = with_deadline("connect", {
        let cfg = tls_config(&server, "127.0.0.1", &wrong_ca);
        move || Client::connect(&cfg).unwrap_err()
    });
    let text = err.to_string();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(text.contains("unknown issuer"), "{text}");
    assert!(text.contains("cafile"), "{text}");
}

#[test]
fn a_certificate_for_another_name_is_refused_as_a_mismatch() {
    let (server, ca) = tls_server(&["simulator-1.lab"]);
    let err = with_deadline("connect", {
        let cfg = tls_config(&server, "127.0.0.1", &ca);
        move || Client::connect(&cfg).unwrap_err()
    });
    let text = err.to_string();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(text.contains("name mismatch"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}

#[test]
fn a_plain_client_of_a_tls_server_is_told_to_use_wss() {
    let (server, _ca) = tls_server(&["127.0.0.1"]);
    let err = with_deadline("connect", {
        let cfg = config(&server);
        move || Client::connect(&cfg).unwrap_err()
    });
    let text = err.to_string();
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
    assert!(text.contains("400"), "{text}");
    assert!(text.contains("wss://"), "{text}");
    // The server goes on serving TLS clients.
    let ok = Client::connect(&tls_config(&server, "127.0.0.1", &_ca));
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn a_tls_client_of_a_plain_server_is_told_it_is_plain() {
    let (server, _state) = start();
    let dir = scratch("plain");
    let (ca, _, _) = lab_ca(&dir, &["127.0.0.1"]);
    let err = with_deadline("connect", {
        let cfg = tls_config(&server, "127.0.0.1", &ca);
        move || Client::connect(&cfg).unwrap_err()
    });
    let text = err.to_string();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(text.contains("plain ws://"), "{text}");
    // Plain clients still get in.
    assert!(Client::connect(&config(&server)).is_ok());
}

#[test]
fn unreadable_certificate_files_are_named() {
    let dir = scratch("missing");
    let err = simplerpc_ws::Server::bind(
        ServerConfig {
            port: 0,
            certfile: Some(dir.join("nope.pem")),
            keyfile: Some(dir.join("nokey.pem")),
            ..ServerConfig::default()
        },
        |_: &simplerpc_ws::ClientInfo| common::TestExecutor::new(Default::default()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let half = simplerpc_ws::Server::bind(
        ServerConfig {
            port: 0,
            certfile: Some(dir.join("nope.pem")),
            ..ServerConfig::default()
        },
        |_: &simplerpc_ws::ClientInfo| common::TestExecutor::new(Default::default()),
    )
    .unwrap_err();
    assert!(half.to_string().contains("keyfile"), "{half}");
}

/// The HTTP answer to an upgrade request with `extra` header lines.
fn upgrade_answer(port: u16, target: &str, extra: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[test]
fn the_token_is_taken_from_a_bearer_header_or_the_query() {
    let (server, _state) = start();
    let port = server.local_addr().port();
    let token = server.token().to_owned();
    let ok = upgrade_answer(port, "/", &format!("Authorization: Bearer {token}\r\n"));
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    let ok = upgrade_answer(port, &format!("/?token={token}"), "");
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    let wrong = upgrade_answer(port, "/", "Authorization: Bearer wrong\r\n");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    // A wrong header is not rescued by a right query.
    let both = upgrade_answer(
        port,
        &format!("/?token={token}"),
        "Authorization: Bearer wrong\r\n",
    );
    assert!(both.starts_with("HTTP/1.1 401"), "{both}");
    let missing = upgrade_answer(port, "/", "");
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    // Our client connects with the header, so the URL carries no token.
    let wrong_client = ClientConfig {
        token: Some("wrong".into()),
        ..config(&server)
    };
    assert!(matches!(
        Client::connect(&wrong_client),
        Err(Error::Unauthorized { .. })
    ));
    assert!(Client::connect(&config(&server)).is_ok());
}

#[test]
fn our_client_sends_the_token_in_a_header_not_the_url() {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "the client closed before its request ended");
            head.extend_from_slice(&b[..n]);
        }
        s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    let err = Client::connect(&ClientConfig::new("127.0.0.1", port, "s3cret-token")).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let head = peer.join().unwrap();
    assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer s3cret-token\r\n"),
        "{head}"
    );
}

#[test]
fn a_silent_listener_is_a_connect_timeout_over_tls_too() {
    // Accepts TCP (the backlog), never answers the ClientHello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = scratch("silent");
    let (ca, _, _) = lab_ca(&dir, &["127.0.0.1"]);
    let cfg = ClientConfig {
        tls: true,
        cafile: Some(ca),
        connect_timeout: Some(Duration::from_millis(200)),
        ..ClientConfig::new("127.0.0.1", port, "t")
    };
    let err = with_deadline("connecting to a silent listener over TLS", move || {
        Client::connect(&cfg).map(|_| ())
    })
    .unwrap_err();
    assert!(
        matches!(err, Error::ConnectTimeout { after, .. } if after == Duration::from_millis(200)),
        "{err:?}"
    );
    drop(silent);
}

/// A TCP relay to `target` that holds each chunk the server sends for
/// `delay` before passing it on, and each chunk the client sends for
/// `upload_delay`: a slow link. Relays one connection.
fn slow_relay(target: u16, delay: Duration, upload_delay: Duration) -> u16 {
    fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            std::thread::sleep(delay);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
        let (c_in, s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || pipe(c_in, s_out, upload_delay));
        pipe(server, client, delay);
    });
    port
}

#[test]
fn large_messages_over_a_slow_tls_link_arrive_whole() {
    // Each 64 KiB takes 25 ms each way: a 3 MiB message takes over a second
    // to cross, so both readers return to their callers in the middle of
    // frames (READ_SLICE) while TLS holds decrypted bytes, and go on.
    let (server, ca) = tls_server(&["127.0.0.1"]);
    let slow = Duration::from_millis(25);
    let port = slow_relay(server.local_addr().port(), slow, slow);
    let cfg = ClientConfig {
        port,
        ..tls_config(&server, "127.0.0.1", &ca)
    };
    let back = with_deadline("a round trip over a slow TLS link", move || {
        let client = Client::connect(&cfg).unwrap();
        let echo = client.module("m").unwrap().getattr("echo").unwrap();
        let blob: Vec<u8> = (0..(3usize << 20)).map(|i| (i % 251) as u8).collect();
        let sent = Value::Bin(blob.into());
        let got = echo
            .call_args(vec![sent.clone()])
            .unwrap()
            .materialize()
            .unwrap();
        (sent, got)
    });
    assert!(back.0 == back.1, "the message came back changed");
    server.shutdown();
}

#[test]
fn the_tls_and_websocket_handshakes_share_one_connect_timeout() {
    // Each answer of the server takes 300 ms: the TLS handshake's and then
    // the upgrade's, over 500 ms together. Each fits in the 500 ms limit on
    // its own, which must not make the whole connect fit.
    let (server, ca) = tls_server(&["127.0.0.1"]);
    let port = slow_relay(
        server.local_addr().port(),
        Duration::from_millis(300),
        Duration::ZERO,
    );
    let cfg = ClientConfig {
        port,
        connect_timeout: Some(Duration::from_millis(500)),
        ..tls_config(&server, "127.0.0.1", &ca)
    };
    let got = with_deadline("connecting over a slow link with TLS", move || {
        Client::connect(&cfg).map(|_| ())
    });
    assert!(
        matches!(got, Err(Error::ConnectTimeout { after, .. }) if after == Duration::from_millis(500)),
        "{got:?}"
    );
    server.shutdown();
}

#[test]
fn a_tls_server_at_its_connection_limit_says_so_not_that_it_is_plain() {
    // The refusal over the cap is plain HTTP 503 (before any TLS): the
    // client must report it, not advise connecting with ws:// (which would
    // send the token in the clear).
    let dir = scratch("cap");
    let (ca, cert, key) = lab_ca(&dir, &["127.0.0.1"]);
    let (server, _state) = start_with(ServerConfig {
        certfile: Some(cert),
        keyfile: Some(key),
        max_connections: 1,
        ..ServerConfig::default()
    });
    let first = Client::connect(&tls_config(&server, "127.0.0.1", &ca)).unwrap();
    first.module("m").unwrap();
    let cfg = tls_config(&server, "127.0.0.1", &ca);
    let err = with_deadline("connecting past the cap over TLS", move || {
        Client::connect(&cfg).map(|_| ())
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("max_connections"), "{text}");
    assert!(!text.contains("ws://"), "{text}");
    first.module("m").unwrap();
    server.shutdown();
}
