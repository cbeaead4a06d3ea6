//! PyExecutor against the Python package's executor semantics, in the
//! CPython this test binary embeds (the `simplerpc` package must be
//! importable: scripts/test.sh sets PYTHONPATH to the venv's site-packages).
#![cfg(feature = "pyo3")]

use simplerpc_core::codec::from_bytes_with;
use simplerpc_core::{Arguments, Bytes, ExecError, Executor, Handle, Key, Target, Value};
use simplerpc_pyexec::PyExecutor;

fn value(ex: &mut PyExecutor, h: Handle, tuples: bool) -> Value {
    match ex.materialize(h).expect("materialize") {
        Value::Raw(raw) => {
            from_bytes_with(&Bytes::copy_from_slice(raw.as_bytes()), tuples).expect("valid msgpack")
        }
        other => panic!("expected the Python executor's msgpack, got {other:?}"),
    }
}

fn executor(tuples: bool) -> PyExecutor {
    PyExecutor::new(tuples).unwrap_or_else(|e| panic!("{}: {}", e.exception_type, e.message))
}

#[test]
fn calls_attributes_items_and_values_follow_the_python_executor() {
    let mut ex = executor(true);
    ex.execute("def f(x, k=0):\n    return x * 2 + k\nclass Env:\n    def step(self, a):\n        return (a, 1.5, {'t': 1})\nenv = Env()")
        .unwrap();
    let f = ex.eval("f").unwrap();
    let args = Arguments::from_values(vec![Value::Int(20)], vec![("k".into(), Value::Int(2))]);
    let r = ex
        .call(
            Target::Object {
                handle: f,
                path: "f",
            },
            args,
        )
        .unwrap();
    assert_eq!(value(&mut ex, r, true), Value::UInt(42));

    // getattr by path, a call on the bound method, a tuple back (tuple extension).
    let step = ex.getattr(Target::Path("env"), "step").unwrap();
    let r = ex
        .call(
            Target::Object {
                handle: step,
                path: "env.step",
            },
            Arguments::from_values(vec![Value::Int(7)], vec![]),
        )
        .unwrap();
    let got = value(&mut ex, r, true);
    assert_eq!(
        got,
        Value::Tuple(vec![
            Value::UInt(7),
            Value::Float(1.5),
            Value::map([("t", 1u64)])
        ])
    );

    // A handle as an argument: the object itself reaches the function.
    let env = ex.eval("env").unwrap();
    let isinstance = ex.get_builtin("isinstance").unwrap();
    let env_cls = ex.eval("Env").unwrap();
    let r = ex
        .call(
            Target::Object {
                handle: isinstance,
                path: "isinstance",
            },
            Arguments::from_values(vec![Value::Handle(env), Value::Handle(env_cls)], vec![]),
        )
        .unwrap();
    assert_eq!(value(&mut ex, r, true), Value::Bool(true));

    // Items, modules, the namespace.
    let d = ex.eval("{'a': [1, 2, 3]}").unwrap();
    let a = ex.getitem(d, Key::from_value(Value::from("a"))).unwrap();
    assert_eq!(
        value(&mut ex, a, true),
        Value::List(vec![Value::UInt(1), Value::UInt(2), Value::UInt(3)])
    );
    let os = ex.import_module("os.path").unwrap();
    let sep = ex
        .getattr(
            Target::Object {
                handle: os,
                path: "os.path",
            },
            "sep",
        )
        .unwrap();
    assert_eq!(
        value(&mut ex, sep, true),
        Value::from(std::path::MAIN_SEPARATOR.to_string())
    );
    let names = ex.namespace().unwrap();
    assert!(
        names.iter().any(|(k, t)| k == "env" && t.contains("Env")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|(k, _)| k == "os"),
        "import_module binds the top package: {names:?}"
    );

    // Released handles are gone, as in the Python executor.
    ex.release(d);
    let err = ex
        .getitem(d, Key::from_value(Value::from("a")))
        .unwrap_err();
    assert!(err.exception_type.starts_with("builtins."), "{err}");
}

#[test]
fn python_exceptions_arrive_with_their_qualified_type_message_and_traceback() {
    let mut ex = executor(false);
    let err: ExecError = ex.eval("1/0").unwrap_err();
    assert_eq!(err.exception_type, "builtins.ZeroDivisionError");
    assert!(err.message.contains("division by zero"), "{err}");
    assert!(
        err.traceback.contains("ZeroDivisionError"),
        "{}",
        err.traceback
    );
    let err = ex.execute("import no_such_module_here").unwrap_err();
    assert_eq!(err.exception_type, "builtins.ModuleNotFoundError");
    let err = ex
        .getattr(Target::Path("len"), "no_such_attribute")
        .unwrap_err();
    assert_eq!(err.exception_type, "builtins.AttributeError");
}

#[test]
fn each_executor_has_its_own_globals() {
    let mut a = executor(false);
    let mut b = executor(false);
    a.execute("x = 1").unwrap();
    assert_eq!(
        b.eval("x").unwrap_err().exception_type,
        "builtins.NameError"
    );
    let x = a.eval("x").unwrap();
    assert_eq!(value(&mut a, x, false), Value::UInt(1));
}

#[test]
fn a_failed_executor_answers_every_request_with_its_error() {
    let mut ex = PyExecutor::failed(ExecError::new("builtins.ImportError", "no simplerpc"));
    assert_eq!(ex.eval("1").unwrap_err().message, "no simplerpc");
    assert_eq!(
        ex.execute("pass").unwrap_err().exception_type,
        "builtins.ImportError"
    );
}
