//! n-d arrays in the msgpack-numpy form: a dtype, a shape and C-order bytes.
//!
//! [`NdArray`] keeps its data as [`Bytes`] in the byte order the sender used,
//! so decoding never copies it. Conversions to and from [`ndarray`] copy only
//! where they must (a byte swap, or a misaligned or non-contiguous source).

use bytes::Bytes;
use ndarray::{ArrayBase, ArrayD, ArrayViewD, Data, Dimension, IxDyn};
use num_complex::Complex;

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

    fn is_native(self, order: ByteOrder) -> bool {
        self.itemsize() == 1 || order == ByteOrder::NATIVE || order == ByteOrder::NotApplicable
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust element type that maps to one [`DType`].
///
/// # Safety
/// Implementors must be plain data of exactly `DTYPE.itemsize()` bytes with no
/// padding, valid for every bit pattern except where [`Element::validate`] says.
pub unsafe trait Element: Copy + Send + Sync + 'static {
    /// The dtype of this element type.
    const DTYPE: DType;
    /// Check raw native-order bytes before they are read as `Self`.
    fn validate(_bytes: &[u8]) -> Result<(), ArrayError> {
        Ok(())
    }
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(
        // SAFETY: a primitive numeric type of the dtype's size, every bit pattern valid.
        unsafe impl Element for $t { const DTYPE: DType = DType::$d; }
    )*};
}
element!(i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64, u8 => UInt8, u16 => UInt16,
    u32 => UInt32, u64 => UInt64, f32 => Float32, f64 => Float64,
    Complex<f32> => Complex64, Complex<f64> => Complex128);

