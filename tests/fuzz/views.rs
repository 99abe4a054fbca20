//! Every message view of `wire::messages`, on bodies built from generated values (then
//! sometimes cut short or extended): the view must return those values, or an error exactly
//! when the body is not what the server would accept. `rebind` must carry the client's
//! parameter formats and values byte for byte.

use blastwall::wire::messages::{self, TxStatus};
use blastwall::wire::{encode, Frame};
use proptest::prelude::*;

fn frame(tag: u8, body: &[u8]) -> Frame {
    Frame { tag, bytes: encode(tag, body) }
}

fn cstr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        "[a-zA-Z0-9_ ]{1,12}".prop_map(String::into_bytes),
        proptest::collection::vec(1u8.., 0..20)
    ]
}

/// How a generated body is damaged: kept, cut at a byte, or extended.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Cut(prop::sample::Index),
    Extend(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        2 => any::<prop::sample::Index>().prop_map(Damage::Cut),
        1 => proptest::collection::vec(any::<u8>(), 1..4).prop_map(Damage::Extend),
    ]
}

fn apply(body: &[u8], d: &Damage) -> Vec<u8> {
    match d {
        Damage::None => body.to_vec(),
        Damage::Cut(i) => body[..i.index(body.len().max(1)).min(body.len())].to_vec(),
        Damage::Extend(x) => [body, x].concat(),
    }
}

#[derive(Debug, Clone)]
pub struct Bind {
    portal: Vec<u8>,
    stmt: Vec<u8>,
    formats: Vec<i16>,
    /// `None`: SQL NULL (length -1).
    params: Vec<Option<Vec<u8>>>,
    result_formats: Vec<i16>,
}

impl Bind {
    fn params_part(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&u16::try_from(self.formats.len()).unwrap().to_be_bytes());
        for f in &self.formats {
            b.extend_from_slice(&f.to_be_bytes());
        }
        b.extend_from_slice(&u16::try_from(self.params.len()).unwrap().to_be_bytes());
        for p in &self.params {
            match p {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&i32::try_from(v.len()).unwrap().to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        b
    }

    fn body(&self) -> Vec<u8> {
        let mut b = [&self.portal[..], b"\0", &self.stmt, b"\0"].concat();
        b.extend_from_slice(&self.params_part());
        b.extend_from_slice(&u16::try_from(self.result_formats.len()).unwrap().to_be_bytes());
        for f in &self.result_formats {
            b.extend_from_slice(&f.to_be_bytes());
        }
        b
    }
}

pub fn bind() -> impl Strategy<Value = Bind> {
    let fmt = prop_oneof![Just(0i16), Just(1i16)];
    let param = proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..24));
    (
        cstr(),
        cstr(),
        proptest::collection::vec(fmt.clone(), 0..4),
        prop_oneof![4 => proptest::collection::vec(param.clone(), 0..8), 1 => proptest::collection::vec(param, 200..400)],
        proptest::collection::vec(fmt, 0..3),
    )
        .prop_map(|(portal, stmt, formats, params, result_formats)| Bind { portal, stmt, formats, params, result_formats })
}

fn be_u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|t| t.to_be_bytes()).collect()
}

