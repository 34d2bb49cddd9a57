//! `mysql_native_password`: a SHA-1 challenge-response.

use sha1::{Digest, Sha1};

/// `SHA1(pw) XOR SHA1(nonce || SHA1(SHA1(pw)))`; an empty password gives an empty response.
///
/// The nonce is the 20-byte scramble (a trailing NUL, if any, already stripped).
pub fn scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    respond(&stages(password), nonce)
}

/// `SHA1(pw)` and `SHA1(SHA1(pw))`: what the response takes from the password alone.
pub type Stages = [[u8; 20]; 2];

pub fn stages(password: &[u8]) -> Stages {
    let stage1: [u8; 20] = Sha1::digest(password).into();
    [stage1, Sha1::digest(stage1).into()]
}

/// The response to `nonce` from a non-empty password's [`stages`].
pub fn respond([stage1, stage2]: &Stages, nonce: &[u8]) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}
