//! Element buffers the library reads: f32, or 16-bit floats as bit patterns.

use std::os::raw::c_void;

use gptq_sys as sys;

use crate::config::Half;

/// A dense row-major buffer passed to the library, with its element type.
///
/// Functions that read activations or weights take `impl Into<Elements>`, so
/// an `f32` slice (or `&Vec<f32>`, or `&[f32; N]`) is passed as is, and 16-bit
/// data says which format its `u16` bit patterns are in:
///
/// ```no_run
/// # fn f(ctx: &mut gptq::Context, x: Vec<f32>, xb: Vec<u16>) -> gptq::Result<()> {
/// ctx.add_batch(&x, 8, 1)?;                       // f32
/// ctx.add_batch(gptq::Half::Bf16.slice(&xb), 8, 1)?; // bfloat16 bit patterns
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Elements<'a> {
    /// IEEE binary32.
    F32(&'a [f32]),
    /// IEEE binary16 or bfloat16, as raw bit patterns.
    Half(Half, &'a [u16]),
}

impl<'a> Elements<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Elements::F32(s) => s.len(),
            Elements::Half(_, s) => s.len(),
        }
    }

    /// `true` if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The C dtype.
    pub fn dtype(&self) -> sys::gptq_dtype {
        match self {
            Elements::F32(_) => sys::GPTQ_DTYPE_F32,
            Elements::Half(h, _) => h.to_raw(),
        }
    }

    pub(crate) fn as_ptr(&self) -> *const c_void {
        match self {
            Elements::F32(s) => s.as_ptr() as *const c_void,
            Elements::Half(_, s) => s.as_ptr() as *const c_void,
        }
    }
}

impl<'a> From<&'a [f32]> for Elements<'a> {
    fn from(s: &'a [f32]) -> Elements<'a> {
        Elements::F32(s)
    }
}

impl<'a> From<&'a mut [f32]> for Elements<'a> {
    fn from(s: &'a mut [f32]) -> Elements<'a> {
        Elements::F32(s)
    }
}

impl<'a> From<&'a Vec<f32>> for Elements<'a> {
    fn from(s: &'a Vec<f32>) -> Elements<'a> {
        Elements::F32(s.as_slice())
    }
}

impl<'a, const N: usize> From<&'a [f32; N]> for Elements<'a> {
    fn from(s: &'a [f32; N]) -> Elements<'a> {
        Elements::F32(&s[..])
    }
}

impl<'a> From<(Half, &'a [u16])> for Elements<'a> {
    fn from((kind, s): (Half, &'a [u16])) -> Elements<'a> {
        Elements::Half(kind, s)
    }
}

impl<'a> From<(Half, &'a Vec<u16>)> for Elements<'a> {
    fn from((kind, s): (Half, &'a Vec<u16>)) -> Elements<'a> {
        Elements::Half(kind, s.as_slice())
    }
}
