//! The connection phase's first two packets: the server's HandshakeV10 greeting and our
//! HandshakeResponse41 (see "Protocol::HandshakeV10" and "Protocol::HandshakeResponse41").

use super::packet::{put_lenenc_int, Reader};
use super::{caps, parse_err, Error, ProtocolError};

/// The parts of a HandshakeV10 greeting this client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    /// The nonce: auth-plugin-data part 1 and 2, without the trailing NUL (20 bytes in practice).
    pub scramble: Vec<u8>,
    /// The server's default auth plugin; empty if the server lacks PLUGIN_AUTH.
    pub auth_plugin: String,
}

impl Greeting {
    /// Parses a greeting payload. An ERR packet here (e.g. 1040 Too many connections, 1129 host
    /// blocked) is returned as [`Error::Server`].
    pub fn parse(payload: &[u8]) -> Result<Greeting, Error> {
        let mut r = Reader::new(payload);
        let version = r.u8("protocol version")?;
        if version == 0xFF {
            return Err(Error::Server(parse_err(payload)?));
        }
        if version != 10 {
            return Err(ProtocolError::UnsupportedProtocolVersion(version).into());
        }
        let server_version = super::printable(r.nul_str(), 128);
        let connection_id = r.u32("connection id")?;
        let mut scramble = r.bytes(8, "auth-plugin-data part 1")?.to_vec();
        r.u8("filler")?;
        let mut capabilities = u32::from(r.u16("capability flags")?);
        let mut auth_plugin = String::new();
        if !r.is_empty() {
            r.u8("character set")?;
            r.u16("status flags")?;
            capabilities |= u32::from(r.u16("capability flags upper")?) << 16;
            let data_len = usize::from(r.u8("auth-plugin-data length")?);
            r.bytes(10, "reserved")?;
            if capabilities & caps::SECURE_CONNECTION != 0 {
                // Part 2 is at least 13 bytes: 12 of nonce and a NUL.
                let part2_len = data_len.saturating_sub(8).max(13);
                let part2 = r.bytes(part2_len, "auth-plugin-data part 2")?;
                let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
                scramble.extend_from_slice(part2);
            }
            if capabilities & caps::PLUGIN_AUTH != 0 {
                auth_plugin = super::printable(r.nul_str(), 128);
            }
        }
        Ok(Greeting { server_version, connection_id, capabilities, scramble, auth_plugin })
    }
}

/// What goes into our HandshakeResponse41.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    pub capabilities: u32,
    pub user: &'a str,
    pub auth_response: &'a [u8],
    pub database: Option<&'a str>,
    pub auth_plugin: &'a str,
}

/// utf8mb4_general_ci: known to every server since MySQL 5.5.3 and to all MariaDB releases.
pub const CHARSET_UTF8MB4: u8 = 45;

/// The largest packet we tell the server we accept (the server enforces it on results).
pub const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// The SSLRequest: the first 32 bytes of a HandshakeResponse41, with CLIENT_SSL set; the TLS
/// handshake follows it (see "Protocol::SSLRequest").
#[derive(Debug, Clone, Copy)]
pub struct SslRequest {
    /// The intersection with the server's capabilities, CLIENT_SSL included.
    pub capabilities: u32,
}

impl SslRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&self.capabilities.to_le_bytes());
        out.extend_from_slice(&MAX_PACKET.to_le_bytes());
        out.push(CHARSET_UTF8MB4);
        out.extend_from_slice(&[0; 23]);
        out
    }
}

impl Response<'_> {
    /// Encodes the payload. `capabilities` must already be the intersection with the server's.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = SslRequest { capabilities: self.capabilities }.encode();
        out.reserve(32 + self.user.len() + self.auth_response.len());
        out.extend_from_slice(self.user.as_bytes());
        out.push(0);
        if self.capabilities & caps::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            put_lenenc_int(&mut out, self.auth_response.len() as u64);
        } else {
            // SECURE_CONNECTION: one length byte. Every response we compute is under 256 bytes.
            out.push(self.auth_response.len().min(255) as u8);
        }
        out.extend_from_slice(self.auth_response);
        if self.capabilities & caps::CONNECT_WITH_DB != 0 {
            out.extend_from_slice(self.database.unwrap_or("").as_bytes());
            out.push(0);
        }
        if self.capabilities & caps::PLUGIN_AUTH != 0 {
            out.extend_from_slice(self.auth_plugin.as_bytes());
            out.push(0);
        }
        out
    }
}
