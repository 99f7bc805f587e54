//! Defaults, every validation rule with its message, `from_env`, redaction and the conversions.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use super::*;

type Edit = fn(&mut KafkaEventBusConfig);
type SetNumber = fn(&mut KafkaEventBusConfig, u64);

fn config() -> KafkaEventBusConfig {
    KafkaEventBusConfig::default()
}

fn err(c: &KafkaEventBusConfig) -> String {
    c.validate().unwrap_err().to_string()
}

fn sasl(protocol: &str) -> KafkaEventBusConfig {
    let mut c = config();
    c.security_protocol = protocol.into();
    c.sasl_mechanism = Some("SCRAM-SHA-512".into());
    c.sasl_username = Some("myapp".into());
    c.sasl_password = Some("hunter2-secret".into());
    c
}

#[test]
fn defaults_are_the_references() {
    let c = config();
    assert_eq!(c.bootstrap_servers, "localhost:9092");
    assert_eq!(c.topic_prefix, "events");
    assert_eq!(c.consumer_group, "default");
    assert_eq!(c.acks, "all");
    assert_eq!(c.compression_type.as_deref(), Some("gzip"));
    assert_eq!(c.producer_max_batch_bytes, 16384);
    assert_eq!(c.linger_ms, 5);
    assert_eq!(c.auto_offset_reset, "earliest");
    assert_eq!(
        (
            c.session_timeout_ms,
            c.heartbeat_interval_ms,
            c.max_poll_interval_ms
        ),
        (30_000, 10_000, 300_000)
    );
    assert_eq!(
        (c.fetch_max_bytes, c.max_partition_fetch_bytes),
        (2_097_152, 1_048_576)
    );
    assert_eq!(c.max_retries, 3);
    assert_eq!(c.retry_base_delay, Duration::from_secs(1));
    assert_eq!(c.retry_max_delay, Duration::from_secs(60));
    assert_eq!(c.retry_jitter, 0.1);
    assert!(c.enable_dlq);
    assert!(
        !c.dead_letter_unknown_types,
        "unknown types are skipped by default"
    );
    assert_eq!(c.dlq_topic_suffix, ".dlq");
    assert_eq!(c.dlq_consumer_group, None);
    assert_eq!(c.dlq_max_replay_attempts, 3);
    assert_eq!(c.security_protocol, "PLAINTEXT");
    assert_eq!(
        (&c.sasl_mechanism, &c.sasl_username, &c.sasl_password),
        (&None, &None, &None)
    );
    assert_eq!(
        (&c.ssl_cafile, &c.ssl_certfile, &c.ssl_keyfile),
        (&None, &None, &None)
    );
    assert!(c.ssl_check_hostname && c.enable_tracing && c.enable_metrics);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.topic_name(), "events.stream");
    assert_eq!(c.dlq_topic_name(), "events.stream.dlq");
    c.validate().unwrap();
}

#[test]
fn the_default_consumer_name_is_host_dash_eight_hex_digits() {
    let (a, b) = (config().consumer_name, config().consumer_name);
    assert_ne!(a, b, "a fresh suffix per config");
    let (host, suffix) = a.rsplit_once('-').unwrap();
    assert!(!host.is_empty());
    assert_eq!(suffix.len(), 8);
    assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
}

#[test]
fn security_protocol_must_be_one_of_four() {
    let mut c = config();
    c.security_protocol = "TLS".into();
    assert_eq!(
        err(&c),
        "Invalid security_protocol: TLS. Must be one of: {'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'}"
    );
    // Case-sensitive, as eventsource-py.
    c.security_protocol = "ssl".into();
    assert!(matches!(
        c.validate(),
        Err(ConfigError::InvalidSecurityProtocol { .. })
    ));
    // Checked first: a bad protocol hides every later problem.
    c.topic_prefix.clear();
    assert!(matches!(
        c.validate(),
        Err(ConfigError::InvalidSecurityProtocol { .. })
    ));
    for p in ["PLAINTEXT", "SSL"] {
        c.security_protocol = p.into();
        c.topic_prefix = "events".into();
        c.validate().unwrap();
    }
}

