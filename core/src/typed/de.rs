//! Reading values as serde types.

use std::cell::RefCell;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;

use super::{describe, read_item, rust_name, ConvertError, Num};
use crate::array::{DType, NdArray};
use crate::value::Value;

/// The newtype-struct name by which a [`Value`] asks our own serializer
/// and deserializer to pass it through as it is.
pub(crate) const VALUE_TOKEN: &str = "$simplerpc_core::Value";

thread_local! {
    /// A value on its way through serde untouched: set right before the
    /// visitor of [`Value`]'s `Deserialize` is called, taken by it.
    static PASS: RefCell<Option<Value>> = const { RefCell::new(None) };
}

/// A serde [`Deserializer`] over an owned [`Value`]: what [`from_value`](super::from_value) uses.
#[derive(Debug)]
pub struct ValueDeserializer {
    value: Value,
}

impl ValueDeserializer {
    /// Read `value`.
    pub fn new(value: Value) -> Self {
        ValueDeserializer { value }
    }
}

impl<'de> IntoDeserializer<'de, ConvertError> for Value {
    type Deserializer = ValueDeserializer;
    fn into_deserializer(self) -> ValueDeserializer {
        ValueDeserializer::new(self)
    }
}

fn visit_num<'de, V: Visitor<'de>>(n: Num, visitor: V) -> Result<V::Value, ConvertError> {
    match n {
        Num::Bool(b) => visitor.visit_bool(b),
        Num::Int(i) => visitor.visit_i64(i),
        Num::UInt(u) => visitor.visit_u64(u),
        Num::F32(f) => visitor.visit_f32(f),
        Num::Float(f) => visitor.visit_f64(f),
        Num::Complex(re, im) => visit_items(
            visitor,
            vec![Value::Float(re), Value::Float(im)].into_iter(),
        ),
    }
}

/// The items of an array along its first axis: sub-arrays sharing its
/// data, or numbers for a 1-d array.
fn rows(a: NdArray) -> Result<Vec<Value>, ConvertError> {
    let Some((&n, rest)) = a.shape().split_first() else {
        return Ok(Vec::new());
    };
    let step = a.data().len() / n.max(1);
    let item = a.dtype().itemsize();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let data = a.data().slice(i * step..(i + 1) * step);
        if rest.is_empty() {
            out.push(num_value(read_item(a.dtype(), a.order(), &data[..item])));
        } else {
            out.push(Value::Array(NdArray::new(
                a.dtype(),
                a.order(),
                rest.to_vec(),
                data,
            )?));
        }
    }
    Ok(out)
}

pub(crate) fn num_value(n: Num) -> Value {
    match n {
        Num::Bool(b) => Value::Bool(b),
        Num::Int(i) => Value::Int(i),
        Num::UInt(u) => Value::UInt(u),
        Num::F32(f) => Value::F32(f),
        Num::Float(f) => Value::Float(f),
        Num::Complex(re, im) => Value::Complex(re, im),
    }
}

