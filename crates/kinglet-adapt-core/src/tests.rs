extern crate std;

use super::*;
use std::vec::Vec;

/// Drives a controller over a scripted stream. `same[i]` says whether the check on window i
/// reports "same"; `big[i]` is the Big label on window i. Returns (labels, big windows).
fn run_same_stream(
    strategy: Strategy,
    guards: Guards,
    same: &[bool],
    big: &[usize],
) -> (Vec<u8>, Vec<usize>) {
    let mut ctl = Controller::new(strategy, guards);
    let (mut labels, mut bigs) = (Vec::new(), Vec::new());
    for i in 0..same.len() {
        let scores = if same[i] {
            [0.1f32, 0.9]
        } else {
            [0.9f32, 0.1]
        };
        let evidence = match ctl.check() {
            Check::None => Evidence::None,
            Check::SameActivity { .. } | Check::Dual => Evidence::SameScores(&scores),
            other => panic!("unexpected check {other:?}"),
        };
        let label = match ctl.decide(evidence).unwrap() {
            Verdict::Label(l) => l,
            Verdict::RunBig => {
                bigs.push(i);
                ctl.big_result(big[i]).unwrap()
            }
        };
        labels.push(label);
    }
    (labels, bigs)
}

#[test]
fn first_window_runs_big_without_a_check() {
    let mut ctl = Controller::new(
        Strategy::SameActivity {
            rule: SameRule::Argmax,
        },
        Guards::default(),
    );
    assert_eq!(ctl.check(), Check::None);
    assert_eq!(ctl.decide(Evidence::None), Ok(Verdict::RunBig));
    assert_eq!(ctl.big_result(3), Ok(3));
    assert_eq!(ctl.check(), Check::SameActivity { model: 3 });
}

#[test]
fn one_big_six_little_keeps_label_until_the_little_says_changed() {
    let same = [true, true, true, false, true, true];
    let big = [2, 9, 9, 4, 9, 9];
    let (labels, bigs) = run_same_stream(
        Strategy::SameActivity {
            rule: SameRule::Argmax,
        },
        Guards::default(),
        &same,
        &big,
    );
    assert_eq!(labels, [2, 2, 2, 4, 4, 4]);
    assert_eq!(bigs, [0, 3]);
}

#[test]
fn argmax_ties_count_as_changed() {
    let mut ctl = Controller::new(
        Strategy::Dual {
            rule: SameRule::Argmax,
        },
        Guards::default(),
    );
    ctl.check();
    ctl.decide(Evidence::None).unwrap();
    ctl.big_result(1).unwrap();
    assert_eq!(ctl.check(), Check::Dual);
    assert_eq!(
        ctl.decide(Evidence::SameScores(&[0.5, 0.5])),
        Ok(Verdict::RunBig)
    );
}

#[test]
fn min_probability_rule_is_a_threshold_on_index_one() {
    for (p, expect_big) in [(0.69f32, true), (0.7, false)] {
        let mut ctl = Controller::new(
            Strategy::SameActivity {
                rule: SameRule::MinProbability(0.7),
            },
            Guards::default(),
        );
        ctl.check();
        ctl.decide(Evidence::None).unwrap();
        ctl.big_result(0).unwrap();
        ctl.check();
        let v = ctl.decide(Evidence::SameScores(&[1.0 - p, p])).unwrap();
        assert_eq!(v == Verdict::RunBig, expect_big, "p = {p}");
    }
}

#[test]
fn distance_strategy_wakes_big_strictly_above_threshold() {
    let mut ctl = Controller::new(Strategy::Distance { threshold: 2000 }, Guards::default());
    ctl.check();
    ctl.decide(Evidence::None).unwrap();
    ctl.big_result(5).unwrap();
    assert_eq!(ctl.check(), Check::Distance);
    assert_eq!(ctl.decide(Evidence::Distance(2000)), Ok(Verdict::Label(5)));
    ctl.check();
    assert_eq!(ctl.decide(Evidence::Distance(2001)), Ok(Verdict::RunBig));
}

#[test]
fn signature_strategy_uses_the_threshold_of_the_last_label() {
    let mut thresholds = [0u32; MAX_LABELS];
    thresholds[2] = 100;
    thresholds[3] = 10;
    let mut ctl = Controller::new(Strategy::Signature { thresholds }, Guards::default());
    assert_eq!(ctl.check(), Check::None);
    ctl.decide(Evidence::None).unwrap();
    ctl.big_result(2).unwrap();
    assert_eq!(ctl.check(), Check::Signature);
    assert_eq!(ctl.decide(Evidence::Distance(100)), Ok(Verdict::Label(2)));
    ctl.check();
    assert_eq!(ctl.decide(Evidence::Distance(101)), Ok(Verdict::RunBig));
    ctl.big_result(3).unwrap();
    ctl.check();
    assert_eq!(ctl.decide(Evidence::Distance(50)), Ok(Verdict::RunBig));
    // A label past the table (no threshold) always wakes Big.
    ctl.big_result(MAX_LABELS).unwrap();
    ctl.check();
    assert_eq!(
        ctl.decide(Evidence::Distance(0)),
        Ok(Verdict::Label(MAX_LABELS as u8))
    );
    ctl.check();
    assert_eq!(ctl.decide(Evidence::Distance(1)), Ok(Verdict::RunBig));
}