#[test]
fn sasl_protocols_need_a_mechanism() {
    for protocol in ["SASL_PLAINTEXT", "SASL_SSL"] {
        let mut c = sasl(protocol);
        c.sasl_mechanism = None;
        assert_eq!(err(&c), format!("sasl_mechanism required for {protocol}"));
        c.sasl_mechanism = Some(String::new());
        assert_eq!(err(&c), format!("sasl_mechanism required for {protocol}"));
    }
}

#[test]
fn sasl_mechanism_must_be_plain_or_scram() {
    for bad in ["GSSAPI", "OAUTHBEARER", "scram-sha-256"] {
        let mut c = sasl("SASL_SSL");
        c.sasl_mechanism = Some(bad.into());
        assert_eq!(
            err(&c),
            format!(
                "Invalid sasl_mechanism: {bad}. Must be one of: {{'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'}}"
            )
        );
    }
    for good in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let mut c = sasl("SASL_SSL");
        c.sasl_mechanism = Some(good.into());
        c.validate().unwrap();
    }
}

#[test]
fn sasl_protocols_need_user_and_password() {
    let message = "sasl_username and sasl_password required for SASL authentication";
    let cases: [Edit; 4] = [
        |c| c.sasl_username = None,
        |c| c.sasl_password = None,
        |c| c.sasl_username = Some(String::new()),
        |c| c.sasl_password = Some(String::new()),
    ];
    for case in cases {
        let mut c = sasl("SASL_PLAINTEXT");
        case(&mut c);
        assert_eq!(err(&c), message);
        assert!(matches!(c.validate(), Err(ConfigError::SaslCredentialsRequired)));
    }
}

#[test]
fn mtls_needs_both_files_under_ssl_protocols() {
    for protocol in ["SSL", "SASL_SSL"] {
        let mut c = sasl(protocol);
        c.ssl_certfile = Some("client.pem".into());
        assert_eq!(
            err(&c),
            "ssl_keyfile required when ssl_certfile is provided (mTLS)"
        );
        c.ssl_certfile = None;
        c.ssl_keyfile = Some("client.key".into());
        assert_eq!(
            err(&c),
            "ssl_certfile required when ssl_keyfile is provided (mTLS)"
        );
        c.ssl_certfile = Some("client.pem".into());
        c.validate().unwrap();
    }
    // Under a non-SSL protocol the files are ignored (with a warning), as in eventsource-py.
    let mut c = config();
    c.ssl_certfile = Some("client.pem".into());
    c.validate().unwrap();
    assert!(c.warnings().iter().any(|w| w.contains("ssl_* files are ignored")));
}

#[test]
fn warnings_are_the_references_plus_ignored_settings() {
    assert_eq!(
        config().warnings(),
        ["Using PLAINTEXT security protocol - not recommended for production"]
    );
    assert_eq!(
        sasl("SASL_PLAINTEXT").warnings(),
        ["Using SASL without SSL - credentials sent in plain text"]
    );
    assert!(sasl("SASL_SSL").warnings().is_empty());
    let mut c = sasl("SASL_SSL");
    c.ssl_check_hostname = false;
    assert_eq!(
        c.warnings(),
        ["SSL hostname verification disabled - vulnerable to MITM attacks"]
    );
    // SASL settings under SSL: accepted, but nothing authenticates.
    c.security_protocol = "SSL".into();
    c.ssl_check_hostname = true;
    assert_eq!(
        c.warnings(),
        ["sasl_* settings are ignored: security_protocol is not SASL_PLAINTEXT or SASL_SSL"]
    );
    c.validate().unwrap();
}

#[test]
fn a_commit_interval_given_in_milliseconds_is_warned_about() {
    // Kafka's auto.commit.interval.ms is in milliseconds; KAFKA_COMMIT_INTERVAL is in seconds.
    let c = from(&[("KAFKA_COMMIT_INTERVAL", "5000")]).unwrap();
    assert_eq!(c.commit_interval, Duration::from_secs(5000));
    assert!(
        c.warnings().iter().any(|w| w.contains("commit_interval")),
        "{:?}",
        c.warnings()
    );
    let c = from(&[("KAFKA_COMMIT_INTERVAL", "5")]).unwrap();
    assert!(!c.warnings().iter().any(|w| w.contains("commit_interval")));
}

