//! Protocol values between Python objects and msgpack, in Rust.
//!
//! The reference behaviour is `simplerpc._serialization` (msgpack with the
//! msgpack-numpy marker maps, the `tuple` extension's marker, large arrays
//! spliced in as their own memory). Plain values (None, bool, int, float,
//! str, bytes, lists, tuples, dicts) are converted here without a Python
//! call; for anything else the encoder asks the package's `special(obj)`
//! and the decoder hands the few marker maps (arrays, numpy scalars,
//! complex, slices, proxies) to the package's `decode_map(pairs)`, so the
//! rules for those stay in one place.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use crate::abi::Bytes;
use crate::buffer::Borrowed;

/// Deepest nesting accepted on either side (msgpack's own unpacker stops at
/// 1024 too); deeper input is refused rather than overflowing the stack.
const MAX_DEPTH: usize = 1024;

// ------------------------------------------------------------------ encode

struct Encoder<'py> {
    py: Python<'py>,
    tuples: bool,
    special: Bound<'py, PyAny>,
    out: Vec<u8>,
    parts: Vec<Bound<'py, PyAny>>,
    splice_marker: Option<Bound<'py, PyAny>>,
}

impl<'py> Encoder<'py> {
    fn uint(&mut self, v: u64) {
        let o = &mut self.out;
        if v < 128 {
            o.push(v as u8);
        } else if v < 256 {
            o.extend_from_slice(&[0xcc, v as u8]);
        } else if v < 65536 {
            o.push(0xcd);
            o.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v < (1 << 32) {
            o.push(0xce);
            o.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            o.push(0xcf);
            o.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn sint(&mut self, v: i64) {
        if v >= 0 {
            return self.uint(v as u64);
        }
        let o = &mut self.out;
        if v >= -32 {
            o.push(v as i8 as u8);
        } else if v >= -128 {
            o.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= -32768 {
            o.push(0xd1);
            o.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= -(1 << 31) {
            o.push(0xd2);
            o.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            o.push(0xd3);
            o.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn len_header(
        &mut self,
        n: usize,
        fix: u8,
        fix_max: usize,
        m8: Option<u8>,
        m16: u8,
        m32: u8,
    ) -> PyResult<()> {
        let o = &mut self.out;
        if n <= fix_max {
            o.push(fix | n as u8);
        } else if let (Some(m8), true) = (m8, n < 256) {
            o.extend_from_slice(&[m8, n as u8]);
        } else if n < 65536 {
            o.push(m16);
            o.extend_from_slice(&(n as u16).to_be_bytes());
        } else if let Ok(n) = u32::try_from(n) {
            o.push(m32);
            o.extend_from_slice(&n.to_be_bytes());
        } else {
            return Err(PyValueError::new_err(
                "a value too large for msgpack (4 GiB or more)",
            ));
        }
        Ok(())
    }

    fn str(&mut self, s: &str) -> PyResult<()> {
        self.len_header(s.len(), 0xa0, 31, Some(0xd9), 0xda, 0xdb)?;
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn bin(&mut self, b: &[u8]) -> PyResult<()> {
        if b.len() < 256 {
            self.out.extend_from_slice(&[0xc4, b.len() as u8]);
        } else if b.len() < 65536 {
            self.out.push(0xc5);
            self.out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        } else {
            let n = u32::try_from(b.len()).map_err(|_| {
                PyValueError::new_err("bytes of 4 GiB or more: msgpack bin is limited to 4 GiB")
            })?;
            self.out.push(0xc6);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn array_header(&mut self, n: usize) -> PyResult<()> {
        self.len_header(n, 0x90, 15, None, 0xdc, 0xdd)
    }

    fn map_header(&mut self, n: usize) -> PyResult<()> {
        self.len_header(n, 0x80, 15, None, 0xde, 0xdf)
    }

    fn dict(&mut self, d: &Bound<'py, PyDict>, depth: usize) -> PyResult<()> {
        self.map_header(d.len())?;
        for (k, v) in d.iter() {
            self.value(&k, depth + 1)?;
            self.value(&v, depth + 1)?;
        }
        Ok(())
    }

    fn seq(&mut self, items: &Bound<'py, PyAny>, depth: usize) -> PyResult<()> {
        if let Ok(l) = items.cast::<PyList>() {
            self.array_header(l.len())?;
            for v in l.iter() {
                self.value(&v, depth + 1)?;
            }
        } else {
            let t = items.cast::<PyTuple>()?;
            self.array_header(t.len())?;
            for v in t.iter() {
                self.value(&v, depth + 1)?;
            }
        }
        Ok(())
    }

    fn int(&mut self, v: &Bound<'py, PyAny>) -> PyResult<bool> {
        if let Ok(i) = v.extract::<i64>() {
            self.sint(i);
            Ok(true)
        } else if let Ok(u) = v.extract::<u64>() {
            self.uint(u);
            Ok(true)
        } else {
            Ok(false) // out of range: as msgpack, the default (which refuses it)
        }
    }

    /// One value, by msgpack's rules: exact types first; subclasses packed
    /// as their base type, or with `tuples` (msgpack's strict_types) given
    /// to the package's `special`, which knows the rest.
    fn value(&mut self, v: &Bound<'py, PyAny>, depth: usize) -> PyResult<()> {
        if depth > MAX_DEPTH {
            return Err(PyValueError::new_err(
                "a value nested too deeply to serialize",
            ));
        }
        if v.is_none() {
            self.out.push(0xc0);
            return Ok(());
        }
        if let Ok(b) = v.cast_exact::<PyBool>() {
            self.out.push(if b.is_true() { 0xc3 } else { 0xc2 });
            return Ok(());
        }
        if v.is_exact_instance_of::<PyInt>() {
            if self.int(v)? {
                return Ok(());
            }
            return self.special(v, depth);
        }
        if let Ok(f) = v.cast_exact::<PyFloat>() {
            self.out.push(0xcb);
            self.out.extend_from_slice(&f.value().to_be_bytes());
            return Ok(());
        }
        if let Ok(s) = v.cast_exact::<PyString>() {
            return self.str(&s.to_cow()?);
        }
        if let Ok(b) = v.cast_exact::<PyBytes>() {
            return self.bin(b.as_bytes());
        }
        if let Ok(d) = v.cast_exact::<PyDict>() {
            return self.dict(d, depth);
        }
        if v.is_exact_instance_of::<PyList>() {
            return self.seq(v, depth);
        }
        if v.is_exact_instance_of::<PyTuple>() {
            if self.tuples {
                // {"__tuple__": [items...]}
                self.out.push(0x81);
                self.str("__tuple__")?;
                return self.seq(v, depth + 1);
            }
            return self.seq(v, depth);
        }
        if let Ok(b) = v.cast_exact::<PyByteArray>() {
            let data = b.to_vec();
            return self.bin(&data);
        }
        if !self.tuples {
            // msgpack without strict_types: subclasses as their base type.
            if v.is_instance_of::<PyBool>() {
                self.out.push(if v.is_truthy()? { 0xc3 } else { 0xc2 });
                return Ok(());
            }
            if v.is_instance_of::<PyInt>() {
                if self.int(v)? {
                    return Ok(());
                }
                return self.special(v, depth);
            }
            if let Ok(f) = v.cast::<PyFloat>() {
                self.out.push(0xcb);
                self.out.extend_from_slice(&f.value().to_be_bytes());
                return Ok(());
            }
            if let Ok(s) = v.cast::<PyString>() {
                return self.str(&s.to_cow()?);
            }
            if let Ok(b) = v.cast::<PyBytes>() {
                return self.bin(b.as_bytes());
            }
            if let Ok(b) = v.cast::<PyByteArray>() {
                let data = b.to_vec();
                return self.bin(&data);
            }
            if let Ok(d) = v.cast::<PyDict>() {
                return self.dict(d, depth);
            }
            // A tuple subclass may be msgpack's ExtType (a named tuple): `special`.
            if v.is_instance_of::<PyList>() {
                return self.seq(v, depth);
            }
        }
        self.special(v, depth)
    }

    /// What msgpack would give to `default`, and the types it packs that
    /// are not plain (memoryview, ExtType, Timestamp): the package's
    /// `special(obj)` answers `(how, a, b)`: `("raw", bytes, None)` msgpack
    /// packed as it is; `("value", v, None)` v packed instead (a marker
    /// map, a base-type copy); `("splice", marker, data)` the marker map
    /// of an array whose `data` (at least 64 KiB) is spliced in as its own
    /// part, where the marker holds the object `splice_marker`.
    fn special(&mut self, v: &Bound<'py, PyAny>, depth: usize) -> PyResult<()> {
        let answer = self.special.call1((v,))?;
        let (how, a, b): (String, Bound<'py, PyAny>, Bound<'py, PyAny>) = answer.extract()?;
        match how.as_str() {
            "raw" => {
                let raw = a.cast::<PyBytes>()?;
                self.out.extend_from_slice(raw.as_bytes());
                Ok(())
            }
            "value" => self.plain_only(&a, depth + 1),
            "splice" => {
                self.splice_marker = Some(b);
                let r = self.plain_only(&a, depth + 1);
                self.splice_marker = None;
                r
            }
            _ => Err(PyTypeError::new_err(format!("special() answered {how:?}"))),
        }
    }

    /// A value `special` made: packed like any other, except the splice
    /// marker (the array's data), which becomes a bin32 header here and the
    /// data a part of its own.
    fn plain_only(&mut self, v: &Bound<'py, PyAny>, depth: usize) -> PyResult<()> {
        if let Some(data) = self.splice_marker.clone() {
            if let Ok(d) = v.cast_exact::<PyDict>() {
                self.map_header(d.len())?;
                for (k, item) in d.iter() {
                    self.value(&k, depth + 1)?;
                    if item.is_none() && k.cast::<PyBytes>().is_ok_and(|k| k.as_bytes() == b"data")
                    {
                        let n = Borrowed::new(&data)?.bytes().len;
                        let n = u32::try_from(n).map_err(|_| {
                            PyValueError::new_err(
                                "numpy array of 4 GiB or more: msgpack bin is limited to 4 GiB",
                            )
                        })?;
                        self.out.push(0xc6);
                        self.out.extend_from_slice(&n.to_be_bytes());
                        let chunk = std::mem::take(&mut self.out);
                        self.parts.push(PyBytes::new(self.py, &chunk).into_any());
                        self.parts.push(data.clone());
                    } else {
                        self.value(&item, depth + 1)?;
                    }
                }
                return Ok(());
            }
        }
        self.value(v, depth)
    }
}

/// `packb_parts(obj, tuples, special)`: the msgpack of `obj` as a list of
/// buffers that make it when joined (large arrays' own memory as parts).
#[pyfunction]
pub fn packb_parts<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    tuples: bool,
    special: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let mut enc = Encoder {
        py,
        tuples,
        special,
        out: Vec::with_capacity(64),
        parts: Vec::new(),
        splice_marker: None,
    };
    enc.value(obj, 0)?;
    let last = PyBytes::new(py, &enc.out).into_any();
    if enc.parts.is_empty() {
        return PyList::new(py, [last]);
    }
    enc.parts.push(last);
    PyList::new(py, enc.parts)
}

// ------------------------------------------------------------------ decode

struct Decoder<'py, 'a> {
    py: Python<'py>,
    data: &'a [u8],
    pos: usize,
    decode_map: Bound<'py, PyAny>,
    ext: Bound<'py, PyAny>,
    tuples: bool,
    /// With a frame to make arrays over: `payload(addr, len)` for an
    /// array's data of at least `split_min` bytes.
    payload: Option<Bound<'py, PyAny>>,
    split_min: usize,
}

fn incomplete() -> PyErr {
    PyValueError::new_err("Unpack failed: incomplete input")
}

impl<'py, 'a> Decoder<'py, 'a> {
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(incomplete)?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> PyResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len(&mut self, width: usize) -> PyResult<usize> {
        Ok(match width {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn str(&mut self, n: usize) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(PyString::new(py, s).into_any()),
            Err(_) => {
                // Python's own error for it (UnicodeDecodeError, a ValueError).
                let raw = PyBytes::new(py, b);
                raw.call_method1("decode", ("utf-8",))
            }
        }
    }

    fn bin(&mut self, n: usize, array_data: bool) -> PyResult<Bound<'py, PyAny>> {
        let b = self.take(n)?;
        if array_data && n >= self.split_min {
            if let Some(payload) = &self.payload {
                let addr = b.as_ptr() as usize;
                return payload.call1((addr, n));
            }
        }
        Ok(PyBytes::new(self.py, b).into_any())
    }

    fn ext(&mut self, n: usize) -> PyResult<Bound<'py, PyAny>> {
        let code = self.u8()? as i8;
        let b = PyBytes::new(self.py, self.take(n)?);
        self.ext.call1((code, b))
    }

    fn array(&mut self, n: usize, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if n > self.data.len() - self.pos {
            return Err(incomplete());
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1, false)?);
        }
        Ok(PyList::new(self.py, items)?.into_any())
    }

    fn map(&mut self, n: usize, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        if n > (self.data.len() - self.pos) / 2 {
            return Err(incomplete());
        }
        let mut pairs: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> = Vec::with_capacity(n);
        let mut nd_true = false;
        let mut marker = false;
        let mut made_payload = false;
        for _ in 0..n {
            let k = self.value(depth + 1, false)?;
            let (is_data, is_nd) = match k.cast_exact::<PyBytes>() {
                Ok(b) => {
                    let b = b.as_bytes();
                    if b == b"nd" || b == b"complex" {
                        marker = true;
                    }
                    (b == b"data", b == b"nd")
                }
                Err(_) => {
                    if let Ok(s) = k.cast_exact::<PyString>() {
                        let s = s.to_cow()?;
                        if s.as_ref() == "__slice__"
                            || s == "__rpc_proxy__"
                            || s == "__rpc_promise__"
                            || s == "__tuple__"
                        {
                            marker = true;
                        }
                    }
                    (false, false)
                }
            };
            let v = self.value(depth + 1, is_data && nd_true)?;
            if is_nd {
                nd_true = v.is(PyBool::new(py, true).as_any());
            }
            if is_data && !v.is_instance_of::<PyBytes>() && self.payload.is_some() && nd_true {
                made_payload = true;
            }
            pairs.push((k, v));
        }
        if made_payload {
            let is_array = |key: &[u8]| {
                pairs
                    .iter()
                    .any(|(k, _)| k.cast_exact::<PyBytes>().is_ok_and(|b| b.as_bytes() == key))
            };
            if !(nd_true && is_array(b"type") && is_array(b"shape")) {
                // Not an array after all: its data is bytes, as usual.
                for (k, v) in pairs.iter_mut() {
                    if k.cast_exact::<PyBytes>()
                        .is_ok_and(|b| b.as_bytes() == b"data")
                        && !v.is_instance_of::<PyBytes>()
                    {
                        *v = v.call_method0("tobytes")?;
                    }
                }
            }
        }
        if marker {
            let list = PyList::new(
                py,
                pairs
                    .iter()
                    .map(|(k, v)| PyTuple::new(py, [k, v]))
                    .collect::<PyResult<Vec<_>>>()?,
            )?;
            return self.decode_map.call1((list,));
        }
        let _ = self.tuples;
        let d = PyDict::new(py);
        for (k, v) in &pairs {
            if let Err(e) = d.set_item(k, v) {
                if !e.is_instance_of::<PyTypeError>(py) {
                    return Err(e);
                }
                // An unhashable key (an array): the package makes it a tuple.
                let list = PyList::new(
                    py,
                    pairs
                        .iter()
                        .map(|(k, v)| PyTuple::new(py, [k, v]))
                        .collect::<PyResult<Vec<_>>>()?,
                )?;
                return self.decode_map.call1((list,));
            }
        }
        Ok(d.into_any())
    }

    fn value(&mut self, depth: usize, array_data: bool) -> PyResult<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return Err(PyValueError::new_err("Unpack failed: nested too deeply"));
        }
        let py = self.py;
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => (m as i64).into_pyobject(py)?.into_any(),
            0x80..=0x8f => return self.map((m & 0x0f) as usize, depth),
            0x90..=0x9f => return self.array((m & 0x0f) as usize, depth),
            0xa0..=0xbf => return self.str((m & 0x1f) as usize),
            0xc0 => py.None().into_bound(py),
            0xc2 => PyBool::new(py, false).to_owned().into_any(),
            0xc3 => PyBool::new(py, true).to_owned().into_any(),
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                return self.bin(n, array_data);
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (m - 0xc7))?;
                return self.ext(n);
            }
            0xca => (f32::from_be_bytes(self.be()?) as f64)
                .into_pyobject(py)?
                .into_any(),
            0xcb => f64::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            0xcc => (self.u8()? as u64).into_pyobject(py)?.into_any(),
            0xcd => (u16::from_be_bytes(self.be()?) as u64)
                .into_pyobject(py)?
                .into_any(),
            0xce => (u32::from_be_bytes(self.be()?) as u64)
                .into_pyobject(py)?
                .into_any(),
            0xcf => u64::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            0xd0 => (self.u8()? as i8 as i64).into_pyobject(py)?.into_any(),
            0xd1 => (i16::from_be_bytes(self.be()?) as i64)
                .into_pyobject(py)?
                .into_any(),
            0xd2 => (i32::from_be_bytes(self.be()?) as i64)
                .into_pyobject(py)?
                .into_any(),
            0xd3 => i64::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            0xd4..=0xd8 => return self.ext(1 << (m - 0xd4)),
            0xd9..=0xdb => {
                let n = self.len(1 << (m - 0xd9))?;
                return self.str(n);
            }
            0xdc | 0xdd => {
                let n = self.len(if m == 0xdc { 2 } else { 4 })?;
                return self.array(n, depth);
            }
            0xde | 0xdf => {
                let n = self.len(if m == 0xde { 2 } else { 4 })?;
                return self.map(n, depth);
            }
            0xe0..=0xff => (m as i8 as i64).into_pyobject(py)?.into_any(),
            0xc1 => {
                return Err(PyValueError::new_err(
                    "Unpack failed: invalid msgpack (0xc1)",
                ))
            }
        })
    }
}

