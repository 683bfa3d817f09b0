//! The study database: one row per trial (a candidate trained for one rung's epochs), with
//! its state — queued, running (claimed by a worker, with a lease), done (with its measured
//! result) or failed — so that a search stopped at any moment resumes from the database alone,
//! and any number of workers can share one study.
//!
//! Guarantees, the same for both back ends:
//! - a trial is queued once: its identity is (generation, rung, slot), and queueing an existing
//!   one does nothing, so workers that plan the same step concurrently add it once;
//! - a claim is atomic: two workers never hold the same trial;
//! - a claim holds for a lease that the worker renews while it works; a trial whose lease ran
//!   out (its worker was killed, lost its connection or its machine) is claimed again — after
//!   [`MAX_ATTEMPTS`] lost leases it is failed rather than claimed forever;
//! - a result counts only from the worker that holds the trial: a worker whose trial was taken
//!   over after its lease ran out cannot record it a second time.
//!
//! SQLite (the default, a file beside the results) uses the machine's clock for leases;
//! PostgreSQL uses the server's, so workers on machines with skewed clocks agree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;

use crate::error::SearchError;

/// Times a trial may lose its worker (lease expiry) before it is failed instead of retried:
/// a candidate that kills every worker that takes it (memory, a crash in QEMU) must not stall
/// the study.
pub const MAX_ATTEMPTS: i64 = 3;

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialState {
    Queued,
    Running,
    Done,
    Failed,
}

impl TrialState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            other => return Err(format!("unknown trial state `{other}`")),
        })
    }

    /// Done or failed: nothing will change it any more.
    pub fn finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// A trial to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    pub generation: i64,
    pub rung: i64,
    pub slot: i64,
    pub genome: Vec<usize>,
    pub epochs: i64,
}

/// A trial as the study holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub id: i64,
    pub generation: i64,
    pub rung: i64,
    pub slot: i64,
    pub genome: Vec<usize>,
    pub epochs: i64,
    pub state: TrialState,
    pub worker: Option<String>,
    /// Claims so far (more than one after a lease ran out).
    pub attempts: i64,
    /// The measured result (JSON, see [`crate::study::Measured`]) once done.
    pub result: Option<String>,
    /// Why the trial failed.
    pub error: Option<String>,
}

/// How a worker ends its trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Measured: the result as JSON and the trained model (`.kgl` bytes), kept in the study
    /// so the front's models can be written wherever the search is finished.
    Done { result: String, model: Vec<u8> },
    /// Could not be measured, and why.
    Failed(String),
}

/// A study database. Every method is one transaction.
pub trait Storage: Send {
    /// The study's location, without a password, for messages.
    fn location(&self) -> &str;
    /// The study's settings: stored if the study has none yet and `proposed` is given;
    /// returns what the study holds (possibly another run's).
    fn settings(&mut self, proposed: Option<&str>) -> Result<Option<String>, SearchError>;
    /// Queues trials not yet in the study; returns how many were new.
    fn enqueue(&mut self, trials: &[NewTrial]) -> Result<usize, SearchError>;
    /// Claims the oldest queued trial, or one whose lease ran out, for `worker`.
    fn claim(&mut self, worker: &str, lease: Duration) -> Result<Option<Trial>, SearchError>;
    /// Extends the lease of a trial `worker` holds; false when it no longer holds it.
    fn renew(&mut self, id: i64, worker: &str, lease: Duration) -> Result<bool, SearchError>;
    /// Records the end of a trial `worker` holds; false (and nothing recorded) when it no
    /// longer holds it.
    fn finish(&mut self, id: i64, worker: &str, outcome: &Outcome) -> Result<bool, SearchError>;
    /// Gives a held trial back to the queue (a worker stopped by Ctrl-C), keeping its attempt
    /// count unchanged.
    fn release(&mut self, id: i64, worker: &str) -> Result<bool, SearchError>;
    /// Every trial, by id.
    fn trials(&mut self) -> Result<Vec<Trial>, SearchError>;
    /// The trained model a finished trial stored.
    fn model(&mut self, id: i64) -> Result<Option<Vec<u8>>, SearchError>;
}

