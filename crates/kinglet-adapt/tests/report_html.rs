//! The report is one self-contained page whose SVG plots a browser can show: it must parse as
//! XML (so every inline SVG is well-formed), hold one <svg> per plot, and each plot must carry
//! the marks it is about (bars, lines, cells, labels).

use std::path::Path;

use kinglet_adapt::calibrate::calibrate;
use kinglet_adapt::energy::{Cell, CostTable, Sensor, System, price_run};
use kinglet_adapt::report::{CascadeRecord, markdown, plots, write_report};
use kinglet_adapt::strategy::StrategyKind;
use kinglet_adapt::{BoardProfile, OutputKind, RecordedStream, StrategySpec, evaluate, simulate};

fn record(kind: StrategyKind, calibrated: bool) -> CascadeRecord {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stream = RecordedStream::load_csv(
        &root.join("tests/fixtures/seed_stream_outputs.csv"),
        OutputKind::Logits,
    )
    .unwrap();
    let classes: Vec<String> = [
        "WALKING",
        "UPSTAIRS",
        "DOWNSTAIRS",
        "SITTING",
        "STANDING",
        "LAYING",
    ]
    .map(String::from)
    .to_vec();
    let costs = CostTable::seed_tflm_cmsis_nn();
    let mut spec = StrategySpec::new(kind);
    let calibration = if calibrated {
        let c = calibrate(&spec, &mut stream, &costs, &classes, 0.5).unwrap();
        spec = c.chosen.spec.clone();
        Some(c)
    } else {
        None
    };
    let n = stream.len();
    let labels = stream.labels.clone();
    let run = simulate(&spec, &mut stream.models(), n).unwrap();
    let e = evaluate(&run, &labels, &classes).unwrap();
    let boards = BoardProfile::load_dir(&root.join("../../boards")).unwrap();
    let system = System {
        cell: Cell::cr2032(),
        sensor: Some(Sensor::named_or_file("bmi160").unwrap()),
        fifo: true,
    };
    let energy = boards
        .iter()
        .map(|b| price_run(&run, b, &costs, &system).unwrap())
        .collect();
    CascadeRecord {
        stream: None,
        strategy: spec.label(),
        spec,
        source: "seed fixture".into(),
        n: e.n,
        accuracy: e.accuracy,
        macro_f1: e.macro_f1,
        big_runs: e.big_runs,
        little_runs: e.little_runs,
        change_notice: e.change_notice,
        class_names: classes,
        confusion: e.classification.confusion,
        costs_source: costs.source.clone(),
        energy,
        calibration,
    }
}

fn names(node: roxmltree::Node<'_, '_>, tag: &str) -> usize {
    node.descendants()
        .filter(|n| n.tag_name().name() == tag)
        .count()
}

