//! The command line and process lifecycle (CONTRACT §7, SPEC "Binaries"): bad options exit 2 with
//! one line on stderr, options also come from `SWITCHYARD_*` variables, the start-up line on
//! stdout, and SIGTERM/SIGINT end the process with status 0.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

/// Runs the gateway with `args` (and `envs`) and expects exit status 2 with one stderr line.
fn assert_bad_invocation(args: &[&str], envs: &[(&str, &str)]) {
    let mut cmd = Command::new(GATEWAY_BIN);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn("switchyard", cmd);
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?} {envs:?}: exit status\n{}",
        p.describe()
    );
    let err = p.stderr();
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} {envs:?}: exactly one line on stderr, got {err:?}"
    );
}

#[test]
fn unknown_option_exits_2_with_one_line() {
    assert_bad_invocation(&["--no-such-option"], &[]);
}

#[test]
fn bad_option_values_exit_2_with_one_line() {
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    assert_bad_invocation(&["--listen", &listen, "--max-body-bytes", "lots"], &[]);
    assert_bad_invocation(&["--listen", &listen, "--shards", "-1"], &[]);
    assert_bad_invocation(&["--listen", "not-an-address"], &[]);
    assert_bad_invocation(&["--listen", &listen, "--request-timeout-ms"], &[]);
    // Milliseconds given where microseconds are meant: past the ceiling, refused.
    assert_bad_invocation(&["--listen", &listen, "--idle-poll-us", "20000"], &[]);
}

/// A CPU number no machine has: `parse_cpu_list` accepts it, the kernel's CPU sets stop at 1024.
const NO_SUCH_CPU: &str = "4095";

#[test]
fn cpus_outside_the_affinity_mask_exit_2_with_one_line() {
    let listen = format!("127.0.0.1:{}", free_port());
    assert_bad_invocation(&["--listen", &listen, "--cpus", NO_SUCH_CPU], &[]);
    assert_bad_invocation(
        &["--listen", &listen, "--cpus", &format!("0,{NO_SUCH_CPU}")],
        &[],
    );
    assert_bad_invocation(
        &[
            "--listen",
            &listen,
            "--kafka-brokers",
            "127.0.0.1:1",
            "--kafka-core",
            NO_SUCH_CPU,
        ],
        &[],
    );
    assert_bad_invocation(&["--listen", &listen], &[("SWITCHYARD_CPUS", NO_SUCH_CPU)]);
}

#[test]
fn a_cpu_that_taskset_excluded_is_a_bad_option() {
    // Needs two CPUs: run on the first, ask for the second.
    let allowed = switchyard::sys::affinity_cpus().expect("affinity mask");
    let [first, other, ..] = allowed[..] else {
        eprintln!("skipped: this process may run on one CPU only");
        return;
    };
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &first.to_string(), GATEWAY_BIN]).args([
        "--listen",
        &listen,
        "--cpus",
        &other.to_string(),
    ]);
    let mut p = Proc::spawn("switchyard", cmd);
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", p.describe());
    let err = p.stderr();
    assert_eq!(
        err,
        format!(
            "switchyard: --cpus: CPU {other} is not among the CPUs this process may run on ({first})\n"
        )
    );
}

#[test]
fn bad_kafka_options_exit_2_with_one_line() {
    let listen = format!("127.0.0.1:{}", free_port());
    let l = ["--listen", listen.as_str()];
    let long_topic = "t".repeat(250);
    for brokers in [
        "",
        "127.0.0.1:9092,",
        "a:1,,b:2",
        "nohost",
        "h:0",
        "a..b:9092",
    ] {
        assert_bad_invocation(&[&l[..], &["--kafka-brokers", brokers]].concat(), &[]);
    }
    assert_bad_invocation(&l, &[("SWITCHYARD_KAFKA_BROKERS", "")]);
    for topic in ["bad topic!", "", ".", "..", long_topic.as_str()] {
        assert_bad_invocation(
            &[
                &l[..],
                &["--kafka-brokers", "127.0.0.1:1", "--kafka-topic", topic],
            ]
            .concat(),
            &[],
        );
    }
    let dir = TempDir::new("cli-kafka");
    let cfg = dir.write("empty-brokers.toml", b"kafka_brokers = \"\"\n");
    assert_bad_invocation(
        &[&l[..], &["--config", cfg.to_str().unwrap()]].concat(),
        &[],
    );
}

