//! Opening packets: StartupMessage of protocol 3.0, 3.2 and others, SSLRequest, GSSENCRequest,
//! CancelRequest (secrets of 4 to 256 bytes, and out of range), parameter lists with
//! duplicates, truncated or trailing bytes. The reference reads them as the server's
//! `ProcessStartupPacket` does: a repeated parameter's last value wins.

use blastwall::wire::startup::{self, StartupPacket, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};
use bytes::Bytes;
use proptest::prelude::*;

#[derive(Debug, Clone)]
pub enum Kind {
    Startup { major: u16, minor: u16, params: Vec<(String, String)>, terminated: bool },
    Ssl,
    GssEnc,
    Cancel { pid: i32, secret: Vec<u8> },
    Code(i32),
}

#[derive(Debug, Clone)]
pub struct Packet {
    pub kind: Kind,
    /// Bytes appended after the packet's own content (inside its length).
    pub trailing: Vec<u8>,
}

impl Packet {
    pub fn bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match &self.kind {
            Kind::Startup { major, minor, params, terminated } => {
                body.extend_from_slice(&major.to_be_bytes());
                body.extend_from_slice(&minor.to_be_bytes());
                for (k, v) in params {
                    for s in [k, v] {
                        body.extend_from_slice(s.as_bytes());
                        body.push(0);
                    }
                }
                if *terminated {
                    body.push(0);
                }
            }
            Kind::Ssl => body.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes()),
            Kind::GssEnc => body.extend_from_slice(&GSSENC_REQUEST_CODE.to_be_bytes()),
            Kind::Cancel { pid, secret } => {
                body.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
                body.extend_from_slice(&pid.to_be_bytes());
                body.extend_from_slice(secret);
            }
            Kind::Code(c) => body.extend_from_slice(&c.to_be_bytes()),
        }
        body.extend_from_slice(&self.trailing);
        let mut out = u32::try_from(body.len() + 4).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z_]{1,8}", "[ -~]{0,12}".prop_map(|s| s.replace('\0', "")), "\\PC{0,6}"]
        .prop_map(|s| s.replace('\0', ""))
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        4 => Just("user".to_string()),
        3 => Just("database".to_string()),
        2 => Just("application_name".to_string()),
        1 => Just("options".to_string()),
        1 => Just("replication".to_string()),
        1 => Just("client_encoding".to_string()),
        1 => Just("_pq_.test_extension".to_string()),
        1 => "[a-z_]{1,10}",
    ];
    proptest::collection::vec((key, value()), 0..8)
}

pub fn packet() -> impl Strategy<Value = Packet> {
    let startup = (
        prop_oneof![6 => Just(3u16), 1 => 0u16..5],
        prop_oneof![Just(0u16), Just(2u16), any::<u16>()],
        params(),
        proptest::bool::weighted(0.9),
    )
        .prop_map(|(major, minor, params, terminated)| Kind::Startup { major, minor, params, terminated });
    let cancel = (any::<i32>(), prop_oneof![6 => proptest::collection::vec(any::<u8>(), 4..=256), 1 => proptest::collection::vec(any::<u8>(), 0..300)])
        .prop_map(|(pid, secret)| Kind::Cancel { pid, secret });
    let kind = prop_oneof![
        8 => startup,
        1 => Just(Kind::Ssl),
        1 => Just(Kind::GssEnc),
        2 => cancel,
        1 => any::<i32>().prop_map(Kind::Code),
    ];
    let trailing = prop_oneof![8 => Just(Vec::new()), 1 => proptest::collection::vec(any::<u8>(), 1..6)];
    (kind, trailing).prop_map(|(kind, trailing)| Packet { kind, trailing })
}

/// What the reference reading accepts: `Some(kind)` with the values the server would use.
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    Startup { major: u16, minor: u16, user: String, database: String, application_name: Option<String> },
    Ssl,
    GssEnc,
    Cancel { pid: i32, secret: Vec<u8> },
}

fn last<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn reference(p: &Packet) -> Option<Reading> {
    let len = p.bytes().len();
    if !(8..=startup::MAX_STARTUP_LEN).contains(&len) {
        return None;
    }
    match &p.kind {
        Kind::Ssl if p.trailing.is_empty() => Some(Reading::Ssl),
        Kind::GssEnc if p.trailing.is_empty() => Some(Reading::GssEnc),
        Kind::Ssl | Kind::GssEnc => None,
        Kind::Cancel { pid, secret } => {
            let mut secret = secret.clone();
            secret.extend_from_slice(&p.trailing);
            (4..=256).contains(&secret.len()).then_some(Reading::Cancel { pid: *pid, secret })
        }
        Kind::Code(c) => {
            let c = *c;
            match c {
                SSL_REQUEST_CODE if p.trailing.is_empty() => return Some(Reading::Ssl),
                GSSENC_REQUEST_CODE if p.trailing.is_empty() => return Some(Reading::GssEnc),
                _ => {}
            }
            None // 3.x with no parameters and no terminator, or not 3.x: refused.
        }
        Kind::Startup { major, minor, params, terminated } => {
            if *major != 3 || !*terminated || !p.trailing.is_empty() {
                return None;
            }
            if params.iter().any(|(k, _)| k.is_empty()) {
                // An empty key ends the list early: what follows is trailing garbage.
                return None;
            }
            let user = last(params, "user")?.to_string();
            let database = match last(params, "database") {
                Some(d) if !d.is_empty() => d.to_string(),
                _ => user.clone(),
            };
            let application_name = last(params, "application_name").map(str::to_string);
            Some(Reading::Startup { major: *major, minor: *minor, user, database, application_name })
        }
    }
}

