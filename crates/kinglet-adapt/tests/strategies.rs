//! Strategy behaviour on small scripted streams. The classifiers here are test doubles: each
//! returns scripted scores and counts how often it was asked, so the tests can check which
//! model the simulator runs on which window.

use kinglet_adapt::classifier::DistanceTable;
use kinglet_adapt::strategy::StrategyKind;
use kinglet_adapt::{
    AdaptError, CheckKind, Models, OutputKind, StrategySpec, WindowClassifier, evaluate, simulate,
};

/// Scripted scores per window; records the windows it was asked for.
struct Scripted {
    name: String,
    rows: Vec<Vec<f32>>,
    kind: OutputKind,
    asked: Vec<usize>,
}

impl Scripted {
    fn new(name: &str, rows: Vec<Vec<f32>>) -> Self {
        Self {
            name: name.into(),
            rows,
            kind: OutputKind::Probabilities,
            asked: Vec::new(),
        }
    }
    /// A multi-class model answering `labels[i]` with probability `p[i]` on window i.
    fn classes(name: &str, labels: &[usize], p: &[f32], k: usize) -> Self {
        let rows = labels
            .iter()
            .zip(p)
            .map(|(&l, &p)| {
                (0..k)
                    .map(|c| {
                        if c == l {
                            p
                        } else {
                            (1.0 - p) / (k - 1) as f32
                        }
                    })
                    .collect()
            })
            .collect();
        Self::new(name, rows)
    }
    /// A same/changed model saying "same" on the windows where `same[i]`.
    fn same(name: &str, same: &[bool]) -> Self {
        Self::new(
            name,
            same.iter()
                .map(|&s| if s { vec![0.2, 0.8] } else { vec![0.8, 0.2] })
                .collect(),
        )
    }
}

impl WindowClassifier for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn scores(&mut self, window: usize) -> Result<Vec<f32>, AdaptError> {
        self.asked.push(window);
        Ok(self.rows[window].clone())
    }
    fn output_kind(&self) -> OutputKind {
        self.kind
    }
}

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("c{i}")).collect()
}

#[test]
fn one_big_six_little_asks_only_the_little_of_the_current_label() {
    // True activity: 0 0 0 1 1 1; Big is always right; little 0 notices the change at t=3.
    let truth = [0usize, 0, 0, 1, 1, 1];
    let mut big = Scripted::classes("big", &truth, &[0.9; 6], 2);
    let mut little0 = Scripted::same("little0", &[true, true, true, false, false, false]);
    let mut little1 = Scripted::same("little1", &[true; 6]);
    let spec = StrategySpec::new(StrategyKind::OneBigSixLittle);
    let run = {
        let mut models = Models {
            big: &mut big,
            littles: vec![&mut little0, &mut little1],
            dual: None,
            distance: None,
            signature: None,
        };
        simulate(&spec, &mut models, 6).unwrap()
    };
    assert_eq!(big.asked, [0, 3]);
    assert_eq!(little0.asked, [1, 2, 3]);
    assert_eq!(little1.asked, [4, 5]);
    assert_eq!(run.predictions(), [0, 0, 0, 1, 1, 1]);
    assert_eq!(run.windows[3].check, CheckKind::SameActivity(0));
    let labels: Vec<u32> = truth.iter().map(|&l| l as u32).collect();
    let e = evaluate(&run, &labels, &names(2)).unwrap();
    assert_eq!(
        (e.big_runs, e.little_runs, e.change_notice.mean_windows),
        (2, 5, 0.0)
    );
}

#[test]
fn a_missed_change_is_counted_and_delays_notice() {
    // The little never says "changed": the label sticks, so the change is never noticed.
    let truth = [0usize, 0, 1, 1];
    let mut big = Scripted::classes("big", &truth, &[0.9; 4], 2);
    let mut l0 = Scripted::same("little0", &[true; 4]);
    let mut l1 = Scripted::same("little1", &[true; 4]);
    let run = {
        let mut models = Models {
            big: &mut big,
            littles: vec![&mut l0, &mut l1],
            dual: None,
            distance: None,
            signature: None,
        };
        simulate(
            &StrategySpec::new(StrategyKind::OneBigSixLittle),
            &mut models,
            4,
        )
        .unwrap()
    };
    let e = evaluate(&run, &[0, 0, 1, 1], &names(2)).unwrap();
    assert_eq!(e.accuracy, 0.5);
    assert_eq!((e.change_notice.changes, e.change_notice.noticed), (1, 0));
}