#[test]
fn empty_token_and_node_id_exit_2_with_one_line() {
    let listen = format!("127.0.0.1:{}", free_port());
    assert_bad_invocation(&["--listen", &listen, "--registry-token", ""], &[]);
    assert_bad_invocation(&["--listen", &listen, "--node-id", ""], &[]);
    assert_bad_invocation(&["--listen", &listen], &[("SWITCHYARD_REGISTRY_TOKEN", "")]);
}

#[test]
fn bad_environment_value_exits_2_with_one_line() {
    let listen = format!("127.0.0.1:{}", free_port());
    assert_bad_invocation(
        &["--listen", &listen],
        &[("SWITCHYARD_MAX_BODY_BYTES", "lots")],
    );
}

/// A problem with a value from the environment names the variable, not a flag nobody passed.
#[test]
fn a_bad_environment_value_is_named_by_its_variable() {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(GATEWAY_BIN);
    cmd.args(["--listen", &listen, "--shards", "0"])
        .env("SWITCHYARD_MAX_BODY_BYTES", "0");
    let mut p = Proc::spawn("switchyard", cmd);
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", p.describe());
    assert_eq!(
        p.stderr(),
        "switchyard: --shards must be between 1 and 1024; \
         SWITCHYARD_MAX_BODY_BYTES must be between 1 and 1073741824\n"
    );
}

/// The same when clap itself refuses the value (not a number, empty): clap names the option,
/// which the operator did not pass.
#[test]
fn a_value_clap_refuses_from_the_environment_is_named_by_its_variable() {
    let listen = format!("127.0.0.1:{}", free_port());
    let stderr_of = |args: &[&str], var: &str, value: &str| {
        let mut cmd = Command::new(GATEWAY_BIN);
        cmd.args(args).env(var, value);
        let mut p = Proc::spawn("switchyard", cmd);
        let status = p.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "{}", p.describe());
        p.stderr()
    };
    let err = stderr_of(&["--listen", &listen], "SWITCHYARD_SHARDS", "abc");
    assert_eq!(
        err,
        "switchyard: invalid value 'abc' for SWITCHYARD_SHARDS: invalid digit found in string\n"
    );
    let err = stderr_of(&["--listen", &listen], "SWITCHYARD_CONFIG", "");
    assert!(
        err.contains("SWITCHYARD_CONFIG") && !err.contains("--config"),
        "{err}"
    );
    // Given on the command line, the option is named as before.
    let err = stderr_of(
        &["--listen", &listen, "--shards", "abc"],
        "SWITCHYARD_SHARDS",
        "1",
    );
    assert!(err.contains("'--shards <SHARDS>'"), "{err}");
}

/// A value with a line break, quoted in the message, does not split it.
#[test]
fn a_line_break_in_a_bad_value_stays_on_one_line() {
    let listen = format!("127.0.0.1:{}", free_port());
    assert_bad_invocation(&["--listen", &listen, "--cpus", "0\n1"], &[]);
    assert_bad_invocation(&["--listen", &listen], &[("SWITCHYARD_CPUS", "0\n1")]);
    assert_bad_invocation(&["--listen", &listen, "--config", "/no/such\nfile"], &[]);
}

