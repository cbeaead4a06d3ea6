//! Allocations a client asks for, capped and fallible.
//!
//! A client decides the size of much of what a server allocates: `zeros(n)`
//! with `n = 2**40` asks for 8 TiB, and `Vec::with_capacity` or
//! `Array1::zeros` would abort the whole server (every client's session with
//! it) when the allocator says no. Registry functions allocate
//! client-sized buffers through [`try_vec`] instead: the size is checked
//! against the cap of the registry that runs the call
//! ([`Registry::max_alloc`](crate::Registry::max_alloc), default
//! [`DEFAULT_MAX_ALLOC`]) and the memory is reserved with `try_reserve`, so
//! either way the client gets a `builtins.MemoryError` and the server keeps
//! serving. The registry's own argument conversions (an `ndarray` argument
//! is one copy of the received array) go through the same check.

use std::cell::Cell;

use simplerpc_core::executor::{ExecError, ExecResult};

/// The default [`Registry::max_alloc`](crate::Registry::max_alloc): 2 GiB,
/// the default largest message, so any array a client could be sent fits.
pub const DEFAULT_MAX_ALLOC: usize = 2 << 30;

thread_local! {
    /// The cap of the registry whose executor runs on this thread.
    static MAX_ALLOC: Cell<usize> = const { Cell::new(DEFAULT_MAX_ALLOC) };
}

/// The largest single allocation [`try_vec`] makes on this thread now: the
/// cap of the registry running the current call, or [`DEFAULT_MAX_ALLOC`]
/// outside one.
pub fn max_alloc() -> usize {
    MAX_ALLOC.with(Cell::get)
}

/// Sets the thread's cap for the life of the guard (a registry executor
/// holds one while it runs a request), restoring the previous one after.
pub(crate) struct Scope(usize);

impl Scope {
    pub(crate) fn enter(cap: usize) -> Scope {
        Scope(MAX_ALLOC.with(|c| c.replace(cap)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        MAX_ALLOC.with(|c| c.set(self.0));
    }
}

/// Check that `bytes` bytes may be allocated for a client: at most
/// [`max_alloc`], else a `builtins.MemoryError` naming both.
pub fn check_alloc(bytes: usize) -> ExecResult<()> {
    let cap = max_alloc();
    if bytes > cap {
        return Err(over_cap(bytes, cap));
    }
    Ok(())
}

/// `vec![fill; len]`, answering a `builtins.MemoryError` instead of aborting
/// when `len` elements are over [`max_alloc`] or the memory cannot be had.
///
/// ```
/// use simplerpc_registry::{ndarray::Array1, try_vec, Array};
/// let zeros = |n: usize| try_vec(n, 0.0f64).map(|v| Array(Array1::from_vec(v)));
/// assert!(zeros(3).is_ok());
/// assert_eq!(zeros(1 << 40).err().unwrap().exception_type, "builtins.MemoryError");
/// ```
pub fn try_vec<T: Clone>(len: usize, fill: T) -> ExecResult<Vec<T>> {
    let bytes = len
        .checked_mul(std::mem::size_of::<T>())
        .ok_or_else(|| over_cap(usize::MAX, max_alloc()))?;
    check_alloc(bytes)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| out_of_memory(bytes))?;
    v.resize(len, fill);
    Ok(v)
}

fn over_cap(bytes: usize, cap: usize) -> ExecError {
    let size = if bytes == usize::MAX {
        "more than the address space".to_owned()
    } else {
        format!("{bytes} bytes")
    };
    ExecError::new(
        "builtins.MemoryError",
        format!(
            "asked to allocate {size}, over this server's limit of {cap} bytes for one \
             allocation (the registry's max_alloc; sim_server: --max-alloc)"
        ),
    )
}

/// The `builtins.MemoryError` of an allocation of `bytes` that failed.
pub(crate) fn out_of_memory(bytes: usize) -> ExecError {
    ExecError::new(
        "builtins.MemoryError",
        format!("the server could not allocate {bytes} bytes"),
    )
}
