//! Shared helpers for the integration tests: they start the real `switchyard` and
//! `switchyard-echo` binaries as child processes and talk to them over real sockets on 127.0.0.1,
//! with the real `curl` binary (HTTP/1.1 and HTTP/2 prior knowledge) or with raw TCP bytes.
//!
//! Rules every helper follows, so that failures are about the gateway and never about the test:
//! - every wait is a bounded poll for a condition (never sleep-and-hope) and panics with the
//!   children's stderr when the bound is reached;
//! - every child is killed on drop, and when a test panics its children's output is printed;
//! - nothing leaves 127.0.0.1.
//!
//! Each test binary compiles this module separately and uses a part of it, hence `dead_code`.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cluster;
pub mod scripted;

/// Path of the gateway binary built by cargo for these tests.
pub const GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_switchyard");
/// Path of the sample backend binary built by cargo for these tests.
pub const ECHO_BIN: &str = env!("CARGO_BIN_EXE_switchyard-echo");

/// Readiness polls: up to `READY_TRIES` tries `POLL_INTERVAL` apart (10 s in all; a loaded CI
/// machine runs many gateways in parallel).
pub const READY_TRIES: u32 = 400;
/// Interval between two tries of any bounded poll.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Upper bound for reading one reply on a raw TCP connection.
pub const RAW_READ_LIMIT: Duration = Duration::from_secs(15);
/// `curl --max-time` for every request (far above any deadline a test sets).
pub const CURL_MAX_TIME_S: u32 = 30;
/// How many times a gateway start is retried when its chosen port turned out to be taken.
const START_ATTEMPTS: u32 = 5;

// ---------------------------------------------------------------------------------------------
// Temporary directories and ports
// ---------------------------------------------------------------------------------------------

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "switchyard-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to a file in this directory and returns its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path.join(name);
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Ports already handed out by this test binary. The gateway binds with SO_REUSEPORT, so two
/// gateways of this process given the same port would both bind it and share its traffic; the
/// set makes that impossible. (Collisions with other processes end in address-in-use and a retry.)
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A port on 127.0.0.1 that was free a moment ago and that this process has not handed out before.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        drop(l);
        if handed_out().lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("no free port found in 100 tries");
}

/// An address on 127.0.0.1 where nothing listens and nothing can start listening while this value
/// lives: the socket is bound but never listens, so a connection attempt is refused (RST).
pub struct DeadAddr {
    _socket: socket2::Socket,
    pub addr: String,
}

impl DeadAddr {
    pub fn new() -> DeadAddr {
        DeadAddr::bind("127.0.0.1:0".parse().unwrap())
    }

    /// Holds `addr` (a port whose listener just went away) so that nothing else, in this test
    /// binary or another process, can start listening there while the test expects refusals.
    pub fn hold(addr: &str) -> DeadAddr {
        DeadAddr::bind(addr.parse().expect("a socket address"))
    }

    fn bind(addr: SocketAddr) -> DeadAddr {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        // The dead listener's accepted connections may still hold this port (closing, or in
        // TIME_WAIT); they were accepted by a SO_REUSEPORT listener, so a SO_REUSEPORT bind may
        // share the port with them. Nothing else can listen here: this binary hands the port out
        // no more, and the kernel never picks a bound port for a bind to port 0.
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
        socket
            .bind(&addr.into())
            .unwrap_or_else(|e| panic!("bind dead port {addr}: {e}"));
        let local = socket
            .local_addr()
            .expect("local_addr")
            .as_socket()
            .expect("inet address");
        handed_out().lock().unwrap().insert(local.port());
        DeadAddr {
            _socket: socket,
            addr: local.to_string(),
        }
    }
}

impl Default for DeadAddr {
    fn default() -> Self {
        Self::new()
    }
}

/// A gRPC backend that never answers a call: it accepts connections, sends its SETTINGS and
/// acknowledges the client's PINGs as any HTTP/2 server does (the gateway sends no call before
/// the answer to its first PING), reads HTTP/2 frames until a call's HEADERS frame arrives,
/// counts the call and ends the connection as its [`Ending`] says.
pub struct DyingBackend {
    pub addr: String,
    calls: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

/// How a [`DyingBackend`] ends a connection once a call has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A reset without a word, as when the kernel reaps a backend killed with a call in flight:
    /// the call may or may not have been processed.
    Reset,
    /// The HTTP/2 way of shutting down: GOAWAY (NO_ERROR) with last stream id 0, which tells
    /// the client that none of its streams was processed, then a clean close.
    GoAway,
}

/// How long a dying backend's connection waits for a call (or, after its GOAWAY, for the client
/// to close) before giving up on it.
const DYING_READ_TIMEOUT: Duration = Duration::from_secs(5);

impl DyingBackend {
    /// A backend that resets every connection a call arrives on.
    pub fn start() -> DyingBackend {
        DyingBackend::ending(Ending::Reset)
    }

