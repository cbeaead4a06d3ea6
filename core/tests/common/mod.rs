//! A small simulator registry and an in-memory client/server pair.

use std::sync::Arc;

use ndarray::Array3;
use simplerpc_core::{
    Bytes, ClientSession, ExecError, Extensions, Request, Response, ServerSession, Value,
};
use simplerpc_registry::{Array, Class, Instance, Module, Registry};

/// A toy environment: `reset(seed)`, `step(action)` returning an observation image.
pub struct Sim {
    pub t: u64,
}

pub fn registry() -> Arc<Registry> {
    let sim = Class::<Sim>::new("Sim")
        .method("reset", |s: &mut Sim, seed: u64| {
            s.t = seed;
            s.t
        })
        .method("step", |s: &mut Sim, action: f64| {
            s.t += 1;
            let obs = Array3::<u8>::from_elem((4, 5, 3), (s.t % 256) as u8);
            Value::map([
                ("obs", Value::from(Array(obs))),
                ("reward", Value::Float(action * 0.5)),
                ("done", Value::Bool(s.t >= 10)),
            ])
        })
        .materialize(|s: &Sim| s.t)
        .build();
    Arc::new(
        Registry::new().module(
            Module::new("sim")
                .function("make", move |t: u64| Instance::new(&sim, Sim { t }))
                .function("add", |a: i64, b: i64| a + b)
                .function("echo", |v: Value| v)
                .function("fail", || -> Result<Value, ExecError> {
                    Err(ExecError::value_error("it failed"))
                })
                .function("panic", || -> i64 { panic!("deliberate") })
                .value("version", "1.0"),
        ),
    )
}

/// A client session and a server session joined by nothing but function calls.
pub struct Pair {
    pub client: ClientSession,
    pub server: ServerSession<simplerpc_registry::RegistryExecutor>,
}

impl Pair {
    pub fn new(ext: Extensions) -> Pair {
        Pair {
            client: ClientSession::new(ext),
            server: ServerSession::new(registry().executor(), ext),
        }
    }

    pub fn request(&mut self, r: Request) -> Response {
        let (_, frame) = self.client.send(&r).unwrap();
        let resp = self.server.handle_frame(Bytes::from(frame));
        self.client.handle_frame(Bytes::from(resp)).unwrap().1
    }

    pub fn obj(&mut self, r: Request) -> simplerpc_core::ObjId {
        match self.request(r) {
            Response::Object(id) => id,
            other => panic!("expected an object, got {other:?}"),
        }
    }
}
