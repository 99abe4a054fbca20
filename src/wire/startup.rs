//! The untagged packets that open a connection: StartupMessage, SSLRequest, GSSENCRequest and
//! CancelRequest.
//!
//! Owns: parsing those packets from their original bytes, with the server's own bounds.
//! Does not own: reading them off a socket (see `session`), or deciding what to do with them.

use super::{BodyReader, FrameError};
use bytes::Bytes;

/// PostgreSQL's own limit on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// One parsed opening packet. `Startup` keeps the original bytes so they are relayed
/// byte-for-byte, parameters in their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel(CancelKey),
    Startup(StartupMessage),
}

/// A backend's cancel key as the server gave it in BackendKeyData: the process id and the
/// secret, whose length is 4 bytes in protocol 3.0 and up to 256 in 3.2.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: Bytes,
}

impl CancelKey {
    /// The CancelRequest packet that cancels this backend's current query.
    pub fn request_bytes(&self) -> Vec<u8> {
        let len = 12 + self.secret.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
        out.extend_from_slice(&self.pid.to_be_bytes());
        out.extend_from_slice(&self.secret);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// The whole packet, length field included, as the client sent it.
    pub bytes: Bytes,
    pub major: u16,
    pub minor: u16,
    /// Parameters in the order the client sent them, decoded lossily for display and lookups.
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// A parameter's value. A repeated parameter reads as its last value, as on the server
    /// (`ProcessStartupPacket` overwrites), so blastwall judges the session the server opens.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn user(&self) -> &str {
        self.param("user").unwrap_or("")
    }
    /// The database name, which defaults to the user name as on the server.
    pub fn database(&self) -> &str {
        self.param("database").filter(|d| !d.is_empty()).unwrap_or_else(|| self.user())
    }
}

/// Validates the length field of an opening packet: what must be read before parsing.
pub fn check_len(len_field: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(len_field);
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if len_usize < 8 {
        return Err(FrameError::TooShort { tag: '\0', len });
    }
    if len_usize > MAX_STARTUP_LEN {
        return Err(FrameError::TooLong { tag: '\0', len, max: MAX_STARTUP_LEN });
    }
    Ok(len_usize)
}

/// Parses a whole opening packet, length field included.
pub fn parse(bytes: Bytes) -> Result<StartupPacket, FrameError> {
    let mut r = BodyReader::new(bytes.get(4..).unwrap_or_default(), "startup packet");
    let code = r.i32()?;
    match code {
        SSL_REQUEST_CODE if r.is_empty() => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE if r.is_empty() => Ok(StartupPacket::GssEncRequest),
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            Err(FrameError::Malformed { what: "startup packet", why: "request with a body" })
        }
        CANCEL_REQUEST_CODE => {
            let pid = r.i32()?;
            let secret = r.rest();
            if secret.len() < 4 || secret.len() > 256 {
                return Err(FrameError::Malformed { what: "CancelRequest", why: "secret key length out of range" });
            }
            Ok(StartupPacket::Cancel(CancelKey { pid, secret: Bytes::copy_from_slice(secret) }))
        }
        _ => {
            let major = u16::try_from((code >> 16) & 0xffff).unwrap_or(0);
            let minor = u16::try_from(code & 0xffff).unwrap_or(0);
            if major != 3 {
                return Err(FrameError::Malformed {
                    what: "StartupMessage",
                    why: "unsupported frontend protocol (blastwall speaks 3.x)",
                });
            }
            let mut params = Vec::new();
            loop {
                let k = r.cstr()?;
                if k.is_empty() {
                    break;
                }
                let v = r.cstr()?;
                params.push((String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()));
            }
            if !r.is_empty() {
                return Err(FrameError::Malformed { what: "StartupMessage", why: "bytes after the terminating NUL" });
            }
            if !params.iter().any(|(k, _)| k == "user") {
                return Err(FrameError::Malformed {
                    what: "StartupMessage",
                    why: "no PostgreSQL user name specified in startup packet",
                });
            }
            Ok(StartupPacket::Startup(StartupMessage { bytes, major, minor, params }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, rest: &[u8]) -> Bytes {
        let mut v = Vec::new();
        v.extend_from_slice(&u32::try_from(8 + rest.len()).unwrap().to_be_bytes());
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(rest);
        Bytes::from(v)
    }

    #[test]
    fn parses_startup_in_order() {
        let p = packet(196_608, b"user\0alice\0database\0db\0options\0-c x=y\0\0");
        let StartupPacket::Startup(m) = parse(p.clone()).unwrap() else { panic!() };
        assert_eq!(m.bytes, p);
        assert_eq!(m.params[0].0, "user");
        assert_eq!(m.params[2], ("options".into(), "-c x=y".into()));
        assert_eq!(m.database(), "db");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(packet(196_608, b"user\0alice")).is_err());
        assert!(parse(packet(196_608, b"database\0x\0\0")).is_err());
        assert!(parse(packet(CANCEL_REQUEST_CODE, b"\0\0")).is_err());
        assert!(parse(packet(0x0002_0000, b"")).is_err());
        assert!(check_len([0, 0, 0, 3]).is_err());
        assert!(check_len([0, 1, 0, 0]).is_err());
        assert_eq!(parse(packet(SSL_REQUEST_CODE, b"")).unwrap(), StartupPacket::SslRequest);
    }

    #[test]
    fn cancel_round_trips() {
        let key = CancelKey { pid: 42, secret: Bytes::from_static(&[1, 2, 3, 4]) };
        let bytes = Bytes::from(key.request_bytes());
        assert_eq!(parse(bytes).unwrap(), StartupPacket::Cancel(key));
    }
}