    /// A backend that ends every connection a call arrives on as `ending` says.
    pub fn ending(ending: Ending) -> DyingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr").to_string();
        let calls = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (calls, stop) = (calls.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let calls = calls.clone();
                    std::thread::spawn(move || {
                        if read_until_call(&conn) {
                            calls.fetch_add(1, Ordering::SeqCst);
                        }
                        match ending {
                            // Linger 0: the close is a reset, as when the kernel reaps a killed
                            // process.
                            Ending::Reset => {
                                let _ =
                                    socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
                            }
                            Ending::GoAway => go_away(&conn),
                        }
                    });
                }
            })
        };
        DyingBackend {
            addr,
            calls,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Calls received (and never answered) so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for DyingBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Sends a GOAWAY that processed no stream, closes the sending side and waits for the client to
/// close (so that the client reads the GOAWAY before any reset).
fn go_away(mut conn: &TcpStream) {
    // Length 8, type 7, no flags, stream 0; last stream id 0, error code NO_ERROR.
    const GOAWAY: [u8; 17] = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let _ = conn.write_all(&GOAWAY);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    // A client that read the GOAWAY closes at once; each read ends within the read timeout.
    const MAX_READS: usize = 64;
    let mut sink = [0u8; 4096];
    for _ in 0..MAX_READS {
        if !matches!(conn.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Serves an HTTP/2 client connection as a server that takes no call yet would: sends its
/// SETTINGS (empty: the defaults), then reads frames, acknowledging each PING, until a HEADERS
/// frame (a call) arrives: true then, false on end of stream, error or timeout.
fn read_until_call(mut conn: &TcpStream) -> bool {
    const PREFACE_LEN: usize = 24;
    const FRAME_HEAD_LEN: usize = 9;
    const HEADERS: u8 = 1;
    const PING: u8 = 6;
    const ACK: u8 = 1;
    const PING_LEN: usize = 8;
    const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    // A preface, a PING and a call's HEADERS come in a few reads; each is bounded in time.
    const MAX_READS: usize = 256;
    conn.set_read_timeout(Some(DYING_READ_TIMEOUT))
        .expect("read timeout");
    if conn.write_all(&SETTINGS).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut at = PREFACE_LEN;
    for _ in 0..MAX_READS {
        while buf.len() >= at + FRAME_HEAD_LEN {
            let head = &buf[at..at + FRAME_HEAD_LEN];
            if head[3] == HEADERS {
                return true;
            }
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            if head[3] == PING && head[4] & ACK == 0 {
                let payload_at = at + FRAME_HEAD_LEN;
                if buf.len() < payload_at + PING_LEN {
                    break;
                }
                let mut pong = vec![0, 0, PING_LEN as u8, PING, ACK, 0, 0, 0, 0];
                pong.extend_from_slice(&buf[payload_at..payload_at + PING_LEN]);
                if conn.write_all(&pong).is_err() {
                    return false;
                }
            }
            at += FRAME_HEAD_LEN + len;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    false
}

/// Polls `cond` up to `tries` times, `POLL_INTERVAL` apart; true as soon as it holds.
pub fn poll_until(tries: u32, mut cond: impl FnMut() -> bool) -> bool {
    for i in 0..tries {
        if cond() {
            return true;
        }
        if i + 1 < tries {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    false
}

/// Polls `cond` `POLL_INTERVAL` apart until it holds (true) or `limit` has passed by the clock
/// (false). For conditions whose one check may itself take long (a write that waits for a broker
/// up to its own timeout), where a count of tries would multiply that time.
pub fn poll_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A child process whose stdout and stderr go to files; killed (SIGKILL) and reaped on drop.
/// When the test is panicking, its output is printed so the failure shows what the child said.
pub struct Proc {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _dir: TempDir,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout/stderr captured to files.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let dir = TempDir::new(name);
        let stdout_path = dir.path().join("stdout");
        let stderr_path = dir.path().join("stderr");
        let out = fs::File::create(&stdout_path).expect("create stdout file");
        let err = fs::File::create(&stderr_path).expect("create stderr file");
        // A SWITCHYARD_* variable in the developer's environment must not change what a test sees;
        // one the test set on `cmd` itself is what the test wants, so it stays (removing it here,
        // after the test's `env`, would cancel the test's own setting).
        let set_by_test: HashSet<std::ffi::OsString> = cmd
            .get_envs()
            .filter(|(_, value)| value.is_some())
            .map(|(k, _)| k.to_os_string())
            .collect();
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SWITCHYARD_") && !set_by_test.contains(&k) {
                cmd.env_remove(&k);
            }
        }
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            exited: None,
            stdout_path,
            stderr_path,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        fs::read(&self.stdout_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the child has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Waits (bounded) for the child to exit; panics with its output after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let tries = (limit.as_millis() / POLL_INTERVAL.as_millis()).max(1) as u32;
        if poll_until(tries, || self.try_exit().is_some()) {
            return self.exited.unwrap();
        }
        panic!(
            "{} did not exit within {limit:?}\n{}",
            self.name,
            self.describe()
        );
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the child.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with the pid of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.child.id());
    }

    /// Kills the child now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Waits (bounded) for a stdout line starting with `prefix` and returns it.
    /// Panics with the output if the child exits first or the bound is reached.
    pub fn wait_stdout_line(&mut self, prefix: &str) -> String {
        let mut found = None;
        poll_until(READY_TRIES, || {
            found = self
                .stdout()
                .lines()
                .find(|l| l.starts_with(prefix))
                .map(str::to_string);
            found.is_some() || self.try_exit().is_some()
        });
        // One more look: the line may have been written just before the child exited.
        if found.is_none() {
            found = self
                .stdout()
                .lines()
                .find(|l| l.starts_with(prefix))
                .map(str::to_string);
        }
        found.unwrap_or_else(|| {
            panic!(
                "{} never printed a line starting with {prefix:?}\n{}",
                self.name,
                self.describe()
            )
        })
    }

    /// Name, exit status and captured output, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- {} (pid {}, exit {:?})\n--- stdout:\n{}\n--- stderr:\n{}",
            self.name,
            self.child.id(),
            self.exited,
            tail(&self.stdout()),
            tail(&self.stderr())
        )
    }
}

/// What a child run by [`run_bounded`] left: its exit status and its output.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end (stdin closed, output captured) and returns what it left. A child still
/// running after `limit` is killed and the test fails with its output: for tools that can wait
/// forever (h2load for a lost stream, a Kafka client for a broker).
pub fn run_bounded(name: &str, cmd: Command, limit: Duration) -> Ran {
    let mut proc = Proc::spawn(name, cmd);
    let status = proc.wait_exit(limit);
    Ran {
        status,
        stdout: proc.stdout(),
        stderr: proc.stderr(),
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
    }
}

/// The last 8 KiB of a text, so a chatty child does not bury the failure.
fn tail(s: &str) -> &str {
    const MAX: usize = 8192;
    if s.len() <= MAX {
        return s;
    }
    let mut start = s.len() - MAX;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

// ---------------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------------

/// A running `switchyard` gateway on 127.0.0.1:<free port>.
pub struct Gateway {
    pub addr: SocketAddr,
    pub proc: Proc,
    _dir: TempDir,
}

/// Two shards, so that cross-shard behaviour is exercised, unless the process may only run on
/// one CPU (shards are pinned one per CPU).
pub fn default_shards() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2) as u32)
}

/// Options for starting a gateway.
/// By default: `--listen 127.0.0.1:<free> --shards {default_shards()}`.
pub struct GatewayBuilder {
    args: Vec<String>,
    config: Option<String>,
    envs: Vec<(String, String)>,
    shards: Option<u32>,
    hosts: Option<String>,
}

impl Gateway {
    /// A gateway with default options.
    pub fn start() -> Gateway {
        Gateway::builder().start()
    }

    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            args: Vec::new(),
            config: None,
            envs: Vec::new(),
            shards: Some(default_shards()),
            hosts: None,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET {path}` over HTTP/1.1 with curl.
    pub fn get(&self, path: &str) -> Resp {
        http("GET", self.url(path)).send()
    }

    /// `GET {path}` over HTTP/2 (prior knowledge) with curl.
    pub fn get_h2(&self, path: &str) -> Resp {
        http("GET", self.url(path)).h2().send()
    }
}

impl GatewayBuilder {
    /// Adds one command-line argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds several command-line arguments.
    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }

    /// Writes `toml` to a file and passes it with `--config`.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }

    /// Sets an environment variable for the gateway.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.to_string(), v.to_string()));
        self
    }

    /// `--shards N`, or `None` to leave the gateway's default.
    pub fn shards(mut self, n: Option<u32>) -> Self {
        self.shards = n;
        self
    }

    /// Runs the gateway with `contents` as its `/etc/hosts` (see [`with_hosts_file`]: root only).
    pub fn hosts(mut self, contents: &str) -> Self {
        self.hosts = Some(contents.to_string());
        self
    }

    /// Starts the gateway and waits (bounded) until `GET /-/health` answers 200. A start that
    /// fails with address-in-use is retried on another port; any other failure panics with stderr.
    pub fn start(self) -> Gateway {
        let dir = TempDir::new("gateway");
        let config_path = self
            .config
            .as_ref()
            .map(|c| dir.write("switchyard.toml", c.as_bytes()));
        let hosts_path = self
            .hosts
            .as_ref()
            .map(|h| dir.write("hosts", h.as_bytes()));
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut cmd = match &hosts_path {
                Some(hosts) => with_hosts_file(hosts, GATEWAY_BIN),
                None => Command::new(GATEWAY_BIN),
            };
            cmd.arg("--listen").arg(addr.to_string());
            if let Some(n) = self.shards {
                cmd.arg("--shards").arg(n.to_string());
            }
            if let Some(p) = &config_path {
                cmd.arg("--config").arg(p);
            }
            cmd.args(&self.args);
            for (k, v) in &self.envs {
                cmd.env(k, v);
            }
            let mut proc = Proc::spawn("switchyard", cmd);
            match wait_healthy(&mut proc, addr) {
                Ok(()) => {
                    return Gateway {
                        addr,
                        proc,
                        _dir: dir,
                    }
                }
                Err(Exited::AddrInUse) => {
                    last_failure = proc.describe();
                    continue;
                }
                Err(Exited::Other) => panic!(
                    "gateway on {addr} did not become healthy\n{}",
                    proc.describe()
                ),
            }
        }
        panic!("gateway start failed {START_ATTEMPTS} times with address in use\n{last_failure}");
    }
}

/// A command that runs `program` with the file at `hosts` as its `/etc/hosts`: in a mount
/// namespace of its own (`unshare --mount`, private propagation), where the file is bind-mounted
/// over `/etc/hosts`, so that nothing outside sees it. The resolver reads `/etc/hosts` as always
/// (`files` in nsswitch.conf), so a test can have a name resolve as some system's hosts file has
/// it (Debian's `::1 localhost` beside `127.0.0.1 localhost`) without touching this machine's.
/// Needs root (CAP_SYS_ADMIN), as the suite runs (README, Tests); `unshare` and `mount` are
/// util-linux's. The command's arguments follow the program's; `sh` execs it, so its pid is the
/// program's.
pub fn with_hosts_file(hosts: &Path, program: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
        .arg(hosts)
        .arg(program);
    cmd
}

/// The addresses `getent ahosts NAME` gives for `name` (glibc's `getaddrinfo`, in its order) with
/// `hosts` as `/etc/hosts` ([`with_hosts_file`]).
pub fn resolved_with_hosts_file(hosts: &Path, name: &str) -> Vec<String> {
    let mut cmd = with_hosts_file(hosts, "getent");
    cmd.args(["ahosts", name]);
    let ran = run_bounded("getent", cmd, GETENT_LIMIT);
    assert!(
        ran.status.success(),
        "getent ahosts {name} in a mount namespace of its own (needs root): {ran:?}"
    );
    let mut seen = Vec::new();
    for line in ran.stdout.lines() {
        let addr = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if !addr.is_empty() && !seen.contains(&addr) {
            seen.push(addr);
        }
    }
    seen
}

/// Bound on one `getent` run: it reads a local file.
const GETENT_LIMIT: Duration = Duration::from_secs(10);

enum Exited {
    AddrInUse,
    Other,
}

/// Polls `GET /-/health` on `addr` until 200, or fails when the child exits or the bound is hit.
fn wait_healthy(proc: &mut Proc, addr: SocketAddr) -> Result<(), Exited> {
    for _ in 0..READY_TRIES {
        if proc.try_exit().is_some() {
            let err = proc.stderr().to_lowercase();
            // The gateway's own words (src/listener.rs), then the OS's as other tools print them.
            let in_use = err.contains("address is already in use")
                || err.contains("address already in use")
                || err.contains("addrinuse")
                || err.contains("address in use")
                || err.contains("os error 98");
            return Err(if in_use {
                Exited::AddrInUse
            } else {
                Exited::Other
            });
        }
        if health_probe(addr) {
            return Ok(());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Err(Exited::Other)
}

/// One `GET /-/health` over raw TCP with short timeouts; true on a 200 status line.
pub fn health_probe(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(250)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /-/health HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 32];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf[..got].starts_with(b"HTTP/1.1 200")
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// A running `switchyard-echo` sample backend listening on 127.0.0.1:<port chosen by the OS>.
pub struct Echo {
    pub proc: Proc,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub instance: String,
}

/// Echo starts tried before giving up on a port this binary has not handed out.
const ECHO_PORT_TRIES: usize = 20;

/// The line the echo prints once it listens.
pub const ECHO_READY_PREFIX: &str = "switchyard-echo listening on ";

impl Echo {
    /// Starts an echo with `--listen 127.0.0.1:0 --instance {instance}` and learns its port from
    /// its `switchyard-echo listening on 127.0.0.1:PORT` line.
    pub fn start(instance: &str) -> Echo {
        Echo::start_with(instance, &[])
    }

    /// Like `start` with extra arguments (e.g. `--register URL --service NAME`).
    ///
    /// The port is entered in the set of ports this binary hands out. The echo listens with
    /// SO_REUSEPORT, as the gateway does, so a gateway given the same port by [`free_port`] would
    /// share it and take some of the echo's connections: a port handed out before is refused and
    /// the echo started again.
    pub fn start_with(instance: &str, extra: &[&str]) -> Echo {
        for _ in 0..ECHO_PORT_TRIES {
            let mut cmd = Command::new(ECHO_BIN);
            cmd.args(["--listen", "127.0.0.1:0", "--instance", instance])
                .args(extra);
            let mut proc = Proc::spawn(&format!("switchyard-echo[{instance}]"), cmd);
            let line = proc.wait_stdout_line(ECHO_READY_PREFIX);
            let addr = line[ECHO_READY_PREFIX.len()..].trim().to_string();
            let parsed: SocketAddr = addr
                .parse()
                .unwrap_or_else(|e| panic!("echo printed a bad address {addr:?}: {e}"));
            assert!(parsed.ip().is_loopback(), "echo listens on {addr}");
            assert_ne!(parsed.port(), 0, "echo printed port 0");
            if handed_out().lock().unwrap().insert(parsed.port()) {
                return Echo {
                    proc,
                    addr,
                    instance: instance.to_string(),
                };
            }
            proc.kill();
        }
        panic!("no echo port free of this binary's gateways in {ECHO_PORT_TRIES} tries");
    }

    /// Kills the echo, waits until its connections are closed, and keeps its port refusing
    /// connections while the returned value lives.
    ///
    /// The wait matters because the echo runs on io_uring: the kernel closes a killed process's
    /// sockets when it tears down its rings, which can finish after `waitpid` has returned, and a
    /// request a gateway sends in between reaches a live socket of a dead process (a reset, 502).
    /// Without the hold, a parallel test could start listening on the freed port and a gateway
    /// expecting a refusal would connect to it.
    pub fn kill_and_hold(&mut self) -> DeadAddr {
        self.proc.kill();
        let port = self
            .addr
            .parse::<SocketAddr>()
            .expect("an echo address")
            .port();
        // The kernel closes a killed process's sockets as it tears down its io_uring rings, which
        // may finish after the process was reaped: its listener too, which a bind to its port
        // would collide with (EADDRINUSE), and its connections.
        let gone = poll_until(READY_TRIES, || !has_listener_or_established(port));
        assert!(
            gone,
            "the killed echo's listener or connections on port {port} never closed"
        );
        DeadAddr::hold(&self.addr)
    }

    /// Starts an echo at `addr`: the address of one stopped before (its port is this binary's
    /// already; a [`DeadAddr`] holding it must be dropped first), as when an instance restarts.
    pub fn start_at(instance: &str, addr: &str) -> Echo {
        let mut cmd = Command::new(ECHO_BIN);
        cmd.args(["--listen", addr, "--instance", instance]);
        let mut proc = Proc::spawn(&format!("switchyard-echo[{instance}]"), cmd);
        let line = proc.wait_stdout_line(ECHO_READY_PREFIX);
        assert_eq!(line[ECHO_READY_PREFIX.len()..].trim(), addr);
        Echo {
            proc,
            addr: addr.to_string(),
            instance: instance.to_string(),
        }
    }

    /// Starts an echo and registers it with the gateway as `{service}/{instance}`.
    pub fn registered(gw: &Gateway, service: &str, instance: &str) -> Echo {
        let e = Echo::start(instance);
        register(gw, service, instance, &e.addr);
        e
    }
}

/// Whether a TCP socket listens on local port `port`, or a connection established there remains
/// (from /proc/net/tcp and tcp6).
fn has_listener_or_established(port: u16) -> bool {
    const ESTABLISHED: &str = "01";
    const LISTEN: &str = "0A";
    has_socket_in(port, &[ESTABLISHED, LISTEN])
}

/// Whether a connection to local port `port` still counts for the process listening there: one
/// established (accepted or waiting to be), being set up, or closed by the client but not yet by
/// the process (from /proc/net/tcp and tcp6). A socket the process has closed (it lingers in
/// FIN_WAIT, LAST_ACK or TIME_WAIT) does not count. Reading the kernel's table takes none of the
/// connection slots a check over a connection would.
pub fn connections_held(port: u16) -> bool {
    const ESTABLISHED: &str = "01";
    const SYN_RECV: &str = "03";
    const CLOSE_WAIT: &str = "08";
    has_socket_in(port, &[ESTABLISHED, SYN_RECV, CLOSE_WAIT])
}

/// Whether a TCP socket with local port `port` is in one of `states` (hex, as the kernel prints
/// them).
fn has_socket_in(port: u16, states: &[&str]) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1).unwrap_or("");
                let state = fields.nth(1).unwrap_or("");
                let local_port = local
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                local_port == Some(port) && states.contains(&state)
            })
    })
}

/// The queues of the IPv4 TCP socket from `local` to `remote` in /proc/net/tcp, in bytes:
/// (sent and not yet acknowledged, received and not yet read by its process). `None` if there is
/// no such socket.
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u32, u32)> {
    // The kernel prints an IPv4 address as the hex of its four bytes (network order) read as one
    // number in host order, and the port in hex.
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(_) => panic!("tcp_queues: {a} is not IPv4"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u32::from_str_radix(tx, 16).ok()?,
            u32::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// Fails the test with a clear message unless `python3` can import grpcio and grpcio-tools.
/// (CI installs them in `.ci/install-deps`; a missing peer must not look like a passing test.)
pub fn require_python_grpc() {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import grpc, grpc_tools.protoc"]);
    let ran = run_bounded("python3", cmd, PYTHON_IMPORT_LIMIT);
    assert!(
        ran.status.success(),
        "python3 cannot import grpcio/grpcio-tools (run `.ci/install-deps`, which installs the \
         versions of .ci/requirements.txt): {}",
        ran.stderr
    );
}

/// Bound of a `python3 -c "import …"` check (a cold start on a loaded machine takes seconds).
pub const PYTHON_IMPORT_LIMIT: Duration = Duration::from_secs(60);

/// The grpcio (Python) ForwardingService peer of `tests/peers/grpc_peer.py`.
pub struct GrpcPeer {
    pub proc: Proc,
    pub addr: String,
}

/// The line the grpcio peer prints once it listens.
pub const PEER_READY_PREFIX: &str = "grpc-peer listening on ";

impl GrpcPeer {
    pub fn start() -> GrpcPeer {
        require_python_grpc();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(root.join("tests/peers/grpc_peer.py"))
            .arg("--port")
            .arg("0")
            .arg("--proto-root")
            .arg(root.join("proto"));
        let mut proc = Proc::spawn("grpc-peer", cmd);
        let line = proc.wait_stdout_line(PEER_READY_PREFIX);
        let addr = line[PEER_READY_PREFIX.len()..].trim().to_string();
        GrpcPeer { proc, addr }
    }
}

// ---------------------------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------------------------

/// `PUT /-/services/{svc}/instances/{id}` with `{"address": addr}`; panics unless 200 or 201.
pub fn register(gw: &Gateway, svc: &str, id: &str, addr: &str) -> Resp {
    let body = serde_json::json!({ "address": addr }).to_string();
    let r = put_instance(gw, svc, id, Some(body.as_bytes()), None);
    assert!(
        r.status == 200 || r.status == 201,
        "register {svc}/{id} at {addr}: {} {}",
        r.status,
        r.text()
    );
    r
}

/// `PUT /-/services/{svc}/instances/{id}` with an arbitrary body and optional bearer token.
pub fn put_instance(
    gw: &Gateway,
    svc: &str,
    id: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> Resp {
    let mut req = http("PUT", gw.url(&format!("/-/services/{svc}/instances/{id}")));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    req.send()
}

/// `DELETE /-/services/{svc}/instances/{id}` with an optional bearer token.
pub fn deregister(gw: &Gateway, svc: &str, id: &str, token: Option<&str>) -> Resp {
    let mut req = http(
        "DELETE",
        gw.url(&format!("/-/services/{svc}/instances/{id}")),
    );
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    req.send()
}

/// `GET /-/services` as JSON (asserts 200).
pub fn services(gw: &Gateway) -> Value {
    let r = gw.get("/-/services");
    assert_eq!(r.status, 200, "GET /-/services: {}", r.text());
    r.json()
}

/// The names listed by `GET /-/services`.
pub fn service_names(gw: &Gateway) -> Vec<String> {
    services(gw)["services"]
        .as_array()
        .expect("services array")
        .iter()
        .map(|s| s["name"].as_str().expect("service name").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP through curl
// ---------------------------------------------------------------------------------------------

/// Header fields in wire order, names lower-cased.
pub type Headers = Vec<(String, String)>;

/// A response: final status, headers in wire order (names lower-cased), body bytes.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// "1.1" or "2"
    pub version: String,
    /// Statuses of interim (1xx) responses received before the final one.
    pub informational: Vec<u16>,
}

impl Resp {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): status {} headers {:?} body {:?}",
                self.status,
                self.headers,
                self.text()
            )
        })
    }
}

/// A request to be made with the `curl` binary.
pub struct Http {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    h2: bool,
    max_time: u32,
    extra: Vec<std::ffi::OsString>,
}

/// Starts building a request; `send()` runs it.
pub fn http(method: &str, url: impl Into<String>) -> Http {
    Http {
        method: method.to_string(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
        h2: false,
        max_time: CURL_MAX_TIME_S,
        extra: Vec::new(),
    }
}

impl Http {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The request body (sent with `--data-binary @file`, so any bytes are fine). Unless a
    /// `content-type` header is given, curl's default form content-type is suppressed.
    pub fn body(mut self, b: impl AsRef<[u8]>) -> Self {
        self.body = Some(b.as_ref().to_vec());
        self
    }

    /// Use HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub fn h2(mut self) -> Self {
        self.h2 = true;
        self
    }

    /// An extra curl argument.
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.extra.push(a.as_ref().to_os_string());
        self
    }

    /// Runs curl; panics with curl's stderr if the transfer itself failed.
    pub fn send(self) -> Resp {
        let what = format!("{} {}", self.method, self.url);
        self.try_send()
            .unwrap_or_else(|e| panic!("curl {what} failed: {e}"))
    }

    /// Runs curl; `Err(stderr)` when curl reports a transport error (e.g. empty reply).
    pub fn try_send(self) -> Result<Resp, String> {
        let dir = TempDir::new("curl");
        let head_path = dir.path().join("head");
        let body_path = dir.path().join("body");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--path-as-is", "--globoff"])
            .arg(if self.h2 {
                "--http2-prior-knowledge"
            } else {
                "--http1.1"
            })
            .arg("--max-time")
            .arg(self.max_time.to_string())
            .arg("-D")
            .arg(&head_path)
            .arg("-o")
            .arg(&body_path);
        match self.method.as_str() {
            "HEAD" => {
                cmd.arg("--head");
            }
            "GET" if self.body.is_none() => {}
            m => {
                cmd.arg("-X").arg(m);
            }
        }
        for (n, v) in &self.headers {
            cmd.arg("-H").arg(format!("{n}: {v}"));
        }
        if let Some(b) = &self.body {
            let p = dir.write("req-body", b);
            let mut arg = std::ffi::OsString::from("@");
            arg.push(p.as_os_str());
            cmd.arg("--data-binary").arg(arg);
            if !self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                cmd.arg("-H").arg("Content-Type:");
            }
        }
        cmd.args(&self.extra).arg(&self.url);
        let out = cmd.output().map_err(|e| format!("cannot run curl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let head = fs::read(&head_path).unwrap_or_default();
        let body = if self.method == "HEAD" {
            Vec::new() // with --head curl writes the headers to the output file
        } else {
            fs::read(&body_path).unwrap_or_default()
        };
        parse_curl_head(&head, body)
    }
}

/// Parses curl's `-D` dump: one or more header blocks (1xx interim ones, then the final one).
fn parse_curl_head(head: &[u8], body: Vec<u8>) -> Result<Resp, String> {
    let text = String::from_utf8_lossy(head);
    let mut informational = Vec::new();
    let mut final_block: Option<(String, u16, Headers)> = None;
    for block in text.split("\r\n\r\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let (version, status) = parse_status_line(status_line)
            .ok_or_else(|| format!("bad status line {status_line:?} in {text:?}"))?;
        let headers = lines
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        if (100..200).contains(&status) {
            informational.push(status);
        } else {
            final_block = Some((version, status, headers));
        }
    }
    let (version, status, headers) =
        final_block.ok_or_else(|| format!("no final response in {text:?}"))?;
    Ok(Resp {
        status,
        headers,
        body,
        version,
        informational,
    })
}

/// `HTTP/1.1 200 OK` → ("1.1", 200); `HTTP/2 200` → ("2", 200).
fn parse_status_line(line: &str) -> Option<(String, u16)> {
    let mut parts = line.split(' ');
    let version = parts.next()?.strip_prefix("HTTP/")?.to_string();
    let status = parts.next()?.parse().ok()?;
    Some((version, status))
}

/// Runs `calls` with an HTTP/2 client (the h2 crate's, on a glommio executor) connected to `addr`
/// with prior knowledge; panics if they have not finished within [`CURL_MAX_TIME_S`].
fn with_h2_client<F, Fut, T>(addr: SocketAddr, calls: F) -> T
where
    F: FnOnce(h2::client::SendRequest<bytes::Bytes>) -> Fut + 'static,
    Fut: std::future::Future<Output = T>,
    T: 'static,
{
    use switchyard::io::TokioIo;
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 << 10)
        .make()
        .expect("test executor");
    ex.run(async move {
        let work = async move {
            let stream = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            let (client, conn) = h2::client::handshake(TokioIo::new(stream))
                .await
                .expect("h2 handshake");
            glommio::spawn_local(async move {
                let _ = conn.await;
            })
            .detach();
            calls(client).await
        };
        let limit = glommio::timer::sleep(Duration::from_secs(CURL_MAX_TIME_S as u64));
        futures_lite::future::or(work, async {
            limit.await;
            panic!("HTTP/2 client: no answer within {CURL_MAX_TIME_S} s");
        })
        .await
    })
}

/// Sends `request` on `client` (ending the stream with its head when `end_stream`, else never:
/// the body does not come) and reads the answer: `(status, body)`.
async fn h2_call(
    mut client: h2::client::SendRequest<bytes::Bytes>,
    request: http::Request<()>,
    end_stream: bool,
) -> (u16, Vec<u8>) {
    client = client.ready().await.expect("ready");
    let (resp, _body) = client.send_request(request, end_stream).expect("send");
    read_h2_answer(resp).await
}

/// Awaits an HTTP/2 answer and reads its body whole, giving its window back as it goes:
/// `(status, body)`.
async fn read_h2_answer(response: h2::client::ResponseFuture) -> (u16, Vec<u8>) {
    let response = response.await.expect("response");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    (status, out)
}

/// Sends every path in `paths` as concurrent streams on ONE HTTP/2 connection to `addr` and returns
/// `(status, body)` per path, in the order given.
///
/// curl 7.88's `--parallel` with `--http2-prior-knowledge` fails with "Error in the HTTP2 framing
/// layer" against any server (nghttpd too), so this uses the h2 crate's client on a glommio executor.
pub fn h2_parallel(addr: SocketAddr, paths: &[String]) -> Vec<(u16, Vec<u8>)> {
    let paths = paths.to_vec();
    with_h2_client(addr, move |client| {
        let calls = paths.into_iter().map(move |p| {
            let request = http::Request::get(format!("http://{addr}{p}"))
                .body(())
                .unwrap();
            h2_call(client.clone(), request, true)
        });
        futures_util::future::join_all(calls)
    })
}

/// Sends `request` over HTTP/2 with the h2 crate's client, for heads curl would not send as
/// they are (surrounding spaces in a value) or bodies it would not leave unsent: ends the stream
/// with the head when `end_stream`, else never sends the body. Returns `(status, body)`.
pub fn h2_send(addr: SocketAddr, request: http::Request<()>, end_stream: bool) -> (u16, Vec<u8>) {
    with_h2_client(addr, move |client| h2_call(client, request, end_stream))
}

/// What [`h2_upload`] saw.
#[derive(Debug)]
pub struct H2Upload {
    pub status: u16,
    pub body: Vec<u8>,
    /// Bytes of the request body the server's window let the client send.
    pub sent: usize,
    /// The error code the server reset the stream with, if it did.
    pub reset: Option<h2::Reason>,
}

/// Sends `request` over HTTP/2 with the h2 crate's client, then `body` chunk by chunk as the
/// server's window lets it, while reading the answer. With `end_stream` the last chunk ends the
/// stream, and the upload goes on after the answer until the body is sent or the server resets
/// the stream; without, the stream is left open after the last chunk, and once the answer is in
/// the client waits for the server to reset it (the server ends its part of a request it
/// answered early that way, RFC 9113 §8.1).
pub fn h2_upload(
    addr: SocketAddr,
    request: http::Request<()>,
    body: Vec<bytes::Bytes>,
    end_stream: bool,
) -> H2Upload {
    use std::future::poll_fn;
    use std::task::Poll;
    with_h2_client(addr, move |client| async move {
        let mut client = client.ready().await.expect("ready");
        let (response, mut stream) = client.send_request(request, false).expect("send");
        let upload = async {
            let chunks = body.len();
            let mut sent = 0;
            for (i, mut chunk) in body.into_iter().enumerate() {
                let last = end_stream && i + 1 == chunks;
                while !chunk.is_empty() {
                    stream.reserve_capacity(chunk.len());
                    // None once the stream is closed for sending (reset, or the connection gone).
                    let Some(Ok(window)) = poll_fn(|cx| stream.poll_capacity(cx)).await else {
                        return sent;
                    };
                    let part = chunk.split_to(window.min(chunk.len()));
                    sent += part.len();
                    if stream.send_data(part, last && chunk.is_empty()).is_err() {
                        return sent;
                    }
                }
            }
            sent
        };
        let (sent, (status, body)) =
            futures_lite::future::zip(upload, read_h2_answer(response)).await;
        let reset = if end_stream {
            match poll_fn(|cx| Poll::Ready(stream.poll_reset(cx))).await {
                Poll::Ready(Ok(reason)) => Some(reason),
                _ => None,
            }
        } else {
            poll_fn(|cx| stream.poll_reset(cx)).await.ok()
        };
        H2Upload {
            status,
            body,
            sent,
            reset,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Raw TCP
// ---------------------------------------------------------------------------------------------

/// A raw TCP connection to the gateway, for exact bytes on the wire (framing, keep-alive,
/// pipelining, 100-continue).
pub struct RawConn {
    pub stream: TcpStream,
    /// Bytes received and not yet taken by a read: a response's start, or an HTTP/2 frame read in
    /// part when a read's time ran out (the next read goes on from it).
    pub buf: Vec<u8>,
    closed: bool,
}

/// What `raw_exchange` saw: every byte received and whether the peer closed the connection.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// The gateway closed (EOF or reset) within `RAW_READ_LIMIT`.
    pub closed: bool,
}

impl RawReply {
    /// The first response in the reply; panics if there is none.
    pub fn response(&self) -> Resp {
        match parse_response(&self.bytes, false) {
            Some((r, _)) => r,
            None => panic!(
                "no complete HTTP response in {:?}",
                String::from_utf8_lossy(&self.bytes)
            ),
        }
    }

    /// How many responses (status lines) the reply holds.
    pub fn response_count(&self) -> usize {
        let mut n = 0;
        let mut rest: &[u8] = &self.bytes;
        while let Some((_, used)) = parse_response(rest, false) {
            n += 1;
            rest = &rest[used..];
        }
        n
    }
}

/// Writes `bytes` on a new connection and reads until the gateway closes it or `RAW_READ_LIMIT`.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> RawReply {
    let mut c = RawConn::connect(addr);
    c.send(bytes);
    let (bytes, closed) = c.read_to_close();
    RawReply { bytes, closed }
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).ok();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("set_write_timeout");
        RawConn {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// `127.0.0.1:PORT` of our end, which the gateway reports as `remote_addr`.
    pub fn local_addr(&self) -> String {
        self.stream.local_addr().expect("local_addr").to_string()
    }

    /// `GET {path}` on this connection, kept alive, and its response: every request on one
    /// connection is served by one shard.
    pub fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nhost: gw\r\n\r\n").as_bytes());
        self.read_response(false)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("raw write: {e}"));
    }

    /// Waits (bounded) until the gateway has read every byte sent so far on this connection: the
    /// kernel has them acknowledged, and the gateway's socket holds none of them unread. A test
    /// that sends a request in pieces calls this between them, so the gateway reads them apart.
    pub fn wait_read_by_peer(&self) {
        let ours = self.stream.local_addr().expect("local_addr");
        let theirs = self.stream.peer_addr().expect("peer_addr");
        let mut last = (None, None);
        let read = poll_until(READY_TRIES, || {
            last = (tcp_queues(ours, theirs), tcp_queues(theirs, ours));
            matches!(last, (Some((0, _)), Some((_, 0))))
        });
        assert!(
            read,
            "the gateway never read what was sent ({ours} → {theirs}; (unacknowledged, unread) \
             bytes of our socket, then of the gateway's: {last:?})"
        );
    }

    /// Reads more bytes into the buffer until `deadline`; false on EOF/reset/deadline.
    fn fill(&mut self, deadline: Instant) -> bool {
        if self.closed {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => false,
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => {
                // ECONNRESET and friends: the gateway closed the connection.
                self.closed = true;
                false
            }
        }
    }

    /// Reads until the buffer holds a full head (`\r\n\r\n`) and returns the head bytes, removing
    /// them from the buffer. Used for `100 Continue`.
    pub fn read_head(&mut self) -> String {
        let deadline = Instant::now() + RAW_READ_LIMIT;
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            if !self.fill(deadline) {
                panic!(
                    "no complete response head (closed: {}) in {:?}",
                    self.closed,
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads exactly one response (framed by content-length or chunked; `head_request` means the
    /// response has no body whatever its headers say). Interim 1xx responses are collected.
    pub fn read_response(&mut self, head_request: bool) -> Resp {
        let deadline = Instant::now() + RAW_READ_LIMIT;
        loop {
            if let Some((r, used)) = parse_response(&self.buf, head_request) {
                self.buf.drain(..used);
                return r;
            }
            if !self.fill(deadline) {
                // A response without length ends at close.
                if self.closed {
                    if let Some((r, used)) = parse_response_at_close(&self.buf) {
                        self.buf.drain(..used);
                        return r;
                    }
                }
                panic!(
                    "no complete response (closed: {}) in {:?}",
                    self.closed,
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Writes `bytes`; false when the gateway has closed the connection (a trickling client
    /// stops there), where [`RawConn::send`] panics.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Waits up to `limit` for the gateway to send something or close the connection; true if it
    /// did (what it sent stays buffered for the read methods). Paces a trickling client: it asserts
    /// nothing about time.
    pub fn answered_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let before = self.buf.len();
        while self.buf.len() == before && self.fill(deadline) {}
        self.buf.len() > before || self.closed
    }

    /// Reads until the gateway closes the connection (true) or `RAW_READ_LIMIT` passes (false);
    /// returns everything not consumed yet.
    pub fn read_to_close(&mut self) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + RAW_READ_LIMIT;
        while self.fill(deadline) {}
        (std::mem::take(&mut self.buf), self.closed)
    }

    /// True when the gateway closes the connection (EOF or reset) within `RAW_READ_LIMIT`
    /// without sending anything else.
    pub fn expect_closed(&mut self) -> bool {
        let (rest, closed) = self.read_to_close();
        assert!(
            rest.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&rest)
        );
        closed
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses the head of a response at the start of `buf`: (version, status, headers, head length).
fn parse_head(buf: &[u8]) -> Option<(String, u16, Headers, usize)> {
    let end = find(buf, b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let (version, status) = parse_status_line(lines.next()?)?;
    let headers = lines
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Some((version, status, headers, end + 4))
}

/// Parses one complete HTTP/1.x response (after any 1xx ones) from the start of `buf`; returns it
/// and the number of bytes it used, or None when more bytes are needed.
pub fn parse_response(buf: &[u8], head_request: bool) -> Option<(Resp, usize)> {
    let mut pos = 0;
    let mut informational = Vec::new();
    loop {
        let (version, status, headers, head_len) = parse_head(&buf[pos..])?;
        pos += head_len;
        if (100..200).contains(&status) {
            informational.push(status);
            continue;
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
            version,
            informational,
        };
        if head_request || status == 204 || status == 304 {
            return Some((resp, pos));
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            let (body, used) = dechunk(&buf[pos..])?;
            resp.body = body;
            return Some((resp, pos + used));
        }
        let len: usize = resp.header("content-length")?.parse().ok()?;
        if buf.len() < pos + len {
            return None;
        }
        resp.body = buf[pos..pos + len].to_vec();
        return Some((resp, pos + len));
    }
}

/// A response delimited by the connection close (no content-length, not chunked).
fn parse_response_at_close(buf: &[u8]) -> Option<(Resp, usize)> {
    let (version, status, headers, head_len) = parse_head(buf)?;
    Some((
        Resp {
            status,
            headers,
            body: buf[head_len..].to_vec(),
            version,
            informational: Vec::new(),
        },
        buf.len(),
    ))
}

/// Decodes a chunked body at the start of `buf`: (body, bytes used) or None if incomplete.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let line_end = pos + find(&buf[pos..], b"\r\n")?;
        let line = std::str::from_utf8(&buf[pos..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            // Trailer section up to the empty line.
            loop {
                let e = pos + find(&buf[pos..], b"\r\n")?;
                let empty = e == pos;
                pos = e + 2;
                if empty {
                    return Some((body, pos));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

/// Asserts a gateway error response: exact status, `content-type: application/json`, body
/// `{"error":{"code","message","service","request_id"}}` with the given code, and an
/// `x-request-id` header equal to `error.request_id`. Returns the `error` object.
pub fn assert_error(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(
        r.status,
        status,
        "expected {status} {code}, got {} headers {:?} body {}",
        r.status,
        r.headers,
        r.text()
    );
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "error content-type {ct:?} (body {})",
        r.text()
    );
    let v = r.json();
    let err = v
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {v}"))
        .clone();
    assert_eq!(err["code"], code, "error code in {v}");
    assert!(err["message"].is_string(), "error.message string in {v}");
    assert!(
        err.get("service")
            .is_some_and(|s| s.is_string() || s.is_null()),
        "error.service string or null in {v}"
    );
    let rid = err["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("error.request_id string in {v}"));
    assert!(!rid.is_empty(), "empty error.request_id in {v}");
    assert_eq!(
        r.header("x-request-id"),
        Some(rid),
        "x-request-id header equals error.request_id ({:?})",
        r.headers
    );
    err
}

/// Asserts a 200 from the echo backend and returns its JSON body (the echoed ForwardingReq).
pub fn assert_echo_ok(r: &Resp) -> Value {
    assert_eq!(
        r.status,
        200,
        "expected 200 from echo, got {} headers {:?} body {}",
        r.status,
        r.headers,
        r.text()
    );
    r.json()
}

/// The `[[name, value], ...]` headers of an echoed ForwardingReq as pairs.
pub fn echoed_headers(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("headers array in {v}"))
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("header name").to_string(),
                p[1].as_str().expect("header value").to_string(),
            )
        })
        .collect()
}

/// Name/value pairs as owned strings, for comparing with [`echoed_headers`].
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The values of the headers named `name` in an echoed ForwardingReq, in order.
pub fn echoed_values(v: &Value, name: &str) -> Vec<String> {
    echoed_headers(v)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, value)| value)
        .collect()
}

/// `0x00..=0xff` repeated to `len` bytes: a body that catches any text mangling.
pub fn binary_body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}