/// Opens (and creates, if new) the study at `location`: a `postgres://` or `postgresql://`
/// URL, else an SQLite file path (optionally prefixed `sqlite:`).
pub fn open(location: &str) -> Result<Box<dyn Storage>, SearchError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        Ok(Box::new(PostgresStorage::open(location)?))
    } else {
        let path = location.strip_prefix("sqlite:").unwrap_or(location);
        Ok(Box::new(SqliteStorage::open(std::path::Path::new(path))?))
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn genome_text(genome: &[usize]) -> String {
    genome
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_genome(text: &str) -> Result<Vec<usize>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|g| g.parse().map_err(|_| format!("malformed genome `{text}`")))
        .collect()
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

const LOST: &str = "its worker stopped renewing the lease";

// ---------------------------------------------------------------------------------------------
// SQLite

/// A study in an SQLite file (WAL journal, so readers do not block the writer; claims take the
/// write lock first, so two processes never read the same queued trial as free).
pub struct SqliteStorage {
    connection: rusqlite::Connection,
    location: String,
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    generation INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    genome TEXT NOT NULL,
    epochs INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    worker TEXT,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    model BLOB,
    error TEXT,
    UNIQUE (generation, rung, slot)
);";

impl SqliteStorage {
    pub fn open(path: &std::path::Path) -> Result<Self, SearchError> {
        let location = path.display().to_string();
        let err = |e: rusqlite::Error| SearchError::Study {
            location: location.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
        }
        let connection = rusqlite::Connection::open(path).map_err(err)?;
        // Workers wait for each other's short transactions rather than failing.
        connection
            .busy_timeout(Duration::from_secs(60))
            .map_err(err)?;
        connection
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(err)?;
        connection.execute_batch(SQLITE_SCHEMA).map_err(err)?;
        Ok(Self {
            connection,
            location,
        })
    }

    fn err(&self, e: rusqlite::Error) -> SearchError {
        SearchError::Study {
            location: self.location.clone(),
            message: e.to_string(),
        }
    }

    fn row(row: &rusqlite::Row) -> rusqlite::Result<Trial> {
        let bad = |i: usize, m: String| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, m.into())
        };
        let genome: String = row.get(4)?;
        let state: String = row.get(6)?;
        Ok(Trial {
            id: row.get(0)?,
            generation: row.get(1)?,
            rung: row.get(2)?,
            slot: row.get(3)?,
            genome: parse_genome(&genome).map_err(|m| bad(4, m))?,
            epochs: row.get(5)?,
            state: TrialState::parse(&state).map_err(|m| bad(6, m))?,
            worker: row.get(7)?,
            attempts: row.get(8)?,
            result: row.get(9)?,
            error: row.get(10)?,
        })
    }
}

const COLUMNS: &str =
    "id, generation, rung, slot, genome, epochs, state, worker, attempts, result, error";

impl Storage for SqliteStorage {
    fn location(&self) -> &str {
        &self.location
    }

