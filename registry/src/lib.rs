//! # simplerpc-registry
//!
//! A Rust-native executor: expose Rust functions and objects to clients.
//!
//! Build a [`Registry`] of [`Module`]s holding typed functions, constants and
//! [`Class`]es of Rust objects, share it as an `Arc`, and give each client its
//! own [`RegistryExecutor`] (its own object table):
//!
//! ```
//! use std::sync::Arc;
//! use simplerpc_registry::{Class, Instance, Module, Registry};
//!
//! struct Counter { n: i64 }
//! let counter = Class::<Counter>::new("Counter")
//!     .method("add", |c: &mut Counter, k: i64| { c.n += k; c.n })
//!     .build();
//! let registry = Arc::new(Registry::new().module(
//!     Module::new("demo")
//!         .function("double", |x: f64| x * 2.0)
//!         .function("counter", move || Instance::new(&counter, Counter { n: 0 })),
//! ));
//! let executor = registry.executor(); // one per client
//! # let _ = executor;
//! ```

#![warn(missing_docs)]

mod alloc;
pub mod array;
mod convert;
mod object;
mod typed;

use std::collections::HashMap;
use std::sync::Arc;

pub use alloc::{check_alloc, max_alloc, try_vec, DEFAULT_MAX_ALLOC};
pub use array::{Element, NdArrayExt, NdView};
pub use convert::{Array, FromValue, IntoValue};
pub use object::{Args, Class, ClassInfo, Instance, IntoFunction, IntoMethod, IntoObject, Object};
/// The `ndarray` version this crate converts to and from (core's).
pub use simplerpc_core::ndarray;
pub use typed::Serde;

use simplerpc_core::codec;
use simplerpc_core::executor::{Arguments, ExecError, ExecResult, Executor, Key, Target};
use simplerpc_core::value::{Handle, Value};

/// A named set of functions, constants and classes.
#[derive(Clone, Default)]
pub struct Module {
    name: String,
    attrs: HashMap<String, Object>,
}

impl Module {
    /// An empty module called `name` (dotted names like `"sim.envs"` are fine).
    pub fn new(name: impl Into<String>) -> Self {
        Module {
            name: name.into(),
            attrs: HashMap::new(),
        }
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Add a typed function: a closure of up to six [`FromValue`] arguments
    /// returning a value, an [`Instance`] or a `Result` of either.
    pub fn function<M>(mut self, name: &str, f: impl IntoFunction<M>) -> Self {
        self.attrs
            .insert(name.to_owned(), Object::function(name, f));
        self
    }

    /// Add a function that takes the raw [`Args`] (keyword arguments included).
    pub fn raw_function(
        mut self,
        name: &str,
        f: impl Fn(Args) -> ExecResult<Object> + Send + Sync + 'static,
    ) -> Self {
        self.attrs
            .insert(name.to_owned(), Object::raw_function(name, f));
        self
    }

    /// Add a constant value.
    pub fn value(mut self, name: &str, v: impl Into<Value>) -> Self {
        self.attrs.insert(name.to_owned(), Object::Value(v.into()));
        self
    }

    /// Add any object (a class's factory, a shared instance).
    pub fn object(mut self, name: &str, o: Object) -> Self {
        self.attrs.insert(name.to_owned(), o);
        self
    }

    fn attr(&self, name: &str) -> ExecResult<Object> {
        self.attrs.get(name).cloned().ok_or_else(|| {
            ExecError::attribute_error(format!("module '{}' has no attribute '{name}'", self.name))
        })
    }
}

/// The modules a Rust server offers. Shared by all clients.
pub struct Registry {
    modules: HashMap<String, Arc<Module>>,
    builtins: Option<Arc<Module>>,
    max_alloc: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            modules: HashMap::new(),
            builtins: None,
            max_alloc: DEFAULT_MAX_ALLOC,
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The largest single allocation a client may make the server do, in
    /// bytes (default [`DEFAULT_MAX_ALLOC`]): what [`try_vec`] allows while
    /// this registry's executor runs a call, and the largest array argument
    /// the registry copies into an `ndarray`. Over it, the client gets a
    /// `builtins.MemoryError` and the server goes on.
    pub fn max_alloc(mut self, bytes: usize) -> Self {
        self.max_alloc = bytes;
        self
    }

    /// Add a module, importable by its name.
    pub fn module(mut self, module: Module) -> Self {
        self.modules.insert(module.name.clone(), Arc::new(module));
        self
    }