#[test]
fn bootstrap_servers_must_be_host_port_entries() {
    let mut c = config();
    for bad in [
        "",
        " , ",
        "localhost",
        "localhost:",
        ":9092",
        "host:0",
        "host:99999",
        "host:port",
    ] {
        c.bootstrap_servers = bad.into();
        assert!(
            matches!(c.validate(), Err(ConfigError::InvalidBootstrapServers { .. })),
            "{bad:?} accepted"
        );
    }
    c.bootstrap_servers = "".into();
    assert_eq!(
        err(&c),
        "Invalid bootstrap_servers: \"\". Must name at least one host:port"
    );
    c.bootstrap_servers = " kafka-1:9092, kafka-2:9093 ,[::1]:9094".into();
    c.validate().unwrap();
}

#[test]
fn names_must_not_be_empty() {
    let cases: [(&str, Edit); 5] = [
        ("topic_prefix", |c| c.topic_prefix.clear()),
        ("consumer_group", |c| c.consumer_group.clear()),
        ("consumer_name", |c| c.consumer_name.clear()),
        ("dlq_topic_suffix", |c| c.dlq_topic_suffix.clear()),
        ("dlq_consumer_group", |c| {
            c.dlq_consumer_group = Some(String::new())
        }),
    ];
    for (field, case) in cases {
        let mut c = config();
        case(&mut c);
        assert_eq!(err(&c), format!("{field} must not be empty"));
    }
}

#[test]
fn topic_names_must_be_legal_kafka_topics() {
    let mut c = config();
    c.topic_prefix = "my events".into();
    assert!(
        matches!(c.validate(), Err(ConfigError::InvalidTopicName { ref topic, field: "topic_prefix", .. }) if topic == "my events.stream")
    );
    c.topic_prefix = "a".repeat(243); // + ".stream" = 250
    assert!(err(&c).contains("longer than 249"), "{}", err(&c));
    c.topic_prefix = "a".repeat(242);
    c.dlq_topic_suffix = "-".into();
    assert!(matches!(
        c.validate(),
        Err(ConfigError::InvalidTopicName {
            field: "dlq_topic_suffix",
            ..
        })
    ));
    c.dlq_topic_suffix = "/dlq".into();
    c.topic_prefix = "orders_v2-x.y".into();
    assert!(err(&c).contains("only ASCII letters"), "{}", err(&c));
    c.dlq_topic_suffix = ".dlq".into();
    c.validate().unwrap();
}

#[test]
fn acks_must_be_0_1_or_all() {
    let mut c = config();
    for good in ["0", "1", "all", "-1"] {
        c.acks = good.into();
        c.validate().unwrap();
    }
    for bad in ["2", "ALL", "", "leader"] {
        c.acks = bad.into();
        assert_eq!(
            err(&c),
            format!("Invalid acks: {bad}. Must be one of: {{'0', '1', 'all'}} ('-1' means 'all')")
        );
    }
}

#[test]
fn compression_must_be_a_kafka_codec() {
    let mut c = config();
    for good in [
        None,
        Some("none"),
        Some("gzip"),
        Some("snappy"),
        Some("lz4"),
        Some("zstd"),
    ] {
        c.compression_type = good.map(str::to_owned);
        c.validate().unwrap();
    }
    c.compression_type = None;
    assert_eq!(
        c.compression().unwrap(),
        crate::protocol::records::Compression::None
    );
    c.compression_type = Some("brotli".into());
    assert_eq!(
        err(&c),
        "Invalid compression_type: brotli. Must be one of: {'gzip', 'snappy', 'lz4', 'zstd'} or None"
    );
}

#[test]
fn offset_reset_must_be_earliest_or_latest() {
    let mut c = config();
    c.auto_offset_reset = "latest".into();
    assert_eq!(c.offset_reset().unwrap(), OffsetReset::Latest);
    for bad in ["none", "Earliest", "smallest"] {
        c.auto_offset_reset = bad.into();
        assert_eq!(
            err(&c),
            format!("Invalid auto_offset_reset: {bad}. Must be one of: {{'earliest', 'latest'}}")
        );
    }
}

