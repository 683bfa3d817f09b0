//! Adaptive inference over the widths of one nested-width network: run the narrowest width of
//! a mode's chain; if its confidence is below the mode's threshold, run the next width, and so
//! on; the last width of the chain always answers.
//!
//! The host's `kinglet modes` scores every mode through [`WidthMode::after`], so a device that
//! switches modes with the same table makes the same per-window decisions.

use crate::ConfidenceMeasure;
use crate::math::{argmax, confidence};

/// Most widths a chain holds.
pub const MAX_WIDTHS: usize = 8;

/// One operating mode: which widths run in which order, and when to stop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WidthMode {
    chain: [u8; MAX_WIDTHS],
    len: u8,
    measure: ConfidenceMeasure,
    threshold: f32,
}

/// What to do after one width of the chain ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WidthVerdict {
    /// Report this class.
    Accept(u8),
    /// Run the width with this index (into the network's widths) next.
    Run(u8),
}

/// A mode that cannot be built or a call that does not fit the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeError {
    /// No width, or more than [`MAX_WIDTHS`].
    ChainLength,
    /// Width indices not strictly increasing (a narrower width after a wider one would cost
    /// more and know less).
    NotIncreasing,
    /// A threshold outside [0, 1] (or NaN): confidences live in [0, 1].
    Threshold,
    /// No scores for the width that ran.
    NoScores,
    /// A stage beyond the chain.
    Stage,
}

impl WidthMode {
    /// A chain of width indices (narrowest first) with a confidence rule.
    pub fn new(
        chain: &[u8],
        measure: ConfidenceMeasure,
        threshold: f32,
    ) -> Result<Self, ModeError> {
        if chain.is_empty() || chain.len() > MAX_WIDTHS {
            return Err(ModeError::ChainLength);
        }
        if chain.windows(2).any(|p| p[0] >= p[1]) {
            return Err(ModeError::NotIncreasing);
        }
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ModeError::Threshold);
        }
        let mut widths = [0u8; MAX_WIDTHS];
        widths[..chain.len()].copy_from_slice(chain);
        Ok(Self {
            chain: widths,
            len: chain.len() as u8,
            measure,
            threshold,
        })
    }

    /// A fixed-width mode: always width `width`, nothing else.
    pub fn fixed(width: u8) -> Self {
        let mut chain = [0u8; MAX_WIDTHS];
        chain[0] = width;
        Self {
            chain,
            len: 1,
            measure: ConfidenceMeasure::MaxProbability,
            threshold: 0.0,
        }
    }

    /// The width indices of the chain, narrowest first.
    pub fn chain(&self) -> &[u8] {
        &self.chain[..self.len as usize]
    }

    pub fn measure(&self) -> ConfidenceMeasure {
        self.measure
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The width every window starts with.
    pub fn first(&self) -> u8 {
        self.chain[0]
    }

    /// After the chain's width at position `stage` ran and gave `probabilities`: accept its
    /// class when it is confident enough (or is the last of the chain), else run the next.
    pub fn after(&self, stage: usize, probabilities: &[f32]) -> Result<WidthVerdict, ModeError> {
        if stage >= self.len as usize {
            return Err(ModeError::Stage);
        }
        let label = argmax(probabilities).ok_or(ModeError::NoScores)?;
        let last = stage + 1 == self.len as usize;
        if last || confidence(self.measure, probabilities) >= self.threshold {
            Ok(WidthVerdict::Accept(label as u8))
        } else {
            Ok(WidthVerdict::Run(self.chain[stage + 1]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confident_narrow_width_answers_and_an_unsure_one_defers() {
        let mode = WidthMode::new(&[0, 2, 3], ConfidenceMeasure::MaxProbability, 0.8).unwrap();
        assert_eq!(mode.first(), 0);
        assert_eq!(mode.after(0, &[0.1, 0.9]), Ok(WidthVerdict::Accept(1)));
        assert_eq!(mode.after(0, &[0.3, 0.7]), Ok(WidthVerdict::Run(2)));
        assert_eq!(mode.after(1, &[0.6, 0.4]), Ok(WidthVerdict::Run(3)));
        // The last width always answers.
        assert_eq!(mode.after(2, &[0.55, 0.45]), Ok(WidthVerdict::Accept(0)));
        assert_eq!(mode.after(3, &[0.5, 0.5]), Err(ModeError::Stage));
        let margin = WidthMode::new(&[1, 2], ConfidenceMeasure::Margin, 0.5).unwrap();
        assert_eq!(
            margin.after(0, &[0.2, 0.7, 0.1]),
            Ok(WidthVerdict::Accept(1))
        );
        assert_eq!(margin.after(0, &[0.4, 0.6, 0.0]), Ok(WidthVerdict::Run(2)));
        assert_eq!(
            WidthMode::fixed(2).after(0, &[0.4, 0.6]),
            Ok(WidthVerdict::Accept(1))
        );
    }

    #[test]
    fn bad_modes_are_refused() {
        let m = ConfidenceMeasure::MaxProbability;
        assert_eq!(WidthMode::new(&[], m, 0.5), Err(ModeError::ChainLength));
        assert_eq!(
            WidthMode::new(&[2, 1], m, 0.5),
            Err(ModeError::NotIncreasing)
        );
        assert_eq!(WidthMode::new(&[0, 1], m, 1.5), Err(ModeError::Threshold));
        assert_eq!(
            WidthMode::new(&[0, 1], m, f32::NAN),
            Err(ModeError::Threshold)
        );
        assert_eq!(WidthMode::new(&[0, 1], m, -0.1), Err(ModeError::Threshold));
        assert_eq!(
            WidthMode::new(&[0, 1], m, 0.5).unwrap().after(0, &[]),
            Err(ModeError::NoScores)
        );
    }
}
