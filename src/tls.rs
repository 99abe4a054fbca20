//! TLS with rustls (ring provider): the acceptor for clients and the connector for the server.
//!
//! Owns: loading certificates and keys, building rustls configs, and the certificate checks
//! that libpq's `sslmode` values mean, and their
//! messages. Does not own: when TLS is negotiated (see `session`
//! and `backend`), or the sockets.

use crate::config::{ClientTlsConfig, UpstreamSslMode, UpstreamTlsConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, RwLock};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read TLS {what} file {path}: {message}")]
    File { what: &'static str, path: String, message: String },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File { what: "certificate", path: path.display().to_string(), message };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        what: "private key",
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The client-facing acceptor, and the certificate it presents, which `reload` swaps.
pub fn acceptor(cfg: &ClientTlsConfig) -> Result<(tokio_rustls::TlsAcceptor, Arc<ServerCert>), TlsError> {
    let cert = Arc::new(ServerCert { current: RwLock::new(Arc::new(ServerCert::load(cfg)?)), cfg: cfg.clone() });
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    // Direct TLS negotiation (PostgreSQL 17's sslnegotiation=direct) requires this ALPN.
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(server)), cert))
}

/// The certificate chain and key clients are shown, read again from the same files on
/// SIGHUP or RELOAD (a renewed certificate applies to the next handshake; connections
/// already encrypted keep theirs).
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
    cfg: ClientTlsConfig,
}

impl ServerCert {
    fn load(cfg: &ClientTlsConfig) -> Result<CertifiedKey, TlsError> {
        CertifiedKey::from_der(certs(&cfg.cert)?, key(&cfg.key)?, &provider()).map_err(|e| {
            TlsError::Config(format!("certificate {} and key {}: {e}", cfg.cert.display(), cfg.key.display()))
        })
    }

    /// Reads the files again; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(Self::load(&self.cfg)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The certificate in use (DER of the first of the chain).
    pub fn leaf(&self) -> Vec<u8> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        current.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

impl rustls::server::ResolvesServerCert for ServerCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The upstream connector and the name to present, or `None` for `sslmode=disable` and for a
/// server reached over its Unix socket.
pub fn connector(
    cfg: &UpstreamTlsConfig,
    host: &str,
) -> Result<Option<(tokio_rustls::TlsConnector, ServerName<'static>)>, TlsError> {
    if crate::config::is_socket_path(host) {
        // A Unix socket: libpq does not use SSL there either.
        return Ok(None);
    }
    let name_text = cfg.server_name.clone().unwrap_or_else(|| host.to_string());
    let name = ServerName::try_from(name_text.clone())
        .map_err(|e| TlsError::Config(format!("upstream server name {name_text:?}: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match cfg.mode {
        UpstreamSslMode::Disable => return Ok(None),
        UpstreamSslMode::Prefer | UpstreamSslMode::Require => Arc::new(NoCheck(provider())),
        UpstreamSslMode::VerifyCa | UpstreamSslMode::VerifyFull => {
            let ca = cfg.ca.as_deref().ok_or_else(|| TlsError::Config("verify modes need upstream_tls.ca".into()))?;
            let mut roots = rustls::RootCertStore::empty();
            let anchors = certs(ca)?;
            for c in &anchors {
                roots.add(c.clone()).map_err(|e| TlsError::Config(format!("CA file {}: {e}", ca.display())))?;
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            Arc::new(CaFile {
                webpki,
                anchors,
                check_name: cfg.mode == UpstreamSslMode::VerifyFull,
                ca: ca.display().to_string(),
            })
        }
    };
    let mut client = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    client.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some((tokio_rustls::TlsConnector::from(Arc::new(client)), name)))
}

/// `sslmode=require`/`prefer`: encrypt, check signatures, but do not check the certificate,
/// as libpq does without a root certificate.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca` and `verify-full` against the CA file: the chain must lead to one of
/// its certificates, and for verify-full the certificate must name the server. As in libpq, a
/// self-signed server certificate given as the CA file itself is trusted (webpki alone refuses
/// it as "a CA used as an end entity"); its validity period is still checked.
/// Every refusal is logged with a sentence a DBA can act on.
#[derive(Debug)]
struct CaFile {
    webpki: Arc<WebPkiServerVerifier>,
    anchors: Vec<CertificateDer<'static>>,
    check_name: bool,
    /// The CA file, for messages.
    ca: String,
}

impl CaFile {
    fn verify(
        &self,
        end: &CertificateDer<'_>,
        inter: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        match self.webpki.verify_server_cert(end, inter, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }))
                if !self.check_name =>
            {
                Ok(ServerCertVerified::assertion())
            }
            // The server's own certificate is in the CA file (webpki checked its validity period
            // before it refused it for being a CA): pinned, as libpq accepts it.
            Err(rustls::Error::InvalidCertificate(C::Other(_)))
                if self.anchors.iter().any(|a| a.as_ref() == end.as_ref()) =>
            {
                if self.check_name {
                    let parsed = rustls::server::ParsedCertificate::try_from(end)?;
                    rustls::client::verify_server_name(&parsed, name)?;
                }
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
}

impl ServerCertVerifier for CaFile {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        inter: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self.verify(end, inter, name, ocsp, now);
        if let Err(e) = &r {
            tracing::error!(
                server_name = %name.to_str(),
                ca = %self.ca,
                error = %certificate_problem(e),
                "upstream TLS: the server's certificate was rejected"
            );
        }
        r
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A sentence for a certificate the verifier refused (rustls shows some only as debug names).
fn certificate_problem(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return e.to_string();
    };
    match c {
        C::UnknownIssuer => {
            "certificate verify failed: the server's certificate is not signed by a certificate in upstream_tls.ca"
                .into()
        }
        C::BadSignature => "certificate verify failed: the server's certificate is not signed by a certificate in upstream_tls.ca (one there has its issuer's name but not its key)".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "certificate verify failed: {c} (verify-full checks upstream_tls.server_name, or the upstream host)"
        ),
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            format!("certificate verify failed: {c}")
        }
        C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => "certificate verify failed: the server presented a CA certificate that is not in upstream_tls.ca (put the server's own certificate in upstream_tls.ca to trust it)".into(),
        other => format!("certificate verify failed: {other:?}"),
    }
}

/// What went wrong in a TLS handshake with the server, in words (the text clients are told).
/// Logged here, except certificate refusals, which the verifier logged with its CA file.
pub fn handshake_problem(e: &std::io::Error) -> String {
    let text = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(r @ rustls::Error::InvalidCertificate(_)) => return certificate_problem(r),
        Some(r) => certificate_problem(r),
        None => e.to_string(),
    };
    tracing::error!(error = %text, "upstream TLS handshake failed");
    text
}
