//! Throwaway certificates, made per test run with rcgen (ECDSA P-256): a CA, a server
//! certificate for `localhost` and `127.0.0.1`, a client certificate, an unrelated second CA, and
//! an expired server certificate. Written as PEM files into one temp dir, keys mode 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TempDir;

/// One certificate and its key, as files.
#[derive(Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pair {
    /// A rustls server config presenting this certificate (for the fake server).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_with_chain(Vec::new())
    }

    /// The same, with `extra` certificates sent after ours (a long chain).
    pub fn server_config_with_chain(&self, extra: Vec<CertificateDer<'static>>) -> Arc<rustls::ServerConfig> {
        let mut chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&self.cert).unwrap().collect::<Result<_, _>>().unwrap();
        chain.extend(extra);
        let key = PrivateKeyDer::from_pem_file(&self.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

/// Every certificate the TLS tests use.
pub struct Pki {
    pub dir: TempDir,
    /// The CA that signed `server`, `client` and `expired`.
    pub ca: PathBuf,
    /// Another CA that signed nothing we use.
    pub other_ca: PathBuf,
    /// SANs `localhost` and `127.0.0.1`.
    pub server: Pair,
    /// For REQUIRE X509 users.
    pub client: Pair,
    /// SANs `localhost` and `127.0.0.1`, valid 2020 to 2021 only.
    pub expired: Pair,
}

impl Pki {
    /// Certificates in a fresh directory. A test binary may keep its `Pki` in a static, which is
    /// never dropped: the directories of test processes that have ended go here instead.
    pub fn new() -> Pki {
        TempDir::sweep("pki");
        let dir = TempDir::new("pki");
        let (ca, ca_pem) = authority("mysqlchk test CA");
        let (_, other_pem) = authority("mysqlchk unrelated CA");
        let write = |name: &str, pem: &str, mode: u32| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let leaf = |name: &str, sans: &[&str], expired: bool| {
            let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            if expired {
                params.not_before = date_time_ymd(2020, 1, 1);
                params.not_after = date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            Pair {
                cert: write(&format!("{name}.pem"), &cert.pem(), 0o644),
                key: write(&format!("{name}-key.pem"), &key.serialize_pem(), 0o600),
            }
        };
        let server = leaf("server", &["localhost", "127.0.0.1"], false);
        let client = leaf("client", &[], false);
        let expired = leaf("expired", &["localhost", "127.0.0.1"], true);
        Pki {
            ca: write("ca.pem", &ca_pem, 0o644),
            other_ca: write("other-ca.pem", &other_pem, 0o644),
            server,
            client,
            expired,
            dir,
        }
    }
}

/// A self-signed CA and its PEM certificate.
fn authority(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = ca.pem();
    (ca, pem)
}
