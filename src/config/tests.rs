//! Unit tests of option parsing and validation. They pass their own affinity mask
//! ([`Config::from_args_on`]) so that they do not depend on the machine's CPUs.

use super::*;

/// The affinity mask the tests pretend to run with.
fn four_cpus() -> std::io::Result<Vec<usize>> {
    Ok(vec![0, 1, 2, 3])
}

fn config(args: Args) -> Result<Config, String> {
    Config::from_args_on(args, four_cpus())
}

#[test]
fn cpu_lists() {
    assert_eq!(parse_cpu_list("1,3-5").unwrap(), vec![1, 3, 4, 5]);
    assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
    assert!(parse_cpu_list("5-3").is_err());
    assert!(parse_cpu_list("a").is_err());
    assert!(parse_cpu_list("").is_err());
}

#[test]
fn cpu_lists_are_formatted_as_they_are_read() {
    assert_eq!(format_cpu_list(&[0, 1, 2, 5]), "0-2,5");
    assert_eq!(format_cpu_list(&[7]), "7");
    assert_eq!(format_cpu_list(&[3, 1, 2, 2]), "1-3");
    assert_eq!(format_cpu_list(&[]), "");
    for list in ["0-3", "1,3-5", "0,2,4"] {
        assert_eq!(format_cpu_list(&parse_cpu_list(list).unwrap()), list);
    }
}

