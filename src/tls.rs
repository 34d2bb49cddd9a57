//! TLS to the database (the `tls` feature): the client settings built from the `--ssl-*` flags,
//! and rustls's sans-IO [`ClientConnection`] driven over the check's socket.
//!
//! The MySQL session knows only the SSLRequest step; after [`Action::StartTls`] the driver runs
//! [`Stream::handshake`] and pipes every later byte through the [`Stream`].
//!
//! [`Action::StartTls`]: crate::mysql::Action::StartTls

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, ServerName,
    SignatureVerificationAlgorithm, UnixTime,
};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{shared_mode, Ssl, SslMode, Target};
use crate::mysql::TlsRequest;

/// The TLS settings every check uses, built once from the `--ssl-*` files (and again on SIGHUP).
/// Cheap to clone; checks share one rustls config, so sessions resume across checks.
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    /// The host of `--mysql`: checked against the certificate's SANs under VERIFY_IDENTITY.
    name: ServerName<'static>,
    request: TlsRequest,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tls::Client")
    }
}

impl Client {
    /// Reads the `--ssl-*` files. `None` when TLS is off: DISABLED, or a unix socket target
    /// (already a secure transport; `require_secure_transport` accepts it).
    pub fn load(ssl: &Ssl, target: &Target) -> Result<Option<Client>, LoadError> {
        let host = match target {
            Target::Tcp { host, .. } if ssl.mode != SslMode::Disabled => host,
            _ => return Ok(None),
        };
        let provider = Arc::new(provider());
        let chain = match (ssl.mode, &ssl.ca) {
            (SslMode::VerifyCa | SslMode::VerifyIdentity, Some(ca)) => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca)?), provider.clone())
                    .build()
                    .map_err(|e| LoadError::Ca(ca.clone(), e.to_string()))?,
            ),
            // Config refuses VERIFY modes without --ssl-ca; PREFERRED and REQUIRED check nothing.
            _ => None,
        };
        let verifier = Arc::new(Verifier { chain, name: ssl.mode == SslMode::VerifyIdentity });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(LoadError::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&ssl.cert, &ssl.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certs("--ssl-cert", cert)?, private_key(key)?)
                .map_err(LoadError::Rustls)?,
            _ => builder.with_no_client_auth(),
        };
        if !ssl.resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let name = match ServerName::try_from(host.as_str()) {
            Ok(name) => name.to_owned(),
            Err(_) if ssl.mode == SslMode::VerifyIdentity => return Err(LoadError::Name(host.clone())),
            // Nothing checks the name: an address sends no SNI.
            Err(_) => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
        };
        let request = if ssl.mode == SslMode::Preferred { TlsRequest::IfOffered } else { TlsRequest::Required };
        Ok(Some(Client { config: Arc::new(config), name, request }))
    }

    /// What the session asks for after the greeting.
    pub fn request(&self) -> TlsRequest {
        self.request
    }
}

/// ring with AES-GCM only: TLS 1.3 makes TLS_AES_128_GCM_SHA256 mandatory, and the OpenSSL and
/// wolfSSL builds of MySQL and MariaDB offer AES-GCM with TLS 1.2 too (servers without it, such
/// as yaSSL's TLS 1.1, are out of rustls's reach anyway). Leaving ChaCha20-Poly1305 out keeps its
/// code out of the binary.
fn provider() -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIG_ALGS,
        secure_random: &Random,
        key_provider: &Keys,
    }
}

/// The operating system's generator, through ring.
#[derive(Debug)]
struct Random;

impl rustls::crypto::SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new().fill(buf).map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

/// Client keys (`--ssl-key`): RSA, ECDSA or Ed25519, as rustls's ring provider loads them.
#[derive(Debug)]
struct Keys;

impl rustls::crypto::KeyProvider for Keys {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_supported_type(&key)
    }
}

/// The signature algorithms of rustls's ring provider (it does not export them).
static SIG_ALGS: rustls::crypto::WebPkiSupportedAlgorithms = {
    use webpki::ring as alg;
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[
            P256_SHA256,
            P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            // TLS 1.2 does not tie ECDSA schemes to a curve; TLS 1.3 does.
            (SignatureScheme::ECDSA_NISTP384_SHA384, &[alg::ECDSA_P384_SHA384, P256_SHA384]),
            (SignatureScheme::ECDSA_NISTP256_SHA256, &[P256_SHA256, alg::ECDSA_P384_SHA256]),
            (SignatureScheme::ED25519, &[alg::ED25519]),
            (SignatureScheme::RSA_PSS_SHA512, &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY]),
            (SignatureScheme::RSA_PSS_SHA384, &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY]),
            (SignatureScheme::RSA_PSS_SHA256, &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY]),
            (SignatureScheme::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
            (SignatureScheme::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
            (SignatureScheme::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
        ],
    }
};

