//! n-d arrays in the msgpack-numpy form: a dtype, a shape and C-order bytes.
//!
//! [`NdArray`] keeps its data as [`Bytes`] in the byte order the sender used,
//! so decoding never copies it. Conversions to and from Rust element types and
//! `ndarray` live in `simplerpc-registry`; the protocol needs none of them.

use bytes::Bytes;

/// The numeric dtypes the protocol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `bool` (`b1`), one byte, 0 or 1.
    Bool,
    /// `int8` (`i1`)
    Int8,
    /// `int16` (`i2`)
    Int16,
    /// `int32` (`i4`)
    Int32,
    /// `int64` (`i8`)
    Int64,
    /// `uint8` (`u1`)
    UInt8,
    /// `uint16` (`u2`)
    UInt16,
    /// `uint32` (`u4`)
    UInt32,
    /// `uint64` (`u8`)
    UInt64,
    /// `float16` (`f2`): carried as bytes; no Rust element type is offered.
    Float16,
    /// `float32` (`f4`)
    Float32,
    /// `float64` (`f8`)
    Float64,
    /// `complex64` (`c8`): two float32.
    Complex64,
    /// `complex128` (`c16`): two float64.
    Complex128,
}

/// The byte order marker of a numpy type string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// `<`
    Little,
    /// `>`
    Big,
    /// `|`: not applicable (one-byte types).
    NotApplicable,
}

impl ByteOrder {
    /// The order this machine uses.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "little") {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };

    fn marker(self) -> char {
        match self {
            ByteOrder::Little => '<',
            ByteOrder::Big => '>',
            ByteOrder::NotApplicable => '|',
        }
    }
}

/// Why an array could not be built or converted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArrayError {
    /// The type string is not one of the numeric dtypes.
    #[error("unsupported numpy dtype {0:?}: only bool, int/uint 8-64, float16/32/64 and complex64/128 are numeric arrays")]
    UnsupportedDType(String),
    /// Data length does not match shape times item size.
    #[error("array data is {got} bytes but shape {shape:?} of {dtype} needs {want}")]
    LengthMismatch {
        /// dtype type string
        dtype: String,
        /// the shape
        shape: Vec<usize>,
        /// bytes needed
        want: usize,
        /// bytes given
        got: usize,
    },
    /// The shape's element count overflows.
    #[error("array shape {0:?} is too large")]
    ShapeOverflow(Vec<usize>),
    /// Asked for elements of another type than the array holds.
    #[error("array holds {have}, not {want}")]
    WrongType {
        /// the array's dtype
        have: String,
        /// the requested element dtype
        want: String,
    },
    /// A zero-copy view needs native byte order and aligned data.
    #[error("array cannot be viewed without a copy ({0}); use to_ndarray")]
    NotViewable(&'static str),
    /// A bool array holds a byte other than 0 or 1.
    #[error("bool array holds a byte other than 0 or 1")]
    InvalidBool,
    /// Memory for a copy of the array could not be had (the allocation
    /// failed; the process goes on).
    #[error("out of memory: a copy of {0} bytes could not be allocated")]
    OutOfMemory(usize),
}

impl DType {
    /// Every dtype, for tests and tables.
    pub const ALL: [DType; 14] = [
        DType::Bool,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::UInt8,
        DType::UInt16,
        DType::UInt32,
        DType::UInt64,
        DType::Float16,
        DType::Float32,
        DType::Float64,
        DType::Complex64,
        DType::Complex128,
    ];

    /// Size of one element in bytes.
    pub fn itemsize(self) -> usize {
        match self {
            DType::Bool | DType::Int8 | DType::UInt8 => 1,
            DType::Int16 | DType::UInt16 | DType::Float16 => 2,
            DType::Int32 | DType::UInt32 | DType::Float32 => 4,
            DType::Int64 | DType::UInt64 | DType::Float64 | DType::Complex64 => 8,
            DType::Complex128 => 16,
        }
    }

    /// Size of the unit a byte swap reverses (a complex swaps each half).
    pub fn swap_unit(self) -> usize {
        match self {
            DType::Complex64 => 4,
            DType::Complex128 => 8,
            d => d.itemsize(),
        }
    }

    fn kind_char(self) -> char {
        match self {
            DType::Bool => 'b',
            DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 => 'i',
            DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 => 'u',
            DType::Float16 | DType::Float32 | DType::Float64 => 'f',
            DType::Complex64 | DType::Complex128 => 'c',
        }
    }

