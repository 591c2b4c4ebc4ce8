//! The vendored glommio's sleep path (`vendor/README.md`, "One system call per sleep").
//!
//! A shard below saturation sleeps about twice per request, woken each time by a socket. Each
//! sleep needs a poll on the latency ring's fd (the link that lets a latency-ring completion wake
//! the main ring); upstream armed a new one per sleep and never cancelled the old ones, so they
//! piled up until the latency ring next completed something. The patch keeps one armed.
//!
//! The test counts the armed polls from the kernel's own list (`PollList` in
//! `/proc/self/fdinfo/<ring fd>`). It is the only test in this binary, so every io_uring in the
//! process belongs to the one executor it runs.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::LocalExecutorBuilder;

/// Round trips, each one sleep of the executor woken by its socket. Well under the 100 ms time
/// slice, whose timer firing would let upstream's piled-up polls complete.
const ROUNDS: usize = 40;
/// How long the peer waits before each byte, so that the executor is asleep when it arrives.
const PEER_PAUSE: Duration = Duration::from_millis(1);
/// A stuck executor fails the test instead of hanging it.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// `IORING_OP_POLL_ADD`, as `fdinfo` prints it.
const POLL_ADD: &str = "op=6,";

#[test]
fn sleeps_woken_by_a_socket_keep_one_link_poll_armed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        let mut byte = [0u8; 1];
        for _ in 0..ROUNDS {
            std::thread::sleep(PEER_PAUSE);
            socket.write_all(b"p").unwrap();
            socket.read_exact(&mut byte).unwrap();
        }
    });

    let armed = LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async move {
            let mut stream = glommio::net::TcpStream::connect(addr).await.unwrap();
            let mut byte = [0u8; 1];
            for _ in 0..ROUNDS {
                stream.read_exact(&mut byte).await.unwrap();
                stream.write_all(b"e").await.unwrap();
            }
            armed_polls()
        });
    peer.join().unwrap();

    // Nothing is being read when the count is taken: what is armed is the link poll, and at
    // most one more that a socket may still hold.
    assert!(
        armed <= 2,
        "{armed} polls armed after {ROUNDS} sleeps: link polls are piling up (one per sleep)"
    );
}

/// Armed `POLL_ADD`s over every io_uring of this process.
fn armed_polls() -> usize {
    let mut total = 0;
    let mut rings = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed since the directory was read
        };
        if target.to_str() != Some("anon_inode:[io_uring]") {
            continue;
        }
        let info = std::fs::read_to_string(
            std::path::Path::new("/proc/self/fdinfo").join(entry.file_name()),
        )
        .unwrap();
        let polls = info
            .split_once("PollList:")
            .expect("this kernel does not list an io_uring's armed polls in fdinfo (Linux 5.15+)")
            .1;
        let polls = polls
            .split_once("CqOverflowList:")
            .map_or(polls, |(p, _)| p);
        total += polls
            .lines()
            .filter(|l| l.trim_start().starts_with(POLL_ADD))
            .count();
        rings += 1;
    }
    assert!(rings > 0, "no io_uring fd found in /proc/self/fd");
    total
}