static P256_SHA256: &dyn SignatureVerificationAlgorithm = &P256(Digest::Sha256);
static P256_SHA384: &dyn SignatureVerificationAlgorithm = &P256(Digest::Sha384);

/// ECDSA with a P-256 key, checked by RustCrypto's p256 rather than ring. ring multiplies by the
/// generator with a 148 KiB precomputed table, and one verification reads a row on each of its
/// 37 pages, which then stay resident for the daemon's life: over half the TLS build's read-only
/// data, for a signature checked once per full handshake (resumed ones check none). p256 without
/// its `precomputed-tables` feature needs no table; it is slower: about 0.5 ms of CPU per full
/// handshake on the bench's VM, where ring's took about a tenth of that. The same rules as ring's:
/// an ASN.1 DER signature, the hash truncated to the curve's 256 bits, high S accepted.
#[derive(Debug)]
struct P256(Digest);

#[derive(Debug)]
enum Digest {
    Sha256,
    Sha384,
}

impl SignatureVerificationAlgorithm for P256 {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        use p256::ecdsa::{DerSignature, VerifyingKey};
        use sha2::Digest as _;
        // ring takes only the uncompressed form, as TLS and X.509 use it.
        if public_key.first() != Some(&4) {
            return Err(InvalidSignature);
        }
        let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = DerSignature::from_bytes(signature).map_err(|_| InvalidSignature)?;
        let verified = match self.0 {
            Digest::Sha256 => key.verify_prehash(&sha2::Sha256::digest(message), &signature),
            Digest::Sha384 => key.verify_prehash(&sha2::Sha384::digest(message), &signature),
        };
        verified.map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self.0 {
            Digest::Sha256 => alg_id::ECDSA_SHA256,
            Digest::Sha384 => alg_id::ECDSA_SHA384,
        }
    }
}

fn certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| LoadError::Pem(flag, path.to_path_buf(), e))?;
    if certs.is_empty() {
        return Err(LoadError::NoCertificate(flag, path.to_path_buf()));
    }
    Ok(certs)
}

fn roots(path: &Path) -> Result<RootCertStore, LoadError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs("--ssl-ca", path)?);
    if added == 0 {
        return Err(LoadError::Ca(path.to_path_buf(), "no usable CA certificate".into()));
    }
    Ok(roots)
}

/// Like the password file: refused when group or others may read it.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, LoadError> {
    match shared_mode(path) {
        Ok(Some(mode)) => return Err(LoadError::KeyMode(path.to_path_buf(), mode)),
        Ok(None) => {}
        Err(e) => return Err(LoadError::Pem("--ssl-key", path.to_path_buf(), rustls::pki_types::pem::Error::Io(e))),
    }
    PrivateKeyDer::from_pem_file(path).map_err(|e| LoadError::Pem("--ssl-key", path.to_path_buf(), e))
}

/// Why the `--ssl-*` files cannot be used.
#[derive(Debug)]
pub enum LoadError {
    /// A file could not be read or holds no valid PEM (the flag is named).
    Pem(&'static str, PathBuf, rustls::pki_types::pem::Error),
    /// A certificate file holds no certificate.
    NoCertificate(&'static str, PathBuf),
    /// The CA bundle cannot anchor a chain.
    Ca(PathBuf, String),
    /// The key file is open to group or others.
    KeyMode(PathBuf, u32),
    /// VERIFY_IDENTITY with a host that is neither a DNS name nor an IP address.
    Name(String),
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Pem(flag, p, e) => write!(f, "cannot use {flag} {}: {}", p.display(), pem_error(e)),
            LoadError::NoCertificate(flag, p) => write!(f, "{flag} {} holds no PEM certificate", p.display()),
            LoadError::Ca(p, e) => write!(f, "cannot use --ssl-ca {}: {e}", p.display()),
            LoadError::KeyMode(p, mode) => write!(
                f,
                "--ssl-key {} is accessible by group or others (mode {mode:04o}); run chmod 600 on it",
                p.display()
            ),
            LoadError::Name(host) => {
                write!(
                    f,
                    "--ssl-mode VERIFY_IDENTITY needs a DNS name or IP address in --mysql, not \"{}\"",
                    host.escape_debug()
                )
            }
            LoadError::Rustls(e) => write!(f, "cannot use --ssl-cert/--ssl-key: {}", describe(e)),
        }
    }
}

