//! The objects a registry executor holds: values, modules, functions, and
//! instances of Rust classes with their methods.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use super::convert::FromValue;
use super::Module;
use simplerpc_core::executor::{ExecError, ExecResult};
use simplerpc_core::value::Value;

/// Arguments of a call: positional and keyword.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// Positional arguments.
    pub positional: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Vec<(String, Value)>,
}

impl Args {
    /// Take positional argument `i` (or the keyword `name`) as `T`.
    pub fn get<T: FromValue>(&self, i: usize, name: &str) -> ExecResult<T> {
        let v = self
            .positional
            .get(i)
            .or_else(|| self.kwargs.iter().find(|(k, _)| k == name).map(|(_, v)| v))
            .ok_or_else(|| {
                ExecError::type_error(format!("missing required argument '{name}' (position {i})"))
            })?;
        T::from_value(v.clone()).map_err(|e| ExecError {
            message: format!("argument '{name}': {}", e.message),
            ..e
        })
    }
}

type NativeFn = Arc<dyn Fn(Args) -> ExecResult<Object> + Send + Sync>;
type MethodFn = Arc<dyn Fn(&mut (dyn Any + Send), Args) -> ExecResult<Object> + Send + Sync>;
type MaterializeFn = Arc<dyn Fn(&(dyn Any + Send)) -> ExecResult<Value> + Send + Sync>;

/// One object a client can hold a proxy to.
#[derive(Clone)]
pub enum Object {
    /// Plain data.
    Value(Value),
    /// A module of the registry.
    Module(Arc<Module>),
    /// A function.
    Function {
        /// its name, for messages
        name: Arc<str>,
        /// the code
        f: NativeFn,
    },
    /// An instance of a Rust class.
    Instance(Instance),
    /// A method bound to an instance.
    Method {
        /// the instance
        this: Instance,
        /// the method's name
        name: Arc<str>,
        /// the code
        f: MethodFn,
    },
}

impl Object {
    /// A typed function as an object.
    pub fn function<M>(name: &str, f: impl IntoFunction<M>) -> Object {
        Object::Function {
            name: name.into(),
            f: f.into_native(),
        }
    }

    /// A raw-args function as an object.
    pub fn raw_function(
        name: &str,
        f: impl Fn(Args) -> ExecResult<Object> + Send + Sync + 'static,
    ) -> Object {
        Object::Function {
            name: name.into(),
            f: Arc::new(f),
        }
    }

    pub(super) fn kind(&self) -> String {
        match self {
            Object::Value(v) => v.type_name().to_owned(),
            Object::Module(m) => format!("module '{}'", m.name()),
            Object::Function { name, .. } => format!("function '{name}'"),
            Object::Instance(i) => format!("'{}' object", i.class.name),
            Object::Method { this, name, .. } => format!("method '{}.{name}'", this.class.name),
        }
    }

    pub(super) fn is_callable(&self) -> bool {
        matches!(self, Object::Function { .. } | Object::Method { .. })
    }

    pub(super) fn getattr(&self, attr: &str) -> ExecResult<Object> {
        match self {
            Object::Module(m) => m.attr(attr),
            Object::Instance(i) => match i.class.methods.get(attr) {
                Some(f) => Ok(Object::Method {
                    this: i.clone(),
                    name: attr.into(),
                    f: f.clone(),
                }),
                None => Err(ExecError::attribute_error(format!(
                    "'{}' object has no attribute '{attr}'",
                    i.class.name
                ))),
            },
            other => Err(ExecError::attribute_error(format!(
                "{} has no attribute '{attr}'",
                other.kind()
            ))),
        }
    }

