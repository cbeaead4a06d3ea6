//! Allocations a client sizes: capped by the registry, answered with a
//! MemoryError instead of aborting the server.

use std::sync::Arc;

use simplerpc_core::{Arguments, ExecError, Executor, Target, Value};
use simplerpc_registry::ndarray::{Array1, ArrayD};
use simplerpc_registry::{max_alloc, try_vec, Array, Module, Registry, DEFAULT_MAX_ALLOC};

fn registry(cap: usize) -> Arc<Registry> {
    Arc::new(
        Registry::new()
            .module(
                Module::new("m")
                    .function("zeros", |n: usize| {
                        try_vec(n, 0.0f64).map(|v| Array(Array1::from_vec(v)))
                    })
                    .function("total", |a: ArrayD<f64>| a.sum()),
            )
            .max_alloc(cap),
    )
}

fn call(ex: &mut impl Executor, path: &str, arg: Value) -> Result<(), ExecError> {
    ex.call(
        Target::Path(path),
        Arguments::from_values(vec![arg], vec![]),
    )
    .map(|_| ())
}

#[test]
fn client_sized_allocations_over_the_cap_are_memory_errors() {
    let mut ex = registry(1024).executor();
    // 128 float64 are exactly the cap; one more is over it.
    call(&mut ex, "m.zeros", Value::UInt(128)).unwrap();
    for n in [129u64, 1 << 40, u64::MAX] {
        let e = call(&mut ex, "m.zeros", Value::UInt(n)).unwrap_err();
        assert_eq!(e.exception_type, "builtins.MemoryError", "{n}");
        assert!(e.message.contains("1024"), "{}", e.message);
    }
    // An ndarray argument is a copy of the client's array: the same cap.
    let small = Value::from(Array(Array1::<f64>::zeros(128)));
    call(&mut ex, "m.total", small).unwrap();
    let big = Value::from(Array(Array1::<f64>::zeros(129)));
    let e = call(&mut ex, "m.total", big).unwrap_err();
    assert_eq!(e.exception_type, "builtins.MemoryError");
    // The cap is the running registry's only while it runs.
    assert_eq!(max_alloc(), DEFAULT_MAX_ALLOC);
}

#[test]
fn the_default_cap_refuses_terabytes_without_aborting() {
    let mut ex = registry(DEFAULT_MAX_ALLOC).executor();
    let e = call(&mut ex, "m.zeros", Value::UInt(1 << 40)).unwrap_err();
    assert_eq!(e.exception_type, "builtins.MemoryError");
    call(&mut ex, "m.zeros", Value::UInt(3)).unwrap();
}
