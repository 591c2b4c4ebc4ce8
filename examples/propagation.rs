//! Propagation delay across a cluster: registers N services at gateway A and measures, for each,
//! the time until a request through gateway B is routed to it.
//!
//! Run against two running gateways joined to one broker (README, "Cluster"):
//!
//! ```text
//! cargo run --release --example propagation -- http://127.0.0.1:8081 http://127.0.0.1:8082 1000
//! ```
//!
//! An echo backend runs in-process; each registration is a new service `prop-<run>-<i>` pointing
//! at it, so "routable at B" is the first `GET /prop-…/` through B answered 200 (before: 404).
//! Prints p50/p90/p99/max, from the moment the PUT is sent and from the moment A answered it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Upper bound for one registration to show up at B before the run is declared failed.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(30);

/// A keep-alive HTTP/1.1 connection; answers are read by content-length.
struct Conn(TcpStream);

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect to gateway");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn(s)
    }

    fn request(&mut self, method: &str, path: &str, body: &str) -> u16 {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.write_all(req.as_bytes()).expect("send");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.0.read(&mut chunk).expect("read");
            assert!(n > 0, "gateway closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return head[9..12].parse().expect("status");
            }
        }
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("gateway URL like http://127.0.0.1:8081")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        v.len(),
        ms(percentile(&v, 0.50)),
        ms(percentile(&v, 0.90)),
        ms(percentile(&v, 0.99)),
        ms(*v.last().unwrap())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: propagation GATEWAY_A_URL GATEWAY_B_URL [COUNT=1000]");
        std::process::exit(2);
    }
    let (a, b) = (addr_of(&args[1]), addr_of(&args[2]));
    let count: usize = args.get(3).map_or(1000, |n| n.parse().expect("COUNT"));
    let backend = switchyard::sample_backend::spawn(switchyard::sample_backend::BackendConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        instance: "prop".into(),
    })
    .expect("start the echo backend");
    let body = format!(r#"{{"address":"{}"}}"#, backend.local_addr());
    let run = std::process::id();
    let (mut ca, mut cb) = (Conn::new(a), Conn::new(b));
    let mut from_put = Vec::with_capacity(count);
    let mut from_answer = Vec::with_capacity(count);
    for i in 0..count {
        let service = format!("prop-{run}-{i}");
        let start = Instant::now();
        let status = ca.request("PUT", &format!("/-/services/{service}/instances/p"), &body);
        assert_eq!(status, 201, "registration {i} at A");
        let answered = Instant::now();
        loop {
            match cb.request("GET", &format!("/{service}/"), "") {
                200 => break,
                404 => {}
                other => panic!("GET /{service}/ at B answered {other}"),
            }
            assert!(
                start.elapsed() < PROPAGATION_LIMIT,
                "{service} not routable at B after {PROPAGATION_LIMIT:?}"
            );
        }
        let seen = Instant::now();
        from_put.push(seen - start);
        from_answer.push(seen - answered);
    }
    report(
        "registration at A -> routable at B (from PUT sent)",
        from_put,
    );
    report(
        "registration at A -> routable at B (from A's 201)",
        from_answer,
    );
    for i in 0..count {
        let status = ca.request(
            "DELETE",
            &format!("/-/services/prop-{run}-{i}/instances/p"),
            "",
        );
        assert_eq!(status, 204);
    }
}