    pub(super) fn call(&self, args: Args) -> ExecResult<Object> {
        match self {
            Object::Function { f, .. } => f(args),
            Object::Method { this, f, .. } => {
                let mut state = this.state.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut **state, args)
            }
            other => Err(ExecError::type_error(format!(
                "{} is not callable",
                other.kind()
            ))),
        }
    }

    pub(super) fn getitem(&self, key: &Value) -> ExecResult<Object> {
        let Object::Value(v) = self else {
            return Err(ExecError::type_error(format!(
                "{} is not subscriptable",
                self.kind()
            )));
        };
        match (v, key) {
            (Value::List(items) | Value::Tuple(items), Value::Slice(s)) => {
                let n = items.len() as i64;
                let step = s.step.as_i64().unwrap_or(1);
                if step == 0 {
                    return Err(ExecError::value_error("slice step cannot be zero"));
                }
                let clamp = |x: &Value, default: i64| -> i64 {
                    match x.as_i64() {
                        None => default,
                        Some(i) if i < 0 => (i + n).max(if step > 0 { 0 } else { -1 }),
                        Some(i) => i.min(if step > 0 { n } else { n - 1 }),
                    }
                };
                let (start, stop) = if step > 0 {
                    (clamp(&s.start, 0), clamp(&s.stop, n))
                } else {
                    (clamp(&s.start, n - 1), clamp(&s.stop, -1))
                };
                let mut out = Vec::new();
                let mut i = start;
                while (step > 0 && i < stop) || (step < 0 && i > stop) {
                    out.push(items[i as usize].clone());
                    match i.checked_add(step) {
                        Some(next) => i = next,
                        None => break,
                    }
                }
                Ok(Object::Value(if matches!(v, Value::Tuple(_)) {
                    Value::Tuple(out)
                } else {
                    Value::List(out)
                }))
            }
            (Value::List(items) | Value::Tuple(items), k) => {
                let i = k.as_i64().ok_or_else(|| {
                    ExecError::type_error(format!(
                        "list indices must be integers or slices, not {}",
                        k.type_name()
                    ))
                })?;
                let idx = if i < 0 { i + items.len() as i64 } else { i };
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|v| Object::Value(v.clone()))
                    .ok_or_else(|| ExecError::new("builtins.IndexError", "list index out of range"))
            }
            (Value::Map(pairs), k) => pairs
                .iter()
                .find(|(pk, _)| pk == k || (pk.as_i64().is_some() && pk.as_i64() == k.as_i64()))
                .map(|(_, v)| Object::Value(v.clone()))
                .ok_or_else(|| ExecError::new("builtins.KeyError", format!("{k:?}"))),
            (v, _) => Err(ExecError::type_error(format!(
                "'{}' object is not subscriptable",
                v.type_name()
            ))),
        }
    }

    pub(super) fn materialize(&self) -> ExecResult<Value> {
        match self {
            Object::Value(v) => Ok(v.clone()),
            Object::Instance(i) => match &i.class.materialize {
                Some(f) => {
                    let state = i.state.lock().unwrap_or_else(|p| p.into_inner());
                    f(&**state)
                }
                None => Err(ExecError::type_error(format!(
                    "cannot materialize an object of type '{}': it has no wire form (its class \
                     has no materialize function); keep it remote (use the proxy) and call its \
                     methods",
                    i.class.name
                ))),
            },
            other => {
                let hint = match other {
                    Object::Module(_) => "use its attributes, e.g. materialize(p.name)",
                    _ => "call it through the proxy instead, e.g. materialize(p(...))",
                };
                Err(ExecError::type_error(format!(
                    "cannot materialize {}: it has no wire form; keep it remote (use the proxy) \
                     or {hint}",
                    other.kind()
                )))
            }
        }
    }
}

/// A Rust class: a name, methods and an optional materialization.
pub struct Class<T> {
    name: String,
    methods: HashMap<String, MethodFn>,
    materialize: Option<MaterializeFn>,
    _t: PhantomData<fn(T)>,
}

/// The type-erased class an [`Instance`] points to.
pub struct ClassInfo {
    name: String,
    methods: HashMap<String, MethodFn>,
    materialize: Option<MaterializeFn>,
}

impl<T: Any + Send> Class<T> {
    /// A class called `name` with no methods yet.
    pub fn new(name: &str) -> Self {
        Class {
            name: name.to_owned(),
            methods: HashMap::new(),
            materialize: None,
            _t: PhantomData,
        }
    }