impl ValueDeserializer {
    fn invalid<T>(self, exp: &str) -> Result<T, ConvertError> {
        Err(ConvertError::new(format!(
            "expected {exp}, found {}",
            describe(&self.value)
        )))
    }
}

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = ConvertError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::UInt(u) => visitor.visit_u64(u),
            Value::F32(f) => visitor.visit_f32(f),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bin(b) => visitor.visit_bytes(&b),
            Value::List(items) | Value::Tuple(items) => visit_items(visitor, items.into_iter()),
            Value::Map(pairs) => visitor.visit_map(Pairs::new(pairs.into_iter())),
            Value::Array(a) if a.shape().is_empty() => {
                visit_num(read_item(a.dtype(), a.order(), a.data()), visitor)
            }
            Value::Array(a) => visit_items(visitor, rows(a)?.into_iter()),
            Value::Scalar(s) => match s.number() {
                Some(n) => visit_num(n, visitor),
                None => Err(ConvertError::new(format!(
                    "a numpy {} scalar of {} bytes",
                    s.dtype,
                    s.data.len()
                ))),
            },
            Value::Complex(re, im) => visit_num(Num::Complex(re, im), visitor),
            Value::Slice(s) => visitor.visit_map(Pairs::new(
                vec![
                    (Value::str("start"), s.start),
                    (Value::str("stop"), s.stop),
                    (Value::str("step"), s.step),
                ]
                .into_iter(),
            )),
            Value::Proxy(_) | Value::Handle(_) => Err(ConvertError::new(
                "found a remote object (a proxy), not data: materialize it first, \
                 or read it as a Value",
            )),
            Value::Raw(r) => ValueDeserializer::new(r.decode().map_err(|e| {
                ConvertError::new(format!("a msgpack value that does not decode: {e}"))
            })?)
            .deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Nil => visitor.visit_unit(),
            _ => self.invalid("None"),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        if name == VALUE_TOKEN {
            PASS.with(|p| *p.borrow_mut() = Some(self.value));
            let out = visitor.visit_unit();
            PASS.with(|p| p.borrow_mut().take());
            return out;
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::List(items) | Value::Tuple(items) => visit_items(visitor, items.into_iter()),
            Value::Array(a) if !a.shape().is_empty() => visit_items(visitor, rows(a)?.into_iter()),
            Value::Bin(b) => visit_items(
                visitor,
                b.iter()
                    .map(|&x| Value::UInt(u64::from(x)))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Value::Complex(..) => self.deserialize_any(visitor),
            Value::Scalar(ref s) if matches!(s.dtype, DType::Complex64 | DType::Complex128) => {
                self.deserialize_any(visitor)
            }
            Value::Raw(_) => self.deserialize_any(visitor),
            _ => self.invalid("a list or tuple"),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Map(pairs) => visitor.visit_map(Pairs::new(pairs.into_iter())),
            Value::Slice(_) | Value::Raw(_) => self.deserialize_any(visitor),
            _ => self.invalid("a map"),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.value {
            // ndarray's own serde form: `{v: 1, dim, data}`.
            Value::Array(a) if name == "Array" && fields == ["v", "dim", "data"] => {
                visitor.visit_seq(ArrayParts::new(a))
            }
            Value::Scalar(s) if name == "Array" && fields == ["v", "dim", "data"] => visitor
                .visit_seq(ArrayParts::new(NdArray::new(
                    s.dtype,
                    s.order,
                    Vec::new(),
                    s.data,
                )?)),
            Value::Map(pairs) => visitor.visit_map(Pairs::new(pairs.into_iter())),
            // A struct from a tuple or list of its fields, in order.
            Value::List(items) | Value::Tuple(items) => visit_items(visitor, items.into_iter()),
            Value::Slice(_) | Value::Raw(_) => self.deserialize_any(visitor),
            _ if name == "Array" && fields == ["v", "dim", "data"] => self.invalid("an ndarray"),
            _ => self.invalid(&format!("a map (for struct {name})")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Str(s) => visitor.visit_enum(Enum {
                variant: Value::Str(s),
                payload: None,
            }),
            Value::Map(mut pairs) if pairs.len() == 1 => {
                let (variant, payload) = pairs.pop().expect("one pair");
                visitor.visit_enum(Enum {
                    variant,
                    payload: Some(payload),
                })
            }
            Value::Raw(_) => self.deserialize_any(visitor),
            _ => self.invalid("an enum: a variant name, or a map of one variant name to its data"),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        match self.value {
            Value::Bin(b) => visitor.visit_bytes(&b),
            Value::Str(s) => visitor.visit_bytes(s.as_bytes()),
            Value::Array(ref a)
                if a.shape().len() == 1 && matches!(a.dtype(), DType::UInt8 | DType::Int8) =>
            {
                visitor.visit_bytes(a.data())
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string identifier
    }
}

/// Visit `items` as a sequence, and refuse items the visitor left (a
/// tuple of 2 from a list of 3).
fn visit_items<'de, V: Visitor<'de>, I: ExactSizeIterator<Item = Value>>(
    visitor: V,
    items: I,
) -> Result<V::Value, ConvertError> {
    let total = items.len();
    let mut seq = Items::new(items);
    let out = visitor.visit_seq(&mut seq)?;
    let left = seq.iter.len();
    if left > 0 {
        return Err(ConvertError::new(format!(
            "expected {} items, found {total}",
            total - left
        )));
    }
    Ok(out)
}

/// A sequence of values; an error of item `i` gains `i` in its path.
struct Items<I> {
    iter: I,
    index: usize,
}

impl<I> Items<I> {
    fn new(iter: I) -> Self {
        Items { iter, index: 0 }
    }
}

impl<'de, I: ExactSizeIterator<Item = Value>> SeqAccess<'de> for Items<I> {
    type Error = ConvertError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConvertError> {
        let Some(v) = self.iter.next() else {
            return Ok(None);
        };
        let i = self.index;
        self.index += 1;
        seed.deserialize(ValueDeserializer::new(v))
            .map(Some)
            .map_err(|e| e.at_index(i))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// The entries of a map; an error of a value gains its key in its path.
struct Pairs<I> {
    iter: I,
    value: Option<(String, Value)>,
}

impl<I> Pairs<I> {
    fn new(iter: I) -> Self {
        Pairs { iter, value: None }
    }
}

fn key_name(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Bin(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("<{} key>", other.type_name()),
    }
}

impl<'de, I: ExactSizeIterator<Item = (Value, Value)>> MapAccess<'de> for Pairs<I> {
    type Error = ConvertError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConvertError> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        let name = key_name(&k);
        // msgpack-python sends dict keys of bytes for some peers: read them as text.
        let k = match k {
            Value::Bin(b) => match String::from_utf8(b.to_vec()) {
                Ok(s) => Value::Str(s),
                Err(_) => Value::Bin(b),
            },
            k => k,
        };
        let key = seed
            .deserialize(ValueDeserializer::new(k))
            .map_err(|e| e.in_field(name.clone()))?;
        self.value = Some((name, v));
        Ok(Some(key))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, ConvertError> {
        let (name, v) = self
            .value
            .take()
            .ok_or_else(|| ConvertError::new("a map value asked for before its key"))?;
        seed.deserialize(ValueDeserializer::new(v))
            .map_err(|e| e.in_field(name))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Enum {
    variant: Value,
    payload: Option<Value>,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = ConvertError;
    type Variant = Variant;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant), ConvertError> {
        let name = key_name(&self.variant);
        let v = seed.deserialize(ValueDeserializer::new(self.variant))?;
        Ok((
            v,
            Variant {
                name,
                payload: self.payload,
            },
        ))
    }
}

struct Variant {
    name: String,
    payload: Option<Value>,
}

impl Variant {
    fn payload(self) -> Result<(String, Value), ConvertError> {
        match self.payload {
            Some(p) => Ok((self.name, p)),
            None => Err(ConvertError::new(format!(
                "enum variant {} needs data: send it as a map {{\"{}\": data}}",
                self.name, self.name
            ))),
        }
    }
}

impl<'de> VariantAccess<'de> for Variant {
    type Error = ConvertError;

    fn unit_variant(self) -> Result<(), ConvertError> {
        match self.payload {
            None | Some(Value::Nil) => Ok(()),
            Some(other) => Err(ConvertError::new(format!(
                "enum variant {} takes no data, found {}",
                self.name,
                describe(&other)
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ConvertError> {
        let (name, p) = self.payload()?;
        seed.deserialize(ValueDeserializer::new(p))
            .map_err(|e| e.in_field(name))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        let (name, p) = self.payload()?;
        ValueDeserializer::new(p)
            .deserialize_seq(visitor)
            .map_err(|e| e.in_field(name))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConvertError> {
        let (name, p) = self.payload()?;
        ValueDeserializer::new(p)
            .deserialize_struct("", fields, visitor)
            .map_err(|e| e.in_field(name))
    }
}

/// ndarray's serde form of an array, `(v, dim, data)`, read straight from
/// the array's bytes: `data` items must be of the array's own dtype.
struct ArrayParts {
    array: Option<NdArray>,
    part: u8,
}

impl ArrayParts {
    fn new(array: NdArray) -> Self {
        ArrayParts {
            array: Some(array),
            part: 0,
        }
    }
}

impl<'de> SeqAccess<'de> for ArrayParts {
    type Error = ConvertError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConvertError> {
        let part = self.part;
        self.part += 1;
        let Some(array) = self.array.as_ref() else {
            return Ok(None);
        };
        match part {
            0 => seed
                .deserialize(ValueDeserializer::new(Value::UInt(1)))
                .map(Some),
            1 => {
                let dim = Value::Tuple(array.shape().iter().map(|&d| Value::from(d)).collect());
                seed.deserialize(ValueDeserializer::new(dim))
                    .map(Some)
                    .map_err(|e| {
                        ConvertError::new(format!(
                            "expected an array of another number of dimensions, found one of \
                             shape {:?} ({})",
                            array.shape(),
                            e.message()
                        ))
                    })
            }
            _ => {
                let array = self.array.take().expect("checked above");
                seed.deserialize(Elements::new(array)).map(Some)
            }
        }
    }
}

/// An array's elements as a sequence of numbers of exactly its dtype.
struct Elements {
    array: NdArray,
}

impl Elements {
    fn new(array: NdArray) -> Self {
        Elements { array }
    }
}

impl<'de> Deserializer<'de> for Elements {
    type Error = ConvertError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        let n = self.array.len();
        let (dtype, order) = (self.array.dtype(), self.array.order());
        let item = dtype.itemsize();
        visitor.visit_seq(ElementSeq {
            chunks: self.array.data().chunks_exact(item),
            dtype,
            swap: !dtype.is_native(order),
            left: n,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct ElementSeq<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
    dtype: DType,
    swap: bool,
    left: usize,
}

impl<'de> SeqAccess<'de> for ElementSeq<'_> {
    type Error = ConvertError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConvertError> {
        let Some(bytes) = self.chunks.next() else {
            return Ok(None);
        };
        self.left -= 1;
        seed.deserialize(Element {
            dtype: self.dtype,
            swap: self.swap,
            bytes,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// One array element: read only as the Rust type of its dtype.
struct Element<'a> {
    dtype: DType,
    swap: bool,
    bytes: &'a [u8],
}

impl Element<'_> {
    #[cold]
    fn wrong(&self, want: DType) -> ConvertError {
        ConvertError::new(format!(
            "expected an array of {}, found an array of {}",
            rust_name(want),
            self.dtype
        ))
    }
}

macro_rules! element_as {
    ($($method:ident, $visit:ident, $t:ty => $d:ident),*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
            if self.dtype != DType::$d {
                return Err(self.wrong(DType::$d));
            }
            let arr: [u8; std::mem::size_of::<$t>()] =
                self.bytes.try_into().expect("chunks of the item size");
            let x = <$t>::from_ne_bytes(arr);
            visitor.$visit(if self.swap { <$t>::from_bits(x.to_bits().swap_bytes()) } else { x })
        }
    )*};
}

macro_rules! int_element_as {
    ($($method:ident, $visit:ident, $t:ty => $d:ident),*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
            if self.dtype != DType::$d {
                return Err(self.wrong(DType::$d));
            }
            let arr: [u8; std::mem::size_of::<$t>()] =
                self.bytes.try_into().expect("chunks of the item size");
            let x = <$t>::from_ne_bytes(arr);
            visitor.$visit(if self.swap { x.swap_bytes() } else { x })
        }
    )*};
}

impl<'de> Deserializer<'de> for Element<'_> {
    type Error = ConvertError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        let order = if self.swap {
            match crate::array::ByteOrder::NATIVE {
                crate::array::ByteOrder::Little => crate::array::ByteOrder::Big,
                _ => crate::array::ByteOrder::Little,
            }
        } else {
            crate::array::ByteOrder::NATIVE
        };
        visit_num(read_item(self.dtype, order, self.bytes), visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConvertError> {
        if self.dtype != DType::Bool {
            return Err(self.wrong(DType::Bool));
        }
        match self.bytes[0] {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(ConvertError::new(
                "bool array holds a byte other than 0 or 1",
            )),
        }
    }

    int_element_as!(deserialize_i8, visit_i8, i8 => Int8, deserialize_i16, visit_i16, i16 => Int16,
        deserialize_i32, visit_i32, i32 => Int32, deserialize_i64, visit_i64, i64 => Int64,
        deserialize_u8, visit_u8, u8 => UInt8, deserialize_u16, visit_u16, u16 => UInt16,
        deserialize_u32, visit_u32, u32 => UInt32, deserialize_u64, visit_u64, u64 => UInt64);
    element_as!(deserialize_f32, visit_f32, f32 => Float32, deserialize_f64, visit_f64, f64 => Float64);

    forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf option unit unit_struct newtype_struct
        seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// [`Value`] reads any serde data; from our own deserializer it passes
/// through as it is (array data shared, not copied).
impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_newtype_struct(VALUE_TOKEN, ValueVisitor)
    }
}

/// A protocol array reads from an array value (or a numpy scalar, as 0-d),
/// without a copy.
impl<'de> de::Deserialize<'de> for NdArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NdArray, D::Error> {
        let v = Value::deserialize(d)?;
        NdArray::try_from(v).map_err(de::Error::custom)
    }
}

use serde::Deserialize as _;

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(PASS.with(|p| p.borrow_mut().take()).unwrap_or(Value::Nil))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        // Not `Value::deserialize`: a deserializer that answers a newtype
        // struct with `visit_newtype_struct(self)` (serde_json, serde's own
        // buffers) would come back here for ever.
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Value, E> {
        Ok(Value::F32(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(bytes::Bytes::copy_from_slice(v)))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bin(v.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(Value::Map(pairs))
    }
}