impl std::error::Error for LoadError {}

/// pem::Error's own Display prints two of its variants with Debug, which release builds empty.
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a PEM section has no end marker".into(),
        E::IllegalSectionStart { .. } => "malformed PEM section start".into(),
        other => other.to_string(),
    }
}

/// What the server's certificate must satisfy. webpki checks the chain before the name, so under
/// VERIFY_CA a name error means the chain was good. The handshake signatures are always checked,
/// so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct Verifier {
    /// VERIFY_CA and VERIFY_IDENTITY: the chain must lead to `--ssl-ca`. `None` (PREFERRED,
    /// REQUIRED): encryption without authentication, as the MySQL client does.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// VERIFY_IDENTITY: the host of `--mysql` must be in the certificate's SANs.
    name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &SIG_ALGS)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &SIG_ALGS)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SIG_ALGS.supported_schemes()
    }
}

/// Why the TLS handshake or a TLS record failed.
#[derive(Debug)]
pub enum Error {
    /// The socket failed.
    Io(io::Error),
    /// rustls refused what the server sent (certificate, alert, garbage).
    Tls(rustls::Error),
    /// The server closed the connection during the handshake.
    Eof,
}

impl Error {
    /// The short public reason (the 503 body).
    pub fn class(&self) -> &'static str {
        match self {
            Error::Tls(rustls::Error::InvalidCertificate(e)) => match e {
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    "TLS certificate name mismatch"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "TLS certificate expired",
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "TLS certificate not valid yet"
                }
                _ => "TLS certificate not trusted",
            },
            _ => "TLS error",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Tls(e) => f.write_str(&describe(e)),
            Error::Eof => f.write_str("server closed the connection during the handshake"),
        }
    }
}

impl std::error::Error for Error {}

/// rustls's Display prints several errors with Debug, which release builds empty; these are the
/// ones a health check meets.
fn describe(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate is not valid for the host of --mysql".into()
            }
            CertificateError::Expired => "certificate expired".into(),
            CertificateError::NotValidYet => "certificate not valid yet".into(),
            CertificateError::UnknownIssuer => "certificate not issued by a CA in --ssl-ca".into(),
            CertificateError::BadSignature => "certificate has a bad signature".into(),
            CertificateError::BadEncoding => "certificate is malformed".into(),
            c @ (CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYetContext { .. }
            | CertificateError::InvalidPurposeContext { .. }) => c.to_string(),
            _ => "certificate rejected".into(),
        },
        E::AlertReceived(a) => format!("server sent fatal alert {}", u8::from(*a)),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "server sent an unexpected message".into()
        }
        E::InvalidMessage(_) => "server sent a corrupt or oversized message".into(),
        E::PeerIncompatible(_) => "server is incompatible (no common version or cipher suite)".into(),
        E::PeerMisbehaved(_) => "server misbehaved".into(),
        E::InconsistentKeys(_) => "--ssl-key does not match --ssl-cert".into(),
        other => other.to_string(),
    }
}

/// TLS handshakes completed since start: `[full, resumed]`. Process-wide, so that a new
/// [`Client`] (SIGHUP) keeps counting; read by `/metrics`.
static HANDSHAKES: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// TLS handshakes completed since start: (full, resumed).
pub fn handshakes() -> (u64, u64) {
    (HANDSHAKES[0].load(Ordering::Relaxed), HANDSHAKES[1].load(Ordering::Relaxed))
}

/// Size of one socket read.
const READ_CHUNK: usize = 4096;

/// A TLS connection over `io`: the socket plus rustls's state. rustls bounds its own buffers
/// (one handshake message at most 64 KiB), so a hostile server cannot grow it without bound.
pub struct Stream<S> {
    io: S,
    conn: ClientConnection,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream<S> {
    /// The socket under TLS.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Runs the handshake over `io`, right after the SSLRequest.
    pub async fn handshake(io: S, client: &Client) -> Result<Stream<S>, Error> {
        let conn = ClientConnection::new(client.config.clone(), client.name.clone()).map_err(Error::Tls)?;
        let mut s = Stream { io, conn };
        loop {
            s.flush().await?;
            if !s.conn.is_handshaking() {
                let version = match s.conn.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
                    _ => "TLS 1.2",
                };
                let resumed = s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                HANDSHAKES[usize::from(resumed)].fetch_add(1, Ordering::Relaxed);
                log::debug!("{version} handshake done ({})", if resumed { "session resumed" } else { "full" });
                return Ok(s);
            }
            if !s.fill().await? {
                return Err(Error::Eof);
            }
        }
    }

