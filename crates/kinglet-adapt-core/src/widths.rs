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
    /// A mode index beyond the mode table (`set_mode`), or an empty table.
    NoSuchMode,
}

/// What one window cost and gave under a mode: the class and which widths ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidthStep {
    pub label: u8,
    /// Bit `k` set when width `k` ran.
    pub ran: u8,
}

/// Why a window could not be classified: the width's model failed, or the mode's rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepError<E> {
    Model(E),
    Mode(ModeError),
}

/// The device's operating mode: a table of [`WidthMode`]s and the one in force. Changing it
/// between windows is one call, [`ModeSwitch::set_mode`]; nothing else (no weights, no arena)
/// changes with it, since every mode runs widths of the same network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeSwitch<'a> {
    modes: &'a [WidthMode],
    current: usize,
}

impl<'a> ModeSwitch<'a> {
    /// The table `modes`, starting in mode `initial`.
    pub fn new(modes: &'a [WidthMode], initial: usize) -> Result<Self, ModeError> {
        if initial >= modes.len() {
            return Err(ModeError::NoSuchMode);
        }
        Ok(Self {
            modes,
            current: initial,
        })
    }

    /// Switches to mode `k` from the next window on.
    pub fn set_mode(&mut self, k: usize) -> Result<(), ModeError> {
        if k >= self.modes.len() {
            return Err(ModeError::NoSuchMode);
        }
        self.current = k;
        Ok(())
    }

    /// The mode in force.
    pub fn mode(&self) -> usize {
        self.current
    }

    /// Classifies one window under the mode in force; see [`WidthMode::classify`].
    pub fn classify<E>(
        &self,
        scores: &mut [f32],
        run: impl FnMut(u8, &mut [f32]) -> Result<usize, E>,
    ) -> Result<WidthStep, StepError<E>> {
        match self.modes.get(self.current) {
            Some(mode) => mode.classify(scores, run),
            None => Err(StepError::Mode(ModeError::NoSuchMode)),
        }
    }
}

/// A battery-aware policy: `levels` are (least remaining charge in %, mode) pairs, most charge
/// first; the first level the charge reaches names the mode, and below them all the last
/// level's mode holds (the cheapest, as a device runs low). `None` for an empty list.
pub fn battery_mode(levels: &[(u8, u8)], charge_percent: u8) -> Option<u8> {
    levels
        .iter()
        .find(|(least, _)| charge_percent >= *least)
        .or(levels.last())
        .map(|&(_, mode)| mode)
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

impl WidthMode {
    /// One window under this mode: runs the chain's widths in turn through `run` (width index,
    /// a buffer for its class probabilities; it returns how many it wrote) until one answers.
    /// Host simulator and firmware both call this, so they run the same widths.
    pub fn classify<E>(
        &self,
        scores: &mut [f32],
        mut run: impl FnMut(u8, &mut [f32]) -> Result<usize, E>,
    ) -> Result<WidthStep, StepError<E>> {
        let mut width = self.first();
        let mut ran = 0u8;
        for stage in 0..self.len as usize {
            ran |= 1u8.checked_shl(u32::from(width)).unwrap_or(0);
            let n = run(width, scores).map_err(StepError::Model)?;
            let probabilities = scores
                .get(..n)
                .ok_or(StepError::Mode(ModeError::NoScores))?;
            match self.after(stage, probabilities).map_err(StepError::Mode)? {
                WidthVerdict::Accept(label) => return Ok(WidthStep { label, ran }),
                WidthVerdict::Run(next) => width = next,
            }
        }
        Err(StepError::Mode(ModeError::Stage))
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

    #[test]
    fn classify_runs_the_chain_until_a_width_answers() {
        let mode = WidthMode::new(&[0, 2, 3], ConfidenceMeasure::MaxProbability, 0.8).unwrap();
        // Width 0 unsure, width 2 sure: widths 0 and 2 ran, width 2's class.
        let table = [[0.5f32, 0.5], [0.0, 0.0], [0.1, 0.9], [1.0, 0.0]];
        let mut scores = [0f32; 4];
        let step = mode
            .classify(&mut scores, |w, out: &mut [f32]| {
                out[..2].copy_from_slice(&table[usize::from(w)]);
                Ok::<usize, ()>(2)
            })
            .unwrap();
        assert_eq!(
            step,
            WidthStep {
                label: 1,
                ran: 0b101
            }
        );
        // A failing model is the model's error, not the mode's.
        let failed = mode.classify(&mut scores, |_, _| Err::<usize, &str>("buffer"));
        assert_eq!(failed, Err(StepError::Model("buffer")));
        // A model that writes more scores than the buffer holds is refused.
        let long = mode.classify(&mut scores, |_, _| Ok::<usize, ()>(9));
        assert_eq!(long, Err(StepError::Mode(ModeError::NoScores)));
    }

    #[test]
    fn modes_switch_between_windows_and_battery_levels_pick_them() {
        let modes = [
            WidthMode::fixed(3),
            WidthMode::new(&[0, 3], ConfidenceMeasure::Margin, 0.5).unwrap(),
            WidthMode::fixed(0),
        ];
        let mut switch = ModeSwitch::new(&modes, 0).unwrap();
        assert_eq!(switch.mode(), 0);
        switch.set_mode(2).unwrap();
        assert_eq!(switch.mode(), 2);
        assert_eq!(switch.set_mode(3), Err(ModeError::NoSuchMode));
        assert_eq!(switch.mode(), 2);
        assert_eq!(ModeSwitch::new(&modes, 5), Err(ModeError::NoSuchMode));
        assert_eq!(ModeSwitch::new(&[], 0), Err(ModeError::NoSuchMode));
        let mut scores = [0f32; 2];
        let step = switch
            .classify(&mut scores, |w, out: &mut [f32]| {
                assert_eq!(w, 0);
                out.copy_from_slice(&[0.2, 0.8]);
                Ok::<usize, ()>(2)
            })
            .unwrap();
        assert_eq!(step, WidthStep { label: 1, ran: 1 });

        let levels = [(60, 0), (25, 1), (0, 2)];
        assert_eq!(battery_mode(&levels, 100), Some(0));
        assert_eq!(battery_mode(&levels, 60), Some(0));
        assert_eq!(battery_mode(&levels, 59), Some(1));
        assert_eq!(battery_mode(&levels, 3), Some(2));
        assert_eq!(battery_mode(&[(50, 1)], 10), Some(1));
        assert_eq!(battery_mode(&[], 10), None);
    }
}