    /// Add a method: a closure taking `&mut T` and up to six typed arguments.
    pub fn method<M>(mut self, name: &str, f: impl IntoMethod<T, M>) -> Self {
        self.methods.insert(name.to_owned(), f.into_method());
        self
    }

    /// How `materialize(instance)` turns the object into a value.
    pub fn materialize<R: Into<Value>>(
        mut self,
        f: impl Fn(&T) -> R + Send + Sync + 'static,
    ) -> Self {
        self.materialize = Some(Arc::new(move |any: &(dyn Any + Send)| {
            let this = any.downcast_ref::<T>().ok_or_else(wrong_class)?;
            Ok(f(this).into())
        }));
        self
    }

    /// Finish the class, to be shared by the functions that make instances.
    pub fn build(self) -> Arc<ClassInfo> {
        Arc::new(ClassInfo {
            name: self.name,
            methods: self.methods,
            materialize: self.materialize,
        })
    }
}

fn wrong_class() -> ExecError {
    ExecError::type_error("method called on an instance of another class")
}

/// An instance of a Rust class. Cloning shares the object.
#[derive(Clone)]
pub struct Instance {
    class: Arc<ClassInfo>,
    state: Arc<Mutex<Box<dyn Any + Send>>>,
}

impl Instance {
    /// Wrap `value` as an instance of `class`.
    pub fn new<T: Any + Send>(class: &Arc<ClassInfo>, value: T) -> Self {
        Instance {
            class: Arc::clone(class),
            state: Arc::new(Mutex::new(Box::new(value))),
        }
    }
}

/// What a registry function may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a registry function",
    label = "this return type has no `IntoObject`",
    note = "return a value type (primitives, String, Vec<T>, tuples, Option<T>, Value, NdArray, Array<T, D>), an Instance, an Object, or an ExecResult of one; wrap a serde type as `Serde<{Self}>`"
)]
pub trait IntoObject {
    /// Convert into an object or an error.
    fn into_object(self) -> ExecResult<Object>;
}

// One impl per value type rather than a blanket `T: Into<Value>`: `Value`
// lives in core, so a blanket impl would overlap the `ExecResult<T>` one.
macro_rules! value_object {
    ($($t:ty),*) => {$(
        impl IntoObject for $t {
            fn into_object(self) -> ExecResult<Object> {
                Ok(Object::Value(self.into()))
            }
        }
    )*};
}
value_object!(
    Value,
    (),
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    usize,
    f32,
    f64,
    String,
    &str,
    bytes::Bytes,
    simplerpc_core::NdArray
);

impl<T: Into<Value>> IntoObject for Vec<T> {
    fn into_object(self) -> ExecResult<Object> {
        Ok(Object::Value(self.into()))
    }
}

/// A Rust tuple is returned as [`Value::Tuple`]: a client that negotiated
/// the `tuple` extension gets a tuple back, others a list.
macro_rules! tuple_object {
    ($(($($t:ident),+)),*) => {$(
        impl<$($t: Into<Value>),+> IntoObject for ($($t,)+) {
            fn into_object(self) -> ExecResult<Object> {
                Ok(Object::Value(self.into()))
            }
        }
    )*};
}
tuple_object!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H)
);

/// An `ndarray` array of any dimension: a numpy array to a Python client
/// (no copy in standard layout).
impl<T: crate::Element, D: ndarray::Dimension> IntoObject for ndarray::Array<T, D> {
    fn into_object(self) -> ExecResult<Object> {
        Ok(Object::Value(self.into()))
    }
}

impl<T: Into<Value>> IntoObject for Option<T> {
    fn into_object(self) -> ExecResult<Object> {
        Ok(Object::Value(self.into()))
    }
}

impl<T: crate::Element, D: ndarray::Dimension> IntoObject for crate::Array<T, D> {
    fn into_object(self) -> ExecResult<Object> {
        Ok(Object::Value(self.into()))
    }
}

impl<T: crate::Element> IntoObject for crate::NdView<T> {
    fn into_object(self) -> ExecResult<Object> {
        Ok(Object::Value(self.into()))
    }
}

