//! Cluster helpers: a real Kafka-protocol broker (tansu) per test, gateways joined to it, and the
//! foreign Kafka client (kafka-python) of `tests/peers/kafka_peer.py`.
//!
//! The broker keeps its data in a sqlite file in its own temporary directory, so it can be stopped
//! and started again on the same port with nothing lost. A missing tansu binary, or a release other
//! than [`TANSU_VERSION`], fails the test with the command that installs it (CI runs
//! `.ci/install-tansu`): a cluster test must never pass by not running.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::{
    free_port, http, poll_for, poll_until, run_bounded, Gateway, Proc, TempDir, POLL_INTERVAL,
    PYTHON_IMPORT_LIMIT,
};

/// Bound of a wait for something that needs the broker (start-up, catch-up, propagation), by the
/// clock: one check may itself wait (a registry write up to the gateway's 5 s Kafka write timeout,
/// a request up to curl's limit), so a count of checks would not bound it. 60 s, since on a loaded
/// 2-core CI machine a fresh broker and three gateways start together.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(60);

/// The tansu release the cluster tests are written against (its command line: [`Broker::restart`]);
/// `.ci/install-tansu` installs it.
pub const TANSU_VERSION: &str = "0.6.0";

/// Bound of one run of `tests/peers/kafka_peer.py`: above its own 30 s limits (reading to the end
/// offsets, waiting for an acknowledgement) plus a Python start and a broker connection.
const KAFKA_PEER_LIMIT: Duration = Duration::from_secs(120);

/// The tansu binary: on PATH, or where `cargo install` puts it; fails the test unless it is
/// [`TANSU_VERSION`] (another release may take other options or store differently).
pub fn tansu_bin() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED.get_or_init(checked_tansu).clone()
}

fn checked_tansu() -> PathBuf {
    let install = format!(
        "run `.ci/install-tansu` (cargo install tansu --locked --version {TANSU_VERSION} \
         --features dynostore,libsql)"
    );
    let Some(bin) = find_tansu() else {
        panic!(
            "the cluster tests need the tansu Kafka broker {TANSU_VERSION}, which is not \
             installed: {install}"
        );
    };
    let mut cmd = Command::new(&bin);
    cmd.arg("--version");
    let ran = run_bounded("tansu --version", cmd, TANSU_VERSION_LIMIT);
    assert_eq!(
        ran.stdout.split_whitespace().nth(1),
        Some(TANSU_VERSION),
        "the cluster tests are written against tansu {TANSU_VERSION}; {} says {:?}: {install}",
        bin.display(),
        ran.stdout.trim()
    );
    bin
}

/// Bound of `tansu --version`.
const TANSU_VERSION_LIMIT: Duration = Duration::from_secs(30);

fn find_tansu() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("tansu");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    cargo_home
        .map(|h| h.join("bin/tansu"))
        .filter(|p| p.is_file())
}

/// A tansu broker on 127.0.0.1:<free port> storing into a sqlite file; killed on drop.
pub struct Broker {
    pub port: u16,
    dir: TempDir,
    proc: Option<Proc>,
}

impl Broker {
    /// Starts a broker and waits (bounded) until it accepts connections.
    pub fn start() -> Broker {
        let mut broker = Broker {
            port: free_port(),
            dir: TempDir::new("tansu"),
            proc: None,
        };
        broker.restart();
        broker
    }

    /// `127.0.0.1:PORT`, for `--kafka-brokers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (SIGTERM, then SIGKILL if it lingers); the data file stays.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(libc::SIGTERM);
            if !poll_until(400, || p.try_exit().is_some()) {
                p.kill();
            }
        }
        // Nothing may accept on the port any more: connections to it are refused.
        assert!(
            poll_until(400, || TcpStream::connect(self.addr()).is_err()),
            "broker still accepts connections after being stopped"
        );
    }

    /// Starts the broker (again) on the same port with the same data.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "broker already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(tansu_bin());
        // tansu resolves a sqlite URL against its working directory.
        cmd.current_dir(self.dir.path())
            .arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .arg("--storage-engine")
            .arg("sqlite://tansu.db");
        let mut proc = Proc::spawn("tansu", cmd);
        let up = poll_for(CLUSTER_WAIT, || {
            proc.try_exit().is_some()
                || TcpStream::connect_timeout(
                    &self.addr().parse().unwrap(),
                    Duration::from_millis(250),
                )
                .is_ok()
        });
        assert!(
            up && proc.try_exit().is_none(),
            "tansu did not start listening on {}\n{}",
            self.addr(),
            proc.describe()
        );
        self.proc = Some(proc);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(p) = &mut self.proc {
            p.kill();
        }
    }
}

/// A gateway that joined the cluster: `--kafka-brokers`, `--node-id`, one shard (the Kafka core
/// takes the other CPU of a 2-core machine), `--kafka-topic`; waits until `/-/ready` is 200.
pub fn cluster_gateway(broker: &Broker, topic: &str, node: &str) -> Gateway {
    let gw = unready_cluster_gateway(broker, topic, node);
    wait_ready(&gw);
    gw
}

/// Polls `GET /-/ready` until 200 (bounded).
pub fn wait_ready(gw: &Gateway) {
    let ok = poll_for(CLUSTER_WAIT, || gw.get("/-/ready").status == 200);
    assert!(
        ok,
        "gateway {} never became ready\n{}",
        gw.addr,
        gw.proc.describe()
    );
}

