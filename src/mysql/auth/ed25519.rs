//! MariaDB's `client_ed25519`: an Ed25519 signature of the server's 32-byte nonce.
//!
//! MariaDB derives the key from the password the way Ed25519 derives it from a seed, but with the
//! whole password as the seed: `az = SHA512(pw)`, clamped `az[0..32]` is the secret scalar,
//! `az[32..64]` the nonce prefix. The server stores only the public key `A = scalar * B`.

use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// The 64-byte signature `R || S` of `nonce` under the password-derived key.
pub fn sign(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    let esk = expanded_key(password);
    let public = VerifyingKey::from(&esk);
    raw_sign::<Sha512>(&esk, nonce, &public).to_bytes().to_vec()
}

/// The public key MariaDB stores for this password (`SELECT PASSWORD(...)` under ed25519).
pub fn public_key(password: &[u8]) -> [u8; 32] {
    VerifyingKey::from(&expanded_key(password)).to_bytes()
}

fn expanded_key(password: &[u8]) -> ExpandedSecretKey {
    let az: [u8; 64] = Sha512::digest(password).into();
    ExpandedSecretKey::from_bytes(&az)
}
