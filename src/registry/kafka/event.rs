//! The registry log's record format (contract §6): key `{service}/{instance}`, header `node-id`,
//! a JSON value per event, and a null value (tombstone) after a removal.
//!
//! Decoding is the one place a record from the log is trusted: anything that does not parse, does
//! not validate, or whose key does not name the event's own service and instance is a [`BadEvent`],
//! which the Kafka core counts and skips. The value must be one JSON object: serde would also read
//! the event's struct from an array of its fields in order, a form no writer uses and that hides
//! which field is which, so anything but an object is refused before serde sees it. Unknown JSON
//! keys are ignored so that a newer gateway may add fields without breaking older ones; a repeated
//! key is refused, and so is a different `v`.

use serde::{Deserialize, Serialize};

use crate::names::{quoted, Address, InstanceId, ServiceName};
use crate::registry::state::{Event, Stamp};

/// The event format version this gateway reads and writes.
pub const EVENT_FORMAT: u32 = 1;
/// The header carrying the writing gateway's node id.
pub const NODE_ID_HEADER: &str = "node-id";
/// Longest node id accepted (the same bound `--node-id` has).
pub const MAX_NODE_ID_LEN: usize = 128;

/// An event as read from the log, with the wall-clock time its writer stamped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// The registry event.
    pub event: Event,
    /// Milliseconds since the Unix epoch at the writer, when it wrote the event.
    pub ts_ms: u64,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad registry event: {0}")]
pub struct BadEvent(pub String);

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Op {
    Upsert,
    Remove,
}

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    v: u32,
    op: Op,
    service: String,
    instance: String,
    #[serde(default)]
    address: Option<String>,
    node: String,
    ts_ms: u64,
    version: u64,
}

/// The record key of `service`/`instance`.
pub fn key(service: &ServiceName, instance: &InstanceId) -> String {
    format!("{service}/{instance}")
}

/// Encodes `event` as a record value, stamped `ts_ms`.
pub fn encode(event: &Event, ts_ms: u64) -> Vec<u8> {
    let wire = Wire {
        v: EVENT_FORMAT,
        op: if event.address.is_some() {
            Op::Upsert
        } else {
            Op::Remove
        },
        service: event.service.as_str().to_string(),
        instance: event.instance.as_str().to_string(),
        address: event.address.as_ref().map(|a| a.as_str().to_string()),
        node: event.stamp.node.clone(),
        ts_ms,
        version: event.stamp.version,
    };
    serde_json::to_vec(&wire).expect("an event always serialises")
}

/// A record of the log, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    /// An event.
    Event(LogEvent),
    /// A tombstone (no value) for the key `service/instance`: the deletion of the key, for
    /// compaction and for every gateway (`Owner::apply_tombstone_at`).
    Tombstone {
        /// The key's service.
        service: ServiceName,
        /// The key's instance.
        instance: InstanceId,
    },
}

/// Decodes and validates a record: an event, or a tombstone (no value) whose key names an
/// instance. Resolves the address (DNS for names), so call it off the request path.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<LogRecord, BadEvent> {
    let bad = |why: String| BadEvent(why);
    let Some(value) = value else {
        let key = key.ok_or_else(|| bad("a tombstone without a key".into()))?;
        let text = std::str::from_utf8(key);
        let named = text
            .ok()
            .and_then(|k| k.split_once('/'))
            .and_then(|(s, i)| Some((ServiceName::parse(s).ok()?, InstanceId::parse(i).ok()?)));
        let Some((service, instance)) = named else {
            return Err(bad(format!(
                "a tombstone's key `{}` is not `{{service}}/{{instance}}`",
                quoted(&String::from_utf8_lossy(key))
            )));
        };
        return Ok(LogRecord::Tombstone { service, instance });
    };
    if value.iter().find(|b| !is_json_space(b)) != Some(&b'{') {
        return Err(bad(not_an_object(value)));
    }
    let wire: Wire = serde_json::from_slice(value).map_err(|e| {
        bad(match e.classify() {
            serde_json::error::Category::Data => format!("not an event: {e}"),
            _ => format!("not JSON: {e}"),
        })
    })?;
    if wire.v != EVENT_FORMAT {
        return Err(bad(format!("format v={} (this gateway reads v=1)", wire.v)));
    }
    let service = ServiceName::parse(&wire.service).map_err(|e| bad(e.0))?;
    let instance = InstanceId::parse(&wire.instance).map_err(|e| bad(e.0))?;
    let expected = self::key(&service, &instance);
    if key != Some(expected.as_bytes()) {
        let key = key.map_or("none".into(), |key| {
            format!("`{}`", quoted(&String::from_utf8_lossy(key)))
        });
        return Err(bad(format!("record key {key} is not `{expected}`")));
    }
    if wire.node.is_empty() || wire.node.len() > MAX_NODE_ID_LEN {
        return Err(bad(format!("node must be 1 to {MAX_NODE_ID_LEN} bytes")));
    }
    let address = match (wire.op, &wire.address) {
        (Op::Upsert, Some(a)) => Some(Address::parse(a).map_err(|e| bad(e.0))?),
        (Op::Upsert, None) => return Err(bad("an upsert needs an address".into())),
        (Op::Remove, None) => None,
        (Op::Remove, Some(_)) => return Err(bad("a remove must have a null address".into())),
    };
    Ok(LogRecord::Event(LogEvent {
        event: Event {
            service,
            instance,
            address,
            stamp: Stamp {
                version: wire.version,
                node: wire.node,
            },
        },
        ts_ms: wire.ts_ms,
    }))
}