impl IntoObject for Instance {
    fn into_object(self) -> ExecResult<Object> {
        Ok(Object::Instance(self))
    }
}

impl IntoObject for Object {
    fn into_object(self) -> ExecResult<Object> {
        Ok(self)
    }
}

impl<T: IntoObject> IntoObject for ExecResult<T> {
    fn into_object(self) -> ExecResult<Object> {
        self.and_then(IntoObject::into_object)
    }
}

/// A closure usable as a registry function; `M` is its argument tuple.
#[diagnostic::on_unimplemented(
    message = "this closure cannot be a registry function",
    label = "not a registry function",
    note = "a registry function is a `Fn` of up to six arguments, each a `FromValue` type (wrap serde types as `Serde<T>`), returning an `IntoObject` type",
    note = "a type of your own as an argument or result: derive serde's traits for it and take or return `Serde<YourType>`"
)]
pub trait IntoFunction<M>: Send + Sync + 'static {
    /// Erase the argument types.
    fn into_native(self) -> NativeFn;
}

/// A closure usable as a method of `T`; `M` is its argument tuple.
#[diagnostic::on_unimplemented(
    message = "this closure cannot be a method of `{T}`",
    label = "not a method of `{T}`",
    note = "a method is a `Fn(&mut {T}, ...)` of up to six more arguments, each a `FromValue` type (wrap serde types as `Serde<T>`), returning an `IntoObject` type"
)]
pub trait IntoMethod<T, M>: Send + Sync + 'static {
    /// Erase the types.
    fn into_method(self) -> MethodFn;
}

fn arity(args: &Args, n: usize) -> ExecResult<()> {
    if args.positional.len() != n || !args.kwargs.is_empty() {
        return Err(ExecError::type_error(format!(
            "takes {n} positional argument{} but {} were given{}",
            if n == 1 { "" } else { "s" },
            args.positional.len(),
            if args.kwargs.is_empty() {
                ""
            } else {
                " (keyword arguments are not accepted)"
            }
        )));
    }
    Ok(())
}

fn arg<A: FromValue>(it: &mut std::vec::IntoIter<Value>, i: usize) -> ExecResult<A> {
    let v = it.next().expect("arity checked");
    A::from_value(v).map_err(|e| ExecError {
        message: format!("argument {}: {}", i + 1, e.message),
        ..e
    })
}

macro_rules! impl_fns {
    ($n:expr; $($a:ident),*) => {
        impl<F, R, $($a: FromValue),*> IntoFunction<($($a,)*)> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: IntoObject,
        {
            #[allow(unused_variables, unused_mut, non_snake_case)]
            fn into_native(self) -> NativeFn {
                Arc::new(move |args: Args| {
                    arity(&args, $n)?;
                    let mut it = args.positional.into_iter();
                    let mut i = 0usize;
                    $(let $a = arg::<$a>(&mut it, { i += 1; i - 1 })?;)*
                    (self)($($a),*).into_object()
                })
            }
        }

        impl<T: Any + Send, F, R, $($a: FromValue),*> IntoMethod<T, ($($a,)*)> for F
        where
            F: Fn(&mut T, $($a),*) -> R + Send + Sync + 'static,
            R: IntoObject,
        {
            #[allow(unused_variables, unused_mut, non_snake_case)]
            fn into_method(self) -> MethodFn {
                Arc::new(move |this: &mut (dyn Any + Send), args: Args| {
                    arity(&args, $n)?;
                    let this = this.downcast_mut::<T>().ok_or_else(wrong_class)?;
                    let mut it = args.positional.into_iter();
                    let mut i = 0usize;
                    $(let $a = arg::<$a>(&mut it, { i += 1; i - 1 })?;)*
                    (self)(this, $($a),*).into_object()
                })
            }
        }
    };
}

impl_fns!(0;);
impl_fns!(1; A1);
impl_fns!(2; A1, A2);
impl_fns!(3; A1, A2, A3);
impl_fns!(4; A1, A2, A3, A4);
impl_fns!(5; A1, A2, A3, A4, A5);
impl_fns!(6; A1, A2, A3, A4, A5, A6);
