//! Typed views of the messages that a later stage reads, and builders of the few messages the
//! proxy itself sends (ErrorResponse, NoticeResponse, ReadyForQuery, a marker Parse/Query).
//!
//! Owns: decoding those bodies without panicking, and encoding what the proxy originates.
//! Does not own: framing (see the parent module) or any decision.

use super::{encode, BodyReader, Frame, FrameError};
use bytes::{BufMut, Bytes, BytesMut};

/// Frontend message tags.
pub mod fe {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const CLOSE: u8 = b'C';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const TERMINATE: u8 = b'X';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const PASSWORD: u8 = b'p';
}

/// Backend message tags.
pub mod be {
    pub const AUTHENTICATION: u8 = b'R';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
}

/// The transaction status carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InBlock,
    Failed,
}

impl TxStatus {
    pub fn byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InBlock => b'T',
            TxStatus::Failed => b'E',
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Query: the SQL text of a simple-protocol query (without its terminating NUL).
pub fn query_text(frame: &Frame) -> Result<&[u8], FrameError> {
    query_text_of(frame.body())
}

/// [`query_text`] of a Query's body.
pub fn query_text_of(body: &[u8]) -> Result<&[u8], FrameError> {
    let mut r = BodyReader::new(body, "Query");
    let sql = r.cstr()?;
    if !r.is_empty() {
        return Err(FrameError::Malformed { what: "Query", why: "bytes after the query string" });
    }
    Ok(sql)
}

/// How many bytes of a prepared statement's or portal's name the server reads: its tables of
/// both are keyed by the first `NAMEDATALEN - 1` bytes, cut at a byte (not a character), so
/// names that differ only after them name one object (twenty-third pass P1: two portals
/// `x…x1` and `x…x2`, one to the server, two to blastwall's mirror).
pub const NAME_BYTES: usize = 63;

/// A protocol name as the server keys it ([`NAME_BYTES`]).
pub fn object_name(name: &[u8]) -> &[u8] {
    &name[..name.len().min(NAME_BYTES)]
}

/// The kind (`S` or `P`) and the object name ([`object_name`]) of a Close or Describe.
pub fn target_of(frame: &Frame) -> (Option<u8>, &[u8]) {
    let body = frame.body();
    let name = body.get(1..).unwrap_or_default();
    let name = name.split(|b| *b == 0).next().unwrap_or_default();
    (body.first().copied(), object_name(name))
}

/// The statement and portal names a Parse, Bind, Execute, Close or Describe carries, as sent
/// (none for another message, or one that does not frame).
pub fn names_sent(frame: &Frame) -> [&[u8]; 2] {
    let body = frame.body();
    let mut r = BodyReader::new(body, "names");
    match frame.tag {
        fe::PARSE | fe::EXECUTE => [r.cstr().unwrap_or_default(), &[]],
        fe::BIND => [r.cstr().unwrap_or_default(), r.cstr().unwrap_or_default()],
        fe::CLOSE | fe::DESCRIBE => {
            let name = body.get(1..).unwrap_or_default();
            [name.split(|b| *b == 0).next().unwrap_or_default(), &[]]
        }
        _ => [&[], &[]],
    }
}

/// Parse: statement name, SQL text and the declared parameter type OIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMsg<'a> {
    pub name: &'a [u8],
    pub sql: &'a [u8],
    pub param_types: Vec<u32>,
}

pub fn parse_msg(frame: &Frame) -> Result<ParseMsg<'_>, FrameError> {
    let mut r = BodyReader::new(frame.body(), "Parse");
    let name = r.cstr()?;
    let sql = r.cstr()?;
    let n = usize::from(r.u16()?);
    let mut param_types = Vec::with_capacity(n.min(r.rest().len() / 4));
    for _ in 0..n {
        param_types.push(u32::from_be_bytes(r.i32()?.to_be_bytes()));
    }
    if !r.is_empty() {
        return Err(FrameError::Malformed { what: "Parse", why: "bytes after the parameter types" });
    }
    Ok(ParseMsg { name: object_name(name), sql, param_types })
}

/// Bind: portal and statement names, as the server keys them ([`object_name`]; the parameter
/// values are not decoded here).
pub fn bind_names(frame: &Frame) -> Result<(&[u8], &[u8]), FrameError> {
    let mut r = BodyReader::new(frame.body(), "Bind");
    let portal = r.cstr()?;
    let stmt = r.cstr()?;
    Ok((object_name(portal), object_name(stmt)))
}

/// The same Bind for another statement and portal (both named `name`), with text results:
/// the client's parameter formats and values, untouched (used to EXPLAIN a statement with them).
pub fn rebind(frame: &Frame, name: &str) -> Result<Bytes, FrameError> {
    let mut r = BodyReader::new(frame.body(), "Bind");
    r.cstr()?;
    r.cstr()?;
    let start = frame.body().len() - r.rest().len();
    // Counts are unsigned, as the server reads them.
    let nfmt = usize::from(r.u16()?);
    r.take(nfmt * 2)?;
    let nparams = usize::from(r.u16()?);
    for _ in 0..nparams {
        let len = r.i32()?;
        if let Ok(l) = usize::try_from(len) {
            r.take(l)?;
        }
    }
    let end = frame.body().len() - r.rest().len();
    let mut body = BytesMut::with_capacity(end - start + 4 + 2 * name.len());
    for _ in 0..2 {
        body.put_slice(name.as_bytes());
        body.put_u8(0);
    }
    body.put_slice(frame.body().get(start..end).unwrap_or_default());
    body.put_i16(0);
    Ok(encode(fe::BIND, &body))
}