/// `RUST_LOG=trace` asks for what release builds leave out: one plain line says so, not
/// tracing-subscriber's four coloured ones.
#[test]
fn rust_log_at_trace_is_one_plain_warning() {
    let mut cmd = Command::new(GATEWAY_BIN);
    let listen = format!("127.0.0.1:{}", free_port());
    cmd.args(["--listen", &listen])
        .env("RUST_LOG", "info,h2=trace");
    let mut p = Proc::spawn("switchyard", cmd);
    let listening = poll_until(400, || p.stdout().contains("listening"));
    assert!(listening, "{}", p.describe());
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(20)).code(), Some(0));
    let err = p.stderr();
    assert!(!err.contains('\x1b'), "no colour in a file: {err:?}");
    assert!(!err.contains("disabled statically"), "{err}");
}

#[test]
fn bad_config_file_exits_2_with_one_line() {
    let dir = TempDir::new("cli-config");
    let listen = format!("127.0.0.1:{}", free_port());
    // The TOML parser's own messages for these run over two lines.
    for (name, text) in [
        ("bad.toml", &b"this is = = not toml\n"[..]),
        ("unfinished.toml", b"shards = 1\nlisten = \n"),
        ("unquoted.toml", b"listen = \"x\n"),
    ] {
        let cfg = dir.write(name, text);
        assert_bad_invocation(
            &["--listen", &listen, "--config", cfg.to_str().unwrap()],
            &[],
        );
    }
}

#[test]
fn listen_from_environment_and_startup_line() {
    // Started by hand so that --listen is not on the command line.
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(GATEWAY_BIN);
        let shards = default_shards();
        cmd.env("SWITCHYARD_LISTEN", &addr)
            .args(["--shards", &shards.to_string()]);
        let mut p = Proc::spawn("switchyard", cmd);
        let healthy = poll_until(READY_TRIES, || {
            p.try_exit().is_some() || health_probe(addr.parse().unwrap())
        });
        if p.try_exit().is_some() {
            last = p.describe();
            if p.stderr().to_lowercase().contains("in use") {
                continue; // the port was taken meanwhile; try another
            }
            panic!("gateway exited\n{last}");
        }
        assert!(healthy, "gateway never healthy on {addr}\n{}", p.describe());
        let line = p.wait_stdout_line("switchyard listening on ");
        assert_eq!(
            line,
            format!("switchyard listening on {addr} (shards: {shards})")
        );
        return;
    }
    panic!("could not start on a free port\n{last}");
}

fn assert_signal_exits_0(sig: libc::c_int) {
    let mut gw = Gateway::start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    assert_echo_ok(&gw.get("/echo"));
    gw.proc.signal(sig);
    // No request is in flight, so the drain ends well before the grace period (10 s).
    let status = gw.proc.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status\n{}",
        gw.proc.describe()
    );
}

#[test]
fn sigterm_exits_0() {
    assert_signal_exits_0(libc::SIGTERM);
}

#[test]
fn sigint_exits_0() {
    assert_signal_exits_0(libc::SIGINT);
}

#[test]
fn echo_bad_option_exits_2() {
    let mut p = Proc::spawn("switchyard-echo", {
        let mut c = Command::new(ECHO_BIN);
        c.arg("--no-such-option");
        c
    });
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", p.describe());
}

#[test]
fn echo_registration_failure_exits_1() {
    // Nothing listens at the gateway URL, so registration must fail and the echo exit 1.
    let dead = DeadAddr::new();
    let url = format!("http://{}", dead.addr);
    let mut p = Proc::spawn("switchyard-echo", {
        let mut c = Command::new(ECHO_BIN);
        c.args(["--listen", "127.0.0.1:0", "--register", &url]);
        c
    });
    let status = p.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", p.describe());
    assert!(!p.stderr().trim().is_empty(), "a message on stderr");
}