#[test]
fn heartbeat_must_be_below_the_session_timeout() {
    let mut c = config();
    c.heartbeat_interval_ms = 30_000;
    assert_eq!(
        err(&c),
        "heartbeat_interval_ms (30000) must be less than session_timeout_ms (30000)"
    );
    c.heartbeat_interval_ms = 45_000;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::HeartbeatNotBelowSession { .. })
    ));
    c.session_timeout_ms = 6_000;
    c.heartbeat_interval_ms = 1_000;
    c.validate().unwrap();
}

#[test]
fn timeouts_and_sizes_must_be_positive_and_fit_the_wire() {
    let too_big = i32::MAX as u64 + 1;
    let cases: [(&str, SetNumber); 7] = [
        ("session_timeout_ms", |c, v| c.session_timeout_ms = v),
        ("heartbeat_interval_ms", |c, v| c.heartbeat_interval_ms = v),
        ("max_poll_interval_ms", |c, v| c.max_poll_interval_ms = v),
        ("fetch_max_bytes", |c, v| c.fetch_max_bytes = v as usize),
        ("max_partition_fetch_bytes", |c, v| {
            c.max_partition_fetch_bytes = v as usize
        }),
        ("producer_max_batch_bytes", |c, v| {
            c.producer_max_batch_bytes = v as usize
        }),
        ("linger_ms", |c, v| c.linger_ms = v),
    ];
    for (field, set) in cases {
        for value in [0, too_big] {
            if field == "linger_ms" && value == 0 {
                continue; // linger 0 is "send at once"
            }
            let mut c = config();
            set(&mut c, value);
            match c.validate() {
                Err(ConfigError::OutOfRange { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field} = {value}: {other:?}"),
            }
        }
    }
    let mut c = config();
    c.shutdown_timeout = Duration::ZERO;
    assert_eq!(err(&c), "Invalid shutdown_timeout: 0s. Must be greater than zero");
}

#[test]
fn retry_settings_follow_the_references_retry_policy() {
    let mut c = config();
    c.retry_base_delay = Duration::ZERO;
    assert_eq!(err(&c), "Invalid retry_base_delay: 0s. Must be greater than zero");
    let mut c = config();
    c.retry_max_delay = Duration::ZERO;
    assert_eq!(err(&c), "Invalid retry_max_delay: 0s. Must be greater than zero");
    let mut c = config();
    c.retry_max_delay = Duration::from_millis(500);
    assert_eq!(
        err(&c),
        "retry_max_delay (500ms) must be at least retry_base_delay (1s)"
    );
    for jitter in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
        let mut c = config();
        c.retry_jitter = jitter;
        assert!(err(&c).starts_with("Invalid retry_jitter"), "{jitter}");
    }
    for jitter in [0.0, 1.0] {
        let mut c = config();
        c.retry_jitter = jitter;
        c.max_retries = 0;
        c.retry_max_delay = c.retry_base_delay;
        c.validate().unwrap();
    }
}

#[test]
fn debug_never_shows_the_password_or_the_key_file() {
    let mut c = sasl("SASL_SSL");
    c.ssl_certfile = Some("/etc/kafka/client.pem".into());
    c.ssl_keyfile = Some("/etc/kafka/private/client.key".into());
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("private/client.key"), "{shown}");
    assert!(shown.contains("sasl_password: Some(\"***\")"), "{shown}");
    assert!(shown.contains("ssl_keyfile: Some(\"***\")"), "{shown}");
    assert!(shown.contains("myapp") && shown.contains("client.pem"), "{shown}");
    let builder = KafkaEventBusConfig::builder().sasl_password("hunter2-secret");
    assert!(!format!("{builder:?}").contains("hunter2"));
    assert!(format!("{:?}", config()).contains("sasl_password: None"));
}