/// `unpackb(data, decode_map, ext, tuples, addr=0, size=0, payload=None,
/// split_min=0)`: one msgpack value from `data` (any buffer), or from the
/// `size` bytes at `addr` (memory the caller keeps alive during the call).
/// Maps that may be markers go to `decode_map(pairs)`; ext types to
/// `ext(code, data)`; with `payload`, an array's data of at least
/// `split_min` bytes becomes `payload(addr, len)` instead of bytes.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (data, decode_map, ext, tuples, addr=0, size=0, payload=None, split_min=0))]
pub fn unpackb<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    decode_map: Bound<'py, PyAny>,
    ext: Bound<'py, PyAny>,
    tuples: bool,
    addr: usize,
    size: usize,
    payload: Option<Bound<'py, PyAny>>,
    split_min: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let held;
    let bytes: &[u8] = if addr != 0 {
        // SAFETY: the caller keeps `size` bytes at `addr` alive during the call.
        unsafe {
            Bytes {
                ptr: addr as *const u8,
                len: size,
            }
            .as_slice()
        }
    } else {
        held = Borrowed::new(data)?;
        // SAFETY: `held` keeps the buffer for as long as this borrow.
        unsafe { held.bytes().as_slice() }
    };
    let mut dec = Decoder {
        py,
        data: bytes,
        pos: 0,
        decode_map,
        ext,
        tuples,
        payload,
        split_min: split_min.max(1),
    };
    let value = dec.value(0, false)?;
    if dec.pos != bytes.len() {
        return Err(PyValueError::new_err(
            "Unpack failed: extra data after the value",
        ));
    }
    Ok(value)
}
