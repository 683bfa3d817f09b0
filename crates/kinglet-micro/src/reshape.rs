//! Reshape: data order is unchanged, so it is a copy (or nothing, when the planner aliases the
//! output onto the input).

use crate::error::{KernelError, check_len};

/// Copies `input` into `output`; the element counts must match.
pub fn reshape<T: Copy>(input: &[T], output: &mut [T]) -> Result<(), KernelError> {
    check_len("reshape output", output.len(), input.len())?;
    output.copy_from_slice(input);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_checks() {
        let mut out = [0i8; 4];
        reshape(&[1i8, -2, 3, -4], &mut out).unwrap();
        assert_eq!(out, [1, -2, 3, -4]);
        assert!(reshape(&[1i8, 2, 3], &mut out).is_err());
    }
}
