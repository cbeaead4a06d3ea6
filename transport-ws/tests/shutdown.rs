//! Stopping a server: connections end cleanly, sessions are released, the
//! port is free again.

mod common;

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;

use common::{connect, start, wait_until, with_deadline, TestExecutor};
use simplerpc_ws::{ClientInfo, Error, Server, ServerConfig, Value};

#[test]
fn shutdown_closes_clients_and_frees_the_port() {
    let (server, state) = start();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..3).map(|_| connect(&server)).collect();
    let proxies: Vec<_> = clients.iter().map(|c| c.module("m").unwrap()).collect();
    assert_eq!(state.executors.load(Ordering::SeqCst), 3);

    let handle = server.shutdown_handle();
    with_deadline("shutdown", move || handle.shutdown());
    // Every connection thread was joined: every session is released.
    assert_eq!(state.executors.load(Ordering::SeqCst), 0);
    assert_eq!(state.live.load(Ordering::SeqCst), 0);

    for c in &clients {
        let err = c.eval("1").unwrap_err();
        assert!(matches!(err, Error::Closed(_)), "{err:?}");
    }
    let err = proxies[0].getattr("echo").unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    TcpListener::bind(addr).expect("the port is free again");
    // Shutting down twice is fine.
    server.shutdown();
}

#[test]
fn shutdown_waits_for_calls_in_progress() {
    let (server, state) = start();
    let client = connect(&server);
    let call = thread::spawn(move || {
        client
            .module("m")
            .unwrap()
            .getattr("block")
            .unwrap()
            .call0()
            .map(|_| ())
    });
    wait_until("the call is running", || {
        state.blocked.load(Ordering::SeqCst) == 1
    });
    let handle = server.shutdown_handle();
    let stopping = thread::spawn(move || handle.shutdown());
    wait_until("the shutdown has begun", || {
        server.shutdown_handle().is_stopping()
    });
    // The worker is still inside the call, so its executor is alive.
    assert_eq!(state.executors.load(Ordering::SeqCst), 1);
    state.unblock();
    with_deadline("shutdown", move || stopping.join().unwrap());
    assert_eq!(state.executors.load(Ordering::SeqCst), 0);
    // Whether the answer got out before the close depends on who was first.
    let result = with_deadline("the call", move || call.join().unwrap());
    assert!(
        matches!(result, Ok(()) | Err(Error::Closed(_))),
        "{result:?}"
    );
}

#[test]
fn serve_blocks_until_a_handle_stops_it() {
    let state = Arc::new(common::State::default());
    let s = state.clone();
    let server = Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            token: Some("secret".into()),
            ..ServerConfig::default()
        },
        move |_: &ClientInfo| TestExecutor::new(s.clone()),
    )
    .unwrap();
    assert_eq!(server.token(), "secret");
    let port = server.local_addr().port();
    assert_eq!(server.url(), format!("ws://127.0.0.1:{port}/?token=secret"));
    let handle = server.shutdown_handle();
    let serving = thread::spawn(move || server.serve());

    let client = simplerpc_ws::Client::connect(&simplerpc_ws::ClientConfig::new(
        "127.0.0.1",
        port,
        "secret",
    ))
    .unwrap();
    let r = client.eval("3").unwrap();
    assert_eq!(r.materialize().unwrap(), Value::UInt(3));

    with_deadline("shutdown", move || handle.shutdown());
    with_deadline("serve", move || serving.join().unwrap()).unwrap();
    assert_eq!(state.executors.load(Ordering::SeqCst), 0);
    assert!(matches!(client.eval("1"), Err(Error::Closed(_))));
}

#[test]
fn dropping_a_running_server_stops_it() {
    let (server, state) = start();
    let addr = server.local_addr();
    let client = connect(&server);
    client.eval("1").unwrap();
    with_deadline("drop", move || drop(server));
    assert_eq!(state.executors.load(Ordering::SeqCst), 0);
    TcpListener::bind(addr).expect("the port is free again");
}

#[test]
fn generated_tokens_look_like_the_reference() {
    let (server, _state) = start();
    assert_eq!(server.token().len(), 43);
    let other = Server::bind(
        ServerConfig {
            port: 0,
            token: Some(String::new()),
            ..ServerConfig::default()
        },
        |_: &ClientInfo| TestExecutor::new(Default::default()),
    );
    assert!(matches!(other, Err(Error::Config(_))));
}

/// A client that asks for a large answer and then reads nothing must not
/// hold a shutdown up: the answer goes straight to the socket (past
/// tungstenite's buffer), and that write gives up when the server stops.
#[test]
fn shutdown_does_not_wait_for_a_client_that_stopped_reading() {
    use simplerpc_core::{ClientSession, Extensions, Request, Response};
    use std::time::{Duration, Instant};

    let (server, _state) = start();
    let url = format!("ws://{}/?token={}", server.local_addr(), server.token());
    let stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
    let (mut ws, _) = tungstenite::client::client(url.as_str(), stream).unwrap();
    let mut session = ClientSession::new(Extensions::NONE);
    let mut ask = |ws: &mut tungstenite::WebSocket<std::net::TcpStream>, r: Request| {
        let (_, frame) = session.send(&r).unwrap();
        ws.send(tungstenite::Message::Binary(frame.into())).unwrap();
        match ws.read().unwrap() {
            tungstenite::Message::Binary(b) => session.handle_frame(b).unwrap().1,
            other => panic!("{other:?}"),
        }
    };
    let Response::Object(zeros) = ask(
        &mut ws,
        Request::GetAttr {
            path: "m".into(),
            obj_id: None,
            attr: "zeros".into(),
        },
    ) else {
        panic!()
    };
    let Response::Object(big) = ask(
        &mut ws,
        Request::Call {
            path: "m.zeros".into(),
            obj_id: Some(zeros),
            args: vec![Value::UInt(16 << 20)], // 128 MiB of float64
            kwargs: vec![],
        },
    ) else {
        panic!()
    };
    // Ask for it, and never read.
    let (_, frame) = session.send(&Request::Materialize { obj_id: big }).unwrap();
    ws.send(tungstenite::Message::Binary(frame.into())).unwrap();
    thread::sleep(Duration::from_millis(500));
    let handle = server.shutdown_handle();
    let started = Instant::now();
    with_deadline("shutdown", move || handle.shutdown());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    drop(ws);
}
