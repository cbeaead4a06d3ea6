//! A client that sends more than QUEUED_MAX (64 MiB) of requests while a
//! long call runs must keep its connection: past QUEUED_MAX the server's
//! standby thread stops reading it (backpressure) but still tells it that
//! it lives, so the client's liveness check does not give up on a healthy
//! server (found by a review).

mod common;

use std::time::{Duration, Instant};

use common::{config, start};
use simplerpc_core::NdArray;
use simplerpc_registry::NdArrayExt;
use simplerpc_ws::{Client, ClientConfig, Request, Value};

#[test]
fn a_long_call_with_large_requests_queued_behind_it_keeps_the_connection() {
    let (server, _) = start();
    let client = Client::connect(&ClientConfig {
        dead_after: Some(Duration::from_secs(1)),
        ping_interval: Duration::from_millis(300),
        ..config(&server)
    })
    .unwrap();
    let call = |path: &str, args: Vec<Value>| Request::Call {
        path: path.into(),
        obj_id: None,
        args,
        kwargs: vec![],
    };
    let started = Instant::now();
    // A call of 4 s: the server is busy but healthy (its standby thread
    // answers pings).
    let slow = client
        .send(&call("m.sleep", vec![Value::from(4000u64)]))
        .unwrap();
    // Two 40 MiB arguments behind it: 80 MiB > QUEUED_MAX.
    let mut ids = vec![];
    for _ in 0..2 {
        let a = NdArray::from_vec(vec![5 << 20], vec![1.0f64; 5 << 20]).unwrap();
        match client.send(&call("m.len", vec![Value::Array(a)])) {
            Ok(id) => ids.push(id),
            Err(e) => panic!(
                "sending a request behind a long call failed after {:?}: {e}",
                started.elapsed()
            ),
        }
    }
    client.wait(slow).unwrap();
    for id in ids {
        client.wait(id).unwrap();
    }
}