#[test]
fn the_builder_sets_every_kind_of_field_and_validates() {
    let c = KafkaEventBusConfig::builder()
        .bootstrap_servers("kafka:9093")
        .topic_prefix("myapp.events")
        .consumer_group("svc")
        .consumer_name("worker-1")
        .acks("1")
        .compression_type("lz4")
        .dlq_consumer_group("svc-dlq")
        .ssl_cafile("/ca.pem")
        .retry_max_delay(Duration::from_secs(5))
        .enable_dlq(false)
        .build()
        .unwrap();
    assert_eq!(c.bootstrap_servers, "kafka:9093");
    assert_eq!(c.consumer_name, "worker-1");
    assert_eq!(c.compression_type.as_deref(), Some("lz4"));
    assert_eq!(c.dlq_consumer_group.as_deref(), Some("svc-dlq"));
    assert_eq!(c.ssl_cafile, Some(PathBuf::from("/ca.pem")));
    assert_eq!(c.retry_max_delay, Duration::from_secs(5));
    assert!(!c.enable_dlq);
    let err = KafkaEventBusConfig::builder().acks("2").build().unwrap_err();
    assert!(matches!(err, ConfigError::InvalidAcks { .. }));
    assert_eq!(
        KafkaEventBusConfig::builder()
            .no_compression()
            .build()
            .unwrap()
            .compression_type,
        None
    );
}

