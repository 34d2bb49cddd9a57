//! Sans-IO HTTP/1.x for a health check: read one request head with httparse, render one
//! response. Bodies are never read; every response closes the connection.

use std::fmt;
use std::io::Write as _;

/// The most bytes a request head may take, request line included.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header lines a request may carry.
pub const MAX_HEADERS: usize = 64;

/// Why a request head was refused. Every one of them is answered with 400 and a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The head grew past [`MAX_HEAD`] bytes without ending.
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Not an HTTP/1.x request head (the httparse reason).
    Invalid(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::HeadTooLarge => write!(f, "request head larger than {MAX_HEAD} bytes"),
            Error::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            Error::Invalid(why) => write!(f, "invalid request: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The parts of a request a health check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query string, e.g. `/replica`.
    pub path: String,
    /// The query string after `?`, if any, e.g. `max_lag=10`.
    pub query: Option<String>,
    /// The bytes the head took, up to and including its blank line.
    pub head_len: usize,
    /// The head announces a body (`Content-Length` above 0, or `Transfer-Encoding`).
    pub has_body: bool,
}

impl Request {
    /// HEAD gets the status line and headers only.
    pub fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }
}

/// Parses a request head from the front of `buf`.
///
/// `Ok(None)` means the head is incomplete and more bytes may come; `buf` longer than
/// [`MAX_HEAD`] without a complete head is an error, as is anything that cannot become HTTP.
pub fn parse_request(buf: &[u8]) -> Result<Option<Request>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = &buf[..buf.len().min(MAX_HEAD)];
    let head_len = match req.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
        Err(e) => return Err(Error::Invalid(invalid_reason(e))),
    };
    let has_body = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value.iter().any(|&b| (b'1'..=b'9').contains(&b)))
    });
    // httparse fills both on Complete.
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(Error::Invalid("missing method or target"));
    };
    // The asterisk form (`OPTIONS * HTTP/1.1`, HAProxy's own httpchk example) asks about the
    // server as a whole: the default check.
    let target = if target == "*" { "/" } else { target };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    Ok(Some(Request { method: method.to_string(), path: path.to_string(), query, head_len, has_body }))
}

fn invalid_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// The statuses mysqlchk answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    RequestTimeout,
    /// `--inetd` whose flags or files make no configuration: the check itself is broken.
    InternalServerError,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::RequestTimeout => 408,
            Status::InternalServerError => 500,
            Status::ServiceUnavailable => 503,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::RequestTimeout => "Request Timeout",
            Status::InternalServerError => "Internal Server Error",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// Renders a complete `HTTP/1.1` response that closes the connection. With `head_only` the body
/// is left out but `Content-Length` still gives its length, as HEAD requires.
pub fn render(status: Status, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    // Sized once: the head's fixed text with the longest status line (116 bytes), the length's
    // digits (up to 20), the content type and the body.
    let mut out = Vec::with_capacity(160 + content_type.len() + body.len());
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        status.code(),
        status.reason(),
        content_type,
        body.len()
    );
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAPROXY_DEFAULT: &[u8] = b"OPTIONS / HTTP/1.0\r\n\r\n";
    const CURL: &[u8] =
        b"GET /replica?max_lag=10 HTTP/1.1\r\nHost: db4:9200\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

    #[test]
    fn every_prefix_of_a_request_is_partial() {
        for req in [HAPROXY_DEFAULT, CURL] {
            for n in 0..req.len() {
                assert_eq!(parse_request(&req[..n]), Ok(None), "prefix {n} of {:?}", String::from_utf8_lossy(req));
            }
        }
    }

    #[test]
    fn haproxy_default_probe_parses_without_host() {
        let r = parse_request(HAPROXY_DEFAULT).unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.query), ("OPTIONS", "/", None));
    }

    #[test]
    fn asterisk_form_means_the_default_check() {
        let r = parse_request(b"OPTIONS * HTTP/1.1\r\nHost: www\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.query), ("OPTIONS", "/", None));
    }

    #[test]
    fn the_head_length_and_a_body_are_known() {
        // What the server needs to know whether bytes may still come after the head.
        let r = parse_request(b"GET / HTTP/1.0\r\n\r\nextra").unwrap().unwrap();
        assert_eq!((r.head_len, r.has_body), (18, false));
        let r = parse_request(b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.head_len, r.has_body), (39, true));
        let r = parse_request(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
        assert!(!r.has_body);
        let r = parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
        assert!(r.has_body);
    }

    #[test]
    fn query_string_is_split_from_the_path() {
        let r = parse_request(CURL).unwrap().unwrap();
        assert_eq!((r.path.as_str(), r.query.as_deref()), ("/replica", Some("max_lag=10")));
    }

    #[test]
    fn garbage_and_oversized_heads_are_errors() {
        assert!(matches!(parse_request(b"\x00\x01\x02 / HTTP/1.0\r\n\r\n"), Err(Error::Invalid(_))));
        assert!(matches!(parse_request(b"GET / HTTP/9.9\r\n\r\n"), Err(Error::Invalid(_))));
        let long = [b"GET /".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(parse_request(&long), Err(Error::HeadTooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many), Err(Error::TooManyHeaders));
    }

    #[test]
    fn head_response_keeps_content_length_but_drops_the_body() {
        let full = render(Status::ServiceUnavailable, "text/plain", "MySQL is *down*.\r\n", false);
        let head = render(Status::ServiceUnavailable, "text/plain", "MySQL is *down*.\r\n", true);
        let text = String::from_utf8(full).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("\r\nContent-Length: 18\r\n"));
        assert!(text.ends_with("\r\n\r\nMySQL is *down*.\r\n"));
        assert!(String::from_utf8(head).unwrap().ends_with("Connection: close\r\n\r\n"));
    }
}