    /// Sends what rustls has queued (handshake records, alerts, encrypted data).
    async fn flush(&mut self) -> Result<(), Error> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            out.clear();
            self.conn.write_tls(&mut out).map_err(Error::Io)?;
            self.io.write_all(&out).await.map_err(Error::Io)?;
        }
        Ok(())
    }

    /// Reads from the socket into rustls and processes the records; false at end of stream.
    async fn fill(&mut self) -> Result<bool, Error> {
        let mut buf = [0u8; READ_CHUNK];
        let n = self.io.read(&mut buf).await.map_err(Error::Io)?;
        let mut input = &buf[..n];
        loop {
            // Takes as much as its bounded buffer allows; past the bound it is an error.
            let used = self.conn.read_tls(&mut input).map_err(Error::Io)?;
            if let Err(e) = self.conn.process_new_packets() {
                // Tell the server why (the alert rustls queued), if it still listens.
                let _ = self.flush().await;
                return Err(Error::Tls(e));
            }
            // Nothing taken: after close_notify rustls takes no more, and the rest is dropped.
            if input.is_empty() || used == 0 {
                return Ok(n > 0);
            }
        }
    }

    /// Reads decrypted bytes; `Ok(0)` at the server's close.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            self.flush().await.map_err(into_io)?;
            self.fill().await.map_err(into_io)?;
        }
    }

    /// Encrypts and sends `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(bytes)?;
        self.flush().await.map_err(into_io)
    }

    /// Sends close_notify and closes the socket.
    pub async fn close(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush().await.map_err(into_io)?;
        self.io.close().await
    }
}

fn into_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        other => io::Error::other(format!("tls: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    /// A key and a signature of `message`: by ring's signer for SHA-256; ring has no P-256 signer
    /// with SHA-384, so p256's (RFC 6979, a key derived from `seed`) for that one.
    fn signed(digest: &Digest, seed: u8, message: &[u8]) -> (Vec<u8>, Vec<u8>) {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        use sha2::Digest as _;
        match digest {
            Digest::Sha256 => {
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
                (pair.public_key().as_ref().to_vec(), pair.sign(&rng, message).unwrap().as_ref().to_vec())
            }
            Digest::Sha384 => {
                let key = p256::ecdsa::SigningKey::from_slice(&sha2::Sha256::digest([seed])).unwrap();
                let signature: p256::ecdsa::Signature = key.sign_prehash(&sha2::Sha384::digest(message)).unwrap();
                let public = key.verifying_key().to_sec1_point(false);
                (public.as_bytes().to_vec(), signature.to_der().as_bytes().to_vec())
            }
        }
    }

    /// Good signatures and damaged ones: ours and ring's verifier (the one ours replaces) agree on
    /// every one, for both hashes.
    #[test]
    fn p256_agrees_with_ring() {
        for (ours, ring) in [
            (P256(Digest::Sha256), webpki::ring::ECDSA_P256_SHA256),
            (P256(Digest::Sha384), webpki::ring::ECDSA_P256_SHA384),
        ] {
            assert_eq!(ours.public_key_alg_id(), ring.public_key_alg_id());
            assert_eq!(ours.signature_alg_id(), ring.signature_alg_id());
            for round in 0..20u8 {
                let message = vec![round; 40 + usize::from(round) * 7];
                let (key, signature) = signed(&ours.0, round, &message);
                let verdict = |k: &[u8], m: &[u8], s: &[u8]| {
                    let verified = ours.verify_signature(k, m, s).is_ok();
                    assert_eq!(verified, ring.verify_signature(k, m, s).is_ok(), "{:?}, round {round}", ours.0);
                    verified
                };
                assert!(verdict(&key, &message, &signature));
                // Another message, a flipped bit in the signature or the key, a cut signature,
                // trailing bytes, a compressed key and no key.
                assert!(!verdict(&key, b"another message", &signature));
                for i in [6, signature.len() / 2, signature.len() - 1] {
                    let mut bad = signature.clone();
                    bad[i] ^= 1;
                    assert!(!verdict(&key, &message, &bad));
                }
                let mut bad_key = key.clone();
                bad_key[20] ^= 1;
                assert!(!verdict(&bad_key, &message, &signature));
                for n in 0..signature.len() {
                    assert!(!verdict(&key, &message, &signature[..n]));
                }
                assert!(!verdict(&key, &message, &[&signature[..], &[0]].concat()));
                let compressed = [&[2 + (key[64] & 1)][..], &key[1..33]].concat();
                assert!(!verdict(&compressed, &message, &signature));
                assert!(!verdict(&[], &message, &signature));
            }
        }
    }
}