fn from(vars: &[(&str, &str)]) -> Result<KafkaEventBusConfig, ConfigError> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    KafkaEventBusConfig::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn from_env_reads_the_seeds_variables() {
    let c = from(&[
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka:9093"),
        ("KAFKA_TOPIC_PREFIX", "myapp.events"),
        ("KAFKA_CONSUMER_GROUP", "my-service"),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("KAFKA_SASL_USERNAME", "myapp"),
        ("KAFKA_SASL_PASSWORD", " pass with spaces "),
        ("KAFKA_SSL_CAFILE", "/etc/kafka/ssl/ca.crt"),
    ])
    .unwrap();
    assert_eq!(c.bootstrap_servers, "kafka:9093");
    assert_eq!(c.topic_name(), "myapp.events.stream");
    assert_eq!(c.consumer_group, "my-service");
    assert_eq!(c.security_protocol, "SASL_SSL");
    assert_eq!(c.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
    assert_eq!(c.sasl_username.as_deref(), Some("myapp"));
    assert_eq!(c.sasl_password.as_deref(), Some(" pass with spaces "));
    assert_eq!(c.ssl_cafile, Some(PathBuf::from("/etc/kafka/ssl/ca.crt")));
}

#[test]
fn from_env_reads_the_rest_and_keeps_defaults_for_unset_or_empty() {
    let c = from(&[
        ("KAFKA_CONSUMER_NAME", " worker-7 "),
        ("KAFKA_ACKS", "0"),
        ("KAFKA_COMPRESSION_TYPE", "none"),
        ("KAFKA_PRODUCER_MAX_BATCH_BYTES", "1048576"),
        ("KAFKA_LINGER_MS", "20"),
        ("KAFKA_AUTO_OFFSET_RESET", "latest"),
        ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("KAFKA_HEARTBEAT_INTERVAL_MS", "1000"),
        ("KAFKA_MAX_POLL_INTERVAL_MS", "60000"),
        ("KAFKA_FETCH_MAX_BYTES", "1000000"),
        ("KAFKA_MAX_PARTITION_FETCH_BYTES", "500000"),
        ("KAFKA_MAX_RETRIES", "0"),
        ("KAFKA_RETRY_BASE_DELAY", "0.25"),
        ("KAFKA_RETRY_MAX_DELAY", "10"),
        ("KAFKA_RETRY_JITTER", "0"),
        ("KAFKA_ENABLE_DLQ", "false"),
        ("KAFKA_DEAD_LETTER_UNKNOWN_TYPES", "yes"),
        ("KAFKA_DLQ_TOPIC_SUFFIX", "-dead"),
        ("KAFKA_DLQ_CONSUMER_GROUP", "dlq-readers"),
        ("KAFKA_DLQ_MAX_REPLAY_ATTEMPTS", "5"),
        ("KAFKA_SSL_CHECK_HOSTNAME", "no"),
        ("KAFKA_ENABLE_TRACING", "0"),
        ("KAFKA_ENABLE_METRICS", "OFF"),
        ("KAFKA_SHUTDOWN_TIMEOUT", "2.5"),
        ("KAFKA_TOPIC_PREFIX", ""),
    ])
    .unwrap();
    assert_eq!(c.consumer_name, "worker-7");
    assert_eq!(c.acks, "0");
    assert_eq!(c.compression_type, None);
    assert_eq!((c.producer_max_batch_bytes, c.linger_ms), (1_048_576, 20));
    assert_eq!(c.auto_offset_reset, "latest");
    assert_eq!(
        (
            c.session_timeout_ms,
            c.heartbeat_interval_ms,
            c.max_poll_interval_ms
        ),
        (6_000, 1_000, 60_000)
    );
    assert_eq!(
        (c.fetch_max_bytes, c.max_partition_fetch_bytes),
        (1_000_000, 500_000)
    );
    assert_eq!(c.max_retries, 0);
    assert_eq!(c.retry_base_delay, Duration::from_millis(250));
    assert_eq!(c.retry_max_delay, Duration::from_secs(10));
    assert_eq!(c.retry_jitter, 0.0);
    assert!(!c.enable_dlq && !c.ssl_check_hostname && !c.enable_tracing && !c.enable_metrics);
    assert!(c.dead_letter_unknown_types);
    assert_eq!(c.dlq_topic_name(), "events.stream-dead");
    assert_eq!(c.dlq_consumer_group.as_deref(), Some("dlq-readers"));
    assert_eq!(c.dlq_max_replay_attempts, 5);
    assert_eq!(c.shutdown_timeout, Duration::from_millis(2500));
    assert_eq!(c.topic_prefix, "events", "an empty variable keeps the default");
}

#[test]
fn from_env_reports_the_variable_that_does_not_parse() {
    for (name, value) in [
        ("KAFKA_LINGER_MS", "5ms"),
        ("KAFKA_MAX_RETRIES", "-1"),
        ("KAFKA_RETRY_BASE_DELAY", "-1"),
        ("KAFKA_RETRY_JITTER", "ten percent"),
        ("KAFKA_ENABLE_DLQ", "maybe"),
        ("KAFKA_SHUTDOWN_TIMEOUT", "NaN"),
    ] {
        match from(&[(name, value)]) {
            Err(ConfigError::InvalidEnv { name: n, reason }) => {
                assert_eq!(n, name);
                assert!(reason.contains(value), "{reason}");
            }
            other => panic!("{name}={value}: {other:?}"),
        }
    }
    // Values that parse still go through validation.
    assert!(matches!(
        from(&[("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")]),
        Err(ConfigError::SaslMechanismRequired { .. })
    ));
}

/// Keeps [`KafkaEventBusConfig::ENV_VARIABLES`] and `from_lookup` in step: every listed variable
/// changes the config (or fails), and no other `KAFKA_*` name is read.
#[test]
fn every_listed_variable_is_read_and_nothing_else() {
    const MARK: &str = "zz-marker";
    for name in KafkaEventBusConfig::ENV_VARIABLES {
        match from(&[(name, MARK)]) {
            Err(_) => {}
            Ok(c) => {
                let secret = matches!(name, "KAFKA_SASL_PASSWORD" | "KAFKA_SSL_KEYFILE");
                let shown = format!("{c:?}");
                assert!(
                    shown.contains(MARK) || (secret && shown.matches("\"***\"").count() == 1),
                    "{name} was not read: {shown}"
                );
            }
        }
    }
    let read = std::cell::RefCell::new(Vec::new());
    KafkaEventBusConfig::from_lookup(|name| {
        read.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap();
    assert_eq!(read.into_inner(), KafkaEventBusConfig::ENV_VARIABLES);
}

#[test]
fn retries_must_fit_in_max_poll_interval() {
    // The defaults: 1 s, 2 s, 4 s (+10 % jitter) ≪ 300 s.
    config().validate().unwrap();
    let mut c = config();
    c.max_retries = 10; // 1 + 2 + 4 + ... capped at 60 s: well over a 60 s poll interval
    c.max_poll_interval_ms = 60_000;
    assert!(err(&c).contains("max_poll_interval_ms"), "{}", err(&c));
    c.max_poll_interval_ms = 3_600_000;
    c.validate().unwrap();
}

#[test]
fn per_partition_concurrency_and_fetch_wait_are_checked() {
    let mut c = config();
    c.max_in_flight_per_partition = 0;
    assert!(err(&c).contains("max_in_flight_per_partition"), "{}", err(&c));
    let mut c = config();
    c.fetch_max_wait = Duration::from_secs(u64::MAX / 2);
    assert!(err(&c).contains("fetch_max_wait"), "{}", err(&c));
}

#[test]
fn corrupt_batch_policy_and_decompression_limit_are_settings() {
    let c = config();
    assert_eq!(c.corrupt_batches().unwrap(), CorruptBatchPolicy::DeadLetter);
    assert_eq!(c.max_uncompressed_batch_bytes, 128 << 20);
    let c = from(&[
        ("KAFKA_CORRUPT_BATCH_POLICY", "stop"),
        ("KAFKA_MAX_UNCOMPRESSED_BATCH_BYTES", "1048576"),
    ])
    .unwrap();
    assert_eq!(c.corrupt_batches().unwrap(), CorruptBatchPolicy::Stop);
    assert_eq!(
        c.consumer_config().unwrap().fetch.max_uncompressed_batch_bytes,
        1 << 20
    );
    let mut c = config();
    c.corrupt_batch_policy = "skip".into();
    assert_eq!(
        err(&c),
        "Invalid corrupt_batch_policy: skip. Must be one of: {'dead_letter', 'stop'}"
    );
    let mut c = config();
    c.max_uncompressed_batch_bytes = 0;
    assert!(err(&c).contains("max_uncompressed_batch_bytes"), "{}", err(&c));
    // With the DLQ off, a corrupt batch stops its partition whatever the policy.
    let mut c = config();
    c.enable_dlq = false;
    assert_eq!(
        c.dispatch_config().unwrap().corrupt_batches,
        crate::dispatch::CorruptBatches::Stop
    );
    assert_eq!(
        config().dispatch_config().unwrap().corrupt_batches,
        crate::dispatch::CorruptBatches::DeadLetter
    );
}

#[test]
fn production_settings_have_the_java_clients_defaults() {
    let c = config();
    assert_eq!(c.delivery_timeout, Duration::from_secs(120));
    assert_eq!(c.buffer_memory, 32 << 20);
    assert_eq!(c.request_timeout, Duration::from_secs(30));
    assert_eq!(c.enable_idempotence, None);
    assert_eq!(c.partition_assignment_strategy, "range,roundrobin");
    assert_eq!(c.bootstrap_timeout, Duration::from_secs(30));
    assert_eq!(c.commit_interval, Duration::from_secs(5));
}

#[test]
fn production_settings_are_checked() {
    let mut c = config();
    c.acks = "1".into();
    c.enable_idempotence = Some(true);
    assert_eq!(err(&c), "enable_idempotence requires acks='all' (acks is \"1\")");
    c.enable_idempotence = Some(false);
    c.validate().unwrap();
    for (field, edit) in [
        (
            "request_timeout",
            (|c| c.request_timeout = Duration::ZERO) as Edit,
        ),
        ("delivery_timeout", |c| c.delivery_timeout = Duration::ZERO),
        ("bootstrap_timeout", |c| c.bootstrap_timeout = Duration::ZERO),
        ("commit_interval", |c| c.commit_interval = Duration::ZERO),
        ("commit_interval", |c| {
            c.commit_interval = Duration::from_secs(u64::from(u32::MAX))
        }),
        ("request_timeout", |c| {
            c.request_timeout = Duration::from_secs(u64::from(u32::MAX))
        }),
        // delivery must cover linger + one request
        ("delivery_timeout", |c| {
            c.delivery_timeout = Duration::from_secs(30)
        }),
        ("buffer_memory", |c| c.buffer_memory = 1000),
        ("buffer_memory", |c| {
            c.producer_max_batch_bytes = 64 << 20;
        }),
    ] {
        let mut c = config();
        edit(&mut c);
        assert!(err(&c).contains(field), "{field}: {}", err(&c));
    }
    for bad in ["", " , ", "sticky", "range,range"] {
        let mut c = config();
        c.partition_assignment_strategy = bad.into();
        assert!(
            matches!(c.validate(), Err(ConfigError::InvalidAssignmentStrategy { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn from_env_reads_the_production_settings() {
    let c = from(&[
        ("KAFKA_DELIVERY_TIMEOUT", "60"),
        ("KAFKA_BUFFER_MEMORY", "16777216"),
        ("KAFKA_REQUEST_TIMEOUT", "7.5"),
        ("KAFKA_ENABLE_IDEMPOTENCE", "false"),
        ("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "cooperative-sticky"),
        ("KAFKA_BOOTSTRAP_TIMEOUT", "5"),
        ("KAFKA_MAX_IN_FLIGHT_PER_PARTITION", "4"),
        ("KAFKA_GROUP_INSTANCE_ID", "worker-3"),
        ("KAFKA_FETCH_MAX_WAIT", "0.1"),
        ("KAFKA_COMMIT_INTERVAL", "0.25"),
    ])
    .unwrap();
    assert_eq!(c.delivery_timeout, Duration::from_secs(60));
    assert_eq!(c.buffer_memory, 16 << 20);
    assert_eq!(c.request_timeout, Duration::from_millis(7500));
    assert_eq!(c.enable_idempotence, Some(false));
    assert_eq!(
        c.assignment_strategies().unwrap(),
        [AssignmentStrategy::CooperativeSticky]
    );
    assert_eq!(c.bootstrap_timeout, Duration::from_secs(5));
    assert_eq!(c.max_in_flight_per_partition, 4);
    assert_eq!(c.group_instance_id.as_deref(), Some("worker-3"));
    assert_eq!(c.fetch_max_wait, Duration::from_millis(100));
    assert_eq!(c.commit_interval, Duration::from_millis(250));
}

#[test]
fn the_0_8_1_batch_size_variable_is_the_batch_bytes() {
    let c = from(&[("KAFKA_BATCH_SIZE", "65536")]).unwrap();
    assert_eq!(c.producer_max_batch_bytes, 65_536);
    let c = from(&[
        ("KAFKA_BATCH_SIZE", "65536"),
        ("KAFKA_PRODUCER_MAX_BATCH_BYTES", "65536"),
    ])
    .unwrap();
    assert_eq!(c.producer_max_batch_bytes, 65_536);
    match from(&[
        ("KAFKA_BATCH_SIZE", "100"),
        ("KAFKA_PRODUCER_MAX_BATCH_BYTES", "65536"),
    ]) {
        Err(ConfigError::InvalidEnv { name, reason }) => {
            assert_eq!(name, "KAFKA_BATCH_SIZE");
            assert!(reason.contains("KAFKA_PRODUCER_MAX_BATCH_BYTES"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn batch_size_and_batch_bytes_agree_by_value_not_by_spelling() {
    for (old, new) in [("065536", "65536"), ("+65536", "65536"), ("65536", "0065536")] {
        let c = from(&[("KAFKA_BATCH_SIZE", old), ("KAFKA_PRODUCER_MAX_BATCH_BYTES", new)])
            .unwrap_or_else(|e| panic!("{old} vs {new}: {e}"));
        assert_eq!(c.producer_max_batch_bytes, 65_536);
    }
    match from(&[
        ("KAFKA_BATCH_SIZE", "lots"),
        ("KAFKA_PRODUCER_MAX_BATCH_BYTES", "65536"),
    ]) {
        Err(ConfigError::InvalidEnv { name, .. }) => assert_eq!(name, "KAFKA_BATCH_SIZE"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn duration_variables_under_a_millisecond_are_out_of_range() {
    for name in [
        "KAFKA_REQUEST_TIMEOUT",
        "KAFKA_DELIVERY_TIMEOUT",
        "KAFKA_FETCH_MAX_WAIT",
        "KAFKA_BOOTSTRAP_TIMEOUT",
        "KAFKA_RETRY_BASE_DELAY",
        "KAFKA_SHUTDOWN_TIMEOUT",
    ] {
        match from(&[(name, "0.0004")]) {
            Err(ConfigError::OutOfRange { field, .. }) => assert_eq!(field, name),
            other => panic!("{name}=0.0004: {other:?}"),
        }
    }
    let c = from(&[("KAFKA_FETCH_MAX_WAIT", "0.001")]).unwrap();
    assert_eq!(c.fetch_max_wait, Duration::from_millis(1));
    let c = from(&[("KAFKA_FETCH_MAX_WAIT", "0")]).unwrap();
    assert_eq!(c.fetch_max_wait, Duration::ZERO);
}