    /// Set the module `get_builtin` looks names up in.
    pub fn builtins(mut self, module: Module) -> Self {
        self.builtins = Some(Arc::new(module));
        self
    }

    /// A fresh executor for one client.
    pub fn executor(self: &Arc<Self>) -> RegistryExecutor {
        RegistryExecutor {
            registry: Arc::clone(self),
            objects: HashMap::new(),
            next: 0,
        }
    }

    fn import(&self, name: &str) -> ExecResult<Arc<Module>> {
        self.modules.get(name).cloned().ok_or_else(|| {
            ExecError::new(
                "builtins.ModuleNotFoundError",
                format!("No module named '{name}'"),
            )
        })
    }
}

/// One client's view of a [`Registry`]: the objects it was handed.
pub struct RegistryExecutor {
    registry: Arc<Registry>,
    objects: HashMap<u64, Object>,
    next: u64,
}

impl RegistryExecutor {
    /// How many objects this client holds.
    pub fn live_objects(&self) -> usize {
        self.objects.len()
    }

    /// While it lives, [`try_vec`] on this thread allows this registry's cap.
    fn cap(&self) -> alloc::Scope {
        alloc::Scope::enter(self.registry.max_alloc)
    }

    fn store(&mut self, o: Object) -> Handle {
        let h = self.next;
        self.next += 1;
        self.objects.insert(h, o);
        Handle(h)
    }

    fn get(&self, h: Handle) -> ExecResult<Object> {
        self.objects.get(&h.0).cloned().ok_or_else(|| {
            ExecError::new(
                "builtins.KeyError",
                format!("no object under handle {}", h.0),
            )
        })
    }

    /// Resolve `"mod.attr.attr"` against the registry (longest module name first).
    fn resolve_path(&self, path: &str) -> ExecResult<Object> {
        let path = path.trim_end_matches("()");
        let mut split = path.len();
        loop {
            let (module, rest) = path.split_at(split);
            if let Ok(m) = self.registry.import(module) {
                let mut obj = Object::Module(m);
                for attr in rest.split('.').filter(|s| !s.is_empty()) {
                    obj = obj.getattr(attr)?;
                }
                return Ok(obj);
            }
            match module.rfind('.') {
                Some(i) => split = i,
                None => {
                    return Err(ExecError::new(
                        "builtins.NameError",
                        format!("name '{path}' is not defined"),
                    ))
                }
            }
        }
    }

    fn target(&self, t: Target<'_>) -> ExecResult<Object> {
        match t {
            Target::Object { handle, .. } => self.get(handle),
            Target::Path(p) => self.resolve_path(p),
        }
    }

    /// Replace handles inside a value by the plain values they name.
    ///
    /// The result may nest no deeper than a frame's field can: a value
    /// nested inside an argument could otherwise be handed back, nested
    /// again and again, until the client cannot decode it and the server's
    /// stack overflows walking it.
    fn unwrap_handles(&self, v: &mut Value) -> ExecResult<()> {
        let mut spliced = false;
        v.walk_mut(&mut |v: &mut Value| {
            if let Value::Handle(h) = *v {
                match self.get(h)? {
                    Object::Value(inner) => {
                        *v = inner;
                        spliced = true;
                    }
                    other => {
                        return Err(ExecError::type_error(format!(
                            "a remote {} cannot be passed as an argument to a Rust function",
                            other.kind()
                        )))
                    }
                }
            }
            Ok(())
        })?;
        if spliced && codec::nesting(v, codec::MAX_DEPTH) > codec::MAX_DEPTH {
            return Err(ExecError::value_error(format!(
                "with the remote values in it put in, an argument nests deeper than {} levels, \
                 more than a message can carry",
                codec::MAX_DEPTH
            )));
        }
        Ok(())
    }
}

impl Executor for RegistryExecutor {
    fn import_module(&mut self, module: &str) -> ExecResult<Handle> {
        let _cap = self.cap();
        let m = self.registry.import(module)?;
        Ok(self.store(Object::Module(m)))
    }

    fn get_builtin(&mut self, name: &str) -> ExecResult<Handle> {
        let _cap = self.cap();
        let o = match &self.registry.builtins {
            Some(b) => b.attr(name)?,
            None => {
                return Err(ExecError::attribute_error(format!(
                    "module 'builtins' has no attribute '{name}'"
                )))
            }
        };
        Ok(self.store(o))
    }

    fn getattr(&mut self, target: Target<'_>, attr: &str) -> ExecResult<Handle> {
        let _cap = self.cap();
        let o = self.target(target)?.getattr(attr)?;
        Ok(self.store(o))
    }

