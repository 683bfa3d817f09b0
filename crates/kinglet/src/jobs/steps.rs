//! Jobs made of `kinglet` commands (`pipeline`, `optimize`): every step is the `kinglet`
//! executable run as a child process with its arguments printed, so each number a job reports
//! can be reproduced by copying one line. A step whose output already exists is skipped
//! (unless forced), so an interrupted job resumes where it stopped.
//!
//! The step lines go to standard error directly, not through a callback: the steps' own
//! messages reach it too, from the child processes, and the two must interleave in order.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs steps as `kinglet` subcommands with printed arguments.
pub struct Runner {
    exe: PathBuf,
    force: bool,
    step: usize,
    /// Every step's command line, in order (`(kept)` before the skipped ones).
    pub log: Vec<String>,
}

impl Runner {
    /// A runner of `kinglet` (the executable at `exe`) that reruns steps whose output exists
    /// only when `force`.
    pub fn new(exe: PathBuf, force: bool) -> Self {
        Self {
            exe,
            force,
            step: 0,
            log: Vec::new(),
        }
    }

    /// Runs `kinglet <args>` unless `output` exists; with `stdout_to`, captures standard output
    /// there atomically (a failed step leaves no file behind).
    pub fn run(
        &mut self,
        title: &str,
        output: &Path,
        args: &[OsString],
        stdout_to: Option<&Path>,
    ) -> Result<()> {
        self.step += 1;
        let shown = args
            .iter()
            .map(|a| shell_word(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!(
            "kinglet {shown}{}",
            match stdout_to {
                Some(p) => format!(" > {}", shell_word(&p.display().to_string())),
                None => String::new(),
            }
        );
        if output.exists() && !self.force {
            eprintln!(
                "[{:2}] {title}: {} exists, skipped",
                self.step,
                output.display()
            );
            self.log.push(format!("(kept) {line}"));
            return Ok(());
        }
        eprintln!("[{:2}] {title}\n     {line}", self.step);
        let started = Instant::now();
        let mut command = Command::new(&self.exe);
        command.args(args);
        let status = match stdout_to {
            Some(path) => {
                let result = command
                    .output()
                    .with_context(|| format!("running {line}"))?;
                if result.status.success() {
                    write_atomic(path, &result.stdout)?;
                } else {
                    eprint!("{}", String::from_utf8_lossy(&result.stderr));
                }
                result.status
            }
            None => command
                .status()
                .with_context(|| format!("running {line}"))?,
        };
        if !status.success() {
            bail!("step {} ({title}) failed: {line}", self.step);
        }
        eprintln!("     done in {:.1} s", started.elapsed().as_secs_f64());
        self.log.push(line);
        Ok(())
    }
}

/// Whether `program` is an executable file on the `PATH`.
pub fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes through a temporary file in the same folder, then renames: never a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    kinglet_graph::files::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// A step's arguments from string slices.
pub fn args(parts: &[&str]) -> Vec<OsString> {
    parts.iter().map(OsString::from).collect()
}
