//! Typed views into a compiled model's statically planned arena. The planner gives every
//! buffer a byte offset; these helpers turn (offset, element count) pairs into slices,
//! checking range, alignment and (for a read/write pair) disjointness instead of trusting
//! the plan blindly, so a wrong plan is an error and never undefined behaviour.

use crate::ShapeError;

/// Element types a buffer can hold: plain integers where every bit pattern is valid.
pub trait Element: Copy + sealed::Sealed {}
impl Element for i8 {}
impl Element for u8 {}
impl Element for i16 {}
impl Element for i32 {}
impl Element for f32 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for u8 {}
    impl Sealed for i16 {}
    impl Sealed for i32 {}
    impl Sealed for f32 {}
}

/// A buffer placement: byte offset into the arena and length in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub offset: usize,
    pub len: usize,
}

impl Place {
    pub const fn new(offset: usize, len: usize) -> Self {
        Place { offset, len }
    }

    fn byte_range<T>(&self, arena_len: usize) -> Result<(usize, usize), ShapeError> {
        let size = core::mem::size_of::<T>();
        let end = self
            .len
            .checked_mul(size)
            .and_then(|b| b.checked_add(self.offset))
            .ok_or(ShapeError)?;
        if end > arena_len {
            return Err(ShapeError);
        }
        Ok((self.offset, end))
    }
}

fn check_align<T>(ptr: *const u8) -> Result<(), ShapeError> {
    if (ptr as usize).is_multiple_of(core::mem::align_of::<T>()) {
        Ok(())
    } else {
        Err(ShapeError)
    }
}

/// A writable view of one buffer.
pub fn view_mut<T: Element>(arena: &mut [u8], place: Place) -> Result<&mut [T], ShapeError> {
    let (start, _) = place.byte_range::<T>(arena.len())?;
    // SAFETY: in bounds (checked) and `start <= arena.len()`.
    let ptr = unsafe { arena.as_mut_ptr().add(start) };
    check_align::<T>(ptr)?;
    // SAFETY: range and alignment checked; every bit pattern is a valid `T`; the returned
    // slice borrows `arena` mutably for its lifetime.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr.cast::<T>(), place.len) })
}

/// A read-only view of one buffer.
pub fn view<T: Element>(arena: &[u8], place: Place) -> Result<&[T], ShapeError> {
    let (start, _) = place.byte_range::<T>(arena.len())?;
    // SAFETY: in bounds (checked).
    let ptr = unsafe { arena.as_ptr().add(start) };
    check_align::<T>(ptr)?;
    // SAFETY: range and alignment checked; every bit pattern is a valid `T`.
    Ok(unsafe { core::slice::from_raw_parts(ptr.cast::<T>(), place.len) })
}

/// A read-only view of `src` and a writable view of `dst`, which must not overlap.
pub fn split<A: Element, B: Element>(
    arena: &mut [u8],
    src: Place,
    dst: Place,
) -> Result<(&[A], &mut [B]), ShapeError> {
    let (s0, s1) = src.byte_range::<A>(arena.len())?;
    let (d0, d1) = dst.byte_range::<B>(arena.len())?;
    if s0 < d1 && d0 < s1 {
        return Err(ShapeError);
    }
    let base = arena.as_mut_ptr();
    // SAFETY: both ranges are in bounds and disjoint (checked), so the shared and the
    // mutable slice never alias; alignment is checked before each is made.
    unsafe {
        let sp = base.add(s0);
        let dp = base.add(d0);
        check_align::<A>(sp)?;
        check_align::<B>(dp)?;
        Ok((
            core::slice::from_raw_parts(sp.cast::<A>(), src.len),
            core::slice::from_raw_parts_mut(dp.cast::<B>(), dst.len),
        ))
    }
}

