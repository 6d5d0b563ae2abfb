//! moto server management: a project-local virtualenv with the pinned `moto[server]`, installed
//! on first use (idempotent, serialised across processes by a lock file), and a `moto_server`
//! child process on a free loopback port that never outlives its owner.
//!
//! * The pin lives in one place, `tools/requirements.txt` at the repo root (embedded here at build
//!   time as [`REQUIREMENTS`]); the venv is `<repo>/.venv` or `$COSTOP_VENV`.
//! * The server is started with `-p 0`: the kernel picks the port when werkzeug binds, and we
//!   read it back from the "Running on http://127.0.0.1:PORT" line, so there is no port race.
//! * The child runs in its own process group with `PR_SET_PDEATHSIG=SIGKILL`, forked by a
//!   guardian thread that lives exactly as long as the [`Moto`] value: dropping it (also while
//!   unwinding from a panic) kills the group and reaps it; if the whole process dies (even by
//!   SIGKILL) the kernel kills moto.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::BedError;

/// The project's pinned Python tools (`tools/requirements.txt`).
pub const REQUIREMENTS: &str = include_str!("../../../tools/requirements.txt");

/// Dummy credentials moto accepts.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

const STAMP: &str = ".costop-requirements.txt";
const LOCK: &str = ".costop-install.lock";

/// The moto version pinned in [`REQUIREMENTS`] (e.g. `5.2.5`).
pub fn moto_version() -> &'static str {
    REQUIREMENTS
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("moto"))
        .and_then(|l| l.split("==").nth(1))
        .map(|v| v.split_whitespace().next().unwrap_or(v))
        .unwrap_or("unpinned")
}

/// The repository root: `$COSTOP_REPO`, else two levels above this crate's manifest.
pub fn repo_root() -> PathBuf {
    if let Some(p) = std::env::var_os("COSTOP_REPO") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// The virtualenv: `$COSTOP_VENV`, else `<repo>/.venv`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("COSTOP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

fn installed(venv: &Path) -> bool {
    venv.join("bin/moto_server").is_file()
        && std::fs::read_to_string(venv.join(STAMP)).is_ok_and(|s| s == REQUIREMENTS)
}

/// Make sure the venv holds the pinned requirements; returns the `moto_server` path. Cheap when
/// already installed; otherwise takes an exclusive lock on `<venv>/.costop-install.lock` so
/// concurrent callers (several test binaries) install once and the others wait.
pub fn ensure_installed() -> Result<PathBuf, BedError> {
    let venv = venv_dir();
    let server = venv.join("bin/moto_server");
    if installed(&venv) {
        return Ok(server);
    }
    let io = |what: String| move |source| BedError::Io { what, source };
    std::fs::create_dir_all(&venv).map_err(io(format!("create {}", venv.display())))?;
    let lock = std::fs::File::create(venv.join(LOCK))
        .map_err(io(format!("create {}", venv.join(LOCK).display())))?;
    let _guard =
        FileLock::exclusive(&lock).map_err(io(format!("lock {}", venv.join(LOCK).display())))?;
    if installed(&venv) {
        return Ok(server);
    }
    let started = Instant::now();
    tracing::info!(venv = %venv.display(), moto = moto_version(), "installing the pinned Python tools (first use; takes a minute or two)");
    if !venv.join("bin/python").exists() {
        let python = std::env::var("COSTOP_PYTHON").unwrap_or_else(|_| "python3".into());
        run_checked(
            Command::new(&python).arg("-m").arg("venv").arg(&venv),
            &format!("{python} -m venv"),
        )?;
    }
    let pending = venv.join(".costop-requirements.pending");
    std::fs::write(&pending, REQUIREMENTS).map_err(io(format!("write {}", pending.display())))?;
    run_checked(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "-r",
            ])
            .arg(&pending),
        "pip install -r tools/requirements.txt",
    )?;
    std::fs::rename(&pending, venv.join(STAMP))
        .map_err(io(format!("write {}", venv.join(STAMP).display())))?;
    if !server.is_file() {
        return Err(BedError::Install(format!(
            "pip succeeded but {} is missing",
            server.display()
        )));
    }
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        "Python tools installed"
    );
    Ok(server)
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<(), BedError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BedError::Install(format!("{what}: cannot run: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(BedError::Install(format!(
            "{what} failed ({}):\n{}",
            out.status,
            tail.join("\n")
        )));
    }
    Ok(())
}

struct FileLock<'f>(&'f std::fs::File);

impl<'f> FileLock<'f> {
    fn exclusive(f: &'f std::fs::File) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: flock on a valid open descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Self(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A running moto server. Dropping it kills the server's process group and waits for it.
pub struct Moto {
    addr: SocketAddr,
    pid: u32,
    stop: Option<mpsc::Sender<()>>,
    guardian: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto")
            .field("addr", &self.addr)
            .field("pid", &self.pid)
            .finish()
    }
}

/// What the bed changes in moto's behaviour (see `moto_launcher.py`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotoOptions {
    /// How long a DynamoDB transaction holds its items: another transaction naming one of them
    /// meanwhile is cancelled (`TransactionConflict`), a single write to one fails with
    /// `TransactionConflictException`. Zero: never. moto applies a transaction at once, where
    /// DynamoDB's takes two reads or writes of each item; the default is of the order of
    /// twice a single write's latency within a region.
    pub transaction_window: Duration,
}

impl Default for MotoOptions {
    fn default() -> Self {
        MotoOptions {
            transaction_window: Duration::from_millis(25),
        }
    }
}

