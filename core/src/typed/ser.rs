//! Writing serde types as values.

use std::cell::RefCell;

use bytes::Bytes;
use serde::ser::{self, Serialize, Serializer};

use super::de::VALUE_TOKEN;
use super::ConvertError;
use crate::array::{DType, NdArray};
use crate::value::Value;

thread_local! {
    /// A value on its way through serde untouched: set by [`Value`]'s
    /// `Serialize` right before it calls the serializer, taken by ours.
    static PASS: RefCell<Option<Value>> = const { RefCell::new(None) };
}

/// [`Value`] serializes as itself through [`to_value`](super::to_value)
/// (array data shared, not copied), and structurally through any other
/// serializer (arrays as ndarray-like maps of `dtype`, `shape`, `data`).
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PASS.with(|p| *p.borrow_mut() = Some(self.clone()));
        let out = s.serialize_newtype_struct(VALUE_TOKEN, &Structural(self));
        PASS.with(|p| p.borrow_mut().take());
        out
    }
}

/// A protocol array serializes as a [`Value::Array`] (no copy of its data
/// through [`to_value`](super::to_value)).
impl Serialize for NdArray {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Value::Array(self.clone()).serialize(s)
    }
}

/// How a [`Value`] looks to serializers other than ours.
struct Structural<'a>(&'a Value);

impl Serialize for Structural<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::F32(f) => s.serialize_f32(*f),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            Value::Bin(b) => s.serialize_bytes(b),
            Value::List(items) | Value::Tuple(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Structural(v))?;
                }
                seq.end()
            }
            Value::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(&Structural(k), &Structural(v))?;
                }
                map.end()
            }
            Value::Array(a) => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("dtype", a.dtype().name())?;
                map.serialize_entry("shape", a.shape())?;
                map.serialize_entry("data", &Structural(&Value::Bin(a.data().clone())))?;
                map.end()
            }
            Value::Scalar(sc) => match sc.number() {
                Some(n) => Structural(&super::de::num_value(n)).serialize(s),
                None => Err(ser::Error::custom("a numpy scalar of the wrong size")),
            },
            Value::Complex(re, im) => (re, im).serialize(s),
            Value::Slice(sl) => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("start", &Structural(&sl.start))?;
                map.serialize_entry("stop", &Structural(&sl.stop))?;
                map.serialize_entry("step", &Structural(&sl.step))?;
                map.end()
            }
            Value::Proxy(_) | Value::Handle(_) => Err(ser::Error::custom(
                "a remote object (a proxy) has no data to serialize",
            )),
            Value::Raw(r) => match r.decode() {
                Ok(v) => Structural(&v).serialize(s),
                Err(e) => Err(ser::Error::custom(e)),
            },
        }
    }
}

/// The serde [`Serializer`] that makes [`Value`]s: what
/// [`to_value`](super::to_value) uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValueSerializer;

/// Items of a sequence, a tuple, or a variant's payload.
pub struct SeqBuilder {
    items: Vec<Value>,
    tuple: bool,
    variant: Option<&'static str>,
}

impl SeqBuilder {
    fn finish(self) -> Value {
        let v = if self.tuple {
            Value::Tuple(self.items)
        } else {
            Value::List(self.items)
        };
        wrap_variant(self.variant, v)
    }
}

fn wrap_variant(variant: Option<&'static str>, v: Value) -> Value {
    match variant {
        Some(name) => Value::Map(vec![(Value::str(name), v)]),
        None => v,
    }
}

/// Entries of a map or a struct.
pub struct MapBuilder {
    pairs: Vec<(Value, Value)>,
    key: Option<Value>,
    variant: Option<&'static str>,
    /// `Some` while this may be ndarray's serde form of an array.
    array: Option<ArrayForm>,
}