    fn call(&mut self, target: Target<'_>, arguments: Arguments) -> ExecResult<Handle> {
        let _cap = self.cap();
        let Arguments {
            mut args,
            mut kwargs,
            ..
        } = arguments;
        for a in &mut args {
            self.unwrap_handles(a)?;
        }
        for (_, v) in &mut kwargs {
            self.unwrap_handles(v)?;
        }
        let mut f = self.target(target)?;
        // The reference calls the attribute named by the path's last component
        // when the object itself is not callable.
        if !f.is_callable() {
            if let Target::Object { path, .. } = target {
                let last = path.trim_end_matches("()").rsplit('.').next().unwrap_or("");
                f = f.getattr(last)?;
            }
        }
        let o = f.call(Args {
            positional: args,
            kwargs,
        })?;
        Ok(self.store(o))
    }

    fn getitem(&mut self, obj: Handle, key: Key) -> ExecResult<Handle> {
        let _cap = self.cap();
        let mut key = key.value;
        self.unwrap_handles(&mut key)?;
        let o = self.get(obj)?.getitem(&key)?;
        Ok(self.store(o))
    }

    fn materialize(&mut self, obj: Handle) -> ExecResult<Value> {
        let _cap = self.cap();
        self.get(obj)?.materialize()
    }

    fn namespace(&mut self) -> ExecResult<Vec<(String, String)>> {
        let mut names: Vec<(String, String)> = self
            .registry
            .modules
            .keys()
            .map(|k| (k.clone(), "<class 'module'>".to_owned()))
            .collect();
        names.sort();
        Ok(names)
    }

    fn release(&mut self, handle: Handle) {
        let _cap = self.cap();
        self.objects.remove(&handle.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(executor: &mut RegistryExecutor, arg: Value) -> ExecResult<Handle> {
        executor.call(
            Target::Path("m.echo"),
            Arguments::from_values(vec![arg], Vec::new()),
        )
    }

    #[test]
    fn spliced_arguments_nest_no_deeper_than_a_frame_carries() {
        let registry =
            Arc::new(Registry::new().module(Module::new("m").function("echo", |v: Value| v)));
        let mut executor = registry.executor();
        let nest = |mut v: Value, levels: usize| {
            for _ in 0..levels {
                v = Value::List(vec![v]);
            }
            v
        };
        // As deep as a frame's field may be, then as deep again around it:
        // before the fix each round nested deeper, without bound.
        let deep = echo(&mut executor, nest(Value::Nil, codec::MAX_DEPTH - 2)).unwrap();
        let err = echo(&mut executor, nest(Value::Handle(deep), 100)).unwrap_err();
        assert_eq!(err.exception_type, "builtins.ValueError", "{err}");
        // What fits is still put in.
        let shallow = echo(&mut executor, nest(Value::Nil, 10)).unwrap();
        let both = echo(&mut executor, nest(Value::Handle(shallow), 100)).unwrap();
        let v = executor.materialize(both).unwrap();
        assert_eq!(codec::nesting(&v, 1000), 111);
        assert!(codec::validate(&codec::to_vec(&v).unwrap()).is_ok());
    }

    #[test]
    fn what_cannot_be_materialized_says_so_and_what_to_do() {
        struct Opaque;
        let opaque = Class::<Opaque>::new("Opaque").build();
        let registry = Arc::new(
            Registry::new().module(
                Module::new("m")
                    .function("echo", |v: Value| v)
                    .function("make", move || Instance::new(&opaque, Opaque)),
            ),
        );
        let mut executor = registry.executor();
        let module = executor.import_module("m").unwrap();
        let function = executor.getattr(Target::Path("m"), "echo").unwrap();
        let instance = executor
            .call(
                Target::Path("m.make"),
                Arguments::from_values(Vec::new(), Vec::new()),
            )
            .unwrap();
        for (handle, text) in [
            (
                module,
                "cannot materialize module 'm': it has no wire form; keep it remote (use the \
                 proxy) or use its attributes",
            ),
            (
                function,
                "cannot materialize function 'echo': it has no wire form; keep it remote (use \
                 the proxy) or call it through the proxy",
            ),
            (
                instance,
                "cannot materialize an object of type 'Opaque': it has no wire form",
            ),
        ] {
            let err = executor.materialize(handle).unwrap_err();
            assert_eq!(err.exception_type, "builtins.TypeError");
            assert!(err.message.starts_with(text), "{}", err.message);
        }
    }
}