// SAFETY: bool is one byte; `validate` rejects every byte but 0 and 1.
unsafe impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn validate(bytes: &[u8]) -> Result<(), ArrayError> {
        if bytes.iter().all(|&b| b <= 1) {
            Ok(())
        } else {
            Err(ArrayError::InvalidBool)
        }
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

/// Keeps a `Vec<T>` alive as the owner of a [`Bytes`] without copying it.
struct VecOwner<T: Element>(Vec<T>);

impl<T: Element> AsRef<[u8]> for VecOwner<T> {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `T: Element` is plain data without padding, so its memory is
        // `len * size_of::<T>()` initialised bytes, borrowed for `&self`.
        unsafe {
            std::slice::from_raw_parts(
                self.0.as_ptr().cast::<u8>(),
                std::mem::size_of_val(self.0.as_slice()),
            )
        }
    }
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

    /// An array that takes ownership of a `Vec` in C order, without copying it.
    pub fn from_vec<T: Element>(shape: Vec<usize>, data: Vec<T>) -> Result<Self, ArrayError> {
        let dtype = T::DTYPE;
        NdArray::new(
            dtype,
            dtype.native_order(),
            shape,
            Bytes::from_owner(VecOwner(data)),
        )
    }

    /// An array from an owned `ndarray` array: no copy when it is in standard
    /// (C) layout, one copy otherwise.
    pub fn from_array<T: Element, D: Dimension>(a: ndarray::Array<T, D>) -> Self {
        let shape = a.shape().to_vec();
        let vec = if a.is_standard_layout() {
            let (vec, offset) = a.into_raw_vec_and_offset();
            match offset {
                Some(0) | None => vec,
                Some(off) => vec[off..off + element_count(&shape).unwrap_or(0)].to_vec(),
            }
        } else {
            a.iter().copied().collect()
        };
        NdArray::from_vec(shape, vec).expect("shape and data agree by construction")
    }

    /// An array copied from any `ndarray` array or view (one copy).
    pub fn from_view<T: Element, S: Data<Elem = T>, D: Dimension>(a: &ArrayBase<S, D>) -> Self {
        let vec = match a.as_slice() {
            Some(s) => s.to_vec(),
            None => a.iter().copied().collect(),
        };
        NdArray::from_vec(a.shape().to_vec(), vec).expect("shape and data agree by construction")
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

    fn check_type<T: Element>(&self) -> Result<(), ArrayError> {
        if T::DTYPE != self.dtype {
            return Err(ArrayError::WrongType {
                have: self.dtype.name().into(),
                want: T::DTYPE.name().into(),
            });
        }
        Ok(())
    }

    /// A zero-copy view, when the data is in native order and aligned for `T`.
    /// Data decoded from a frame lies at whatever offset msgpack put it, so for
    /// multi-byte types it is often unaligned: then use [`NdArray::to_ndarray`].
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>, ArrayError> {
        self.check_type::<T>()?;
        if !self.dtype.is_native(self.order) {
            return Err(ArrayError::NotViewable("byte order is not native"));
        }
        if self.data.as_ptr() as usize % std::mem::align_of::<T>() != 0 {
            return Err(ArrayError::NotViewable("data is not aligned"));
        }
        T::validate(&self.data)?;
        // SAFETY: the pointer is aligned for T (checked above), points to
        // `len * size_of::<T>()` initialised bytes that live as long as `&self`
        // (length checked in `new`), and `validate` accepted the bit patterns.
        let items =
            unsafe { std::slice::from_raw_parts(self.data.as_ptr().cast::<T>(), self.len()) };
        Ok(ArrayViewD::from_shape(IxDyn(&self.shape), items).expect("length checked in new"))
    }

    /// The elements as a native-order `Vec<T>` (one copy, byte-swapped if needed).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, ArrayError> {
        self.check_type::<T>()?;
        let n = self.len();
        let mut bytes_native;
        let src: &[u8] = if self.dtype.is_native(self.order) {
            &self.data
        } else {
            bytes_native = self.data.to_vec();
            let unit = self.dtype.swap_unit();
            bytes_native
                .chunks_exact_mut(unit)
                .for_each(|c| c.reverse());
            &bytes_native
        };
        T::validate(src)?;
        let mut out: Vec<T> = Vec::with_capacity(n);
        // SAFETY: `out` has capacity for n elements = src.len() bytes; src holds
        // valid native-order bit patterns for T (validated above); the regions
        // do not overlap; set_len follows the full initialising copy.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr().cast::<u8>(), src.len());
            out.set_len(n);
        }
        Ok(out)
    }

    /// Convert into an owned `ndarray::ArrayD<T>` (one copy).
    pub fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>, ArrayError> {
        let v = self.to_vec::<T>()?;
        Ok(ArrayD::from_shape_vec(IxDyn(&self.shape), v).expect("length checked in new"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, Array3};

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
    fn from_array_is_zero_copy_and_views_back() {
        let a = Array3::<f32>::from_shape_fn((4, 5, 6), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
        let owned = a.clone();
        let ptr = owned.as_ptr() as usize;
        let nd = NdArray::from_array(owned);
        assert_eq!(nd.data().as_ptr() as usize, ptr, "no copy");
        assert_eq!(nd.shape(), &[4, 5, 6]);
        assert_eq!(nd.view::<f32>().unwrap(), a.view().into_dyn());
        assert_eq!(nd.to_ndarray::<f32>().unwrap(), a.into_dyn());
    }

    #[test]
    fn big_endian_is_swapped() {
        let data = Bytes::from_static(&[0, 0, 0, 1, 0, 0, 1, 0]);
        let nd = NdArray::new(DType::Int32, ByteOrder::Big, vec![2], data).unwrap();
        assert_eq!(nd.to_vec::<i32>().unwrap(), vec![1, 256]);
        assert!(nd.view::<i32>().is_err());
    }

    #[test]
    fn errors() {
        let a = NdArray::from_array(arr2(&[[1u8, 2], [3, 4]]));
        assert!(matches!(
            a.to_vec::<i8>(),
            Err(ArrayError::WrongType { .. })
        ));
        assert!(matches!(
            NdArray::new(
                DType::Float64,
                ByteOrder::Little,
                vec![3],
                Bytes::from_static(&[0; 8])
            ),
            Err(ArrayError::LengthMismatch { .. })
        ));
        let b = NdArray::new(
            DType::Bool,
            ByteOrder::NotApplicable,
            vec![2],
            Bytes::from_static(&[1, 2]),
        )
        .unwrap();
        assert_eq!(b.to_vec::<bool>(), Err(ArrayError::InvalidBool));
        assert!(NdArray::new(
            DType::Int8,
            ByteOrder::Little,
            vec![usize::MAX, 2],
            Bytes::new()
        )
        .is_err());
    }
}