/// A Parse of a named statement with parameter types.
pub fn parse_typed(name: &str, sql: &str, param_types: &[u32]) -> Bytes {
    let mut body = BytesMut::with_capacity(name.len() + sql.len() + 4 + param_types.len() * 4);
    body.put_slice(name.as_bytes());
    body.put_u8(0);
    body.put_slice(sql.as_bytes());
    body.put_u8(0);
    // The count is unsigned on the wire (a Parse may declare up to 65,535 types).
    body.put_u16(u16::try_from(param_types.len()).unwrap_or(u16::MAX));
    for t in param_types {
        body.put_u32(*t);
    }
    encode(fe::PARSE, &body)
}

/// Execute of portal `name` (all rows), Close of statement `name`, Sync.
pub fn execute_close_sync(name: &str) -> Bytes {
    let mut out = BytesMut::new();
    let mut exec = BytesMut::new();
    exec.put_slice(name.as_bytes());
    exec.put_u8(0);
    exec.put_i32(0);
    out.put_slice(&encode(fe::EXECUTE, &exec));
    out.put_slice(&close_statement(name));
    out.put_slice(&encode(fe::SYNC, &[]));
    out.freeze()
}

/// Close of statement `name` (closing one that does not exist is not an error).
pub fn close_statement(name: &str) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(b'S');
    body.put_slice(name.as_bytes());
    body.put_u8(0);
    encode(fe::CLOSE, &body)
}

/// ReadyForQuery: the transaction status.
pub fn ready_status(frame: &Frame) -> Result<TxStatus, FrameError> {
    ready_status_of(frame.body())
}

/// [`ready_status`] of a ReadyForQuery's body.
pub fn ready_status_of(body: &[u8]) -> Result<TxStatus, FrameError> {
    match body {
        [b'I'] => Ok(TxStatus::Idle),
        [b'T'] => Ok(TxStatus::InBlock),
        [b'E'] => Ok(TxStatus::Failed),
        _ => Err(FrameError::Malformed { what: "ReadyForQuery", why: "unknown status" }),
    }
}

/// ParameterStatus: name and value.
pub fn parameter_status(frame: &Frame) -> Result<(String, String), FrameError> {
    let mut r = BodyReader::new(frame.body(), "ParameterStatus");
    Ok((text(r.cstr()?), text(r.cstr()?)))
}

/// BackendKeyData: process id and secret key (4 bytes in 3.0, up to 256 in 3.2).
pub fn backend_key(frame: &Frame) -> Result<super::startup::CancelKey, FrameError> {
    let mut r = BodyReader::new(frame.body(), "BackendKeyData");
    let pid = r.i32()?;
    let secret = r.rest();
    if secret.len() < 4 || secret.len() > 256 {
        return Err(FrameError::Malformed { what: "BackendKeyData", why: "key length" });
    }
    Ok(super::startup::CancelKey { pid, secret: Bytes::copy_from_slice(secret) })
}

/// The fields of an ErrorResponse or NoticeResponse that the proxy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

pub fn error_fields(frame: &Frame) -> Result<ErrorFields, FrameError> {
    let mut r = BodyReader::new(frame.body(), "ErrorResponse");
    let mut out = ErrorFields::default();
    loop {
        let kind = r.u8()?;
        if kind == 0 {
            break;
        }
        let value = r.cstr()?;
        match kind {
            b'V' => out.severity = text(value),
            b'S' if out.severity.is_empty() => out.severity = text(value),
            b'C' => out.code = text(value),
            b'M' => out.message = text(value),
            _ => {}
        }
    }
    Ok(out)
}

/// The authentication request subtype (0 = ok, 3 = cleartext, 5 = md5, 10 = SASL, …).
pub fn auth_kind(frame: &Frame) -> Result<i32, FrameError> {
    BodyReader::new(frame.body(), "Authentication").i32()
}

/// Removes the channel-binding mechanism `SCRAM-SHA-256-PLUS` from an AuthenticationSASL
/// request. Channel binding binds to the TLS certificate of the connection the client sees,
/// which ends at the proxy, so the server could never verify it. Returns the original frame
/// when there is nothing to remove.
pub fn strip_channel_binding(frame: &Frame) -> Result<Bytes, FrameError> {
    let mut r = BodyReader::new(frame.body(), "AuthenticationSASL");
    let _kind = r.i32()?;
    let mut mechanisms = Vec::new();
    loop {
        let m = r.cstr()?;
        if m.is_empty() {
            break;
        }
        mechanisms.push(m);
    }
    if !mechanisms.iter().any(|m| m.ends_with(b"-PLUS")) {
        return Ok(frame.bytes.clone());
    }
    let mut body = BytesMut::new();
    body.put_i32(10);
    for m in mechanisms.iter().filter(|m| !m.ends_with(b"-PLUS")) {
        body.put_slice(m);
        body.put_u8(0);
    }
    body.put_u8(0);
    Ok(encode(be::AUTHENTICATION, &body))
}

