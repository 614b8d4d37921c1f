//! Reading and building flex `f32` tensors for the fused operations.

use std::borrow::Cow;

/// Passes over fewer elements than this run on the calling thread: handing them to rayon's
/// pool costs more than they take (one-token decoding normalizes a few 576-wide rows).
pub const PARALLEL_MIN: usize = 1 << 16;

use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Bytes, DType, Shape};

/// A contiguous `f32` tensor owning `values` (no copy: `FlexTensor::empty` would allocate
/// bytes and then copy them into an aligned buffer).
pub fn f32_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// The values of an `f32` tensor in row-major order: borrowed when contiguous, copied
/// otherwise (a broadcast gradient, a transposed view).
pub fn f32_values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => {
            let copy = t.to_contiguous();
            Cow::Owned(copy.as_slice::<f32>().expect("contiguous f32").to_vec())
        }
    }
}

/// An output pointer handed to rayon tasks that each write their own, disjoint elements of
/// the buffer (panels or strided blocks that `par_chunks_mut` cannot express).
#[derive(Clone, Copy)]
pub struct SendPtr(pub *mut f32);

// SAFETY: the tasks sharing one write disjoint elements, and the buffer outlives them.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer; called inside a task so the closure captures the wrapper, not its field.
    pub fn get(self) -> *mut f32 {
        self.0
    }
}