proptest! {
    #![proptest_config(crate::config(256))]

    /// Bind: the names, and `rebind` keeps formats and values byte for byte under the new
    /// names with text results; a Bind cut inside its names, formats or values is an error.
    #[test]
    fn bind_and_rebind(b in bind(), d in damage(), name in "[a-z_]{0,10}") {
        let whole = b.body();
        let body = apply(&whole, &d);
        let f = frame(b'B', &body);
        let names_end = b.portal.len() + b.stmt.len() + 2;
        let params_end = names_end + b.params_part().len();
        match messages::bind_names(&f) {
            Ok((portal, stmt)) => {
                prop_assert!(body.len() >= names_end);
                prop_assert_eq!((portal, stmt), (&b.portal[..], &b.stmt[..]));
            }
            Err(_) => prop_assert!(body.len() < names_end, "names readable but refused"),
        }
        let want = {
            let mut w = [name.as_bytes(), b"\0", name.as_bytes(), b"\0"].concat();
            w.extend_from_slice(&b.params_part());
            w.extend_from_slice(&0i16.to_be_bytes());
            encode(b'B', &w)
        };
        match messages::rebind(&f, &name) {
            Ok(out) => {
                prop_assert!(body.len() >= params_end, "rebind read values that were cut off");
                prop_assert_eq!(out, want);
            }
            Err(_) => prop_assert!(body.len() < params_end, "rebind refused a whole Bind"),
        }
    }

    /// Parse: name, text and parameter types; counts read as the server reads them
    /// (unsigned 16 bits); a cut or extended body is an error.
    #[test]
    fn parse_view(name in cstr(), sql in cstr(), types in proptest::collection::vec(any::<u32>(), 0..6), d in damage()) {
        let mut whole = [&name[..], b"\0", &sql, b"\0"].concat();
        whole.extend_from_slice(&u16::try_from(types.len()).unwrap().to_be_bytes());
        whole.extend_from_slice(&be_u32s(&types));
        let body = apply(&whole, &d);
        match messages::parse_msg(&frame(b'P', &body)) {
            Ok(p) => {
                prop_assert_eq!(&body, &whole);
                prop_assert_eq!((p.name, p.sql, &p.param_types[..]), (&name[..], &sql[..], &types[..]));
            }
            Err(_) => prop_assert_ne!(&body, &whole),
        }
    }

    /// Query: the text before its NUL, and nothing after it.
    #[test]
    fn query_view(sql in cstr(), d in damage()) {
        let whole = [&sql[..], b"\0"].concat();
        let body = apply(&whole, &d);
        match messages::query_text(&frame(b'Q', &body)) {
            Ok(t) => {
                prop_assert_eq!(&body, &whole);
                prop_assert_eq!(t, &sql[..]);
            }
            Err(_) => prop_assert_ne!(&body, &whole),
        }
    }

    /// The backend views: ReadyForQuery, ParameterStatus, BackendKeyData, ErrorResponse,
    /// Authentication and the SASL mechanism list.
    #[test]
    fn backend_views(
        status in proptest::sample::select(b"ITEX".to_vec()),
        name in cstr(), value in cstr(),
        pid in any::<i32>(), secret in proptest::collection::vec(any::<u8>(), 0..300),
        fields in proptest::collection::btree_map(proptest::sample::select(b"SVCMDHPqWstcdnFLR".to_vec()), cstr(), 0..8),
        mechs in proptest::collection::vec(prop_oneof![Just(b"SCRAM-SHA-256".to_vec()), Just(b"SCRAM-SHA-256-PLUS".to_vec()), "[A-Z-]{1,12}".prop_map(String::into_bytes)], 0..4),
        d in damage(),
    ) {
        // ReadyForQuery.
        let want = match status { b'I' => Some(TxStatus::Idle), b'T' => Some(TxStatus::InBlock), b'E' => Some(TxStatus::Failed), _ => None };
        prop_assert_eq!(messages::ready_status(&frame(b'Z', &[status])).ok(), want);
        if let Some(s) = want {
            prop_assert_eq!(messages::ready_for_query(s), encode(b'Z', &[status]));
        }
        // ParameterStatus.
        let whole = [&name[..], b"\0", &value, b"\0"].concat();
        let body = apply(&whole, &d);
        if body.len() >= whole.len() {
            let (n, v) = messages::parameter_status(&frame(b'S', &body)).unwrap();
            let want = (String::from_utf8_lossy(&name).into_owned(), String::from_utf8_lossy(&value).into_owned());
            prop_assert_eq!((n, v), want);
        } else {
            prop_assert!(messages::parameter_status(&frame(b'S', &body)).is_err());
        }
        // BackendKeyData.
        let key = [&pid.to_be_bytes()[..], &secret].concat();
        match messages::backend_key(&frame(b'K', &key)) {
            Ok(k) => {
                prop_assert!((4..=256).contains(&secret.len()));
                prop_assert_eq!((k.pid, &k.secret[..]), (pid, &secret[..]));
            }
            Err(_) => prop_assert!(!(4..=256).contains(&secret.len())),
        }
        // ErrorResponse: every field, terminated; the severity is V (not localized) or S.
        let mut whole = Vec::new();
        for (k, v) in &fields {
            whole.push(*k);
            whole.extend_from_slice(v);
            whole.push(0);
        }
        whole.push(0);
        let body = apply(&whole, &d);
        match messages::error_fields(&frame(b'E', &body)) {
            Ok(e) => {
                prop_assert!(body.len() >= whole.len());
                let get = |k: u8| fields.get(&k).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                let sev = if fields.contains_key(&b'V') { get(b'V') } else { get(b'S') };
                prop_assert_eq!((e.severity, e.code, e.message), (sev, get(b'C'), get(b'M')));
            }
            Err(_) => prop_assert!(body.len() < whole.len()),
        }
        // AuthenticationSASL: the same list without channel binding, or the same frame.
        let mut whole = 10i32.to_be_bytes().to_vec();
        for m in &mechs {
            whole.extend_from_slice(m);
            whole.push(0);
        }
        whole.push(0);
        let f = frame(b'R', &whole);
        prop_assert_eq!(messages::auth_kind(&f).ok(), Some(10));
        let stripped = messages::strip_channel_binding(&f).unwrap();
        let kept: Vec<&Vec<u8>> = mechs.iter().filter(|m| !m.ends_with(b"-PLUS")).collect();
        if kept.len() == mechs.len() {
            prop_assert_eq!(stripped, f.bytes.clone());
        } else {
            let mut want = 10i32.to_be_bytes().to_vec();
            for m in kept {
                want.extend_from_slice(m);
                want.push(0);
            }
            want.push(0);
            prop_assert_eq!(stripped, encode(b'R', &want));
        }
        let cut = apply(&whole, &d);
        if cut.len() < whole.len() {
            prop_assert!(messages::strip_channel_binding(&frame(b'R', &cut)).is_err());
        }
    }
}