/// ndarray's `{v, dim, data}`, data already typed.
#[derive(Default)]
struct ArrayForm {
    dim: Option<Vec<usize>>,
    /// The data, flat.
    data: Option<NdArray>,
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ConvertError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ConvertError> {
        let i = self.items.len();
        self.items
            .push(v.serialize(ValueSerializer).map_err(|e| e.at_index(i))?);
        Ok(())
    }
    fn end(self) -> Result<Value, ConvertError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ConvertError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ConvertError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, ConvertError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ConvertError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ConvertError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, ConvertError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Value;
    type Error = ConvertError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ConvertError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, ConvertError> {
        Ok(self.finish())
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ConvertError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), ConvertError> {
        self.key = Some(k.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ConvertError> {
        let k = self
            .key
            .take()
            .ok_or_else(|| ConvertError::new("a map value given before its key"))?;
        let v = v
            .serialize(ValueSerializer)
            .map_err(|e| e.in_field(key_text(&k)))?;
        self.pairs.push((k, v));
        Ok(())
    }
    fn end(self) -> Result<Value, ConvertError> {
        Ok(wrap_variant(self.variant, Value::Map(self.pairs)))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = ConvertError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), ConvertError> {
        if let Some(form) = self.array.as_mut() {
            match name {
                "dim" => form.dim = super::from_value(v.serialize(ValueSerializer)?).ok(),
                "data" => {
                    // Typed straight into bytes, never a value per element.
                    if let Ok((dtype, bytes)) = v.serialize(ElementsSerializer) {
                        let n = bytes.len() / dtype.itemsize();
                        let flat =
                            NdArray::new(dtype, dtype.native_order(), vec![n], Bytes::from(bytes))?;
                        form.data = Some(flat);
                        self.pairs.push((Value::str(name), Value::Nil));
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        let value = v.serialize(ValueSerializer).map_err(|e| e.in_field(name))?;
        self.pairs.push((Value::str(name), value));
        Ok(())
    }
    fn end(mut self) -> Result<Value, ConvertError> {
        if let Some(ArrayForm {
            dim,
            data: Some(flat),
        }) = self.array.take()
        {
            let versioned = self.pairs.first().map(|(_, v)| v.as_u64()) == Some(Some(1));
            if let (true, Some(shape)) = (versioned, dim) {
                let a = NdArray::new(flat.dtype(), flat.order(), shape, flat.into_data())?;
                return Ok(wrap_variant(self.variant, Value::Array(a)));
            }
            // Not ndarray's form after all: the data as a 1-d array.
            for (k, v) in &mut self.pairs {
                if k.as_str() == Some("data") {
                    *v = Value::Array(flat);
                    break;
                }
            }
        }
        Ok(wrap_variant(self.variant, Value::Map(self.pairs)))
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Value;
    type Error = ConvertError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), ConvertError> {
        ser::SerializeStruct::serialize_field(self, name, v)
    }
    fn end(self) -> Result<Value, ConvertError> {
        ser::SerializeStruct::end(self)
    }
}

fn int_value<T: TryInto<i64> + TryInto<u64> + Copy + std::fmt::Display>(
    v: T,
) -> Result<Value, ConvertError> {
    if let Ok(u) = TryInto::<u64>::try_into(v) {
        return Ok(Value::UInt(u));
    }
    TryInto::<i64>::try_into(v)
        .map(Value::Int)
        .map_err(|_| ConvertError::new(format!("{v} does not fit a 64-bit integer")))
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ConvertError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, ConvertError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ConvertError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ConvertError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ConvertError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ConvertError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ConvertError> {
        int_value(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ConvertError> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ConvertError> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ConvertError> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ConvertError> {
        Ok(Value::UInt(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ConvertError> {
        int_value(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ConvertError> {
        Ok(Value::F32(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ConvertError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ConvertError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ConvertError> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ConvertError> {
        Ok(Value::Bin(Bytes::copy_from_slice(v)))
    }
    fn serialize_none(self) -> Result<Value, ConvertError> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, ConvertError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ConvertError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ConvertError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ConvertError> {
        Ok(Value::str(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<Value, ConvertError> {
        if name == VALUE_TOKEN {
            if let Some(value) = PASS.with(|p| p.borrow_mut().take()) {
                return Ok(value);
            }
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Value, ConvertError> {
        let v = v.serialize(self).map_err(|e| e.in_field(variant))?;
        Ok(wrap_variant(Some(variant), v))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ConvertError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            tuple: false,
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ConvertError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.min(4096)),
            tuple: true,
            variant: None,
        })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ConvertError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ConvertError> {
        let mut b = self.serialize_tuple(len)?;
        b.variant = Some(variant);
        Ok(b)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, ConvertError> {
        Ok(MapBuilder {
            pairs: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
            variant: None,
            array: None,
        })
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<MapBuilder, ConvertError> {
        let mut b = self.serialize_map(Some(len))?;
        if name == "Array" && len == 3 {
            b.array = Some(ArrayForm::default());
        }
        Ok(b)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, ConvertError> {
        let mut b = self.serialize_map(Some(len))?;
        b.variant = Some(variant);
        Ok(b)
    }
}

/// Serializes a sequence of numbers of one Rust type into native-order
/// bytes of the matching dtype (ndarray's `data`); refuses anything else.
struct ElementsSerializer;

/// The typed bytes of [`ElementsSerializer`].
struct ElementsBuilder {
    dtype: Option<DType>,
    bytes: Vec<u8>,
}

fn not_elements() -> ConvertError {
    ConvertError::new("not a sequence of numbers")
}

/// Serializes one number, recording its dtype.
struct OneElement<'a>(&'a mut ElementsBuilder);

macro_rules! one {
    ($($method:ident($t:ty) => $d:ident),*) => {$(
        fn $method(self, v: $t) -> Result<(), ConvertError> {
            self.0.push(DType::$d, &v.to_ne_bytes())
        }
    )*};
}

impl ElementsBuilder {
    fn push(&mut self, dtype: DType, bytes: &[u8]) -> Result<(), ConvertError> {
        match self.dtype {
            None => self.dtype = Some(dtype),
            Some(d) if d == dtype => {}
            Some(_) => return Err(not_elements()),
        }
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ret:ty),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, ConvertError> {
            Err(not_elements())
        }
    )*};
}

impl Serializer for OneElement<'_> {
    type Ok = ();
    type Error = ConvertError;
    type SerializeSeq = ser::Impossible<(), ConvertError>;
    type SerializeTuple = ser::Impossible<(), ConvertError>;
    type SerializeTupleStruct = ser::Impossible<(), ConvertError>;
    type SerializeTupleVariant = ser::Impossible<(), ConvertError>;
    type SerializeMap = ser::Impossible<(), ConvertError>;
    type SerializeStruct = ser::Impossible<(), ConvertError>;
    type SerializeStructVariant = ser::Impossible<(), ConvertError>;

    fn serialize_bool(self, v: bool) -> Result<(), ConvertError> {
        self.0.push(DType::Bool, &[u8::from(v)])
    }
    one!(serialize_i8(i8) => Int8, serialize_i16(i16) => Int16, serialize_i32(i32) => Int32,
        serialize_i64(i64) => Int64, serialize_u8(u8) => UInt8, serialize_u16(u16) => UInt16,
        serialize_u32(u32) => UInt32, serialize_u64(u64) => UInt64,
        serialize_f32(f32) => Float32, serialize_f64(f64) => Float64);

    refuse!(serialize_char(char) -> (), serialize_str(&str) -> (), serialize_bytes(&[u8]) -> (),
        serialize_none() -> (), serialize_unit() -> (), serialize_unit_struct(&'static str) -> (),
        serialize_unit_variant(&'static str, u32, &'static str) -> (),
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct(&'static str, usize) -> Self::SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant);

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), ConvertError> {
        Err(not_elements())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), ConvertError> {
        Err(not_elements())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), ConvertError> {
        Err(not_elements())
    }
}

impl ser::SerializeSeq for ElementsBuilder {
    type Ok = (DType, Vec<u8>);
    type Error = ConvertError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ConvertError> {
        v.serialize(OneElement(self))
    }
    fn end(self) -> Result<(DType, Vec<u8>), ConvertError> {
        // An empty array says nothing of its type: numpy's default, float64.
        Ok((self.dtype.unwrap_or(DType::Float64), self.bytes))
    }
}

impl Serializer for ElementsSerializer {
    type Ok = (DType, Vec<u8>);
    type Error = ConvertError;
    type SerializeSeq = ElementsBuilder;
    type SerializeTuple = ser::Impossible<Self::Ok, ConvertError>;
    type SerializeTupleStruct = ser::Impossible<Self::Ok, ConvertError>;
    type SerializeTupleVariant = ser::Impossible<Self::Ok, ConvertError>;
    type SerializeMap = ser::Impossible<Self::Ok, ConvertError>;
    type SerializeStruct = ser::Impossible<Self::Ok, ConvertError>;
    type SerializeStructVariant = ser::Impossible<Self::Ok, ConvertError>;

    fn serialize_seq(self, len: Option<usize>) -> Result<ElementsBuilder, ConvertError> {
        Ok(ElementsBuilder {
            dtype: None,
            bytes: Vec::with_capacity(len.unwrap_or(0).saturating_mul(8).min(1 << 30)),
        })
    }

    refuse!(serialize_bool(bool) -> Self::Ok, serialize_i8(i8) -> Self::Ok,
        serialize_i16(i16) -> Self::Ok, serialize_i32(i32) -> Self::Ok,
        serialize_i64(i64) -> Self::Ok, serialize_u8(u8) -> Self::Ok,
        serialize_u16(u16) -> Self::Ok, serialize_u32(u32) -> Self::Ok,
        serialize_u64(u64) -> Self::Ok, serialize_f32(f32) -> Self::Ok,
        serialize_f64(f64) -> Self::Ok, serialize_char(char) -> Self::Ok,
        serialize_str(&str) -> Self::Ok, serialize_bytes(&[u8]) -> Self::Ok,
        serialize_none() -> Self::Ok, serialize_unit() -> Self::Ok,
        serialize_unit_struct(&'static str) -> Self::Ok,
        serialize_unit_variant(&'static str, u32, &'static str) -> Self::Ok,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct(&'static str, usize) -> Self::SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant);

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Self::Ok, ConvertError> {
        Err(not_elements())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, ConvertError> {
        Err(not_elements())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, ConvertError> {
        Err(not_elements())
    }
}