#[test]
fn signature_sums_and_spreads_selected_axes() {
    // Two steps of 4 channels; axes 1, 2, 3 (from axis 1 on). Axis 1: 10, 20 (sum 30, mean 15, spread 10);
    // axis 2: -3, -4 (sum -7, mean round(-3.5) = -3, spread 0 + 1); axis 3: 5, 5.
    let samples = [99i8, 10, -3, 5, -99, 20, -4, 5];
    let sig = Signature::of(&samples, 4, 1);
    assert_eq!(sig.sum, [30, -7, 10]);
    assert_eq!(sig.spread, [10, 1, 0]);
    let other = Signature::of(&[0i8, 10, -3, 5, 0, 10, -3, 5], 4, 1);
    assert_eq!(other.sum, [20, -6, 10]);
    assert_eq!(sig.distance(&other), 10 + 1 + 10 + 1);
    assert_eq!(Signature::of(&samples, 0, 0), Signature::default());
    assert_eq!(Signature::of(&samples, 4, 2), Signature::default());
    let bytes: Vec<u8> = samples.iter().map(|&v| v as u8).collect();
    assert_eq!(Signature::of_int8_bytes(&bytes, 4, 1), sig);
}

#[test]
fn confirm_windows_debounces_wakeups() {
    let same = [true, false, true, false, false, true];
    let big = [1, 9, 9, 9, 2, 9];
    let guards = Guards {
        confirm_windows: 2,
        ..Guards::default()
    };
    let (labels, bigs) = run_same_stream(
        Strategy::Dual {
            rule: SameRule::Argmax,
        },
        guards,
        &same,
        &big,
    );
    assert_eq!(bigs, [0, 4]);
    assert_eq!(labels, [1, 1, 1, 1, 2, 2]);
}

#[test]
fn settle_windows_run_big_after_a_noticed_change_only() {
    // Window 2 asks for Big (a change); with one settle window Big also runs on window 3
    // without a check, then the checks resume. Windows 0 (first) and 5 (a second change)
    // behave as without the guard, apart from 5's own settle window 6.
    let same = [true, true, false, true, true, false, true, true];
    let big = [1, 9, 2, 3, 9, 4, 5, 9];
    let guards = Guards {
        settle_windows: 1,
        ..Guards::default()
    };
    let (labels, bigs) = run_same_stream(
        Strategy::Dual {
            rule: SameRule::Argmax,
        },
        guards,
        &same,
        &big,
    );
    assert_eq!(bigs, [0, 2, 3, 5, 6]);
    assert_eq!(labels, [1, 1, 2, 3, 3, 4, 5, 5]);
    let (_, bigs) = run_same_stream(
        Strategy::Dual {
            rule: SameRule::Argmax,
        },
        Guards::default(),
        &same,
        &big,
    );
    assert_eq!(bigs, [0, 2, 5]);
}

#[test]
fn min_interval_defers_and_max_interval_forces_big() {
    let same = [true, false, false, false, true, true, true, true];
    let big = [1, 2, 3, 4, 5, 6, 7, 8];
    let guards = Guards {
        min_big_interval: 3,
        ..Guards::default()
    };
    let (_, bigs) = run_same_stream(
        Strategy::Dual {
            rule: SameRule::Argmax,
        },
        guards,
        &same,
        &big,
    );
    assert_eq!(
        bigs,
        [0, 3],
        "Big at most once in any 3 consecutive windows"
    );

    let guards = Guards {
        max_big_interval: 2,
        ..Guards::default()
    };
    let (_, bigs) = run_same_stream(
        Strategy::Dual {
            rule: SameRule::Argmax,
        },
        guards,
        &[true; 8],
        &big,
    );
    assert_eq!(bigs, [0, 3, 6], "at most 2 windows in a row without Big");
}

#[test]
fn confidence_cascade_answers_with_the_little_label_when_confident() {
    let strategy = Strategy::Confidence {
        model: 0,
        measure: ConfidenceMeasure::MaxProbability,
        threshold: 0.6,
        hysteresis: 0.0,
    };
    let mut ctl = Controller::new(strategy, Guards::default());
    ctl.check();
    ctl.decide(Evidence::None).unwrap();
    ctl.big_result(0).unwrap();
    assert_eq!(ctl.check(), Check::Classifier { model: 0 });
    assert_eq!(
        ctl.decide(Evidence::ClassProbabilities(&[0.1, 0.2, 0.7])),
        Ok(Verdict::Label(2))
    );
    ctl.check();
    assert_eq!(
        ctl.decide(Evidence::ClassProbabilities(&[0.3, 0.2, 0.5])),
        Ok(Verdict::RunBig)
    );
    assert_eq!(ctl.big_result(1), Ok(1));
}