proptest! {
    #![proptest_config(crate::config(256))]

    /// What the proxy builds reads back through the views as what it was built from:
    /// Query, Parse (with types), the marker Bind via `rebind`, Close, Execute+Close+Sync, and
    /// its own ErrorResponse/NoticeResponse (a NUL inside a field never ends it early).
    #[test]
    fn built_messages_read_back(
        name in "[a-z_0-9]{0,12}",
        sql in "[ -~]{0,40}",
        types in proptest::collection::vec(any::<u32>(), 0..6),
        message in "\\PC{0,30}",
        detail in proptest::option::of("[ -~\u{0}]{0,20}"),
        warning in any::<bool>(),
    ) {
        let framed = |b: bytes::Bytes| Frame { tag: b[0], bytes: b };
        let q = framed(messages::query(&sql));
        prop_assert_eq!(messages::query_text(&q).unwrap(), sql.as_bytes());
        let p = framed(messages::parse_typed(&name, &sql, &types));
        let m = messages::parse_msg(&p).unwrap();
        prop_assert_eq!((m.name, m.sql, &m.param_types[..]), (name.as_bytes(), sql.as_bytes(), &types[..]));
        let m = framed(messages::parse(&name, &sql));
        prop_assert!(messages::parse_msg(&m).unwrap().param_types.is_empty());
        let close = messages::close_statement(&name);
        prop_assert_eq!(&close[..], &encode(b'C', &[&b"S"[..], name.as_bytes(), b"\0"].concat())[..]);
        let ecs = messages::execute_close_sync(&name);
        let mut want = encode(b'E', &[name.as_bytes(), b"\0\0\0\0\0"].concat()).to_vec();
        want.extend_from_slice(&close);
        want.extend_from_slice(&encode(b'S', b""));
        prop_assert_eq!(&ecs[..], &want[..]);
        let mut pm = messages::ProxyMessage::error("42501", message.clone());
        if warning {
            pm.severity = messages::Severity::Warning;
        }
        if let Some(d) = &detail {
            pm = pm.with_detail(d.clone());
        }
        let e = framed(pm.encode());
        prop_assert_eq!(e.tag, if warning { b'N' } else { b'E' });
        let f = messages::error_fields(&e).unwrap();
        prop_assert_eq!(f.code, "42501");
        prop_assert_eq!(f.message, message.replace('\0', " "));
        prop_assert_eq!(f.severity, if warning { "WARNING" } else { "ERROR" });
    }
}

/// The generators reach deep states: most Binds are whole, many carry parameters, and some
/// carry more than the old signed reading of the count allowed for formats.
#[test]
fn bind_generator_reaches_deep_states() {
    let samples = crate::sample(&(bind(), damage()), 1000);
    let whole = samples.iter().filter(|(_, d)| matches!(d, Damage::None)).count();
    let with_params = samples.iter().filter(|(b, _)| b.params.len() >= 2).count();
    let nulls = samples.iter().filter(|(b, _)| b.params.iter().any(Option::is_none)).count();
    let long = samples.iter().filter(|(b, _)| b.params.len() >= 200).count();
    assert!(whole > 500 && with_params > 400 && nulls > 200 && long > 100, "{whole} {with_params} {nulls} {long}");
}

/// The server reads parameter counts as unsigned 16-bit numbers: a Parse declaring 40,000
/// parameter types is one it accepts, and so must the view (it read them as negative).
#[test]
fn parameter_counts_are_unsigned() {
    let types = vec![23u32; 40_000];
    let mut body = b"s\0SELECT 1\0".to_vec();
    body.extend_from_slice(&40_000u16.to_be_bytes());
    body.extend_from_slice(&be_u32s(&types));
    let f = frame(b'P', &body);
    let p = messages::parse_msg(&f).unwrap();
    assert_eq!(p.param_types.len(), 40_000);
    let b = Bind {
        portal: vec![],
        stmt: b"s".to_vec(),
        formats: vec![0; 40_000],
        params: vec![None; 40_000],
        result_formats: vec![],
    };
    let out = messages::rebind(&frame(b'B', &b.body()), "x").unwrap();
    assert_eq!(&out[5..], &[&b"x\0x\0"[..], &b.params_part(), &[0, 0]].concat()[..]);
}