/// SQLSTATE codes the proxy sends itself. Each is documented in README.md.
pub mod sqlstate {
    /// A statement refused by policy (class 42, "syntax error or access rule violation").
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const CANNOT_CONNECT: &str = "08001";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// The severity of a message the proxy originates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
    Warning,
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
        }
    }
}

/// An ErrorResponse or NoticeResponse that the proxy sends in its own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyMessage {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ProxyMessage {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        ProxyMessage { severity: Severity::Error, code, message: message.into(), detail: None, hint: None }
    }
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        ProxyMessage { severity: Severity::Fatal, ..Self::error(code, message) }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Encodes as ErrorResponse (`E`) or, for warnings and notices, NoticeResponse (`N`).
    pub fn encode(&self) -> Bytes {
        let mut body = BytesMut::new();
        let sev = self.severity.as_str();
        for (k, v) in [(b'S', sev), (b'V', sev), (b'C', self.code), (b'M', self.message.as_str())] {
            put_field(&mut body, k, v);
        }
        if let Some(d) = &self.detail {
            put_field(&mut body, b'D', d);
        }
        if let Some(h) = &self.hint {
            put_field(&mut body, b'H', h);
        }
        body.put_u8(0);
        let tag = match self.severity {
            Severity::Error | Severity::Fatal => be::ERROR_RESPONSE,
            Severity::Warning | Severity::Notice => be::NOTICE_RESPONSE,
        };
        encode(tag, &body)
    }
}

fn put_field(body: &mut BytesMut, kind: u8, value: &str) {
    body.put_u8(kind);
    // A NUL inside a field would end it early on the client; never send one.
    body.put_slice(value.replace('\0', " ").as_bytes());
    body.put_u8(0);
}

pub fn ready_for_query(status: TxStatus) -> Bytes {
    encode(be::READY_FOR_QUERY, &[status.byte()])
}

pub fn terminate() -> Bytes {
    encode(fe::TERMINATE, &[])
}

/// A simple Query message.
pub fn query(sql: &str) -> Bytes {
    let mut body = Vec::with_capacity(sql.len() + 1);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    encode(fe::QUERY, &body)
}

/// A Parse message without parameter types.
pub fn parse(name: &str, sql: &str) -> Bytes {
    let mut body = Vec::with_capacity(name.len() + sql.len() + 4);
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i16.to_be_bytes());
    encode(fe::PARSE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Frame {
        Frame { tag, bytes: encode(tag, body) }
    }

    #[test]
    fn names_are_read_as_the_server_keys_them() {
        let long = [b'x'; 70];
        let mut bind = long.to_vec();
        bind.push(0);
        bind.extend_from_slice(b"s\0\0\0\0\0\0\0");
        let bind = frame(fe::BIND, &bind);
        let (portal, stmt) = bind_names(&bind).unwrap();
        assert_eq!((portal, stmt), (&long[..63], &b"s"[..]));
        let mut close = vec![b'P'];
        close.extend_from_slice(&long);
        close.push(0);
        let close = frame(fe::CLOSE, &close);
        assert_eq!(target_of(&close), (Some(b'P'), &long[..63]));
        // Cut at a byte, not a character: the server's tables compare bytes.
        let e = "é".repeat(40);
        assert_eq!(object_name(e.as_bytes()).len(), 63);
        let describe = frame(fe::DESCRIBE, b"S\0");
        assert_eq!(target_of(&describe), (Some(b'S'), &b""[..]));
    }

    #[test]
    fn error_round_trip() {
        let m = ProxyMessage::error("42501", "no").with_detail("d").with_hint("h");
        let b = m.encode();
        let f = error_fields(&Frame { tag: b[0], bytes: b }).unwrap();
        assert_eq!(f.code, "42501");
        assert_eq!(f.message, "no");
        assert_eq!(f.severity, "ERROR");
    }

    #[test]
    fn strips_plus() {
        let f = frame(b'R', b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let out = strip_channel_binding(&f).unwrap();
        assert_eq!(&out[5..], b"\0\0\0\x0aSCRAM-SHA-256\0\0");
        let f = frame(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0");
        assert_eq!(strip_channel_binding(&f).unwrap(), f.bytes);
    }

    #[test]
    fn short_messages_do_not_panic() {
        for tag in [b'P', b'Q', b'B', b'Z', b'S', b'K', b'E', b'R'] {
            for body in [&b""[..], b"\0", b"a", b"\0\0\0"] {
                let f = frame(tag, body);
                let _ = parse_msg(&f);
                let _ = query_text(&f);
                let _ = bind_names(&f);
                let _ = ready_status(&f);
                let _ = parameter_status(&f);
                let _ = backend_key(&f);
                let _ = error_fields(&f);
                let _ = auth_kind(&f);
                let _ = strip_channel_binding(&f);
            }
        }
    }
}
