//! Configuration: command line, environment and an optional TOML file, merged into one typed,
//! validated [`Config`].
//!
//! Precedence is flag > environment (`SWITCHYARD_<NAME>`, handled by clap) > file > default. Every
//! default is a named constant with the reason for its value. [`Config::from_args`] reports every
//! problem at once, so an operator fixes a bad deployment in one round trip.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::ParseIntError;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;

use crate::names::ServiceName;
use crate::registry::kafka::event::MAX_NODE_ID_LEN;

/// Default client listener: loopback, so a first run exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default deadline for one backend call: long enough for slow services, short enough that a stuck
/// backend frees its client within a human attention span.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Default header section limit: nginx's `large_client_header_buffers 4 8k` total.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 << 10;
/// Default header count limit: Envoy's `max_headers_count` default.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The largest message a gRPC server takes by default (grpc-go, grpc-java, grpcio, tonic):
/// 4 MiB, counted without the 5-byte gRPC prefix.
pub const GRPC_DEFAULT_MAX_RECEIVE: usize = 4 << 20;
/// Room in a `ForwardingReq` for what is neither the body nor the header section: each header's
/// protobuf framing beyond the 4 bytes HTTP/1.1 spends on it (at most 4 more for a header under
/// 16 KiB, 400 bytes for `DEFAULT_MAX_HEADERS`), the service name (63), the request id (128), the
/// client address (58) and the fields' tags and lengths (~30): under 700 bytes, rounded up to
/// 4 KiB for what a GraphQL call adds and an operator's extra headers.
pub const FORWARDING_REQ_MARGIN: usize = 4 << 10;
/// Default request body limit: what gRPC's default receive limit leaves once the header section
/// (at its default limit) and the rest of the `ForwardingReq` are in, so that a request at both
/// limits still reaches a backend with default settings: 4,194,304 − 32,768 − 4,096 =
/// 4,157,440. A body of the whole 4 MiB would be refused by such a backend (RESOURCE_EXHAUSTED,
/// which clients would read as rate limiting, 429) instead of by the gateway (413).
pub const DEFAULT_MAX_BODY_BYTES: usize =
    GRPC_DEFAULT_MAX_RECEIVE - DEFAULT_MAX_HEADER_BYTES - FORWARDING_REQ_MARGIN;
/// Default in-flight limit per shard: far above what one core can serve within a deadline, low
/// enough that a flood is refused with 503 instead of exhausting memory.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;
/// Bytes of request bodies a shard holds at once (while they arrive and while their calls
/// last): 128 bodies at the default body limit. Without it the in-flight limit alone bounded
/// them, at 10,000 × 4 MiB per shard. A body alone may take more (it is not refused for its
/// size, which `--max-body-bytes` judges): the budget only turns away bodies that would join
/// others beyond it.
pub const DEFAULT_MAX_BODY_MEMORY_BYTES: usize = 512 << 20;
/// Default client connection limit per shard: bounds a shard's memory (a connection costs roughly
/// 20 KiB while busy) to about a gigabyte, far above what HAProxy in front opens.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;
/// Default max backend answer: the gRPC default max receive message size, which a backend's own
/// client libraries hold each other to as well.
pub const DEFAULT_MAX_GRPC_MESSAGE_BYTES: usize = GRPC_DEFAULT_MAX_RECEIVE;
/// Time a client has to send a whole header section (slowloris guard; nginx's
/// `client_header_timeout` is 60 s, but a gateway in front of latency-critical services can be stricter).
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Idle keep-alive connection lifetime: below HAProxy's and nginx's defaults so that the proxy in
/// front, not the gateway, decides when a pooled connection is reused.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Time a client has to send a whole request body once the headers are in (nginx: `client_body_timeout`).
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 60_000;
/// SIGTERM drain: long enough for the default request deadline to run out.
pub const DEFAULT_GRACE_PERIOD_MS: u64 = 10_000;
/// Default idle polling: none. A shard that runs out of work sleeps at once, so an idle gateway
/// costs no CPU; polling is a latency-for-CPU trade an operator makes for dedicated cores.
pub const DEFAULT_IDLE_POLL_US: u64 = 0;
/// Longest idle poll: a wake-up costs tens of microseconds even on a VM, so polling for longer than
/// this cannot pay for itself and a larger value is taken for a unit mistake (milliseconds).
pub const MAX_IDLE_POLL_US: u64 = 10_000;
/// Default registry log topic (contract §6).
pub const DEFAULT_KAFKA_TOPIC: &str = "switchyard.registry";
/// Longest Kafka topic name: Kafka's own limit (`Topic.MAX_NAME_LENGTH`), so that a partition's
/// directory name (`<topic>-<partition>`) fits in 255 bytes. A longer name is refused by the broker
/// only after start-up, as an endless stream of log-write failures.
pub const MAX_KAFKA_TOPIC_LEN: usize = 249;