/// Runs the gateway with `args` through `wrapper` and expects exit status 1 with a one-line
/// start-up error containing `needle`.
fn assert_start_failure(wrapper: &[&str], args: &[&str], needle: &str) {
    // A copy in a world-readable temp dir, so an unprivileged wrapper can run it wherever the
    // checkout lives.
    let dir = TempDir::new("start-failure");
    let bin = dir.path().join("switchyard");
    std::fs::copy(GATEWAY_BIN, &bin).expect("copy the gateway binary");
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(dir.path(), 0o755), (bin.as_path(), 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    // A binary just written cannot be executed while any process still holds it open for
    // writing, and a child another test thread forked during the copy holds our fd until it
    // execs: the wrapper then fails with "Text file busy" (exit 126). Bounded retries.
    let (p, status) = (0..20)
        .map(|_| {
            let mut cmd = Command::new(wrapper[0]);
            cmd.args(&wrapper[1..]).arg(&bin).args(args);
            let mut p = Proc::spawn("switchyard", cmd);
            let status = p.wait_exit(Duration::from_secs(10));
            (p, status)
        })
        .find(|(p, status)| status.code() != Some(126) || !p.stderr().contains("Text file busy"))
        .expect("the copied binary stayed busy");
    assert_eq!(status.code(), Some(1), "{}", p.describe());
    let err = p.stderr();
    assert!(
        err.contains(needle),
        "stderr names the fix ({needle}): {err}"
    );
}

#[test]
fn address_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    assert_start_failure(&["env"], &["--listen", &addr], "already in use");
}

#[test]
fn too_little_locked_memory_says_which_ulimit_is_needed() {
    // An unprivileged user cannot raise RLIMIT_MEMLOCK past 64 KiB, so the gateway must refuse
    // to start and say what to set (root would simply raise it). Becoming that user takes root:
    // the suite runs as root, as CI does (README, "Tests").
    let port = free_port().to_string();
    assert_start_failure(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "prlimit",
            "--memlock=65536:65536",
        ],
        &["--listen", &format!("127.0.0.1:{port}")],
        "ulimit -l",
    );
}

/// The README's first command (`cargo run --release -- --demo`): the gateway with the sample
/// backend registered as `echo` and `users`, answering REST over HTTP/1.1 and HTTP/2 and GraphQL,
/// no Kafka. Started through its environment variable, which takes 1 as well as true.
#[test]
fn the_demo_answers_rest_and_graphql_at_once() {
    let gw = Gateway::builder().env("SWITCHYARD_DEMO", "1").start();
    let registered = || {
        let r = gw.get("/-/services");
        r.status == 200 && r.text().contains("\"echo\"") && r.text().contains("\"users\"")
    };
    assert!(
        poll_until(500, registered),
        "the demo backend was never registered"
    );
    let r = gw.get("/echo/hello?name=world");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["query"], "name=world");
    let r = gw.get_h2("/users/json/users/1");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http("POST", gw.url("/graphql"))
        .header("content-type", "application/json")
        .body(r#"{"query":"{ users(path: \"/json/users\") { name } }"}"#)
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    let users = &r.json()["data"]["users"];
    assert!(
        users
            .as_array()
            .is_some_and(|u| !u.is_empty() && u[0]["name"].is_string()),
        "{}",
        r.text()
    );
}

/// `--demo` waits for the registry to catch up before it registers the sample backend; a SIGTERM
/// during that wait (here: a cluster whose broker is not there) stops the gateway at once, with
/// status 0, instead of after the wait's 30 s with an error.
#[test]
fn sigterm_while_the_demo_waits_for_the_cluster_exits_0() {
    let dead = DeadAddr::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(GATEWAY_BIN);
    cmd.args(["--demo", "--shards", "1", "--listen", &listen])
        .args(["--kafka-brokers", &dead.addr]);
    let mut p = Proc::spawn("switchyard", cmd);
    p.wait_stdout_line("switchyard listening on");
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", p.describe());
}

/// Log lines on a pipe or file (journald, a log file) are plain text: colour escapes only on a
/// terminal.
#[test]
fn logs_off_a_terminal_have_no_colour_escapes() {
    let mut gw = Gateway::start();
    gw.proc.signal(libc::SIGTERM);
    let status = gw.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", gw.proc.describe());
    let log = gw.proc.stderr();
    assert!(log.contains("draining"), "the drain is logged: {log:?}");
    assert!(!log.contains('\u{1b}'), "no escape codes: {log:?}");
}
