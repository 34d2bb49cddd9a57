//! `caching_sha2_password` (MySQL 8 default) and its predecessor `sha256_password`.
//!
//! Fast path: the scramble below; the server answers AuthMoreData `0x03` and then OK.
//! Full path: AuthMoreData `0x04`; on a secure transport (unix socket, TLS) the client sends the
//! password and a NUL in clear, otherwise it asks for the server's RSA key with `0x02`, gets
//! AuthMoreData holding a PEM key, and sends `RSA-OAEP(SHA-1)` of the password XOR the nonce.

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

use crate::mysql::ProtocolError;

/// AuthMoreData status: the server had the password hash cached; OK follows.
pub const FAST_AUTH_OK: u8 = 0x03;
/// AuthMoreData status: the server needs the password itself.
pub const FULL_AUTH: u8 = 0x04;
/// caching_sha2 client request for the server's public key.
pub const REQUEST_PUBLIC_KEY: u8 = 0x02;
/// sha256_password client request for the server's public key.
pub const SHA256_REQUEST_PUBLIC_KEY: u8 = 0x01;

/// `XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) || nonce))`; an empty password gives an empty
/// response.
pub fn scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    respond(&stages(password), nonce)
}

/// `SHA256(pw)` and `SHA256(SHA256(pw))`: what the fast path takes from the password alone.
pub type Stages = [[u8; 32]; 2];

pub fn stages(password: &[u8]) -> Stages {
    let stage1: [u8; 32] = Sha256::digest(password).into();
    [stage1, Sha256::digest(stage1).into()]
}

/// The fast-path response to `nonce` from a non-empty password's [`stages`].
pub fn respond([stage1, stage2]: &Stages, nonce: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// `XOR(pw || 0x00, nonce repeated)`: what full auth encrypts with the server's key.
pub fn xor_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(password.len() + 1);
    plain.extend_from_slice(password);
    plain.push(0);
    if !nonce.is_empty() {
        for (b, n) in plain.iter_mut().zip(nonce.iter().cycle()) {
            *b ^= n;
        }
    }
    plain
}

/// The password and a NUL, for full auth over a secure transport.
pub fn clear_password(password: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(password.len() + 1);
    out.extend_from_slice(password);
    out.push(0);
    out
}

/// `RSA-OAEP(SHA-1, MGF1-SHA-1)` of [`xor_password`] under the server's PEM key.
///
/// Servers send a SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`); PKCS#1 (`BEGIN RSA PUBLIC KEY`)
/// is accepted too. The randomness comes from the operating system, not from the clock.
pub fn encrypt_password(pem: &[u8], password: &[u8], nonce: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let pem = pem.strip_suffix(&[0]).unwrap_or(pem);
    let pem = std::str::from_utf8(pem).map_err(|_| ProtocolError::BadPublicKey)?.trim();
    let key = rsa::PublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::PublicKey::from_pkcs1_pem(pem))
        .map_err(|_| ProtocolError::BadPublicKey)?;
    // OAEP with SHA-1 fits a message of the key's size less 42 bytes (214 for RSA-2048).
    if password.len() + 1 + 42 > key.size() {
        return Err(ProtocolError::PasswordTooLongForKey);
    }
    key.oaep_encrypt::<sha1::Sha1>(&xor_password(password, nonce)).map_err(|_| ProtocolError::BadPublicKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = include_bytes!("../../../tests/data/fake_rsa_public.pem");

    #[test]
    fn a_password_too_long_for_the_key_is_named_as_such() {
        let longest = vec![b'p'; 2048 / 8 - 43];
        assert_eq!(encrypt_password(KEY, &longest, &[1; 20]).map(|c| c.len()), Ok(256));
        let too_long = vec![b'p'; 2048 / 8 - 42];
        assert_eq!(encrypt_password(KEY, &too_long, &[1; 20]), Err(ProtocolError::PasswordTooLongForKey));
        assert_eq!(encrypt_password(b"not a key", b"pw", &[1; 20]), Err(ProtocolError::BadPublicKey));
    }
}