/// `switchyard` command line. Every option can also be given as `SWITCHYARD_<NAME>`.
#[derive(Debug, Parser, Default)]
#[command(
    name = "switchyard",
    version,
    about = "Thread-per-core REST/GraphQL to gRPC gateway"
)]
pub struct Args {
    /// Client listener, bound once per shard with SO_REUSEPORT [default: 127.0.0.1:8080]
    #[arg(long, env = "SWITCHYARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Number of shards (executors pinned one per CPU) [default: one per CPU in --cpus]
    #[arg(long, env = "SWITCHYARD_SHARDS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub shards: Option<usize>,
    /// CPUs the shards are pinned to, in order, e.g. `1,3-5` [default: the process's affinity mask]
    #[arg(long, env = "SWITCHYARD_CPUS")]
    pub cpus: Option<String>,
    /// Join a cluster through these Kafka brokers (comma-separated host:port)
    #[arg(long, env = "SWITCHYARD_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Registry log topic [default: switchyard.registry]
    #[arg(long, env = "SWITCHYARD_KAFKA_TOPIC")]
    pub kafka_topic: Option<String>,
    /// CPU the Kafka thread is pinned to [default: last CPU of the affinity mask]
    #[arg(long, env = "SWITCHYARD_KAFKA_CORE")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub kafka_core: Option<usize>,
    /// This gateway's node id [default: random at start]
    #[arg(long, env = "SWITCHYARD_NODE_ID")]
    pub node_id: Option<String>,
    /// Bearer token required for /-/services writes
    #[arg(long, env = "SWITCHYARD_REGISTRY_TOKEN")]
    pub registry_token: Option<String>,
    /// TOML file with the same keys (snake_case) plus [services.NAME] settings
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Default deadline of a backend call, in milliseconds [default: 10000]
    #[arg(long, env = "SWITCHYARD_REQUEST_TIMEOUT_MS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<u64>)]
    pub request_timeout_ms: Option<u64>,
    /// Request body limit in bytes (413 above); the default is gRPC's 4 MiB default receive limit
    /// less the default header section limit and 4 KiB for the rest of the forwarded request, so
    /// that a request at both limits reaches a backend with default settings [default: 4157440]
    #[arg(long, env = "SWITCHYARD_MAX_BODY_BYTES")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub max_body_bytes: Option<usize>,
    /// Header section limit in bytes (431 above); also the limit on a backend answer's headers,
    /// counted as HTTP/1.1 writes them (502 above) [default: 32768]
    #[arg(long, env = "SWITCHYARD_MAX_HEADER_BYTES")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub max_header_bytes: Option<usize>,
    /// Maximum number of request headers (431 above); also of a backend answer's (502 above)
    /// [default: 100]
    #[arg(long, env = "SWITCHYARD_MAX_HEADERS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub max_headers: Option<usize>,
    /// In-flight request limit per shard (503 with retry-after above) [default: 10000]
    #[arg(long, env = "SWITCHYARD_MAX_IN_FLIGHT")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub max_in_flight: Option<usize>,
    /// Bytes of request bodies a shard holds at once; a body that would go beyond it while
    /// others are held is refused (503 with retry-after) [default: 536870912]
    #[arg(long, env = "SWITCHYARD_MAX_BODY_MEMORY_BYTES")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub max_body_memory_bytes: Option<usize>,
    /// Client connection limit per shard (further connections are closed at once) [default: 50000]
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub max_connections: Option<usize>,
    /// Largest backend answer accepted, in bytes (502 above) [default: 4194304]
    #[arg(long, env = "SWITCHYARD_MAX_GRPC_MESSAGE_BYTES")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<usize>)]
    pub max_grpc_message_bytes: Option<usize>,
    /// Time a client has to send its header section, in ms (408 after) [default: 10000]
    #[arg(long, env = "SWITCHYARD_HEADER_TIMEOUT_MS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<u64>)]
    pub header_timeout_ms: Option<u64>,
    /// Idle keep-alive timeout, in ms [default: 60000]
    #[arg(long, env = "SWITCHYARD_IDLE_TIMEOUT_MS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<u64>)]
    pub idle_timeout_ms: Option<u64>,
    /// Time a client has to send its request body, in ms (408 after) [default: 60000]
    #[arg(long, env = "SWITCHYARD_BODY_TIMEOUT_MS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<u64>)]
    pub body_timeout_ms: Option<u64>,
    /// How long SIGTERM waits for in-flight requests, in ms [default: 10000]
    #[arg(long, env = "SWITCHYARD_GRACE_PERIOD_MS")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<u64>)]
    pub grace_period_ms: Option<u64>,
    /// Time a shard that ran out of work keeps polling for I/O before it sleeps, in µs: saves the
    /// wake-up when the next event comes sooner, at the cost of that much busy CPU (0: sleep at
    /// once) [default: 0]
    #[arg(long, env = "SWITCHYARD_IDLE_POLL_US")]
    #[arg(allow_negative_numbers = true, value_parser = unsigned::<u64>)]
    pub idle_poll_us: Option<u64>,
    /// Also start the sample backend in-process and register it (services `echo` and `users`);
    /// `--demo` alone is `--demo=true`, and `--demo=BOOL` takes what SWITCHYARD_DEMO does:
    /// 1/0, true/false, yes/no, on/off
    // The value needs its `=`, so that `--demo --shards 1` still reads `--shards` as an option.
    #[arg(
        long,
        env = "SWITCHYARD_DEMO",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide_possible_values = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub demo: bool,
    /// The options whose value came from their `SWITCHYARD_*` variable rather than the command
    /// line, by clap id (the file's key), so that a problem with one names the variable.
    /// [`Args::try_parse_noting_env`] fills it; [`Parser::try_parse`] leaves it empty.
    #[arg(skip)]
    pub from_env: Vec<String>,
}

