//! A tiny executor and helpers shared by the integration tests.
//!
//! Module `m` offers:
//! - `echo(x)`: returns `x` (proxies in it resolved to their values);
//! - `zeros(n)`: a float64 array of `n` zeros;
//! - `sleep(ms)`: sleeps, returns None;
//! - `block()`: waits until some client calls `unblock()` (a slow call whose
//!   end the test controls, so nothing depends on timing);
//! - `unblock()`: opens the gate `block()` waits on;
//! - `boom()`: raises `builtins.RuntimeError("boom")` with a traceback;
//! - `panic()`: the executor panics.
//!
//! Builtin `len`; `eval` of an int literal or a global name; `execute` of
//! `name = <int>`; `teleport` stores the bytes under the name; getitem on
//! lists (int keys) and maps (str keys). Every live handle is counted.

#![allow(dead_code)]

use simplerpc_registry::NdArrayExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use simplerpc_core::{
    Arguments, ExecError, ExecResult, Executor, Handle, Key, NdArray, Target, Value,
};
use simplerpc_ws::{Client, ClientConfig, ClientInfo, RunningServer, Server, ServerConfig};

/// What every executor of one test server shares.
#[derive(Default)]
pub struct State {
    /// Handles held by all executors.
    pub live: AtomicUsize,
    /// Executors alive.
    pub executors: AtomicUsize,
    /// Calls waiting in `block()`.
    pub blocked: AtomicUsize,
    gate: Mutex<bool>,
    opened: Condvar,
}

impl State {
    /// Open the gate `block()` waits on, as `unblock()` does.
    pub fn unblock(&self) {
        *self.gate.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[derive(Debug, Clone)]
enum Obj {
    Module,
    Func(String),
    Value(Value),
}

/// The test executor: one per client.
pub struct TestExecutor {
    state: Arc<State>,
    objects: HashMap<u64, Obj>,
    next: u64,
    globals: Vec<(String, Value)>,
}

impl TestExecutor {
    pub fn new(state: Arc<State>) -> Self {
        state.executors.fetch_add(1, Ordering::SeqCst);
        TestExecutor {
            state,
            objects: HashMap::new(),
            next: 1,
            globals: Vec::new(),
        }
    }

    fn store(&mut self, obj: Obj) -> Handle {
        let h = self.next;
        self.next += 1;
        self.objects.insert(h, obj);
        self.state.live.fetch_add(1, Ordering::SeqCst);
        Handle(h)
    }

    fn get(&self, h: Handle) -> ExecResult<&Obj> {
        self.objects
            .get(&h.0)
            .ok_or_else(|| ExecError::value_error(format!("no handle {}", h.0)))
    }

    fn value_of(&self, h: Handle) -> ExecResult<Value> {
        match self.get(h)? {
            Obj::Value(v) => Ok(v.clone()),
            other => Err(ExecError::type_error(format!("{other:?} has no value"))),
        }
    }

    /// Replace handles inside a value by the values they name.
    fn resolve(&self, mut v: Value) -> ExecResult<Value> {
        v.walk_mut(&mut |v: &mut Value| {
            if let Value::Handle(h) = *v {
                *v = self.value_of(h)?;
            }
            Ok(())
        })?;
        Ok(v)
    }

    fn func(&self, target: Target<'_>) -> ExecResult<String> {
        match target {
            Target::Object { handle, .. } => match self.get(handle)? {
                Obj::Func(name) => Ok(name.clone()),
                other => Err(ExecError::type_error(format!("{other:?} is not callable"))),
            },
            Target::Path(p) => p
                .strip_prefix("m.")
                .map(str::to_owned)
                .ok_or_else(|| ExecError::new("builtins.NameError", p.to_owned())),
        }
    }

    fn run(&mut self, name: &str, args: Vec<Value>) -> ExecResult<Value> {
        let arg = |i: usize| {
            args.get(i)
                .cloned()
                .ok_or_else(|| ExecError::type_error(format!("{name}() needs argument {i}")))
        };
        match name {
            "echo" => arg(0),
            "zeros" => {
                let n = arg(0)?
                    .as_u64()
                    .ok_or_else(|| ExecError::type_error("zeros(n) takes an int"))?;
                let a = NdArray::from_vec(vec![n as usize], vec![0f64; n as usize])
                    .map_err(|e| ExecError::value_error(e.to_string()))?;
                Ok(Value::Array(a))
            }
            "sleep" => {
                let ms = arg(0)?.as_u64().unwrap_or(0);
                thread::sleep(Duration::from_millis(ms));
                Ok(Value::Nil)
            }
            "block" => {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut open = self.state.gate.lock().unwrap();
                self.state.blocked.fetch_add(1, Ordering::SeqCst);
                while !*open {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ExecError::new("builtins.TimeoutError", "never unblocked"));
                    }
                    open = self.state.opened.wait_timeout(open, left).unwrap().0;
                }
                Ok(Value::from("unblocked"))
            }
            "unblock" => {
                self.state.unblock();
                Ok(Value::Nil)
            }
            "boom" => Err(ExecError::new("builtins.RuntimeError", "boom")
                .with_traceback("Traceback (most recent call last):\n  File \"m.py\", line 1, in boom\nRuntimeError: boom\n")),
            "panic" => panic!("the test executor panics"),
            "len" => match arg(0)? {
                Value::List(items) => Ok(Value::from(items.len())),
                Value::Str(s) => Ok(Value::from(s.len())),
                Value::Array(a) => Ok(Value::from(a.shape().first().copied().unwrap_or(0))),
                other => Err(ExecError::type_error(format!(
                    "object of type '{}' has no len()",
                    other.type_name()
                ))),
            },
            other => Err(ExecError::attribute_error(format!(
                "module 'm' has no attribute '{other}'"
            ))),
        }
    }
}

