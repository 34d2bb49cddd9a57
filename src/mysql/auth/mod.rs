//! Auth plugins, one file each, and the small state machine that runs the chosen one.
//!
//! The session owns the packets; an [`Auth`] only turns a nonce and the server's AuthMoreData
//! into the bytes to send next.

pub mod caching_sha2;
pub mod ed25519;
pub mod native;

use std::cell::OnceCell;
use std::fmt;
use std::rc::Rc;

use super::ProtocolError;

/// The password, shared by every session that logs in with it (a clone is a reference), with
/// what the SHA-based plugins derive from it alone, each computed the first time a login needs
/// it: a login then hashes only what depends on the server's nonce (one SHA-1 block of
/// mysql_native_password's three, one SHA-256 block of caching_sha2_password's three). A new
/// password (SIGHUP) is a new `Password`, with nothing derived yet.
#[derive(Clone, Default)]
pub struct Password(Rc<Derived>);

#[derive(Default)]
struct Derived {
    bytes: Vec<u8>,
    native: OnceCell<native::Stages>,
    caching_sha2: OnceCell<caching_sha2::Stages>,
}

impl Password {
    pub fn new(bytes: Vec<u8>) -> Password {
        Password(Rc::new(Derived { bytes, ..Derived::default() }))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// mysql_native_password's response to `nonce`: [`native::scramble`].
    pub fn native(&self, nonce: &[u8]) -> Vec<u8> {
        if self.bytes().is_empty() {
            return Vec::new();
        }
        native::respond(self.0.native.get_or_init(|| native::stages(self.bytes())), nonce)
    }

    /// caching_sha2_password's fast-path response to `nonce`: [`caching_sha2::scramble`].
    pub fn caching_sha2(&self, nonce: &[u8]) -> Vec<u8> {
        if self.bytes().is_empty() {
            return Vec::new();
        }
        caching_sha2::respond(self.0.caching_sha2.get_or_init(|| caching_sha2::stages(self.bytes())), nonce)
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Password {
        Password::new(password.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Password {
    fn from(password: Vec<u8>) -> Password {
        Password::new(password)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the bytes reach the server. Full auth sends the password in clear only on a transport
/// that cannot be sniffed, as libmysqlclient does: caching_sha2 over a unix socket or TLS,
/// sha256_password over TLS alone (its server takes a clear password only inside TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
    /// TCP inside TLS (after the SSLRequest).
    Tls,
}

impl Transport {
    /// Whether caching_sha2 may send the password in clear.
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Unix | Transport::Tls)
    }
}

/// The plugins this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Native,
    CachingSha2,
    Sha256,
    Ed25519,
}

impl Plugin {
    pub fn from_name(name: &str) -> Option<Plugin> {
        match name {
            "mysql_native_password" => Some(Plugin::Native),
            "caching_sha2_password" => Some(Plugin::CachingSha2),
            "sha256_password" => Some(Plugin::Sha256),
            "client_ed25519" => Some(Plugin::Ed25519),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Plugin::Native => "mysql_native_password",
            Plugin::CachingSha2 => "caching_sha2_password",
            Plugin::Sha256 => "sha256_password",
            Plugin::Ed25519 => "client_ed25519",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent the first response; waiting for OK, ERR, a switch, or plugin data.
    /// * caching_sha2: `0x03` stays here (OK follows); `0x04` goes to `AwaitingKey` on TCP, or
    ///   sends the password in clear on a secure transport and goes to `Sent`.
    /// * sha256_password over TCP: goes to `AwaitingKey` when it asked for the key.
    Started,
    /// Asked for the server's RSA key; the next AuthMoreData holds it as PEM.
    /// * goes to `Sent` after encrypting the password with it.
    AwaitingKey,
    /// Sent the final response; only OK or ERR may follow.
    Sent,
}

/// One plugin's run against one nonce.
#[derive(Debug, Clone)]
pub struct Auth {
    pub plugin: Plugin,
    nonce: Vec<u8>,
    state: State,
}

impl Auth {
    /// Starts `plugin` on `nonce`; returns the first response to send.
    pub fn start(plugin: Plugin, nonce: &[u8], password: &Password, transport: Transport) -> (Auth, Vec<u8>) {
        // A nonce is 20 bytes (32 for ed25519); servers add a trailing NUL we must not hash.
        let len = if plugin == Plugin::Ed25519 { 32 } else { 20 };
        let nonce = nonce.get(..len).unwrap_or(nonce);
        let (state, first) = match plugin {
            Plugin::Native => (State::Sent, password.native(nonce)),
            Plugin::CachingSha2 => (State::Started, password.caching_sha2(nonce)),
            Plugin::Ed25519 => (State::Sent, ed25519::sign(password.bytes(), nonce)),
            Plugin::Sha256 if password.bytes().is_empty() => (State::Sent, vec![0]),
            Plugin::Sha256 if transport == Transport::Tls => {
                (State::Sent, caching_sha2::clear_password(password.bytes()))
            }
            Plugin::Sha256 => (State::AwaitingKey, vec![caching_sha2::SHA256_REQUEST_PUBLIC_KEY]),
        };
        (Auth { plugin, nonce: nonce.to_vec(), state }, first)
    }

    /// Handles the data of an AuthMoreData packet (after its `0x01`). `Ok(None)`: nothing to
    /// send, keep reading.
    pub fn more_data(
        &mut self,
        data: &[u8],
        password: &Password,
        transport: Transport,
    ) -> Result<Option<Vec<u8>>, ProtocolError> {
        let unexpected =
            ProtocolError::Unexpected { phase: "auth more data", header: data.first().copied().unwrap_or(0) };
        match (self.plugin, self.state) {
            (Plugin::CachingSha2, State::Started) => match data {
                [caching_sha2::FAST_AUTH_OK] => {
                    self.state = State::Sent;
                    Ok(None)
                }
                [caching_sha2::FULL_AUTH] if transport.is_secure() => {
                    self.state = State::Sent;
                    Ok(Some(caching_sha2::clear_password(password.bytes())))
                }
                [caching_sha2::FULL_AUTH] => {
                    self.state = State::AwaitingKey;
                    Ok(Some(vec![caching_sha2::REQUEST_PUBLIC_KEY]))
                }
                _ => Err(unexpected),
            },
            (Plugin::CachingSha2 | Plugin::Sha256, State::AwaitingKey) => {
                self.state = State::Sent;
                caching_sha2::encrypt_password(data, password.bytes(), &self.nonce).map(Some)
            }
            _ => Err(unexpected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw() -> Password {
        Password::from("pw")
    }

    #[test]
    fn plugin_names_round_trip() {
        for p in [Plugin::Native, Plugin::CachingSha2, Plugin::Sha256, Plugin::Ed25519] {
            assert_eq!(Plugin::from_name(p.name()), Some(p));
        }
        assert_eq!(Plugin::from_name("dialog"), None);
    }

    #[test]
    fn caching_sha2_fast_path_sends_nothing_after_0x03() {
        let (mut a, first) = Auth::start(Plugin::CachingSha2, &[1; 21], &pw(), Transport::Tcp);
        assert_eq!(first.len(), 32);
        assert_eq!(a.more_data(&[0x03], &pw(), Transport::Tcp), Ok(None));
        assert!(a.more_data(&[0x03], &pw(), Transport::Tcp).is_err(), "no second status");
    }

    #[test]
    fn caching_sha2_full_path_asks_for_the_key_on_tcp_and_sends_clear_on_unix() {
        let (mut a, _) = Auth::start(Plugin::CachingSha2, &[1; 20], &pw(), Transport::Tcp);
        assert_eq!(a.more_data(&[0x04], &pw(), Transport::Tcp), Ok(Some(vec![0x02])));
        assert_eq!(a.more_data(b"not a key", &pw(), Transport::Tcp), Err(ProtocolError::BadPublicKey));
        let (mut a, _) = Auth::start(Plugin::CachingSha2, &[1; 20], &pw(), Transport::Unix);
        assert_eq!(a.more_data(&[0x04], &pw(), Transport::Unix), Ok(Some(b"pw\0".to_vec())));
    }

    #[test]
    fn sha256_sends_clear_only_inside_tls_and_asks_for_the_key_on_a_unix_socket() {
        assert_eq!(Auth::start(Plugin::Sha256, &[1; 20], &pw(), Transport::Tls).1, b"pw\0");
        for t in [Transport::Unix, Transport::Tcp] {
            let (mut a, first) = Auth::start(Plugin::Sha256, &[1; 20], &pw(), t);
            assert_eq!(first, [0x01], "{t:?}");
            assert_eq!(a.more_data(b"not a key", &pw(), t), Err(ProtocolError::BadPublicKey));
        }
    }

    #[test]
    fn native_and_ed25519_take_no_more_data() {
        let (mut a, _) = Auth::start(Plugin::Native, &[1; 20], &pw(), Transport::Tcp);
        assert!(a.more_data(&[0x03], &pw(), Transport::Tcp).is_err());
        let (mut a, sig) = Auth::start(Plugin::Ed25519, &[1; 32], &pw(), Transport::Tcp);
        assert_eq!(sig.len(), 64);
        assert!(a.more_data(&[0x04], &pw(), Transport::Tcp).is_err());
    }
}