impl Args {
    /// The command line and the `SWITCHYARD_*` variables, as [`Parser::try_parse`] reads them,
    /// with [`Args::from_env`] naming the options a variable gave.
    pub fn try_parse_noting_env() -> Result<Args, clap::Error> {
        let matches = Args::command().try_get_matches()?;
        let mut args =
            Args::from_arg_matches(&matches).map_err(|e| e.format(&mut Args::command()))?;
        args.from_env = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::EnvVariable))
            .map(|id| id.to_string())
            .collect();
        Ok(args)
    }
}

/// The one line a refused command line is reported in (contract §7): clap's message, naming the
/// `SWITCHYARD_*` variable instead of the option when the value came from the variable (clap
/// names the option either way, and an operator who passed no `--shards` would look for one),
/// with any control character in a quoted value escaped.
pub fn usage_error_line(error: &clap::Error, argv: &[String]) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("invalid options");
    let mut line = first.trim_start_matches("error: ").to_owned();
    if let Some(clap::error::ContextValue::String(invalid)) =
        error.get(clap::error::ContextKind::InvalidArg)
    {
        let from_env = Args::command().get_arguments().find_map(|arg| {
            let long = format!("--{}", arg.get_long()?);
            let named = invalid == &long || invalid.starts_with(&format!("{long} "));
            let given = argv
                .iter()
                .any(|a| a == &long || a.starts_with(&format!("{long}=")));
            let var = arg.get_env()?.to_str()?;
            (named && !given && std::env::var_os(var).is_some()).then(|| var.to_owned())
        });
        if let Some(var) = from_env {
            line = line.replace(&format!("'{invalid}'"), &var);
        }
    }
    crate::names::one_line(&line)
}

/// The `--config` file: the same keys as the command line, plus per-service settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// Where it was read from, to name it in problems with its values.
    #[serde(skip)]
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    shards: Option<usize>,
    cpus: Option<String>,
    kafka_brokers: Option<String>,
    kafka_topic: Option<String>,
    kafka_core: Option<usize>,
    node_id: Option<String>,
    registry_token: Option<String>,
    request_timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    max_in_flight: Option<usize>,
    max_body_memory_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_grpc_message_bytes: Option<usize>,
    header_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    grace_period_ms: Option<u64>,
    idle_poll_us: Option<u64>,
    #[serde(default)]
    /// By name, so that their problems are reported in the same order every time.
    services: BTreeMap<String, FileServiceConfig>,
}

/// A `[services.NAME]` section. A `[services]` entry that is not a table is reported as
/// "expected" this, in the operator's words rather than this type's name.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of settings like [services.NAME]"
)]
struct FileServiceConfig {
    timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    max_grpc_message_bytes: Option<usize>,
}

/// Settings that can differ per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSettings {
    /// Deadline of one backend call.
    pub timeout: Duration,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Largest backend answer accepted.
    pub max_grpc_message_bytes: usize,
}

