//! The study storage contract, run against the SQLite default and a real PostgreSQL server
//! that the test starts and stops itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use kinglet_search::local_postgres::LocalPostgres;
use kinglet_search::storage::{self, MAX_ATTEMPTS, NewTrial, Outcome, TrialState};

fn done(result: impl Into<String>) -> Outcome {
    Outcome::Done {
        result: result.into(),
        model: vec![1, 2, 3],
    }
}

fn new(generation: i64, slot: i64) -> NewTrial {
    NewTrial {
        generation,
        rung: 0,
        slot,
        genome: vec![slot as usize, 1, 2],
        epochs: 1,
    }
}

/// A server for this test, or None (skipped, with a note) only when PostgreSQL is not
/// installed and this is not CI; in CI its absence fails the test.
fn server() -> Option<LocalPostgres> {
    if kinglet_search::local_postgres::binaries().is_none() && std::env::var_os("CI").is_none() {
        eprintln!("PostgreSQL is not installed (scripts/setup.sh installs it): skipped");
        return None;
    }
    Some(LocalPostgres::start().expect("starting a local PostgreSQL server"))
}

/// Queue, claim, lease expiry, ownership and settings on one study at `location`.
fn contract(location: &str) {
    let mut s = storage::open(location).unwrap();
    assert_eq!(s.settings(None).unwrap(), None);
    assert_eq!(
        s.settings(Some("{\"a\":1}")).unwrap().as_deref(),
        Some("{\"a\":1}")
    );
    // The first settings stay: a resumed study keeps its own.
    assert_eq!(
        s.settings(Some("{\"b\":2}")).unwrap().as_deref(),
        Some("{\"a\":1}")
    );

    assert_eq!(s.enqueue(&[new(0, 0), new(0, 1), new(0, 2)]).unwrap(), 3);
    // Queueing the same trials again (another worker planned the same step) adds nothing.
    assert_eq!(s.enqueue(&[new(0, 1), new(0, 2), new(0, 3)]).unwrap(), 1);

    let lease = Duration::from_secs(600);
    let a = s.claim("a", lease).unwrap().unwrap();
    let b = s.claim("b", lease).unwrap().unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!((a.slot, a.state, a.attempts), (0, TrialState::Running, 1));
    assert_eq!(a.genome, vec![0, 1, 2]);
    // Only the holder records a result.
    assert!(!s.finish(a.id, "b", &done("{}")).unwrap());
    assert!(s.finish(a.id, "a", &done("{\"x\":1}")).unwrap());
    assert!(!s.finish(a.id, "a", &done("{\"x\":2}")).unwrap());
    assert!(s.finish(b.id, "b", &Outcome::Failed("no".into())).unwrap());
    // Released (Ctrl-C) trials go back to the queue without counting an attempt.
    let c = s.claim("c", lease).unwrap().unwrap();
    assert!(s.release(c.id, "c").unwrap());
    let c2 = s.claim("c", lease).unwrap().unwrap();
    assert_eq!((c2.id, c2.attempts), (c.id, 1));

    // A lease that runs out lets another worker take the trial; the first can no longer
    // renew it or record it.
    let d = s
        .claim("dead", Duration::from_millis(200))
        .unwrap()
        .unwrap();
    assert!(s.renew(d.id, "dead", Duration::from_millis(200)).unwrap());
    std::thread::sleep(Duration::from_millis(400));
    let taken = s.claim("alive", lease).unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts), (d.id, 2));
    assert!(!s.renew(d.id, "dead", lease).unwrap());
    assert!(!s.finish(d.id, "dead", &done("{}")).unwrap());
    assert!(s.finish(d.id, "alive", &done("{}")).unwrap());

    let trials = s.trials().unwrap();
    assert_eq!(trials.len(), 4);
    assert_eq!(trials[0].result.as_deref(), Some("{\"x\":1}"));
    assert_eq!(s.model(trials[0].id).unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(s.model(trials[1].id).unwrap(), None);
    assert_eq!(trials[1].error.as_deref(), Some("no"));
    assert_eq!(trials[3].state, TrialState::Done);
    assert_eq!(trials[3].worker.as_deref(), Some("alive"));

    // A trial whose worker keeps dying is failed after MAX_ATTEMPTS lost leases.
    s.enqueue(&[new(1, 0)]).unwrap();
    let short = Duration::from_millis(100);
    // Trial (0, 2) is still held by "c" for 600 s; the new one is the only claimable trial.
    for attempt in 1..=MAX_ATTEMPTS {
        let t = s.claim(&format!("w{attempt}"), short).unwrap().unwrap();
        assert_eq!((t.generation, t.attempts), (1, attempt));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s.claim("last", short).unwrap().is_none());
    let lost = s.trials().unwrap().pop().unwrap();
    assert_eq!(lost.state, TrialState::Failed);
    assert!(lost.error.unwrap().contains("lease"));

    // Reopening finds everything as it was.
    let mut again = storage::open(location).unwrap();
    assert_eq!(again.trials().unwrap(), s.trials().unwrap());
}

/// Eight threads with their own connections claim 40 trials concurrently: each trial is
/// claimed once and finished once.
fn concurrent_claims(location: &str) {
    let mut s = storage::open(location).unwrap();
    let trials: Vec<NewTrial> = (0..40).map(|k| new(7, k)).collect();
    s.enqueue(&trials).unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let location = location.to_string();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = storage::open(&location).unwrap();
                let worker = format!("worker-{w}");
                barrier.wait();
                let mut mine = Vec::new();
                while let Some(t) = s.claim(&worker, Duration::from_secs(600)).unwrap() {
                    assert!(s.finish(t.id, &worker, &done(format!("{w}"))).unwrap());
                    mine.push(t.id);
                }
                mine
            })
        })
        .collect();
    let mut claimed: BTreeMap<i64, usize> = BTreeMap::new();
    for h in handles {
        for id in h.join().unwrap() {
            *claimed.entry(id).or_default() += 1;
        }
    }
    assert_eq!(claimed.len(), 40);
    assert!(claimed.values().all(|&n| n == 1));
    let all = s.trials().unwrap();
    assert!(all.iter().all(|t| t.state == TrialState::Done));
}

#[test]
fn sqlite_study_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&dir.path().join("study.sqlite").display().to_string());
    concurrent_claims(&format!("sqlite:{}", dir.path().join("c.sqlite").display()));
}

#[test]
fn postgres_study_keeps_the_contract() {
    let Some(server) = server() else { return };
    contract(&server.url());
    concurrent_claims(&server.database("concurrent").unwrap());
}

#[test]
fn unreachable_databases_get_clear_errors() {
    // A port nobody listens on (bound and released just now).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://kinglet:secret@127.0.0.1:{port}/study");
    let err = storage::open(&url).err().unwrap().to_string();
    assert!(
        err.starts_with(&format!(
            "study postgres://kinglet:***@127.0.0.1:{port}/study: cannot connect"
        )),
        "{err}"
    );
    assert!(!err.contains("secret"));
    let err = storage::open("/proc/no-such-dir/study.sqlite")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/proc/no-such-dir"), "{err}");
}
