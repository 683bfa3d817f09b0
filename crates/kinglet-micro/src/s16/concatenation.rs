//! 16×8 Concatenation: TFLite requires int16 inputs to share the output's scale (zero points
//! are all 0), so the op is a copy; [`crate::concatenation::concatenation`] serves it.

pub use crate::concatenation::concatenation as concatenation_s16;