/// Kafka settings, present when the gateway joins a cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated.
    pub brokers: String,
    /// Registry log topic.
    pub topic: String,
    /// CPU the Kafka thread is pinned to.
    pub core: usize,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client listener.
    pub listen: SocketAddr,
    /// CPUs the shards are pinned to, one shard per entry.
    pub shard_cpus: Vec<usize>,
    /// Cluster settings; `None` means standalone.
    pub kafka: Option<KafkaConfig>,
    /// This gateway's node id.
    pub node_id: String,
    /// Bearer token for registry writes.
    pub registry_token: Option<String>,
    /// Settings for services without their own entry.
    pub default_service: ServiceSettings,
    /// Per-service overrides.
    pub services: HashMap<ServiceName, ServiceSettings>,
    /// Header section limit.
    pub max_header_bytes: usize,
    /// Header count limit.
    pub max_headers: usize,
    /// In-flight limit per shard.
    pub max_in_flight: usize,
    /// Bytes of request bodies a shard holds at once ([`DEFAULT_MAX_BODY_MEMORY_BYTES`]).
    pub max_body_memory_bytes: usize,
    /// Client connection limit per shard.
    pub max_connections: usize,
    /// Header read deadline.
    pub header_timeout: Duration,
    /// Idle keep-alive timeout.
    pub idle_timeout: Duration,
    /// Body read deadline.
    pub body_timeout: Duration,
    /// SIGTERM drain period.
    pub grace_period: Duration,
    /// How long a shard that ran out of work polls before it sleeps; zero sleeps at once.
    pub idle_poll: Duration,
    /// GraphQL limits: the document ones at their defaults, the response at
    /// [`crate::graphql::RESPONSE_ANSWERS`] times `--max-grpc-message-bytes`, the forwarded bodies
    /// at `--max-body-bytes`.
    pub graphql_limits: crate::graphql::Limits,
    /// Start the in-process sample backend.
    pub demo: bool,
}

/// Upper bound for `--max-headers`: the HTTP/1.1 parser gives httparse a stack array of this many
/// header slots plus one (uninitialised, so its ~32 KiB cost only stack space) on every parse,
/// and uses the first `--max-headers` + 1 of them.
pub(crate) const MAX_HEADERS_CEILING: usize = 1_000;
/// Most shards a gateway runs: each is a thread with its own io_uring rings and locked memory,
/// so more than the largest machines' cores is a typo (a huge count failed with a capacity
/// overflow, or took every CPU building threads, instead of saying so).
const MAX_SHARDS: usize = 1_024;
/// Upper bound for body and message limits: everything is buffered in memory per request.
const MAX_BYTES_CEILING: usize = 1 << 30;

impl Config {
    /// Builds the configuration from parsed arguments, reading the `--config` file if any.
    /// Returns every problem found, one per line.
    pub fn from_args(args: Args) -> Result<Config, String> {
        Config::from_args_on(args, crate::sys::affinity_cpus())
    }

    /// [`Config::from_args`] on a machine whose affinity mask is `mask` (tests give their own).
    /// Each step merges and checks its own settings, adding what is wrong to one list, so that
    /// every problem is reported, in the order of the steps.
    fn from_args_on(args: Args, mask: std::io::Result<Vec<usize>>) -> Result<Config, String> {
        let file = FileConfig::read(args.config.as_deref())?;
        let mut problems = Vec::new();
        let listen = listen_address(&args, &file, &mut problems);
        let (shard_cpus, kafka) = placement(&args, &file, mask, &mut problems);
        let node_id = node_id(&args, &file, &mut problems);
        let registry_token = registry_token(&args, &file, &mut problems);
        let limits = RequestLimits::merge(&args, &file, &mut problems);
        let timeouts = Timeouts::merge(&args, &file, &mut problems);
        let default_service = ServiceSettings {
            timeout: timeouts.request,
            max_body_bytes: limits.max_body_bytes,
            max_grpc_message_bytes: limits.max_grpc_message_bytes,
        };
        let services = service_settings(file.services, &default_service, &mut problems);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Config {
            listen,
            shard_cpus,
            kafka,
            node_id,
            registry_token,
            default_service,
            services,
            max_header_bytes: limits.max_header_bytes,
            max_headers: limits.max_headers,
            max_in_flight: limits.max_in_flight,
            max_body_memory_bytes: limits.max_body_memory_bytes,
            max_connections: limits.max_connections,
            header_timeout: timeouts.header,
            idle_timeout: timeouts.idle,
            body_timeout: timeouts.body,
            grace_period: timeouts.grace_period,
            idle_poll: timeouts.idle_poll,
            graphql_limits: crate::graphql::Limits {
                max_response_bytes: limits
                    .max_grpc_message_bytes
                    .saturating_mul(crate::graphql::RESPONSE_ANSWERS),
                max_forwarded_body_bytes: limits.max_body_bytes,
                ..crate::graphql::Limits::default()
            },
            demo: args.demo,
        })
    }

    /// The settings for `service`.
    pub fn service(&self, service: &str) -> &ServiceSettings {
        self.services.get(service).unwrap_or(&self.default_service)
    }
}