impl Moto {
    /// Install if needed, start a fresh server on a free loopback port and wait until it answers.
    /// Blocking (call it from `spawn_blocking` in async code).
    pub fn start() -> Result<Self, BedError> {
        Self::start_configured(MotoOptions::default())
    }

    /// [`Moto::start`] with `options`.
    pub fn start_configured(options: MotoOptions) -> Result<Self, BedError> {
        let server = ensure_installed()?;
        Self::start_with(&server, options)
    }

    /// Start the given `moto_server` executable.
    pub fn start_with(server: &Path, options: MotoOptions) -> Result<Self, BedError> {
        let started = Instant::now();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(u32, u16), String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let server = server.to_path_buf();
        let guardian = std::thread::Builder::new()
            .name("moto-guardian".into())
            .spawn(move || guard(server, options, ready_tx, stop_rx))
            .map_err(|source| BedError::Io {
                what: "spawn the moto guardian thread".into(),
                source,
            })?;
        let mut moto = Moto {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid: 0,
            stop: Some(stop_tx),
            guardian: Some(guardian),
        };
        let (pid, port) = match ready_rx.recv_timeout(Duration::from_secs(90)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(BedError::Moto(e)),
            Err(_) => {
                return Err(BedError::Moto(
                    "moto_server did not report its port within 90 s".into(),
                ));
            }
        };
        moto.pid = pid;
        moto.addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match http_blocking(moto.addr, "GET", "/moto-api/") {
                Ok(200) => break,
                other if Instant::now() > deadline => {
                    return Err(BedError::Moto(format!(
                        "moto at {} not ready after 60 s: {other:?}",
                        moto.addr
                    )));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        tracing::info!(endpoint = %moto.endpoint_url(), pid, secs = started.elapsed().as_secs_f64(), "moto server ready");
        Ok(moto)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Process id of the server (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Forget every resource (`POST /moto-api/reset`).
    pub async fn reset(&self) -> Result<(), BedError> {
        let addr = self.addr;
        let status =
            tokio::task::spawn_blocking(move || http_blocking(addr, "POST", "/moto-api/reset"))
                .await
                .map_err(|e| BedError::Moto(format!("reset task failed: {e}")))?
                .map_err(|e| BedError::Moto(format!("reset: {e}")))?;
        if status != 200 {
            return Err(BedError::Moto(format!("reset answered HTTP {status}")));
        }
        Ok(())
    }

    /// Stop the server now (also done on drop).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(g) = self.guardian.take() {
            let _ = g.join();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `moto_server` with a listen backlog of 4096 (the kernel caps it at `net.core.somaxconn`).
/// moto's server entry point with the bed's changes (each explained in the file).
const MOTO_LAUNCHER: &str = include_str!("moto_launcher.py");

/// The guardian thread: forks moto (so PDEATHSIG is tied to this thread, which lives as long as
/// the `Moto`), reports its port, then waits for the stop signal or moto's death.
fn guard(
    server: PathBuf,
    options: MotoOptions,
    ready: mpsc::Sender<Result<(u32, u16), String>>,
    stop: mpsc::Receiver<()>,
) {
    // moto's own entry point, run by the venv's python with the changes of `moto_launcher.py`.
    let mut cmd = Command::new(server.with_file_name("python"));
    cmd.args(["-c", MOTO_LAUNCHER, "-H", "127.0.0.1", "-p", "0"])
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(
            "COSTOP_BED_DYNAMODB_TRANSACTION_MS",
            format!("{:.3}", options.transaction_window.as_secs_f64() * 1e3),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::process::die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start {}: {e}", server.display())));
            return;
        }
    };
    let pid = child.id();
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_reader(out, port_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_reader(err, port_tx));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut reported = false;
    loop {
        if !reported {
            match port_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => {
                    reported = true;
                    let _ = ready.send(Ok((pid, port)));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = ready.send(Err(
                        "moto_server closed its output without reporting a port".into(),
                    ));
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        match stop.recv_timeout(Duration::from_millis(if reported { 250 } else { 1 })) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            tracing::error!(pid, %status, "moto server exited on its own");
            if !reported {
                let _ = ready.send(Err(format!(
                    "moto_server exited before it was ready ({status})"
                )));
            }
            return;
        }
    }
    // SAFETY: signalling our own child's process group (the group id is the child's pid).
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    tracing::debug!(pid, "moto server stopped");
}

fn spawn_reader(stream: impl Read + Send + 'static, port: mpsc::Sender<u16>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut port = Some(port);
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &port
                && let Some(p) = parse_running_on(&line)
            {
                let _ = tx.send(p);
                port = None;
            }
            tracing::trace!(target: "moto", "{line}");
        }
    })
}

/// The port from werkzeug's `* Running on http://127.0.0.1:PORT` line.
fn parse_running_on(line: &str) -> Option<u16> {
    let rest = &line[line.find("Running on http://")? + "Running on http://".len()..];
    let rest = &rest[rest.rfind(':')? + 1..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|p| *p != 0)
}

/// A minimal HTTP/1.1 request; returns the status code.
fn http_blocking(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad HTTP response: {head:?}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_from_werkzeugs_banner() {
        assert_eq!(
            parse_running_on(" * Running on http://127.0.0.1:38815"),
            Some(38815)
        );
        assert_eq!(
            parse_running_on("\x1b[33m * Running on http://127.0.0.1:4566\x1b[0m"),
            Some(4566)
        );
        assert_eq!(parse_running_on("Press CTRL+C to quit"), None);
    }

    #[test]
    fn moto_is_pinned_once() {
        assert!(
            moto_version()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()),
            "{}",
            moto_version()
        );
    }
}