    /// The numpy name (`"float32"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::UInt8 => "uint8",
            DType::UInt16 => "uint16",
            DType::UInt32 => "uint32",
            DType::UInt64 => "uint64",
            DType::Float16 => "float16",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Complex64 => "complex64",
            DType::Complex128 => "complex128",
        }
    }

    /// The numpy type string with a byte order (`"<f4"`, `"|u1"`).
    pub fn typestr(self, order: ByteOrder) -> String {
        format!("{}{}{}", order.marker(), self.kind_char(), self.itemsize())
    }

    /// The order numpy writes for this dtype when it is in native order.
    pub fn native_order(self) -> ByteOrder {
        if self.itemsize() == 1 {
            ByteOrder::NotApplicable
        } else {
            ByteOrder::NATIVE
        }
    }

    /// Parse a numpy type string (`"<f4"`, `">i8"`, `"|b1"`, `"=u2"`).
    pub fn parse(typestr: &str) -> Result<(DType, ByteOrder), ArrayError> {
        let unsupported = || ArrayError::UnsupportedDType(typestr.to_owned());
        let mut chars = typestr.chars();
        let order = match chars.next().ok_or_else(unsupported)? {
            '<' => ByteOrder::Little,
            '>' => ByteOrder::Big,
            '|' => ByteOrder::NotApplicable,
            '=' => ByteOrder::NATIVE,
            _ => return Err(unsupported()),
        };
        let rest = chars.as_str();
        let dtype = match rest {
            "b1" => DType::Bool,
            "i1" => DType::Int8,
            "i2" => DType::Int16,
            "i4" => DType::Int32,
            "i8" => DType::Int64,
            "u1" => DType::UInt8,
            "u2" => DType::UInt16,
            "u4" => DType::UInt32,
            "u8" => DType::UInt64,
            "f2" => DType::Float16,
            "f4" => DType::Float32,
            "f8" => DType::Float64,
            "c8" => DType::Complex64,
            "c16" => DType::Complex128,
            _ => return Err(unsupported()),
        };
        Ok((dtype, order))
    }

    /// Whether data in `order` is in this machine's byte order (always so
    /// for one-byte dtypes).
    pub fn is_native(self, order: ByteOrder) -> bool {
        self.itemsize() == 1 || order == ByteOrder::NATIVE || order == ByteOrder::NotApplicable
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A numeric n-d array: dtype, byte order, shape and C-order data.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    dtype: DType,
    order: ByteOrder,
    shape: Vec<usize>,
    data: Bytes,
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

impl NdArray {
    /// Build an array from its parts; the data length must match the shape.
    pub fn new(
        dtype: DType,
        order: ByteOrder,
        shape: Vec<usize>,
        data: Bytes,
    ) -> Result<Self, ArrayError> {
        let want = element_count(&shape)
            .and_then(|n| n.checked_mul(dtype.itemsize()))
            .ok_or_else(|| ArrayError::ShapeOverflow(shape.clone()))?;
        // Even an empty array must have a shape whose other dimensions fit
        // (ndarray refuses [0, usize::MAX]).
        let nonzero = shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(dtype.itemsize(), |n, &d| n.checked_mul(d));
        if !matches!(nonzero, Some(n) if n <= isize::MAX as usize) {
            return Err(ArrayError::ShapeOverflow(shape));
        }
        if want != data.len() {
            return Err(ArrayError::LengthMismatch {
                dtype: dtype.typestr(order),
                shape,
                want,
                got: data.len(),
            });
        }
        let order = if dtype.itemsize() == 1 {
            ByteOrder::NotApplicable
        } else {
            order
        };
        Ok(NdArray {
            dtype,
            order,
            shape,
            data,
        })
    }

    /// The element dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The byte order of [`NdArray::data`].
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// The numpy type string (`"<f4"`).
    pub fn typestr(&self) -> String {
        self.dtype.typestr(self.order)
    }

    /// The shape; empty for a 0-d array.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.itemsize()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The raw C-order bytes, in [`NdArray::order`].
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Take the raw bytes out.
    pub fn into_data(self) -> Bytes {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typestr_round_trip() {
        for d in DType::ALL {
            for o in [ByteOrder::Little, ByteOrder::Big] {
                let s = d.typestr(o);
                assert_eq!(DType::parse(&s).unwrap(), (d, o), "{s}");
            }
        }
        assert!(DType::parse("<U5").is_err());
        assert!(DType::parse("").is_err());
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            NdArray::new(
                DType::Float64,
                ByteOrder::Little,
                vec![3],
                Bytes::from_static(&[0; 8])
            ),
            Err(ArrayError::LengthMismatch { .. })
        ));
        assert!(NdArray::new(
            DType::Int8,
            ByteOrder::Little,
            vec![usize::MAX, 2],
            Bytes::new()
        )
        .is_err());
    }
}