impl FileConfig {
    /// The `--config` file at `path`, or an empty one when there is none. A file that cannot be
    /// read or parsed is the only problem reported: the rest of the settings depend on it.
    fn read(path: Option<&std::path::Path>) -> Result<FileConfig, String> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let mut file: FileConfig =
            toml::from_str(&text).map_err(|e| toml_problem(path, &text, &e))?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }
}

/// A setting's value from the command line or its variable (clap merges the two) or else from
/// the file, with the name a problem with it gives: where the operator set it, so that they look
/// there and not for a flag they never passed.
struct Setting<T> {
    value: Option<T>,
    name: String,
}

impl<T> Setting<T> {
    /// `flag`, else `in_file`: the setting whose file key (and clap id) is `key`.
    fn merge(
        key: &str,
        flag: Option<T>,
        in_file: Option<T>,
        args: &Args,
        file: &FileConfig,
    ) -> Setting<T> {
        let name = match (&flag, &in_file, &file.path) {
            (Some(_), _, _) if args.from_env.iter().any(|k| k == key) => {
                format!("SWITCHYARD_{}", key.to_ascii_uppercase())
            }
            (None, Some(_), Some(path)) => format!("`{key}` in {}", path.display()),
            // Given on the command line, or not at all: the default is the flag's.
            _ => format!("--{}", key.replace('_', "-")),
        };
        Setting {
            value: flag.or(in_file),
            name,
        }
    }
}

/// The [`Setting`] `$key` of `$args` and `$file`, whose fields and file key share the key's name
/// (`as_deref` for the text ones), so that the name a problem gives cannot drift from the field.
macro_rules! setting {
    ($args:expr, $file:expr, $key:ident) => {
        Setting::merge(stringify!($key), $args.$key, $file.$key, $args, $file)
    };
    ($args:expr, $file:expr, $key:ident as_deref) => {
        Setting::merge(
            stringify!($key),
            $args.$key.as_deref(),
            $file.$key.as_deref(),
            $args,
            $file,
        )
    };
}

/// The client listener: `--listen`, the file's `listen` or [`DEFAULT_LISTEN`]; port 0 is a problem.
fn listen_address(args: &Args, file: &FileConfig, problems: &mut Vec<String>) -> SocketAddr {
    let listen = setting!(args, file, listen);
    let address: SocketAddr = listen
        .value
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
    if address.port() == 0 {
        // Each shard binds the address itself: port 0 would give each a port of its own.
        problems.push(format!(
            "{} needs a port (0 would give each shard its own)",
            listen.name
        ));
    }
    address
}

/// Where the work runs: the shards' CPUs (`--cpus`, `--shards`) and the Kafka settings, whose
/// core the shards leave free. Every CPU named is checked against `mask`, the process's
/// affinity mask.
fn placement(
    args: &Args,
    file: &FileConfig,
    mask: std::io::Result<Vec<usize>>,
    problems: &mut Vec<String>,
) -> (Vec<usize>, Option<KafkaConfig>) {
    // The CPUs this process may run on: the default for --cpus, and what every CPU named in
    // --cpus or --kafka-core is checked against, so that a CPU that does not exist (or that
    // taskset / systemd `CPUAffinity=` excluded) is a bad option, not a failed start.
    let allowed = mask.unwrap_or_else(|e| {
        problems.push(format!("cannot read the CPU affinity mask: {e}"));
        Vec::new()
    });
    let cpus = setting!(args, file, cpus as_deref);
    let cpu_list = match cpus.value {
        None => allowed.clone(),
        Some(list) => parse_cpu_list(list)
            .and_then(|cpus| check_cpus_allowed(&cpus, &allowed).map(|()| cpus))
            .unwrap_or_else(|e| {
                problems.push(format!("{}: {e}", cpus.name));
                Vec::new()
            }),
    };
    let kafka = kafka_config(args, file, &allowed, problems);
    let shards = setting!(args, file, shards);
    let shard_cpus = shard_cpus(cpu_list, kafka.as_ref(), shards, problems);
    (shard_cpus, kafka)
}