/// Writable views of two buffers, which must not overlap (an output and a kernel's scratch).
pub fn split_mut<A: Element, B: Element>(
    arena: &mut [u8],
    first: Place,
    second: Place,
) -> Result<(&mut [A], &mut [B]), ShapeError> {
    let (a0, a1) = first.byte_range::<A>(arena.len())?;
    let (b0, b1) = second.byte_range::<B>(arena.len())?;
    if a0 < b1 && b0 < a1 {
        return Err(ShapeError);
    }
    let base = arena.as_mut_ptr();
    // SAFETY: both ranges are in bounds and disjoint (checked), so the two mutable slices
    // never alias; alignment is checked before each is made.
    unsafe {
        let ap = base.add(a0);
        let bp = base.add(b0);
        check_align::<A>(ap)?;
        check_align::<B>(bp)?;
        Ok((
            core::slice::from_raw_parts_mut(ap.cast::<A>(), first.len),
            core::slice::from_raw_parts_mut(bp.cast::<B>(), second.len),
        ))
    }
}

/// A source view, an output view and a scratch view.
pub type Split3<'a, A, B, C> = (&'a [A], &'a mut [B], &'a mut [C]);

/// A read-only view of `src` and writable views of `dst` and `scratch`, pairwise disjoint.
pub fn split3<A: Element, B: Element, C: Element>(
    arena: &mut [u8],
    src: Place,
    dst: Place,
    scratch: Place,
) -> Result<Split3<'_, A, B, C>, ShapeError> {
    let (s0, s1) = src.byte_range::<A>(arena.len())?;
    let (d0, d1) = dst.byte_range::<B>(arena.len())?;
    let (c0, c1) = scratch.byte_range::<C>(arena.len())?;
    if (s0 < d1 && d0 < s1) || (s0 < c1 && c0 < s1) || (d0 < c1 && c0 < d1) {
        return Err(ShapeError);
    }
    let base = arena.as_mut_ptr();
    // SAFETY: the three ranges are in bounds and pairwise disjoint (checked), so no slice
    // aliases another; alignment is checked before each is made.
    unsafe {
        let sp = base.add(s0);
        let dp = base.add(d0);
        let cp = base.add(c0);
        check_align::<A>(sp)?;
        check_align::<B>(dp)?;
        check_align::<C>(cp)?;
        Ok((
            core::slice::from_raw_parts(sp.cast::<A>(), src.len),
            core::slice::from_raw_parts_mut(dp.cast::<B>(), dst.len),
            core::slice::from_raw_parts_mut(cp.cast::<C>(), scratch.len),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(align(4))]
    struct Arena([u8; 16]);

    #[test]
    fn split_rejects_overlap_range_and_misalignment() {
        let mut a = Arena([0; 16]);
        assert!(split::<i8, i16>(&mut a.0, Place::new(0, 4), Place::new(4, 6)).is_ok());
        assert_eq!(
            split::<i8, i16>(&mut a.0, Place::new(0, 5), Place::new(4, 2)).err(),
            Some(ShapeError)
        );
        assert_eq!(
            split::<i8, i16>(&mut a.0, Place::new(0, 4), Place::new(8, 5)).err(),
            Some(ShapeError)
        );
        assert_eq!(
            split::<i8, i16>(&mut a.0, Place::new(0, 4), Place::new(5, 2)).err(),
            Some(ShapeError)
        );
        assert_eq!(
            view_mut::<i32>(&mut a.0, Place::new(4, 3)).map(|s| s.len()),
            Ok(3)
        );
        assert!(
            split3::<f32, f32, i8>(
                &mut a.0,
                Place::new(0, 1),
                Place::new(4, 1),
                Place::new(8, 8)
            )
            .is_ok()
        );
        assert!(
            split3::<f32, f32, i8>(
                &mut a.0,
                Place::new(0, 1),
                Place::new(4, 1),
                Place::new(7, 8)
            )
            .is_err()
        );
        assert!(split_mut::<f32, i8>(&mut a.0, Place::new(0, 2), Place::new(8, 8)).is_ok());
        assert!(split_mut::<f32, i8>(&mut a.0, Place::new(0, 3), Place::new(8, 8)).is_err());
    }
}