    fn settings(&mut self, proposed: Option<&str>) -> Result<Option<String>, SearchError> {
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| SearchError::Study {
                location: self.location.clone(),
                message: e.to_string(),
            })?;
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Study {
            location: location.clone(),
            message: e.to_string(),
        };
        if let Some(p) = proposed {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ('study', ?1) ON CONFLICT (key) DO NOTHING",
                [p],
            )
            .map_err(err)?;
        }
        let stored: Option<String> = tx
            .query_row("SELECT value FROM settings WHERE key = 'study'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(stored)
    }

    fn enqueue(&mut self, trials: &[NewTrial]) -> Result<usize, SearchError> {
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Study {
            location: location.clone(),
            message: e.to_string(),
        };
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut added = 0;
        for t in trials {
            added += tx
                .execute(
                    "INSERT INTO trials (generation, rung, slot, genome, epochs) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (generation, rung, slot) DO NOTHING",
                    rusqlite::params![t.generation, t.rung, t.slot, genome_text(&t.genome), t.epochs],
                )
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    fn claim(&mut self, worker: &str, lease: Duration) -> Result<Option<Trial>, SearchError> {
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Study {
            location: location.clone(),
            message: e.to_string(),
        };
        let now = now_seconds();
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "UPDATE trials SET state = 'failed', error = ?1, worker = NULL, lease_until = NULL
             WHERE state = 'running' AND lease_until < ?2 AND attempts >= ?3",
            rusqlite::params![format!("{LOST} {MAX_ATTEMPTS} times"), now, MAX_ATTEMPTS],
        )
        .map_err(err)?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM trials WHERE state = 'queued' OR (state = 'running' AND lease_until < ?1)
                 ORDER BY id LIMIT 1",
                [now],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        let Some(id) = id else {
            tx.commit().map_err(err)?;
            return Ok(None);
        };
        tx.execute(
            "UPDATE trials SET state = 'running', worker = ?1, lease_until = ?2, attempts = attempts + 1
             WHERE id = ?3",
            rusqlite::params![worker, now + lease.as_secs_f64(), id],
        )
        .map_err(err)?;
        let trial = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM trials WHERE id = ?1"),
                [id],
                Self::row,
            )
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Some(trial))
    }

    fn renew(&mut self, id: i64, worker: &str, lease: Duration) -> Result<bool, SearchError> {
        let n = self
            .connection
            .execute(
                "UPDATE trials SET lease_until = ?1 WHERE id = ?2 AND worker = ?3 AND state = 'running'",
                rusqlite::params![now_seconds() + lease.as_secs_f64(), id, worker],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn finish(&mut self, id: i64, worker: &str, outcome: &Outcome) -> Result<bool, SearchError> {
        let (state, result, model, error) = match outcome {
            Outcome::Done { result, model } => (
                TrialState::Done,
                Some(result.as_str()),
                Some(model.as_slice()),
                None,
            ),
            Outcome::Failed(e) => (TrialState::Failed, None, None, Some(e.as_str())),
        };
        let n = self
            .connection
            .execute(
                "UPDATE trials SET state = ?1, result = ?2, model = ?3, error = ?4, lease_until = NULL
                 WHERE id = ?5 AND worker = ?6 AND state = 'running'",
                rusqlite::params![state.as_str(), result, model, error, id, worker],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn release(&mut self, id: i64, worker: &str) -> Result<bool, SearchError> {
        let n = self
            .connection
            .execute(
                "UPDATE trials SET state = 'queued', worker = NULL, lease_until = NULL,
                 attempts = attempts - 1 WHERE id = ?1 AND worker = ?2 AND state = 'running'",
                rusqlite::params![id, worker],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn trials(&mut self) -> Result<Vec<Trial>, SearchError> {
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Study {
            location: location.clone(),
            message: e.to_string(),
        };
        let mut statement = self
            .connection
            .prepare(&format!("SELECT {COLUMNS} FROM trials ORDER BY id"))
            .map_err(err)?;
        let rows = statement.query_map([], Self::row).map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    fn model(&mut self, id: i64) -> Result<Option<Vec<u8>>, SearchError> {
        self.connection
            .query_row("SELECT model FROM trials WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A study on a PostgreSQL server, shared by workers anywhere that reach it. Claims lock the
/// chosen row with `FOR UPDATE SKIP LOCKED`, so concurrent workers take different trials
/// without waiting on each other.
pub struct PostgresStorage {
    client: postgres::Client,
    location: String,
}

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id BIGSERIAL PRIMARY KEY,
    generation BIGINT NOT NULL,
    rung BIGINT NOT NULL,
    slot BIGINT NOT NULL,
    genome TEXT NOT NULL,
    epochs BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    worker TEXT,
    lease_until DOUBLE PRECISION,
    attempts BIGINT NOT NULL DEFAULT 0,
    result TEXT,
    model BYTEA,
    error TEXT,
    UNIQUE (generation, rung, slot)
);";

/// The server's clock in seconds since the epoch, as SQL.
const PG_NOW: &str = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION";

/// Serialises schema creation: concurrent `CREATE TABLE IF NOT EXISTS` can collide in
/// PostgreSQL's catalogue.
const SCHEMA_LOCK: i64 = 0x006b_696e_676c_6574;

impl PostgresStorage {
    pub fn open(url: &str) -> Result<Self, SearchError> {
        let location = redact(url);
        let err = |message: String| SearchError::Study {
            location: location.clone(),
            message,
        };
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| err(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = config
            .connect(postgres::NoTls)
            .map_err(|e| err(format!("cannot connect: {}", pg_message(&e))))?;
        let mut tx = client.transaction().map_err(|e| err(pg_message(&e)))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(|e| err(pg_message(&e)))?;
        tx.batch_execute(POSTGRES_SCHEMA)
            .map_err(|e| err(pg_message(&e)))?;
        tx.commit().map_err(|e| err(pg_message(&e)))?;
        Ok(Self { client, location })
    }

    fn err(&self, e: postgres::Error) -> SearchError {
        SearchError::Study {
            location: self.location.clone(),
            message: pg_message(&e),
        }
    }

    fn row(row: &postgres::Row) -> Result<Trial, String> {
        let genome: String = row.try_get(4).map_err(|e| e.to_string())?;
        let state: String = row.try_get(6).map_err(|e| e.to_string())?;
        let get = |i: usize| row.try_get::<_, i64>(i).map_err(|e| e.to_string());
        Ok(Trial {
            id: get(0)?,
            generation: get(1)?,
            rung: get(2)?,
            slot: get(3)?,
            genome: parse_genome(&genome)?,
            epochs: get(5)?,
            state: TrialState::parse(&state)?,
            worker: row.try_get(7).map_err(|e| e.to_string())?,
            attempts: get(8)?,
            result: row.try_get(9).map_err(|e| e.to_string())?,
            error: row.try_get(10).map_err(|e| e.to_string())?,
        })
    }

    fn rows(&self, rows: &[postgres::Row]) -> Result<Vec<Trial>, SearchError> {
        rows.iter()
            .map(|r| {
                Self::row(r).map_err(|message| SearchError::Study {
                    location: self.location.clone(),
                    message,
                })
            })
            .collect()
    }
}

/// The server's own message where there is one (the driver's Display says only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

impl Storage for PostgresStorage {
    fn location(&self) -> &str {
        &self.location
    }

    fn settings(&mut self, proposed: Option<&str>) -> Result<Option<String>, SearchError> {
        if let Some(p) = proposed {
            self.client
                .execute(
                    "INSERT INTO settings (key, value) VALUES ('study', $1) ON CONFLICT (key) DO NOTHING",
                    &[&p],
                )
                .map_err(|e| self.err(e))?;
        }
        let row = self
            .client
            .query_opt("SELECT value FROM settings WHERE key = 'study'", &[])
            .map_err(|e| self.err(e))?;
        row.map(|r| r.try_get::<_, String>(0))
            .transpose()
            .map_err(|e| self.err(e))
    }

    fn enqueue(&mut self, trials: &[NewTrial]) -> Result<usize, SearchError> {
        let mut tx = self.client.transaction().map_err(|e| SearchError::Study {
            location: self.location.clone(),
            message: pg_message(&e),
        })?;
        let mut added = 0;
        for t in trials {
            added += tx
                .execute(
                    "INSERT INTO trials (generation, rung, slot, genome, epochs) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (generation, rung, slot) DO NOTHING",
                    &[&t.generation, &t.rung, &t.slot, &genome_text(&t.genome), &t.epochs],
                )
                .map_err(|e| SearchError::Study {
                    location: self.location.clone(),
                    message: pg_message(&e),
                })?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(added as usize)
    }

    fn claim(&mut self, worker: &str, lease: Duration) -> Result<Option<Trial>, SearchError> {
        let lost = format!("{LOST} {MAX_ATTEMPTS} times");
        let seconds = lease.as_secs_f64();
        let location = self.location.clone();
        let err = |e: postgres::Error| SearchError::Study {
            location: location.clone(),
            message: pg_message(&e),
        };
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute(
            &format!(
                "UPDATE trials SET state = 'failed', error = $1, worker = NULL, lease_until = NULL
                 WHERE state = 'running' AND lease_until < {PG_NOW} AND attempts >= $2"
            ),
            &[&lost, &MAX_ATTEMPTS],
        )
        .map_err(err)?;
        let rows = tx
            .query(
                &format!(
                    "UPDATE trials SET state = 'running', worker = $1, lease_until = {PG_NOW} + $2,
                     attempts = attempts + 1
                     WHERE id = (SELECT id FROM trials
                                 WHERE state = 'queued' OR (state = 'running' AND lease_until < {PG_NOW})
                                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING {COLUMNS}"
                ),
                &[&worker, &seconds],
            )
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(self.rows(&rows)?.into_iter().next())
    }

    fn renew(&mut self, id: i64, worker: &str, lease: Duration) -> Result<bool, SearchError> {
        let n = self
            .client
            .execute(
                &format!(
                    "UPDATE trials SET lease_until = {PG_NOW} + $1
                     WHERE id = $2 AND worker = $3 AND state = 'running'"
                ),
                &[&lease.as_secs_f64(), &id, &worker],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn finish(&mut self, id: i64, worker: &str, outcome: &Outcome) -> Result<bool, SearchError> {
        let (state, result, model, error) = match outcome {
            Outcome::Done { result, model } => (
                TrialState::Done,
                Some(result.as_str()),
                Some(model.as_slice()),
                None,
            ),
            Outcome::Failed(e) => (TrialState::Failed, None, None, Some(e.as_str())),
        };
        let n = self
            .client
            .execute(
                "UPDATE trials SET state = $1, result = $2, model = $3, error = $4, lease_until = NULL
                 WHERE id = $5 AND worker = $6 AND state = 'running'",
                &[&state.as_str(), &result, &model, &error, &id, &worker],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn release(&mut self, id: i64, worker: &str) -> Result<bool, SearchError> {
        let n = self
            .client
            .execute(
                "UPDATE trials SET state = 'queued', worker = NULL, lease_until = NULL,
                 attempts = attempts - 1 WHERE id = $1 AND worker = $2 AND state = 'running'",
                &[&id, &worker],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn trials(&mut self) -> Result<Vec<Trial>, SearchError> {
        let rows = self
            .client
            .query(&format!("SELECT {COLUMNS} FROM trials ORDER BY id"), &[])
            .map_err(|e| self.err(e))?;
        self.rows(&rows)
    }

    fn model(&mut self, id: i64) -> Result<Option<Vec<u8>>, SearchError> {
        let row = self
            .client
            .query_opt("SELECT model FROM trials WHERE id = $1", &[&id])
            .map_err(|e| self.err(e))?;
        match row {
            Some(r) => r.try_get::<_, Option<Vec<u8>>>(0).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            redact("postgres://kinglet:secret@db.example:5432/study"),
            "postgres://kinglet:***@db.example:5432/study"
        );
        assert_eq!(redact("postgres://db/study"), "postgres://db/study");
        assert_eq!(redact("study.sqlite"), "study.sqlite");
    }

    #[test]
    fn genomes_round_trip_as_text() {
        assert_eq!(
            parse_genome(&genome_text(&[3, 0, 12])).unwrap(),
            vec![3, 0, 12]
        );
        assert_eq!(parse_genome("").unwrap(), Vec::<usize>::new());
        assert!(parse_genome("1,x").is_err());
    }
}