/// The Kafka settings, `None` (standalone) without `--kafka-brokers`. The core defaults to the
/// last CPU of `allowed`.
fn kafka_config(
    args: &Args,
    file: &FileConfig,
    allowed: &[usize],
    problems: &mut Vec<String>,
) -> Option<KafkaConfig> {
    let kafka_core = setting!(args, file, kafka_core);
    if let Some(Err(e)) = kafka_core
        .value
        .map(|core| check_cpus_allowed(&[core], allowed))
    {
        problems.push(format!("{}: {e}", kafka_core.name));
    }
    let kafka_topic = setting!(args, file, kafka_topic as_deref);
    if let Some(Err(e)) = kafka_topic.value.map(check_kafka_topic) {
        problems.push(format!("{}: {e}", kafka_topic.name));
    }
    let kafka_brokers = setting!(args, file, kafka_brokers as_deref);
    if let Some(Err(e)) = kafka_brokers.value.map(check_broker_list) {
        problems.push(format!("{}: {e}", kafka_brokers.name));
    }
    kafka_brokers.value.map(|brokers| KafkaConfig {
        brokers: brokers.to_string(),
        topic: kafka_topic.value.unwrap_or(DEFAULT_KAFKA_TOPIC).to_string(),
        // The contract's default: the last CPU of the affinity mask, whatever --cpus names,
        // so that `--cpus` choosing the shards' CPUs leaves the Kafka thread off them when
        // the mask has a CPU to spare.
        core: kafka_core
            .value
            .or_else(|| allowed.last().copied())
            .unwrap_or(0),
    })
}

/// The CPU of each shard: `cpus`, less the Kafka core when there are several, repeated or cut to
/// `shards` when given.
fn shard_cpus(
    cpus: Vec<usize>,
    kafka: Option<&KafkaConfig>,
    shards: Setting<usize>,
    problems: &mut Vec<String>,
) -> Vec<usize> {
    // With Kafka on, the Kafka core is taken out of the shard CPUs when there is more than one.
    let mut shard_cpus: Vec<usize> = match kafka {
        Some(k) if cpus.len() > 1 => cpus.iter().copied().filter(|&c| c != k.core).collect(),
        _ => cpus,
    };
    if let Some(n) = shards.value {
        if n == 0 || n > MAX_SHARDS {
            problems.push(format!(
                "{} must be between 1 and {MAX_SHARDS}",
                shards.name
            ));
        } else if shard_cpus.is_empty() {
            // Reported with --cpus or the affinity mask.
        } else {
            // More shards than CPUs wrap around: allowed for tests, pointless in production.
            shard_cpus = (0..n).map(|i| shard_cpus[i % shard_cpus.len()]).collect();
        }
    } else if shard_cpus.len() > MAX_SHARDS {
        // A CPU named twice is a shard twice: a list can ask for any number of them.
        problems.push(format!(
            "the CPU list names {} shard CPUs (one shard each), more than {MAX_SHARDS}",
            shard_cpus.len()
        ));
    }
    shard_cpus
}

/// This gateway's node id: `--node-id`, the file's, or a random one.
fn node_id(args: &Args, file: &FileConfig, problems: &mut Vec<String>) -> String {
    let setting = setting!(args, file, node_id as_deref);
    let node_id = setting.value.map_or_else(
        || format!("node-{:016x}", crate::sys::random_u64()),
        str::to_string,
    );
    if node_id.is_empty() || node_id.len() > MAX_NODE_ID_LEN {
        problems.push(format!(
            "{} must be 1 to {MAX_NODE_ID_LEN} bytes",
            setting.name
        ));
    }
    node_id
}

/// The bearer token for registry writes, if one is set.
fn registry_token(args: &Args, file: &FileConfig, problems: &mut Vec<String>) -> Option<String> {
    let setting = setting!(args, file, registry_token as_deref);
    if let Some(token) = setting.value {
        // A header value is trimmed and has no control characters, so a token with spaces
        // at either end or any character outside visible ASCII could never be presented.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(format!(
                "{} must be 1 or more visible ASCII characters (no spaces)",
                setting.name
            ));
        }
    }
    setting.value.map(str::to_string)
}

/// Limits on sizes and counts: of a request, of a backend's answer, of a shard's load.
struct RequestLimits {
    max_body_bytes: usize,
    max_grpc_message_bytes: usize,
    max_header_bytes: usize,
    max_headers: usize,
    max_in_flight: usize,
    max_body_memory_bytes: usize,
    max_connections: usize,
}