impl Drop for TestExecutor {
    fn drop(&mut self) {
        self.state.executors.fetch_sub(1, Ordering::SeqCst);
    }
}

const FUNCS: [&str; 7] = [
    "echo", "zeros", "sleep", "block", "unblock", "boom", "panic",
];

impl Executor for TestExecutor {
    fn import_module(&mut self, module: &str) -> ExecResult<Handle> {
        if module == "m" {
            Ok(self.store(Obj::Module))
        } else {
            Err(ExecError::new(
                "builtins.ModuleNotFoundError",
                format!("No module named '{module}'"),
            ))
        }
    }

    fn get_builtin(&mut self, name: &str) -> ExecResult<Handle> {
        if name == "len" {
            Ok(self.store(Obj::Func("len".into())))
        } else {
            Err(ExecError::attribute_error(format!("no builtin '{name}'")))
        }
    }

    fn getattr(&mut self, target: Target<'_>, attr: &str) -> ExecResult<Handle> {
        let is_module = match target {
            Target::Object { handle, .. } => matches!(self.get(handle)?, Obj::Module),
            Target::Path(p) => p == "m",
        };
        if is_module && FUNCS.contains(&attr) {
            Ok(self.store(Obj::Func(attr.into())))
        } else {
            Err(ExecError::attribute_error(format!("no attribute '{attr}'")))
        }
    }

    fn call(&mut self, target: Target<'_>, arguments: Arguments) -> ExecResult<Handle> {
        let name = self.func(target)?;
        let Arguments { args, kwargs, .. } = arguments;
        let mut args = args
            .into_iter()
            .map(|a| self.resolve(a))
            .collect::<ExecResult<Vec<_>>>()?;
        for (k, v) in kwargs {
            if k == "x" {
                args.insert(0, self.resolve(v)?);
            }
        }
        let v = self.run(&name, args)?;
        Ok(self.store(Obj::Value(v)))
    }

    fn getitem(&mut self, obj: Handle, key: Key) -> ExecResult<Handle> {
        let key = key.value;
        let key = self.resolve(key)?;
        let item = match (self.value_of(obj)?, &key) {
            (Value::List(items), k) => {
                let i = k
                    .as_u64()
                    .ok_or_else(|| ExecError::type_error("list index must be an int"))?;
                items.get(i as usize).cloned().ok_or_else(|| {
                    ExecError::new("builtins.IndexError", "list index out of range")
                })?
            }
            (map @ Value::Map(_), Value::Str(k)) => map
                .get(k)
                .cloned()
                .ok_or_else(|| ExecError::new("builtins.KeyError", format!("'{k}'")))?,
            (v, _) => {
                return Err(ExecError::type_error(format!(
                    "'{}' object is not subscriptable",
                    v.type_name()
                )))
            }
        };
        Ok(self.store(Obj::Value(item)))
    }

    fn materialize(&mut self, obj: Handle) -> ExecResult<Value> {
        self.value_of(obj)
    }

    fn eval(&mut self, expr: &str) -> ExecResult<Handle> {
        let v = if let Ok(i) = expr.trim().parse::<i64>() {
            Value::Int(i)
        } else {
            self.globals
                .iter()
                .find(|(k, _)| k == expr.trim())
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    ExecError::new(
                        "builtins.NameError",
                        format!("name '{expr}' is not defined"),
                    )
                })?
        };
        Ok(self.store(Obj::Value(v)))
    }

    fn execute(&mut self, code: &str) -> ExecResult<()> {
        let (name, value) = code
            .split_once('=')
            .and_then(|(n, v)| Some((n.trim(), v.trim().parse::<i64>().ok()?)))
            .ok_or_else(|| ExecError::new("builtins.SyntaxError", "only `name = int` works"))?;
        self.globals.retain(|(k, _)| k != name);
        self.globals.push((name.into(), Value::Int(value)));
        Ok(())
    }

    fn teleport(&mut self, func: bytes::Bytes, name: &str) -> ExecResult<Handle> {
        self.globals.retain(|(k, _)| k != name);
        self.globals.push((name.into(), Value::Bin(func.clone())));
        Ok(self.store(Obj::Value(Value::Bin(func))))
    }

    fn namespace(&mut self) -> ExecResult<Vec<(String, String)>> {
        Ok(self
            .globals
            .iter()
            .map(|(k, v)| (k.clone(), format!("<class '{}'>", v.type_name())))
            .collect())
    }

    fn release(&mut self, handle: Handle) {
        if self.objects.remove(&handle.0).is_some() {
            self.state.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A test server on 127.0.0.1 with a free port.
pub fn start() -> (RunningServer, Arc<State>) {
    start_with(ServerConfig::default())
}

/// A test server with `config` (its host and port replaced).
pub fn start_with(config: ServerConfig) -> (RunningServer, Arc<State>) {
    let state = Arc::new(State::default());
    let s = state.clone();
    let server = Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ..config
        },
        move |_: &ClientInfo| TestExecutor::new(s.clone()),
    )
    .expect("bind")
    .spawn()
    .expect("spawn");
    (server, state)
}

/// The client configuration for `server`.
pub fn config(server: &RunningServer) -> ClientConfig {
    ClientConfig::new(
        "127.0.0.1",
        server.local_addr().port(),
        server.token().to_owned(),
    )
}

/// A client connected to `server`.
pub fn connect(server: &RunningServer) -> Client {
    Client::connect(&config(server)).expect("connect")
}

/// Poll `cond` until it holds; a generous deadline only stops a hang.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Run `f` on a thread; panic if it does not finish in a generous time.
pub fn with_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} did not finish (or panicked)"))
}