#[test]
fn confidence_hysteresis_keeps_big_awake_until_confidence_recovers() {
    let strategy = Strategy::Confidence {
        model: 0,
        measure: ConfidenceMeasure::MaxProbability,
        threshold: 0.6,
        hysteresis: 0.2,
    };
    let mut ctl = Controller::new(strategy, Guards::default());
    ctl.check();
    ctl.decide(Evidence::None).unwrap();
    ctl.big_result(0).unwrap();
    let mut step = |p: &[f32]| {
        ctl.check();
        match ctl.decide(Evidence::ClassProbabilities(p)).unwrap() {
            Verdict::RunBig => {
                ctl.big_result(0).unwrap();
                true
            }
            Verdict::Label(_) => false,
        }
    };
    assert!(!step(&[0.7, 0.3])); // 0.7 ≥ 0.6
    assert!(step(&[0.5, 0.5])); // below 0.6: alert
    assert!(step(&[0.7, 0.3])); // alert: needs 0.8
    assert!(!step(&[0.85, 0.15])); // recovered
    assert!(!step(&[0.7, 0.3])); // back to 0.6
}

#[test]
fn temporal_confidence_wakes_big_on_a_new_label_even_when_confident() {
    let strategy = Strategy::TemporalConfidence {
        model: 1,
        measure: ConfidenceMeasure::Margin,
        threshold: 0.2,
    };
    let mut ctl = Controller::new(strategy, Guards::default());
    ctl.check();
    ctl.decide(Evidence::None).unwrap();
    ctl.big_result(0).unwrap();
    assert_eq!(ctl.check(), Check::Classifier { model: 1 });
    assert_eq!(
        ctl.decide(Evidence::ClassProbabilities(&[0.7, 0.3])),
        Ok(Verdict::Label(0))
    );
    ctl.check();
    assert_eq!(
        ctl.decide(Evidence::ClassProbabilities(&[0.1, 0.9])),
        Ok(Verdict::RunBig)
    );
}

#[test]
fn out_of_order_calls_and_wrong_evidence_are_refused() {
    let mut ctl = Controller::new(
        Strategy::SameActivity {
            rule: SameRule::Argmax,
        },
        Guards::default(),
    );
    assert_eq!(ctl.big_result(0), Err(ControlError::OutOfOrder));
    ctl.check();
    assert_eq!(
        ctl.decide(Evidence::Distance(3)),
        Err(ControlError::WrongEvidence)
    );
    assert_eq!(ctl.decide(Evidence::None), Ok(Verdict::RunBig));
    assert_eq!(ctl.decide(Evidence::None), Err(ControlError::OutOfOrder));
    assert_eq!(ctl.big_result(300), Err(ControlError::BadValue));
    ctl.big_result(2).unwrap();
    ctl.check();
    assert_eq!(
        ctl.decide(Evidence::SameScores(&[1.0])),
        Err(ControlError::TooFewScores)
    );
    assert_eq!(
        ctl.decide(Evidence::SameScores(&[f32::NAN, 1.0])),
        Err(ControlError::BadValue)
    );
}

#[test]
fn exp_and_ln_match_std_closely() {
    for i in -400..=400 {
        let x = i as f32 * 0.2;
        let (ours, std_) = (math::exp(x), x.exp());
        assert!(
            ((ours - std_) / std_).abs() < 2e-6,
            "exp({x}): {ours} vs {std_}"
        );
    }
    for i in 1..=2000 {
        let x = i as f32 * 0.013;
        let (ours, std_) = (math::ln(x), x.ln());
        assert!(
            (ours - std_).abs() < 2e-6 * std_.abs().max(1.0),
            "ln({x}): {ours} vs {std_}"
        );
    }
    assert!(math::ln(1e-40).is_finite());
}

#[test]
fn confidence_measures() {
    let p = [0.5f32, 0.3, 0.2];
    assert_eq!(confidence(ConfidenceMeasure::MaxProbability, &p), 0.5);
    assert!((confidence(ConfidenceMeasure::Margin, &p) - 0.2).abs() < 1e-6);
    let uniform = [0.25f32; 4];
    assert!(confidence(ConfidenceMeasure::Entropy, &uniform) < 1e-6);
    assert!((confidence(ConfidenceMeasure::Entropy, &[1.0, 0.0, 0.0]) - 1.0).abs() < 1e-6);
    let mut logits = [1.0f32, 2.0, 3.0];
    softmax_in_place(&mut logits);
    let s: f32 = logits.iter().sum();
    assert!((s - 1.0).abs() < 1e-6 && logits[2] > logits[1]);
    assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
    assert_eq!(l1_distance_u8(&[0, 10, 255], &[5, 5, 0]), 265);
}