impl RequestLimits {
    /// Each limit from its flag, the file or its default, checked against its bounds.
    fn merge(args: &Args, file: &FileConfig, problems: &mut Vec<String>) -> RequestLimits {
        let mut bytes = |setting: Setting<usize>, default: usize| {
            let v = setting.value.unwrap_or(default);
            if v == 0 || v > MAX_BYTES_CEILING {
                problems.push(format!(
                    "{} must be between 1 and {MAX_BYTES_CEILING}",
                    setting.name
                ));
            }
            v
        };
        let max_body_bytes = bytes(setting!(args, file, max_body_bytes), DEFAULT_MAX_BODY_BYTES);
        let max_grpc_message_bytes = bytes(
            setting!(args, file, max_grpc_message_bytes),
            DEFAULT_MAX_GRPC_MESSAGE_BYTES,
        );
        let max_header_bytes = bytes(
            setting!(args, file, max_header_bytes),
            DEFAULT_MAX_HEADER_BYTES,
        );
        let max_in_flight = bytes(setting!(args, file, max_in_flight), DEFAULT_MAX_IN_FLIGHT);
        let max_body_memory_bytes = bytes(
            setting!(args, file, max_body_memory_bytes),
            DEFAULT_MAX_BODY_MEMORY_BYTES,
        );
        let max_connections = bytes(
            setting!(args, file, max_connections),
            DEFAULT_MAX_CONNECTIONS,
        );
        let setting = setting!(args, file, max_headers);
        let max_headers = setting.value.unwrap_or(DEFAULT_MAX_HEADERS);
        if max_headers == 0 || max_headers > MAX_HEADERS_CEILING {
            problems.push(format!(
                "{} must be between 1 and {MAX_HEADERS_CEILING}",
                setting.name
            ));
        }
        RequestLimits {
            max_body_bytes,
            max_grpc_message_bytes,
            max_header_bytes,
            max_headers,
            max_in_flight,
            max_body_memory_bytes,
            max_connections,
        }
    }
}

/// Deadlines, idle times and the idle poll.
struct Timeouts {
    request: Duration,
    header: Duration,
    idle: Duration,
    body: Duration,
    grace_period: Duration,
    idle_poll: Duration,
}

impl Timeouts {
    /// Each time from its flag, the file or its default; only the idle poll may be zero.
    fn merge(args: &Args, file: &FileConfig, problems: &mut Vec<String>) -> Timeouts {
        let mut millis = |setting: Setting<u64>, default: u64| {
            let v = setting.value.unwrap_or(default);
            if v == 0 {
                problems.push(format!("{} must be at least 1", setting.name));
            }
            Duration::from_millis(v)
        };
        let request = millis(
            setting!(args, file, request_timeout_ms),
            DEFAULT_REQUEST_TIMEOUT_MS,
        );
        let header = millis(
            setting!(args, file, header_timeout_ms),
            DEFAULT_HEADER_TIMEOUT_MS,
        );
        let idle = millis(
            setting!(args, file, idle_timeout_ms),
            DEFAULT_IDLE_TIMEOUT_MS,
        );
        let body = millis(
            setting!(args, file, body_timeout_ms),
            DEFAULT_BODY_TIMEOUT_MS,
        );
        let grace_period = millis(
            setting!(args, file, grace_period_ms),
            DEFAULT_GRACE_PERIOD_MS,
        );
        let setting = setting!(args, file, idle_poll_us);
        let idle_poll_us = setting.value.unwrap_or(DEFAULT_IDLE_POLL_US);
        if idle_poll_us > MAX_IDLE_POLL_US {
            problems.push(format!(
                "{} must be at most {MAX_IDLE_POLL_US} (microseconds)",
                setting.name
            ));
        }
        Timeouts {
            request,
            header,
            idle,
            body,
            grace_period,
            idle_poll: Duration::from_micros(idle_poll_us),
        }
    }
}

/// The `[services.NAME]` sections: each service's settings, what a section leaves out taken
/// from `default`.
fn service_settings(
    sections: BTreeMap<String, FileServiceConfig>,
    default: &ServiceSettings,
    problems: &mut Vec<String>,
) -> HashMap<ServiceName, ServiceSettings> {
    let mut services = HashMap::new();
    for (name, s) in sections {
        match ServiceName::parse(&name) {
            Ok(service) => {
                let settings = ServiceSettings {
                    timeout: s
                        .timeout_ms
                        .map(Duration::from_millis)
                        .unwrap_or(default.timeout),
                    max_body_bytes: s.max_body_bytes.unwrap_or(default.max_body_bytes),
                    max_grpc_message_bytes: s
                        .max_grpc_message_bytes
                        .unwrap_or(default.max_grpc_message_bytes),
                };
                // Only what the section sets: a value it takes from `default` is reported there.
                let bytes = [s.max_body_bytes, s.max_grpc_message_bytes];
                if s.timeout_ms == Some(0) || bytes.contains(&Some(0)) {
                    problems.push(format!("[services.{name}]: values must be at least 1"));
                }
                if bytes.iter().flatten().any(|&v| v > MAX_BYTES_CEILING) {
                    problems.push(format!(
                        "[services.{name}]: byte limits must be at most {MAX_BYTES_CEILING}"
                    ));
                }
                services.insert(service, settings);
            }
            Err(e) => problems.push(format!("[services.{name}]: {e}")),
        }
    }
    services
}