#[test]
fn reports_every_problem_at_once() {
    let args = Args {
        cpus: Some("0".into()),
        shards: Some(0),
        max_headers: Some(0),
        request_timeout_ms: Some(0),
        kafka_topic: Some("bad topic!".into()),
        ..Args::default()
    };
    let err = config(args).unwrap_err();
    assert!(err.contains("--shards"), "{err}");
    assert!(err.contains("--max-headers"), "{err}");
    assert!(err.contains("--request-timeout-ms"), "{err}");
    assert!(err.contains("--kafka-topic"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn kafka_core_is_taken_out_of_the_shards() {
    let args = Args {
        cpus: Some("0-3".into()),
        kafka_brokers: Some("127.0.0.1:9092".into()),
        ..Args::default()
    };
    let config = config(args).unwrap();
    assert_eq!(config.shard_cpus, vec![0, 1, 2]);
    assert_eq!(config.kafka.unwrap().core, 3);
}

#[test]
fn the_default_kafka_core_is_the_last_cpu_of_the_affinity_mask() {
    // --cpus names the shards' CPUs; the Kafka thread goes to the mask's last CPU (contract §7),
    // not onto one of them.
    let args = Args {
        cpus: Some("0-1".into()),
        kafka_brokers: Some("127.0.0.1:9092".into()),
        ..Args::default()
    };
    let config = config(args).unwrap();
    assert_eq!(config.kafka.unwrap().core, 3);
    assert_eq!(config.shard_cpus, vec![0, 1]);
}

#[test]
fn cpus_must_be_in_the_affinity_mask() {
    let args = Args {
        cpus: Some("2-3".into()),
        ..Args::default()
    };
    assert_eq!(config(args).unwrap().shard_cpus, vec![2, 3]);
    for (list, named) in [("99", "CPU 99 is"), ("1,4-5,99", "CPUs 4-5,99 are")] {
        let args = Args {
            cpus: Some(list.into()),
            ..Args::default()
        };
        let err = config(args).unwrap_err();
        assert_eq!(
            err,
            format!("--cpus: {named} not among the CPUs this process may run on (0-3)")
        );
    }
}

#[test]
fn kafka_core_must_be_in_the_affinity_mask() {
    let args = Args {
        kafka_brokers: Some("127.0.0.1:9092".into()),
        kafka_core: Some(1),
        ..Args::default()
    };
    let config = config(args).unwrap();
    assert_eq!(config.kafka.unwrap().core, 1);
    assert_eq!(config.shard_cpus, vec![0, 2, 3]);
    for brokers in [Some("127.0.0.1:9092"), None] {
        let args = Args {
            kafka_brokers: brokers.map(Into::into),
            kafka_core: Some(99),
            ..Args::default()
        };
        let err = self::config(args).unwrap_err();
        assert!(err.starts_with("--kafka-core: CPU 99 is not"), "{err}");
    }
}

#[test]
fn an_unreadable_affinity_mask_is_one_problem() {
    let args = Args {
        cpus: Some("0".into()),
        kafka_core: Some(5),
        ..Args::default()
    };
    let err = Config::from_args_on(args, Err(std::io::Error::other("nope"))).unwrap_err();
    assert_eq!(err, "cannot read the CPU affinity mask: nope");
}

#[test]
fn kafka_topic_names_follow_kafka() {
    let longest = "t".repeat(MAX_KAFKA_TOPIC_LEN);
    for ok in [
        "switchyard.registry",
        "a",
        "A-b_c.9",
        "...",
        "_",
        longest.as_str(),
    ] {
        assert_eq!(check_kafka_topic(ok), Ok(()), "{ok}");
    }
    let too_long = "t".repeat(MAX_KAFKA_TOPIC_LEN + 1);
    for bad in [
        "",
        ".",
        "..",
        "bad topic!",
        "a/b",
        "ü",
        "a,b",
        too_long.as_str(),
    ] {
        assert!(check_kafka_topic(bad).is_err(), "{bad}");
    }
}

#[test]
fn broker_lists_are_host_port_entries() {
    for ok in [
        "127.0.0.1:9092",
        "a:1,b:2",
        "[::1]:9092",
        "kafka-0.kafka.svc.cluster.local:9092,10.0.0.1:9093",
    ] {
        assert_eq!(check_broker_list(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        ",",
        "a:1,",
        ",a:1",
        "a:1,,b:2",
        "a",
        "a:0",
        "a:99999",
        "a:1, b:2",
        "PLAINTEXT://a:1",
        "a..b:1",
    ] {
        assert!(check_broker_list(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn empty_strings_are_bad_options() {
    let cases = [
        (
            Args {
                kafka_brokers: Some(String::new()),
                ..Args::default()
            },
            "--kafka-brokers: must not be empty",
        ),
        (
            Args {
                kafka_brokers: Some("127.0.0.1:9092".into()),
                kafka_topic: Some(String::new()),
                ..Args::default()
            },
            "--kafka-topic: ",
        ),
        (
            Args {
                registry_token: Some(String::new()),
                ..Args::default()
            },
            "--registry-token must be",
        ),
        (
            Args {
                node_id: Some(String::new()),
                ..Args::default()
            },
            "--node-id must be",
        ),
    ];
    for (args, expected) in cases {
        let err = config(args).unwrap_err();
        assert!(err.starts_with(expected), "{expected}: {err}");
    }
}

#[test]
fn idle_polling_is_off_unless_asked_for_and_bounded() {
    let off = config(Args::default()).unwrap();
    assert!(off.idle_poll.is_zero());

    let on = config(Args {
        idle_poll_us: Some(50),
        ..Args::default()
    })
    .unwrap();
    assert_eq!(on.idle_poll, Duration::from_micros(50));

    let err = config(Args {
        idle_poll_us: Some(MAX_IDLE_POLL_US + 1),
        ..Args::default()
    })
    .unwrap_err();
    assert!(err.contains("--idle-poll-us"), "{err}");
}

#[test]
fn idle_polling_can_come_from_the_file() {
    let dir = std::env::temp_dir().join(format!("switchyard-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("idle-poll.toml");
    std::fs::write(&path, "idle_poll_us = 30\n").unwrap();
    let from_file = config(Args {
        config: Some(path.clone()),
        ..Args::default()
    })
    .unwrap();
    let flag_wins = config(Args {
        config: Some(path.clone()),
        idle_poll_us: Some(0),
        ..Args::default()
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_file.idle_poll, Duration::from_micros(30));
    assert!(flag_wins.idle_poll.is_zero());
}

#[test]
fn a_toml_error_is_one_line_that_says_where() {
    let text = "shards = 1\nlisten = \n";
    let e = toml::from_str::<FileConfig>(text).unwrap_err();
    let line = toml_problem(std::path::Path::new("gw.toml"), text, &e);
    assert!(line.starts_with("config file gw.toml, line 2: "), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn graphql_limits_follow_the_body_and_answer_limits() {
    // At the defaults they are the engine's documented defaults.
    let config = config(Args::default()).unwrap();
    assert_eq!(config.graphql_limits, crate::graphql::Limits::default());
    let config = config_with(&[
        "--max-body-bytes",
        "1000",
        "--max-grpc-message-bytes",
        "5000",
    ]);
    assert_eq!(config.graphql_limits.max_forwarded_body_bytes, 1000);
    assert_eq!(
        config.graphql_limits.max_response_bytes,
        crate::graphql::RESPONSE_ANSWERS * 5000
    );
}

fn config_with(flags: &[&str]) -> Config {
    config(parse(flags).unwrap()).unwrap()
}

/// `flags` as the command line (clap reads the environment too: tests set none).
fn parse(flags: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once("switchyard").chain(flags.iter().copied()))
}

#[test]
fn demo_takes_the_values_its_variable_does() {
    // `--demo=true` was refused ("unexpected value 'true'") while SWITCHYARD_DEMO=true was taken.
    let cases: [(&[&str], bool); 10] = [
        (&[], false),
        (&["--demo"], true),
        (&["--demo=true"], true),
        (&["--demo=1"], true),
        (&["--demo=yes"], true),
        (&["--demo=on"], true),
        (&["--demo=false"], false),
        (&["--demo=0"], false),
        (&["--demo=no"], false),
        (&["--demo=off"], false),
    ];
    for (flags, demo) in cases {
        assert_eq!(parse(flags).map(|a| a.demo).ok(), Some(demo), "{flags:?}");
    }
    // As the README runs it, and before another option, which is not taken for its value.
    let args = parse(&["--demo", "--shards", "1"]).unwrap();
    assert_eq!((args.demo, args.shards), (true, Some(1)));
    let args = parse(&["--shards", "1", "--demo"]).unwrap();
    assert_eq!((args.demo, args.shards), (true, Some(1)));
    assert!(parse(&["--demo=maybe"]).is_err());
    assert!(parse(&["--demo", "true"]).is_err(), "a value needs its =");
}

#[test]
fn a_negative_number_is_out_of_range_not_an_unknown_option() {
    use clap::error::ErrorKind;
    // clap took `-1` after these for an option of its own: "unexpected argument '-1' found".
    for flag in [
        "--shards",
        "--kafka-core",
        "--request-timeout-ms",
        "--max-body-bytes",
        "--max-header-bytes",
        "--max-headers",
        "--max-in-flight",
        "--max-body-memory-bytes",
        "--max-connections",
        "--max-grpc-message-bytes",
        "--header-timeout-ms",
        "--idle-timeout-ms",
        "--body-timeout-ms",
        "--grace-period-ms",
        "--idle-poll-us",
    ] {
        let err = parse(&[flag, "-1"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation, "{flag}: {err}");
        let value_name = flag[2..].replace('-', "_").to_uppercase();
        assert_eq!(
            err.to_string().lines().next(),
            Some(
                format!(
                    "error: invalid value '-1' for '{flag} <{value_name}>': \
                     out of range (cannot be negative)"
                )
                .as_str()
            )
        );
    }
    // Everything else parses as before.
    for flag in [
        "--listen",
        "--cpus",
        "--kafka-topic",
        "--node-id",
        "--config",
    ] {
        let err = parse(&[flag, "-1"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{flag}: {err}");
    }
    let err = parse(&["--shards", "two"]).unwrap_err();
    assert!(
        err.to_string().contains("invalid digit found in string"),
        "{err}"
    );
    let args = parse(&["--shards", "2", "--kafka-core", "0", "--max-headers=7"]).unwrap();
    assert_eq!(
        (args.shards, args.kafka_core, args.max_headers),
        (Some(2), Some(0), Some(7))
    );
}

#[test]
fn a_request_at_the_default_limits_fits_grpcs_default_receive_limit() {
    use crate::http::Field;
    use crate::upstream::codec::ForwardingParts;
    use bytes::Bytes;

    // The header section at its limit: a request line and DEFAULT_MAX_HEADERS headers whose values
    // fill the rest, as HTTP/1.1 counts them (the longest values take the widest framing).
    let service = "s".repeat(63);
    let request_line = format!("POST /{service}/p?q=1 HTTP/1.1\r\n");
    let (path, query) = ("/p", "q=1");
    let names: Vec<String> = (0..DEFAULT_MAX_HEADERS)
        .map(|i| format!("x-{i:03}"))
        .collect();
    let framing: usize = names.iter().map(|n| n.len() + 4).sum();
    let room = DEFAULT_MAX_HEADER_BYTES - request_line.len() - 2 - framing;
    let headers: Vec<Field> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let len = room / DEFAULT_MAX_HEADERS + usize::from(i < room % DEFAULT_MAX_HEADERS);
            Field::new(n.clone(), "v".repeat(len))
        })
        .collect();
    let section: usize = request_line.len()
        + headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum::<usize>()
        + 2;
    assert_eq!(section, DEFAULT_MAX_HEADER_BYTES);
    let body = Bytes::from(vec![b'b'; DEFAULT_MAX_BODY_BYTES]);
    let request_id = "r".repeat(128);
    let parts = ForwardingParts {
        method: "POST",
        path: path.as_bytes(),
        query: query.as_bytes(),
        headers: &headers,
        extra_headers: &[],
        body: &body,
        service: &service,
        request_id: &request_id,
        remote_addr: "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535",
        graphql_field: "",
    };
    // Counted without the gRPC prefix, as the receive limit is.
    let len = parts.encoded_len(|_| true);
    assert!(
        len <= GRPC_DEFAULT_MAX_RECEIVE,
        "{len} bytes, over by {}",
        len - GRPC_DEFAULT_MAX_RECEIVE
    );
}

#[test]
fn a_registry_token_no_client_could_send_is_a_bad_option() {
    for token in ["abc ", " abc", "a b", "line\nbreak", "tab\t", "grüße"] {
        let err = config(Args {
            registry_token: Some(token.into()),
            ..Args::default()
        })
        .unwrap_err();
        assert!(
            err.starts_with("--registry-token must be"),
            "{token:?}: {err}"
        );
    }
    let ok = config(Args {
        registry_token: Some("s3cret-Token_1.2~+/=".into()),
        ..Args::default()
    });
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn the_listen_address_needs_a_port() {
    let err = config(Args {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Args::default()
    })
    .unwrap_err();
    assert!(err.starts_with("--listen needs a port"), "{err}");
}

#[test]
fn per_service_byte_limits_have_the_same_ceiling() {
    let err = config_file("[services.echo]\nmax_body_bytes = 99999999999999\n").unwrap_err();
    assert!(
        err.starts_with("[services.echo]: byte limits must be at most"),
        "{err}"
    );
}

#[test]
fn a_shard_count_past_any_machine_is_a_bad_option() {
    for shards in [1_025, usize::MAX] {
        let err = config(Args {
            shards: Some(shards),
            ..Args::default()
        })
        .unwrap_err();
        assert_eq!(err, "--shards must be between 1 and 1024");
    }
    let ok = config(Args {
        shards: Some(1_024),
        ..Args::default()
    });
    assert_eq!(ok.map(|c| c.shard_cpus.len()), Ok(1_024));
    // A CPU list naming CPUs again and again asks for as many shards: the same bound.
    let list = |n: usize| vec!["0-3"; n / 4].join(",");
    let err = config(Args {
        cpus: Some(list(1_028)),
        ..Args::default()
    })
    .unwrap_err();
    assert_eq!(
        err,
        "the CPU list names 1028 shard CPUs (one shard each), more than 1024"
    );
    let ok = config(Args {
        cpus: Some(list(1_024)),
        ..Args::default()
    });
    assert_eq!(ok.map(|c| c.shard_cpus.len()), Ok(1_024));
}

/// The config read from a file holding `text`, with no flags.
fn config_file(text: &str) -> Result<Config, String> {
    config_file_and(text, Args::default())
}

/// The config read from a file holding `text` and `args`; problems name the file `FILE`.
fn config_file_and(text: &str, args: Args) -> Result<Config, String> {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("switchyard-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let result = config(Args {
        config: Some(path.clone()),
        ..args
    });
    std::fs::remove_file(&path).unwrap();
    result.map_err(|e| e.replace(&path.display().to_string(), "FILE"))
}

#[test]
fn a_bad_value_from_the_file_is_named_by_its_key_and_the_file() {
    // The operator looks where the problem points: not for a flag they never passed.
    let text = "listen = \"127.0.0.1:0\"\ncpus = \"99\"\nshards = 0\nkafka_brokers = \"\"\n\
                node_id = \"\"\nmax_headers = 0\nmax_body_bytes = 0\nidle_timeout_ms = 0\n\
                idle_poll_us = 99999\n";
    let err = config_file(text).unwrap_err();
    assert_eq!(
        err.split("; ").collect::<Vec<_>>(),
        [
            "`listen` in FILE needs a port (0 would give each shard its own)",
            "`cpus` in FILE: CPU 99 is not among the CPUs this process may run on (0-3)",
            "`kafka_brokers` in FILE: must not be empty (leave it unset to run standalone)",
            "`shards` in FILE must be between 1 and 1024",
            "`node_id` in FILE must be 1 to 128 bytes",
            "`max_body_bytes` in FILE must be between 1 and 1073741824",
            "`max_headers` in FILE must be between 1 and 1000",
            "`idle_timeout_ms` in FILE must be at least 1",
            "`idle_poll_us` in FILE must be at most 10000 (microseconds)",
        ]
    );
    // A flag given over the file's value is named as the flag.
    let err = config_file_and(
        "max_body_bytes = 5\n",
        Args {
            max_body_bytes: Some(0),
            ..Args::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, "--max-body-bytes must be between 1 and 1073741824");
}

#[test]
fn a_service_entry_that_is_not_a_table_says_what_it_should_be() {
    // serde's own words would name the struct the section is read into.
    for (entry, value) in [
        ("echo = 1", "integer `1`"),
        ("echo = \"x\"", "string \"x\""),
    ] {
        let err = config_file(&format!("shards = 1\n[services]\n{entry}\n")).unwrap_err();
        assert_eq!(
            err,
            format!(
                "config file FILE, line 3: invalid type: {value}, \
                 expected a table of settings like [services.NAME]"
            )
        );
    }
    // Tables still are sections, inline or not, and problems inside them keep their line.
    let ok =
        config_file("[services]\necho = { timeout_ms = 5 }\n[services.users]\ntimeout_ms = 7\n");
    let ok = ok.unwrap();
    assert_eq!(ok.service("echo").timeout, Duration::from_millis(5));
    assert_eq!(ok.service("users").timeout, Duration::from_millis(7));
    let err = config_file("[services.users]\ntimeout_ms = 5\nbogus = 1\n").unwrap_err();
    assert!(
        err.starts_with("config file FILE, line 3: unknown field `bogus`"),
        "{err}"
    );
}

#[test]
fn a_bad_value_from_the_environment_is_named_by_its_variable() {
    // As `Args::try_parse_noting_env` reads SWITCHYARD_MAX_BODY_BYTES=0 and --shards 0.
    let err = config_file_and(
        "max_body_bytes = 5\nmax_headers = 0\n",
        Args {
            shards: Some(0),
            max_body_bytes: Some(0),
            from_env: vec!["max_body_bytes".into()],
            ..Args::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        "--shards must be between 1 and 1024; \
         SWITCHYARD_MAX_BODY_BYTES must be between 1 and 1073741824; \
         `max_headers` in FILE must be between 1 and 1000"
    );
}

#[test]
fn service_sections_are_reported_by_name_and_only_for_what_they_set() {
    // Six sections with a problem each, written out of order, and one without.
    let text = "[services.zz]\ntimeout_ms = 0\n[services.Bad]\n[services.aa]\nmax_body_bytes = 0\n\
                [services.mm]\ntimeout_ms = 5\n[services.qq]\ntimeout_ms = 0\n\
                [services.bb]\nmax_grpc_message_bytes = 0\n[services.kk]\ntimeout_ms = 0\n";
    let err = config_file(text).unwrap_err();
    let at = |section: &str| {
        err.find(section)
            .unwrap_or_else(|| panic!("{section} in {err}"))
    };
    let order = ["Bad", "aa", "bb", "kk", "qq", "zz"].map(|n| at(&format!("[services.{n}]")));
    assert!(order.is_sorted(), "{err}");
    assert!(!err.contains("[services.mm]"), "{err}");
    // A global value a section inherits is reported once, as the global's.
    let err = config_file("max_body_bytes = 0\n[services.echo]\ntimeout_ms = 5\n").unwrap_err();
    assert!(!err.contains("[services.echo]"), "{err}");
    assert!(err.contains("`max_body_bytes` in "), "{err}");
}
