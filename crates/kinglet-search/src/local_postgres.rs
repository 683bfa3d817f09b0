//! A throwaway PostgreSQL server in a temporary folder: what the shared-study tests run
//! against (a real server, not a stand-in), and a way to try several workers on one machine.
//! It is stopped and deleted when dropped.
//!
//! Why the detour through another user: `initdb` and the server refuse to run as root, and
//! CI runs as root; the server then runs as the `postgres` user (which the Debian package
//! creates) with the data folder handed to it.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::SearchError;

/// A running server; `url()` reaches its database `kinglet`.
pub struct LocalPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Who runs the server (None: the current user).
    user: Option<(u32, u32)>,
    _dir: tempfile::TempDir,
}

/// The folder holding `initdb` and `pg_ctl`: on the PATH, or Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest version first).
pub fn binaries() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            // A symlink on the PATH (/usr/local/bin/initdb) leads to the folder holding the
            // server's other programs too.
            if let Ok(initdb) = dir.join("initdb").canonicalize()
                && let Some(bin) = initdb.parent()
                && bin.join("pg_ctl").is_file()
                && bin.join("createdb").is_file()
            {
                return Some(bin.to_path_buf());
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// User and group id of `name` from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl LocalPostgres {
    /// Initialises and starts a server on a free local port.
    pub fn start() -> Result<LocalPostgres, SearchError> {
        let fail = |m: String| SearchError::Study {
            location: "local PostgreSQL".into(),
            message: m,
        };
        let bin = binaries().ok_or_else(|| {
            fail(
                "no initdb/pg_ctl found (install the `postgresql` package; scripts/setup.sh does)"
                    .into(),
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("kinglet-pg-")
            .tempdir()
            .map_err(|e| SearchError::io(std::env::temp_dir(), e))?;
        let user = if is_root() {
            Some(user_ids("postgres").ok_or_else(|| {
                fail("running as root and there is no `postgres` user to run the server as".into())
            })?)
        } else {
            None
        };
        // The server's user must reach the data folder through the temporary one.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| SearchError::io(dir.path(), e))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| SearchError::io(&data, e))?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| SearchError::io(&data, e))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                .map_err(|e| SearchError::io(&data, e))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(format!("no free port: {e}")))?
            .port();
        let server = LocalPostgres {
            bin,
            data,
            port,
            user,
            _dir: dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data.display().to_string(),
                "-U",
                "kinglet",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            server.data.display()
        );
        let log = server.data.join("server.log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                &server.data.display().to_string(),
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-w",
                "start",
            ],
        )?;
        server.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "kinglet",
                "kinglet",
            ],
        )?;
        Ok(server)
    }

    /// The URL of the server's `kinglet` database.
    pub fn url(&self) -> String {
        format!("postgres://kinglet@127.0.0.1:{}/kinglet", self.port)
    }

    /// A URL of a fresh database `name` on the same server (one study per database).
    pub fn database(&self, name: &str) -> Result<String, SearchError> {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "kinglet",
                name,
            ],
        )?;
        Ok(format!("postgres://kinglet@127.0.0.1:{}/{name}", self.port))
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
            // The server's user cannot read root's working folder.
            command.current_dir(self.data.parent().unwrap_or(Path::new("/")));
        }
        command.stdin(Stdio::null());
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), SearchError> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| SearchError::io(self.bin.join(program), e))?;
        if !output.status.success() {
            let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
            return Err(SearchError::Study {
                location: "local PostgreSQL".into(),
                message: format!(
                    "{program} failed: {}{}\n{log}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        Ok(())
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
