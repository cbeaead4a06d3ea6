//! Rust element types and `ndarray` conversions for protocol arrays.
//!
//! The protocol's [`NdArray`] is a dtype, a shape and bytes; this module says
//! which Rust types those bytes can be read as ([`Element`]) and converts
//! between [`NdArray`] and `ndarray` arrays ([`NdArrayExt`]), copying only
//! where it must (a byte swap, or a misaligned or non-contiguous source).
//!
//! Bring the trait into scope and the conversions read as methods:
//!
//! ```
//! use simplerpc_core::{NdArray, NdArrayExt};
//!
//! let a = NdArray::from_vec(vec![2, 2], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
//! assert_eq!(a.to_vec::<f64>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
//! ```

use crate::array::{ArrayError, DType, NdArray};
use bytes::Bytes;
use ndarray::{ArrayBase, ArrayD, ArrayViewD, Data, Dimension, IxDyn};
use num_complex::Complex;

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

fn check_type<T: Element>(a: &NdArray) -> Result<(), ArrayError> {
    if T::DTYPE != a.dtype() {
        return Err(ArrayError::WrongType {
            have: a.dtype().name().into(),
            want: T::DTYPE.name().into(),
        });
    }
    Ok(())
}

/// Conversions between [`NdArray`] and Rust vectors and `ndarray` arrays.
pub trait NdArrayExt: Sized {
    /// An array that takes ownership of a `Vec` in C order, without copying it.
    fn from_vec<T: Element>(shape: Vec<usize>, data: Vec<T>) -> Result<Self, ArrayError>;

    /// An array from an owned `ndarray` array: no copy when it is in standard
    /// (C) layout, one copy otherwise.
    fn from_array<T: Element, D: Dimension>(a: ndarray::Array<T, D>) -> Self;

    /// An array copied from any `ndarray` array or view (one copy).
    fn from_view<T: Element, S: Data<Elem = T>, D: Dimension>(a: &ArrayBase<S, D>) -> Self;

    /// A zero-copy view, when the data is in native order and aligned for `T`.
    /// Data decoded from a frame lies at whatever offset msgpack put it, so for
    /// multi-byte types it is often unaligned: then use [`NdArrayExt::to_ndarray`].
    fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>, ArrayError>;

    /// The elements as a native-order `Vec<T>` (one copy, byte-swapped if needed).
    fn to_vec<T: Element>(&self) -> Result<Vec<T>, ArrayError>;

    /// Convert into an owned `ndarray::ArrayD<T>` (one copy).
    fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>, ArrayError>;
}

impl NdArrayExt for NdArray {
    fn from_vec<T: Element>(shape: Vec<usize>, data: Vec<T>) -> Result<Self, ArrayError> {
        let dtype = T::DTYPE;
        NdArray::new(
            dtype,
            dtype.native_order(),
            shape,
            Bytes::from_owner(VecOwner(data)),
        )
    }

    fn from_array<T: Element, D: Dimension>(a: ndarray::Array<T, D>) -> Self {
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

    fn from_view<T: Element, S: Data<Elem = T>, D: Dimension>(a: &ArrayBase<S, D>) -> Self {
        let vec = match a.as_slice() {
            Some(s) => s.to_vec(),
            None => a.iter().copied().collect(),
        };
        NdArray::from_vec(a.shape().to_vec(), vec).expect("shape and data agree by construction")
    }

    fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>, ArrayError> {
        check_type::<T>(self)?;
        if !self.dtype().is_native(self.order()) {
            return Err(ArrayError::NotViewable("byte order is not native"));
        }
        let data = self.data();
        if data.as_ptr() as usize % std::mem::align_of::<T>() != 0 {
            return Err(ArrayError::NotViewable("data is not aligned"));
        }
        T::validate(data)?;
        // SAFETY: the pointer is aligned for T (checked above), points to
        // `len * size_of::<T>()` initialised bytes that live as long as `&self`
        // (length checked in `NdArray::new`), and `validate` accepted the bit patterns.
        let items = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<T>(), self.len()) };
        Ok(ArrayViewD::from_shape(IxDyn(self.shape()), items).expect("length checked in new"))
    }

    fn to_vec<T: Element>(&self) -> Result<Vec<T>, ArrayError> {
        check_type::<T>(self)?;
        let n = self.len();
        let mut bytes_native;
        let src: &[u8] = if self.dtype().is_native(self.order()) {
            self.data()
        } else {
            bytes_native = Vec::new();
            bytes_native
                .try_reserve_exact(self.data().len())
                .map_err(|_| ArrayError::OutOfMemory(self.data().len()))?;
            bytes_native.extend_from_slice(self.data());
            let unit = self.dtype().swap_unit();
            bytes_native
                .chunks_exact_mut(unit)
                .for_each(|c| c.reverse());
            &bytes_native
        };
        T::validate(src)?;
        let mut out: Vec<T> = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| ArrayError::OutOfMemory(src.len()))?;
        // SAFETY: `out` has capacity for n elements = src.len() bytes; src holds
        // valid native-order bit patterns for T (validated above); the regions
        // do not overlap; set_len follows the full initialising copy.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr().cast::<u8>(), src.len());
            out.set_len(n);
        }
        Ok(out)
    }

    fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>, ArrayError> {
        let v = self.to_vec::<T>()?;
        Ok(ArrayD::from_shape_vec(IxDyn(self.shape()), v).expect("length checked in new"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::ByteOrder;
    use ndarray::{arr2, Array3};

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
        let b = NdArray::new(
            DType::Bool,
            ByteOrder::NotApplicable,
            vec![2],
            Bytes::from_static(&[1, 2]),
        )
        .unwrap();
        assert_eq!(b.to_vec::<bool>(), Err(ArrayError::InvalidBool));
    }
}