/// Checks that every CPU in `cpus` is in `allowed` (the process's affinity mask). glommio and
/// `sched_setaffinity` would otherwise refuse them only once the executors start. An empty
/// `allowed` (the mask could not be read, which is reported on its own) checks nothing.
fn check_cpus_allowed(cpus: &[usize], allowed: &[usize]) -> Result<(), String> {
    if allowed.is_empty() {
        return Ok(());
    }
    let mut outside: Vec<usize> = cpus
        .iter()
        .copied()
        .filter(|c| !allowed.contains(c))
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    outside.sort_unstable();
    outside.dedup();
    let (noun, verb) = if outside.len() == 1 {
        ("CPU", "is")
    } else {
        ("CPUs", "are")
    };
    Err(format!(
        "{noun} {} {verb} not among the CPUs this process may run on ({})",
        format_cpu_list(&outside),
        format_cpu_list(allowed)
    ))
}

/// Formats CPU numbers the way [`parse_cpu_list`] reads them: `[0, 1, 2, 5]` → `0-2,5`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    parts.join(",")
}

/// Checks a Kafka topic name as Kafka does (`org.apache.kafka.common.internals.Topic.validate`):
/// 1 to [`MAX_KAFKA_TOPIC_LEN`] characters of `A-Z a-z 0-9 . _ -`, and not `.` or `..`.
pub fn check_kafka_topic(topic: &str) -> Result<(), String> {
    let legal = topic
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if topic.is_empty() || topic.len() > MAX_KAFKA_TOPIC_LEN || !legal {
        return Err(format!(
            "`{}` is not a Kafka topic name (1 to {MAX_KAFKA_TOPIC_LEN} characters of A-Z a-z 0-9 . _ -)",
            topic.escape_default()
        ));
    }
    if topic == "." || topic == ".." {
        return Err(format!("`{topic}` is not a Kafka topic name"));
    }
    Ok(())
}

/// Checks a bootstrap broker list: comma-separated `host:port` entries (the syntax of a
/// registered [`Address`](crate::names::Address)), none empty. An empty list would turn on cluster
/// mode with nothing to connect to, and librdkafka only complains about bad entries in its log.
pub fn check_broker_list(list: &str) -> Result<(), String> {
    if list.is_empty() {
        return Err("must not be empty (leave it unset to run standalone)".to_string());
    }
    for entry in list.split(',') {
        if entry.is_empty() {
            return Err(format!("`{}` has an empty entry", list.escape_default()));
        }
        crate::names::Address::check(entry).map_err(|e| format!("{e} (entries are host:port)"))?;
    }
    Ok(())
}

/// A config file's TOML error as one line (the exit-status-2 message is one line, and the TOML
/// parser's messages run over several): where it is, then what.
fn toml_problem(path: &std::path::Path, text: &str, e: &toml::de::Error) -> String {
    let what = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("config file {}, line {line}: {what}", path.display())
        }
        None => format!("config file {}: {what}", path.display()),
    }
}

/// Reads the value of a numeric option: a count, size, time or CPU number. Rust's own parser calls
/// `-1` an "invalid digit"; it is a number out of range, and is reported so. Its options also
/// have `allow_negative_numbers`, without which clap took `--shards -1` for an unknown option `-1`.
fn unsigned<T: FromStr<Err = ParseIntError>>(value: &str) -> Result<T, String> {
    value.parse().map_err(|e: ParseIntError| {
        if value.parse::<i128>().is_ok_and(|v| v < 0) {
            "out of range (cannot be negative)".to_string()
        } else {
            e.to_string()
        }
    })
}

/// Parses a CPU list such as `1,3-5` into `[1, 3, 4, 5]`.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let range = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        match range {
            (Ok(a), Ok(b)) if a <= b && b < 4096 => cpus.extend(a..=b),
            _ => return Err(format!("`{part}` is not a CPU number or range")),
        }
    }
    if cpus.is_empty() {
        return Err("empty CPU list".to_string());
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests;