#[test]
fn report_html_is_well_formed_and_every_plot_has_its_marks() {
    let records = vec![
        record(StrategyKind::BigOnly, false),
        record(StrategyKind::OneBigSixLittle, false),
        record(StrategyKind::OneBigDistance, true),
    ];
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(&records, dir.path()).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("report.html parses as XML");
    let svgs: Vec<_> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "svg")
        .collect();
    let expected = plots(&records).unwrap();
    assert_eq!(svgs.len(), expected.len());
    // Pareto, then energy (+ battery life) for each board whose profile has the figures, then
    // one confusion matrix per record.
    let priced_boards = records[0]
        .energy
        .iter()
        .filter(|e| e.inference_uj_per_window.is_some())
        .count();
    assert!(priced_boards >= 1);
    assert!(
        svgs.len() >= 1 + priced_boards + records.len(),
        "only {} plots",
        svgs.len()
    );
    let pareto = svgs[0];
    assert!(
        names(pareto, "polyline") >= 1,
        "the calibrated sweep draws a front line"
    );
    assert!(names(pareto, "circle") >= records.len());
    for (svg, (title, _)) in svgs.iter().zip(&expected) {
        assert!(names(*svg, "text") > 3, "{title}: axis labels");
        if title.starts_with("Confusion") {
            assert!(names(*svg, "rect") >= 36, "{title}: 6×6 cells");
        }
        if title.starts_with("Energy") {
            assert!(
                names(*svg, "rect") >= records.len(),
                "{title}: one bar per strategy"
            );
        }
    }
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("| 1b6s | 2947 | 92.77 |"), "{md}");
    assert!(md.contains("apollo3"));
    // The device section prices Apollo3 with every part; the Cortex-M3 and RISC-V boards have
    // no counts on their cores (the seed's counts are Cortex-M4) and say so.
    assert!(md.contains("## Battery life of the device"), "{md}");
    let apollo3 = md
        .lines()
        .find(|l| l.starts_with("| 1b6s | apollo3 | bmi160 (FIFO) | 1 |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(!apollo3.contains("unknown"), "{apollo3}");
    assert!(md.contains("| 1b6s | ecm3532 (Cortex-M3) | unknown: instructions on Cortex-M3 |"));
    assert!(md.contains("| 1b6s | gap8 (RV32IMC) | unknown: instructions on RV32IMC |"));
    assert!(md.contains("## Operating points"), "{md}");
}

#[test]
fn each_plot_is_a_standalone_svg_document() {
    for (title, svg) in plots(&[record(StrategyKind::OneBigSixLittle, false)]).unwrap() {
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{title}: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{title}");
    }
}

#[test]
fn records_from_before_the_device_model_keep_their_mcu_only_battery_life() {
    let r = record(StrategyKind::OneBigSixLittle, false);
    let mut v = serde_json::to_value(&r).unwrap();
    // What a record written before issue 15 holds: the MCU-only life under `battery_life_days`.
    for e in v["energy"].as_array_mut().unwrap() {
        let o = e.as_object_mut().unwrap();
        let mcu_only = o.remove("mcu_only_battery_life_days").unwrap();
        o.insert("battery_life_days".into(), mcu_only);
        for new in [
            "core",
            "counts_core",
            "sensor",
            "fifo",
            "cpi_note",
            "operating_points",
        ] {
            o.remove(new);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let old = CascadeRecord::load(&path).unwrap();
    let (new, old) = (
        r.energy.iter().find(|e| e.board == "apollo3").unwrap(),
        old.energy.iter().find(|e| e.board == "apollo3").unwrap(),
    );
    assert_eq!(old.battery_life_days, None);
    assert_eq!(
        old.mcu_only_battery_life_days,
        new.mcu_only_battery_life_days
    );
    assert!(new.battery_life_days.unwrap() < new.mcu_only_battery_life_days.unwrap());
    assert!(markdown(&[r]).contains("| 1b6s | apollo3 (Cortex-M4F) |"));
}

#[test]
fn sections_join_the_records_or_stand_alone_with_their_plots_as_files() {
    use kinglet_adapt::report::{Section, SectionPlot, write_report_with};
    let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><circle cx=\"5\" cy=\"5\" r=\"2\"/></svg>";
    let section = Section {
        title: "Architecture search <front>".into(),
        markdown: "| a |\n|---|\n| 1 |\n".into(),
        html: "<table><tr><td>front-row</td></tr></table>\n".into(),
        plots: vec![SectionPlot {
            title: "accuracy & bytes".into(),
            file: "search-plot.svg".into(),
            svg: svg.into(),
        }],
    };
    let parse = |html: &str| {
        roxmltree::Document::parse_with_options(
            html,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            },
        )
        .map(|d| (names(d.root(), "svg"), names(d.root(), "td")))
        .expect("report.html parses as XML")
    };
    // Alone: no cascade table or summary, the section and its plot.
    let dir = tempfile::tempdir().unwrap();
    let files = write_report_with(&[], std::slice::from_ref(&section), dir.path()).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert_eq!(parse(&html), (1, 1));
    assert!(
        html.contains("<h2>Architecture search &lt;front&gt;</h2>"),
        "{html}"
    );
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.starts_with("# Kinglet report\n"), "{md}");
    assert!(
        md.contains("## Architecture search <front>\n\n| a |"),
        "{md}"
    );
    assert!(md.contains("![accuracy & bytes](search-plot.svg)"), "{md}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("search-plot.svg")).unwrap(),
        svg
    );
    // Beside cascade records: their plots first, then the section's.
    let records = vec![record(StrategyKind::BigOnly, false)];
    let dir = tempfile::tempdir().unwrap();
    let files = write_report_with(&records, &[section], dir.path()).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    let (svgs, _) = parse(&html);
    assert_eq!(svgs, plots(&records).unwrap().len() + 1);
    assert!(html.find("front-row").unwrap() < html.find("<h2>Summary</h2>").unwrap());
    assert!(write_report_with(&[], &[], dir.path()).is_err());
}
