//! `--idle-poll-us`: a shard that runs out of work polls for I/O that long before it sleeps
//! (README, "Running it in production"; the vendored glommio's spin, `vendor/README.md`).
//!
//! The shard sleeps only by parking its executor, which the kernel counts as a voluntary context
//! switch of its thread; requests that come within the poll are answered without one.

mod support;

use std::time::Duration;

use support::*;

/// Requests on one keep-alive connection, each after a pause.
const ROUNDS: usize = 40;
/// The pause before each request: far shorter than the poll below, long enough that the shard has
/// run out of work (its answer is out) before the next request comes.
const PAUSE: Duration = Duration::from_millis(2);
/// The longest poll the gateway accepts, in µs.
const POLL_US: &str = "10000";

#[test]
fn a_polling_shard_does_not_sleep_between_requests_that_come_within_its_poll() {
    let polling = sleeps_over_rounds(&["--idle-poll-us", POLL_US]);
    let sleeping = sleeps_over_rounds(&[]);
    // Without polling the shard sleeps after each answer and each backend call at least: that the
    // count sees those sleeps is what makes the polling shard's low count mean something.
    assert!(
        sleeping >= ROUNDS as u64,
        "without polling the shard slept only {sleeping} times in {ROUNDS} rounds"
    );
    assert!(
        polling < ROUNDS as u64 / 4,
        "polling for {POLL_US} us, the shard slept {polling} times in {ROUNDS} rounds spaced {PAUSE:?}"
    );
}

#[test]
fn a_polling_shard_answers_and_keeps_its_deadlines() {
    // The calls are answered while the shard polls, and the deadline (a timer the polling loop
    // must fire) still ends the slow one, over either protocol.
    let gw = Gateway::builder()
        .args(&["--idle-poll-us", POLL_US, "--request-timeout-ms", "200"])
        .start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    for _ in 0..3 {
        assert_echo_ok(&gw.get("/echo/hello"));
        assert_echo_ok(&gw.get_h2("/echo/hello"));
    }
    let err = assert_error(&gw.get("/echo/delay/5000"), 504, "UPSTREAM_TIMEOUT");
    assert_eq!(err["service"], "echo");
    let err = assert_error(&gw.get_h2("/echo/delay/5000"), 504, "UPSTREAM_TIMEOUT");
    assert_eq!(err["service"], "echo");
}

/// Voluntary context switches of a one-shard gateway's shard threads over ROUNDS requests.
fn sleeps_over_rounds(args: &[&str]) -> u64 {
    let gw = Gateway::builder().shards(Some(1)).args(args).start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    let mut conn = RawConn::connect(gw.addr);
    let request = b"GET /echo/hello HTTP/1.1\r\nHost: gw\r\n\r\n";
    // The first exchange opens the backend connection; the count starts after it.
    conn.send(request);
    assert_echo_ok(&conn.read_response(false));
    let shard = shard_threads(gw.proc.pid());
    let before = voluntary_switches(&shard);
    for _ in 0..ROUNDS {
        std::thread::sleep(PAUSE);
        conn.send(request);
        assert_echo_ok(&conn.read_response(false));
    }
    voluntary_switches(&shard) - before
}

/// `/proc/<pid>/task/<tid>` of the gateway's shard threads: the executor, and the thread of its
/// blocking pool (glommio names both after the shard), which the requests do not use.
fn shard_threads(pid: u32) -> Vec<std::path::PathBuf> {
    let tasks = std::path::PathBuf::from(format!("/proc/{pid}/task"));
    let shards: Vec<_> = std::fs::read_dir(&tasks)
        .unwrap()
        .map(|task| task.unwrap().path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm.starts_with("shard-"))
        })
        .collect();
    assert!(!shards.is_empty(), "no shard thread in {tasks:?}");
    shards
}

/// The threads' voluntary context switches so far (each time one blocked in the kernel).
fn voluntary_switches(tasks: &[std::path::PathBuf]) -> u64 {
    tasks
        .iter()
        .map(|task| {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            status
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                .expect("voluntary_ctxt_switches in the thread's status")
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}