/// JSON's insignificant whitespace (RFC 8259 §2), which may surround the value.
fn is_json_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Why `value`, which does not start with `{`, is not an event: the kind of JSON it is, or why it
/// is not JSON at all.
fn not_an_object(value: &[u8]) -> String {
    use serde_json::Value;
    let kind = match serde_json::from_slice::<Value>(value) {
        Err(e) => return format!("not JSON: {e}"),
        Ok(Value::Array(_)) => "a JSON array",
        Ok(Value::String(_)) => "a JSON string",
        Ok(Value::Number(_)) => "a JSON number",
        Ok(Value::Bool(_)) => "a JSON boolean",
        Ok(Value::Null) => "JSON null",
        Ok(Value::Object(_)) => "a JSON object", // not reached: it would start with `{`
    };
    format!("the value is {kind}, not an event object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert() -> Event {
        Event {
            service: ServiceName::parse("users").unwrap(),
            instance: InstanceId::parse("u-1.a").unwrap(),
            address: Some(Address::parse("127.0.0.1:5051").unwrap()),
            stamp: Stamp {
                version: 7,
                node: "node-a".into(),
            },
        }
    }

    #[test]
    fn round_trip() {
        let e = upsert();
        let value = encode(&e, 1_700_000_000_123);
        let text = String::from_utf8(value.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"op":"upsert","service":"users","instance":"u-1.a","address":"127.0.0.1:5051","node":"node-a","ts_ms":1700000000123,"version":7}"#
        );
        let k = key(&e.service, &e.instance);
        assert_eq!(k, "users/u-1.a");
        let back = event_of(k.as_bytes(), &value);
        assert_eq!(back.event, e);
        assert_eq!(back.ts_ms, 1_700_000_000_123);

        let removal = Event {
            address: None,
            ..upsert()
        };
        let value = encode(&removal, 5);
        assert!(String::from_utf8_lossy(&value).contains(r#""op":"remove""#));
        assert!(String::from_utf8_lossy(&value).contains(r#""address":null"#));
        let back = event_of(k.as_bytes(), &value);
        assert_eq!(back.event, removal);
    }

    /// The event a record holds (panics on anything else).
    fn event_of(key: &[u8], value: &[u8]) -> LogEvent {
        match decode(Some(key), Some(value)) {
            Ok(LogRecord::Event(e)) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn a_tombstone_names_the_key_it_deletes() {
        assert_eq!(
            decode(Some(b"users/u-1.a"), None),
            Ok(LogRecord::Tombstone {
                service: ServiceName::parse("users").unwrap(),
                instance: InstanceId::parse("u-1.a").unwrap(),
            })
        );
        // A tombstone for a key no event can have deletes nothing a gateway holds: refused, so
        // that it is counted and logged like any record that is not the registry's.
        let keys: [Option<&[u8]>; 6] = [
            None,
            Some(b"users"),
            Some(b"Users/u1"),
            Some(b"users/u1/x"),
            Some(b"users/"),
            Some(b"users/\xff"),
        ];
        for key in keys {
            assert!(decode(key, None).is_err(), "{key:?}");
        }
        let error = decode(Some(b"users/u1/x"), None).unwrap_err().0;
        assert_eq!(
            error,
            "a tombstone's key `users/u1/x` is not `{service}/{instance}`"
        );
    }

    #[test]
    fn unknown_keys_are_ignored_and_a_remove_may_omit_the_address() {
        let v = br#"{"v":1,"op":"remove","service":"a","instance":"b","node":"n","ts_ms":1,"version":1,"extra":[1]}"#;
        let e = event_of(b"a/b", v);
        assert_eq!(e.event.address, None);
    }

    #[test]
    fn bad_events_are_refused() {
        let ok = r#"{"v":1,"op":"upsert","service":"a","instance":"b","address":"127.0.0.1:1","node":"n","ts_ms":1,"version":1}"#;
        assert!(decode(Some(b"a/b"), Some(ok.as_bytes())).is_ok());
        let cases: &[(&[u8], String)] = &[
            (b"a/b", "not json".into()),
            (b"a/b", "{}".into()),
            (b"a/b", ok.replace(r#""v":1"#, r#""v":2"#)),
            (b"a/b", ok.replace(r#""op":"upsert""#, r#""op":"merge""#)),
            (b"a/b", ok.replace(r#""service":"a""#, r#""service":"A_""#)),
            (
                b"a/b",
                ok.replace(r#""service":"a""#, r#""service":"graphql""#),
            ),
            (
                b"a/b",
                ok.replace(r#""instance":"b""#, r#""instance":"b/c""#),
            ),
            (b"a/c", ok.into()),
            (
                b"a/b",
                ok.replace(r#""address":"127.0.0.1:1""#, r#""address":"nope""#),
            ),
            (
                b"a/b",
                ok.replace(r#""address":"127.0.0.1:1""#, r#""address":null"#),
            ),
            (b"a/b", ok.replace(r#""op":"upsert""#, r#""op":"remove""#)),
            (b"a/b", ok.replace(r#""node":"n""#, r#""node":"""#)),
            (b"a/b", ok.replace(r#""version":1"#, r#""version":-1"#)),
            (b"a/b", ok.replace(r#""ts_ms":1,"#, "")),
        ];
        for (k, v) in cases {
            assert!(
                decode(Some(k), Some(v.as_bytes())).is_err(),
                "accepted {v} under key {}",
                String::from_utf8_lossy(k)
            );
        }
        assert!(decode(None, Some(ok.as_bytes())).is_err());
        // The key is quoted in the error, cut: a record's key can be a megabyte.
        let long = vec![b'k'; 1 << 20];
        let error = decode(Some(&long), Some(ok.as_bytes())).unwrap_err().0;
        assert!(error.len() < 1_000, "{} bytes", error.len());
        assert!(
            error.ends_with("… (1048576 bytes)` is not `a/b`"),
            "{error}"
        );
        // Contract §6: one JSON object. An array of the fields in order is serde's other form of a
        // struct; refused, and said so without naming the decoder's own types.
        let fields = r#"[1,"upsert","a","b","127.0.0.1:1","n",0,5]"#;
        for (value, why) in [
            (fields, "the value is a JSON array, not an event object"),
            ("[]", "the value is a JSON array, not an event object"),
            (" \n[]", "the value is a JSON array, not an event object"),
            (
                r#""a/b""#,
                "the value is a JSON string, not an event object",
            ),
            ("7", "the value is a JSON number, not an event object"),
            ("null", "the value is JSON null, not an event object"),
        ] {
            let error = decode(Some(b"a/b"), Some(value.as_bytes())).unwrap_err().0;
            assert_eq!(error, why, "{value}");
        }
        let error = decode(Some(b"a/b"), Some(b"{}")).unwrap_err().0;
        assert_eq!(error, "not an event: missing field `v` at line 1 column 2");
        let error = decode(Some(b"a/b"), Some(b"[1,")).unwrap_err().0;
        assert!(error.starts_with("not JSON: "), "{error}");
        // A key given twice is refused, not resolved one way or the other.
        let twice = ok.replace(r#""version":1"#, r#""version":1,"version":2"#);
        let error = decode(Some(b"a/b"), Some(twice.as_bytes())).unwrap_err().0;
        assert!(error.contains("duplicate field `version`"), "{error}");
        // Leading whitespace before the object is still JSON.
        assert!(decode(Some(b"a/b"), Some(format!(" \r\n\t{ok}").as_bytes())).is_ok());
        // Any u64 is a version (contract §6), zero included: a key never written is older still.
        let zero = ok.replace(r#""version":1"#, r#""version":0"#);
        assert!(
            decode(Some(b"a/b"), Some(zero.as_bytes())).is_ok(),
            "{zero}"
        );
    }
}