/// `/-/services` reduced to what every gateway must agree on: name → [(id, address)], sorted.
/// (`healthy` is each gateway's own view of its connections, so it is left out.)
pub fn registry_of(gw: &Gateway) -> Vec<(String, Vec<(String, String)>)> {
    let r = gw.get("/-/services");
    assert_eq!(r.status, 200, "GET /-/services: {}", r.text());
    r.json()["services"]
        .as_array()
        .expect("services array")
        .iter()
        .map(|s| {
            let ids = s["instances"]
                .as_array()
                .expect("instances array")
                .iter()
                .map(|i| {
                    (
                        i["id"].as_str().unwrap().to_string(),
                        i["address"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (s["name"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

/// The address `svc/id` is registered at on `gw`, if it is.
pub fn address_at(gw: &Gateway, svc: &str, id: &str) -> Option<String> {
    registry_of(gw)
        .into_iter()
        .find(|(s, _)| s == svc)
        .and_then(|(_, ids)| ids.into_iter().find(|(i, _)| i == id).map(|(_, a)| a))
}

/// Waits (bounded) until `cond` holds on `gw`, panicking with `what` and the gateway's output.
pub fn wait_for(gw: &Gateway, what: &str, mut cond: impl FnMut(&Gateway) -> bool) {
    let ok = poll_for(CLUSTER_WAIT, || cond(gw));
    assert!(
        ok,
        "gateway {}: {what} never happened\n{}",
        gw.addr,
        gw.proc.describe()
    );
}

/// Waits (bounded) until every gateway lists the same registry, and returns it.
pub fn converged(gws: &[&Gateway]) -> Vec<(String, Vec<(String, String)>)> {
    let mut last = Vec::new();
    let ok = poll_for(CLUSTER_WAIT, || {
        last = gws.iter().map(|g| registry_of(g)).collect::<Vec<_>>();
        last.windows(2).all(|w| w[0] == w[1])
    });
    assert!(ok, "registries never converged: {last:#?}");
    last.swap_remove(0)
}

/// The value of an unlabelled metric in `/-/metrics`.
pub fn metric(gw: &Gateway, name: &str) -> u64 {
    let text = gw.get("/-/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in\n{text}"))
}

/// Fails the test with a clear message unless `python3` can import kafka-python.
pub fn require_kafka_python() {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import kafka"]);
    let ran = run_bounded("python3", cmd, PYTHON_IMPORT_LIMIT);
    assert!(
        ran.status.success(),
        "python3 cannot import kafka-python (run `.ci/install-deps`, which installs the version \
         of .ci/requirements.txt): {}",
        ran.stderr
    );
}

fn kafka_peer(broker: &Broker, topic: &str, args: &[&str]) -> String {
    require_kafka_python();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("tests/peers/kafka_peer.py"))
        .args(["--bootstrap", &broker.addr(), "--topic", topic])
        .args(args);
    let ran = run_bounded("kafka_peer.py", cmd, KAFKA_PEER_LIMIT);
    assert!(
        ran.status.success(),
        "kafka_peer.py {args:?} failed: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    ran.stdout
}

/// Every record of `topic`, read by kafka-python from the beginning to the current end.
pub fn read_topic(broker: &Broker, topic: &str) -> Vec<Value> {
    kafka_peer(broker, topic, &["read"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Produces one record into `topic` with kafka-python (acks=all).
pub fn produce(broker: &Broker, topic: &str, key: &str, value: &str, node: Option<&str>) {
    let mut args = vec!["produce", key, value];
    args.extend(node);
    let out = kafka_peer(broker, topic, &args);
    assert!(out.starts_with("produced "), "kafka_peer.py said {out:?}");
}

/// Creates `topic` with kafka-python: `partitions` partitions, replication factor 1, and the
/// topic configuration `configs` (`name=value`).
pub fn create_topic(broker: &Broker, topic: &str, partitions: u32, configs: &[&str]) {
    let partitions = partitions.to_string();
    let mut args = vec!["create-topic", partitions.as_str()];
    args.extend(configs);
    let out = kafka_peer(broker, topic, &args);
    assert_eq!(out.trim(), "created", "kafka_peer.py said {out:?}");
}

/// A gateway joined to the cluster as [`cluster_gateway`] does, without waiting for it to be
/// ready (it answers `/-/health`).
pub fn unready_cluster_gateway(broker: &Broker, topic: &str, node: &str) -> Gateway {
    Gateway::builder()
        .shards(Some(1))
        .args(&[
            "--kafka-brokers",
            &broker.addr(),
            "--kafka-topic",
            topic,
            "--node-id",
            node,
        ])
        .start()
}

/// Whether a request to `/{svc}/` through `gw` is answered by the echo instance `instance`.
pub fn routes_to(gw: &Gateway, svc: &str, instance: &str) -> bool {
    let r = http("GET", gw.url(&format!("/{svc}/"))).send();
    r.status == 200 && r.header("x-echo-instance") == Some(instance)
}

/// Pause between two tries of a write that is expected to fail until the broker is back.
pub const RETRY_WRITE_PAUSE: Duration = POLL_INTERVAL;