#[test]
fn confidence_cascade_applies_softmax_to_logits_and_wakes_big_when_unsure() {
    // Little logits: confident on windows 1 and 3 (gap 5), unsure on 2 (gap 0.1).
    let mut little = Scripted::new(
        "little",
        vec![
            vec![0.0, 0.0],
            vec![5.0, 0.0],
            vec![0.0, 0.1],
            vec![0.0, 5.0],
        ],
    );
    little.kind = OutputKind::Logits;
    let mut big = Scripted::classes("big", &[0, 0, 1, 1], &[0.9; 4], 2);
    let mut spec = StrategySpec::new(StrategyKind::Confidence);
    spec.threshold = Some(0.9);
    let run = {
        let mut models = Models {
            big: &mut big,
            littles: vec![&mut little],
            dual: None,
            distance: None,
            signature: None,
        };
        simulate(&spec, &mut models, 4).unwrap()
    };
    assert_eq!(big.asked, [0, 2]);
    assert_eq!(little.asked, [1, 2, 3]);
    assert_eq!(run.predictions(), [0, 0, 1, 1]);
}

#[test]
fn distance_strategy_uses_the_distance_table_only() {
    let mut big = Scripted::classes("big", &[2, 2, 2, 0], &[0.9; 4], 3);
    let mut d = DistanceTable(vec![0, 10, 3000, 10]);
    let mut spec = StrategySpec::new(StrategyKind::OneBigDistance);
    spec.threshold = Some(2000.0);
    let run = {
        let mut models = Models {
            big: &mut big,
            littles: vec![],
            dual: None,
            distance: Some(&mut d),
            signature: None,
        };
        simulate(&spec, &mut models, 4).unwrap()
    };
    assert_eq!(big.asked, [0, 2]);
    assert_eq!(run.predictions(), [2, 2, 2, 2]);
}

#[test]
fn missing_models_are_named_in_the_error() {
    let mut big = Scripted::classes("big", &[3, 3], &[0.9; 2], 6);
    let mut l0 = Scripted::same("little0", &[true; 2]);
    let mut models = Models {
        big: &mut big,
        littles: vec![&mut l0],
        dual: None,
        distance: None,
        signature: None,
    };
    let e = simulate(
        &StrategySpec::new(StrategyKind::OneBigSixLittle),
        &mut models,
        2,
    )
    .unwrap_err();
    assert!(e.to_string().contains("class 3"), "{e}");
    let e = simulate(
        &StrategySpec::new(StrategyKind::OneBigOneDual),
        &mut models,
        2,
    )
    .unwrap_err();
    assert!(e.to_string().contains("Dual"), "{e}");
}

#[test]
fn nan_scores_are_rejected_with_model_and_window() {
    let mut big = Scripted::classes("big", &[0, 0], &[0.9; 2], 2);
    let mut l0 = Scripted::new("little0", vec![vec![0.2, 0.8], vec![f32::NAN, 0.1]]);
    let mut models = Models {
        big: &mut big,
        littles: vec![&mut l0],
        dual: None,
        distance: None,
        signature: None,
    };
    let e = simulate(
        &StrategySpec::new(StrategyKind::OneBigSixLittle),
        &mut models,
        2,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("little0") && msg.contains("window 1"), "{msg}");
}

#[test]
fn decisions_round_trip_through_their_csv_form() {
    let truth = [0usize, 0, 0, 1, 1, 1];
    let mut big = Scripted::classes("big", &truth, &[0.9; 6], 2);
    let mut little0 = Scripted::same("little0", &[true, true, true, false, false, false]);
    let mut little1 = Scripted::same("little1", &[true; 6]);
    let run = {
        let mut models = Models {
            big: &mut big,
            littles: vec![&mut little0, &mut little1],
            dual: None,
            distance: None,
            signature: None,
        };
        simulate(
            &StrategySpec::new(StrategyKind::OneBigSixLittle),
            &mut models,
            6,
        )
        .unwrap()
    };
    let csv = run.decisions_csv();
    assert!(
        csv.starts_with("window,check,big,label\n0,none,1,0\n1,little0,0,0\n"),
        "{csv}"
    );
    assert_eq!(
        kinglet_adapt::simulate::parse_decisions_csv(&csv, "host").unwrap(),
        run.windows
    );
    let bad = csv.replace("2,little0", "7,little0");
    let e = kinglet_adapt::simulate::parse_decisions_csv(&bad, "qemu.log").unwrap_err();
    assert!(e.to_string().starts_with("qemu.log:4:"), "{e}");
}