fn reading(parsed: &StartupPacket) -> Reading {
    match parsed {
        StartupPacket::SslRequest => Reading::Ssl,
        StartupPacket::GssEncRequest => Reading::GssEnc,
        StartupPacket::Cancel(k) => Reading::Cancel { pid: k.pid, secret: k.secret.to_vec() },
        StartupPacket::Startup(m) => Reading::Startup {
            major: m.major,
            minor: m.minor,
            user: m.user().to_string(),
            database: m.database().to_string(),
            application_name: m.param("application_name").map(str::to_string),
        },
    }
}

proptest! {
    #![proptest_config(crate::config(512))]

    /// The parser accepts exactly what the reference accepts and reads the same values; an
    /// accepted StartupMessage keeps its bytes; a cancel key round-trips.
    #[test]
    fn startup_packets_agree_with_the_server_reading(p in packet()) {
        let bytes = p.bytes();
        let len_ok = startup::check_len([bytes[0], bytes[1], bytes[2], bytes[3]]).is_ok();
        prop_assert_eq!(len_ok, (8..=startup::MAX_STARTUP_LEN).contains(&bytes.len()));
        let parsed = if len_ok { startup::parse(Bytes::from(bytes.clone())).ok() } else { None };
        let want = reference(&p);
        prop_assert_eq!(parsed.as_ref().map(reading), want);
        match parsed {
            Some(StartupPacket::Startup(m)) => {
                prop_assert_eq!(&m.bytes[..], &bytes[..]);
                if let Kind::Startup { params, .. } = &p.kind {
                    prop_assert_eq!(&m.params, params, "parameters in order, duplicates kept");
                }
            }
            Some(StartupPacket::Cancel(k)) => prop_assert_eq!(k.request_bytes(), bytes),
            _ => {}
        }
    }
}

/// The generator reaches every kind of packet, both protocol versions, and duplicates.
#[test]
fn packet_generator_reaches_deep_states() {
    let samples = crate::sample(&packet(), 2000);
    let mut count = std::collections::HashMap::<&str, usize>::new();
    for p in &samples {
        let key = match reference(p) {
            Some(Reading::Startup { minor: 0, .. }) => "3.0",
            Some(Reading::Startup { minor: 2, .. }) => "3.2",
            Some(Reading::Startup { .. }) => "3.x",
            Some(Reading::Ssl) => "ssl",
            Some(Reading::GssEnc) => "gssenc",
            Some(Reading::Cancel { .. }) => "cancel",
            None => "refused",
        };
        *count.entry(key).or_default() += 1;
        if let Kind::Startup { params, .. } = &p.kind {
            if reference(p).is_some() && params.iter().filter(|(k, _)| k == "user").count() > 1 {
                *count.entry("duplicate user").or_default() += 1;
            }
        }
    }
    for (key, at_least) in [
        ("3.0", 150),
        ("3.2", 150),
        ("3.x", 50),
        ("ssl", 50),
        ("gssenc", 50),
        ("cancel", 150),
        ("refused", 200),
        ("duplicate user", 50),
    ] {
        assert!(count.get(key).copied().unwrap_or(0) >= at_least, "{key}: {count:?}");
    }
}

/// Found by `startup_packets_agree_with_the_server_reading`: with `user` given twice the
/// server logs in as the last one, and blastwall judged (and audited) the session as the first.
#[test]
fn a_repeated_parameter_reads_as_its_last_value() {
    let p = Packet {
        kind: Kind::Startup {
            major: 3,
            minor: 0,
            params: vec![
                ("user".into(), "app".into()),
                ("database".into(), "a".into()),
                ("application_name".into(), "x".into()),
                ("user".into(), "migrator".into()),
                ("database".into(), "b".into()),
                ("application_name".into(), "y".into()),
            ],
            terminated: true,
        },
        trailing: vec![],
    };
    let Ok(StartupPacket::Startup(m)) = startup::parse(Bytes::from(p.bytes())) else { panic!("not parsed") };
    assert_eq!((m.user(), m.database(), m.param("application_name")), ("migrator", "b", Some("y")));
}
