//! The byte pipe a check's session talks through: the socket itself, or (in the TLS build) TLS
//! over it after the SSLRequest. The plain build has no TLS types: its stand-ins are empty
//! enums, so every TLS path there is provably dead and compiles to nothing.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{ConfigError, Ssl, Target};

#[cfg(feature = "tls")]
pub use crate::tls::{Client as TlsClient, Error as TlsError};

/// The TLS settings; the plain build never has any.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub enum TlsClient {}

/// A failed TLS handshake; never happens in the plain build.
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
pub enum TlsError {}

#[cfg(not(feature = "tls"))]
impl TlsClient {
    pub fn request(&self) -> crate::mysql::TlsRequest {
        match *self {}
    }
}

#[cfg(not(feature = "tls"))]
impl TlsError {
    pub fn class(&self) -> &'static str {
        match *self {}
    }
}

#[cfg(not(feature = "tls"))]
impl std::fmt::Display for TlsError {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

/// Builds the TLS settings from the `--ssl-*` flags (at start and on SIGHUP). The plain build
/// has none: [`Ssl::from_args`] already refused every `--ssl-*` flag there.
pub fn load_tls(ssl: &Ssl, target: &Target) -> Result<Option<TlsClient>, ConfigError> {
    #[cfg(feature = "tls")]
    {
        TlsClient::load(ssl, target).map_err(ConfigError::Tls)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (ssl, target);
        Ok(None)
    }
}

/// The socket, or TLS over it.
pub enum Link<S> {
    Plain(S),
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::Stream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    /// The socket (under TLS, if it is on).
    pub fn get_ref(&self) -> &S {
        match self {
            Link::Plain(s) => s,
            #[cfg(feature = "tls")]
            Link::Tls(t) => t.get_ref(),
        }
    }

    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf).await,
            #[cfg(feature = "tls")]
            Link::Tls(t) => t.read(buf).await,
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.write_all(bytes).await,
            #[cfg(feature = "tls")]
            Link::Tls(t) => t.write_all(bytes).await,
        }
    }

    pub async fn close(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.close().await,
            #[cfg(feature = "tls")]
            Link::Tls(t) => t.close().await,
        }
    }

    /// Runs the TLS handshake over the socket (after the session's SSLRequest).
    #[cfg(feature = "tls")]
    pub async fn start_tls(self, client: &TlsClient) -> Result<Link<S>, TlsError> {
        match self {
            Link::Plain(s) => Ok(Link::Tls(Box::new(crate::tls::Stream::handshake(s, client).await?))),
            tls @ Link::Tls(_) => Ok(tls),
        }
    }
}
