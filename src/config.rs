//! Raw command-line flags, and the one place they become a validated [`Config`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use crate::link::TlsClient;
use crate::mysql::Transport;
use crate::profile::{Defaults, PathError, Profile, PATHS};

/// Environment variable that carries the password when no --password-file is given.
pub const PASSWORD_ENV: &str = "MYSQLCHK_PASSWORD";

/// HAProxy health checks for MySQL-protocol servers: answers HTTP 200 when the server accepts a
/// login and a query, 503 when it does not.
///
/// Example: MYSQLCHK_PASSWORD=secret mysqlchk --mysql 127.0.0.1:3306 --user haproxy
#[derive(FromArgs, Debug)]
pub struct Args {
    /// address to serve HTTP checks on, repeatable (default 0.0.0.0:9200); a bare port means
    /// 0.0.0.0:PORT
    #[argh(option)]
    pub listen: Vec<String>,

    /// the server to check: host:port, [v6]:port, a DNS name, or an absolute unix socket path
    /// (default 127.0.0.1:3306)
    #[argh(option, default = "String::from(\"127.0.0.1:3306\")")]
    pub mysql: String,

    /// user to log in as (default haproxy)
    #[argh(option, default = "String::from(\"haproxy\")")]
    pub user: String,

    /// file holding the password (one line); otherwise $MYSQLCHK_PASSWORD, otherwise empty
    #[argh(option)]
    pub password_file: Option<PathBuf>,

    /// TLS: DISABLED (default), PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY
    // The plain build takes only DISABLED; it has no other --ssl-* flag (see tls_only_flag).
    #[argh(option, default = "String::from(\"DISABLED\")")]
    #[cfg_attr(not(feature = "tls"), argh(hidden_help))]
    pub ssl_mode: String,

    /// PEM CA bundle for the VERIFY modes; reread on SIGHUP
    #[cfg(feature = "tls")]
    #[argh(option)]
    pub ssl_ca: Option<PathBuf>,

    /// PEM client certificate for REQUIRE X509 users; reread on SIGHUP
    #[cfg(feature = "tls")]
    #[argh(option)]
    pub ssl_cert: Option<PathBuf>,

    /// its PEM key, not readable by group or others; reread on SIGHUP
    #[cfg(feature = "tls")]
    #[argh(option)]
    pub ssl_key: Option<PathBuf>,

    /// a full TLS handshake on every check, never resuming an earlier session: each check then
    /// verifies the server's certificate, at more CPU on both sides
    #[cfg(feature = "tls")]
    #[argh(switch)]
    pub ssl_no_resume: bool,

    /// database to select at login (optional)
    #[argh(option)]
    pub database: Option<String>,

    /// query whose first value is reported (default "select @@hostname")
    #[argh(option, default = "String::from(\"select @@hostname\")")]
    pub query: String,

    /// deadline in milliseconds for connect, login and query together (default 2000)
    #[argh(option, default = "2000")]
    pub timeout: u64,

    /// while this file exists every check fails without touching the database
    /// (default /dev/shm/proxyoff)
    #[argh(option, default = "PathBuf::from(\"/dev/shm/proxyoff\")")]
    pub force_fail_file: PathBuf,

    /// while this file exists checks answer maintenance (HTTP 503, agent "maint")
    #[argh(option)]
    pub maint_file: Option<PathBuf>,

    /// while this file exists the agent answers "drain" (HAProxy keeps sessions, sends no new
    /// ones) and HTTP checks stay 200 (default /dev/shm/proxydrain)
    #[argh(option, default = "PathBuf::from(\"/dev/shm/proxydrain\")")]
    pub drain_file: PathBuf,

    /// largest replica lag in seconds that /replica accepts, unless ?max_lag=N says otherwise
    /// (default 30)
    #[argh(option, default = "30")]
    pub max_lag: u64,

    /// let /galera pass a node in state 2 (Donor/Desynced)
    #[argh(switch)]
    pub galera_donor_ok: bool,

    /// reuse a verdict younger than this many milliseconds without a new login (default 0: only
    /// checks in flight are shared)
    #[argh(option, default = "0")]
    pub cache_ms: u64,

    /// keep one logged-in session per profile between checks and log in afresh at least every
    /// SECONDS (default 0: a fresh login for every check)
    #[argh(option, default = "0")]
    pub keep_session: u64,

    /// address to serve the HAProxy agent-check protocol on, repeatable (default: off)
    #[argh(option)]
    pub agent_listen: Vec<String>,

    /// the profile an agent connection checks when it sends no line (no agent-send), e.g.
    /// /primary (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub agent_profile: String,

    /// only answer clients from this network (CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32),
    /// repeatable; without it everyone may connect. Others are closed without a check
    #[argh(option)]
    pub allow: Vec<String>,

    /// agent answers for /replica carry a weight that shrinks with the lag: `up ready <w>%`, w =
    /// max(10, 100 - 90 * lag / max_lag)
    #[argh(switch)]
    pub lag_weight: bool,

    /// serve one HTTP exchange and exit: the connection systemd passes (Accept=yes), else
    /// stdin/stdout (xinetd, or pipes to try it by hand)
    #[argh(switch)]
    pub inetd: bool,

    /// with --once: the profile path to check, e.g. /replica?max_lag=10 (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub profile: String,

    /// off, error, warn, info, debug or trace (default info); logs go to stderr
    #[argh(option, default = "String::from(\"info\")")]
    pub log_level: String,

    /// run one check, print one line, exit 0 (OK) or 2 (CRITICAL) like a Nagios plugin;
    /// configuration errors exit 3 (UNKNOWN)
    #[argh(switch)]
    pub once: bool,

    /// print the version and build target, then exit
    #[argh(switch)]
    pub version: bool,
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host name or IP literal and a port. Names are resolved at every check.
    Tcp { host: String, port: u16 },
    /// A unix socket path.
    Unix(PathBuf),
}

impl Target {
    pub fn transport(&self) -> Transport {
        match self {
            Target::Tcp { .. } => Transport::Tcp,
            Target::Unix(_) => Transport::Unix,
        }
    }

    /// `host:port`, `[v6]:port`, a bare host or IPv6 literal (port 3306), or an absolute path.
    pub fn parse(s: &str) -> Result<Target, ConfigError> {
        let bad = || ConfigError::Target(s.to_string());
        if s.starts_with('/') {
            return Ok(Target::Unix(PathBuf::from(s)));
        }
        // A bare port means the local server, as `--listen 9200` means all addresses.
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u16>() {
                Ok(port) if port > 0 => Ok(Target::Tcp { host: "127.0.0.1".into(), port }),
                _ => Err(bad()),
            };
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Target::Tcp { host: ip.to_string(), port: 3306 });
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, rest) = rest.split_once(']').ok_or_else(bad)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            match rest {
                "" => (host, 3306),
                _ => (host, rest.strip_prefix(':').ok_or_else(bad)?.parse().map_err(|_| bad())?),
            }
        } else {
            match s.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
                None => (s, 3306),
            }
        };
        // A colon belongs only to an IPv6 literal, which was bracketed or bare (handled above).
        let bracketed = s.starts_with('[');
        let host_ok = !host.is_empty()
            && (bracketed || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
        // Digits and dots only is an IPv4 address or a typo (10.0.0.256), never a DNS name.
        let dotted_digits = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !host_ok || port == 0 || (dotted_digits && host.parse::<std::net::Ipv4Addr>().is_err()) {
            return Err(bad());
        }
        Ok(Target::Tcp { host: host.to_string(), port })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            Target::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The password, kept in one place and never printed (with what logins derive from it).
pub use crate::mysql::Password;

/// Everything one check needs.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub target: Target,
    pub user: String,
    pub database: Option<String>,
    pub query: String,
    pub timeout: Duration,
    pub force_fail_file: PathBuf,
    pub maint_file: Option<PathBuf>,
    pub drain_file: PathBuf,
    /// How long a verdict may be reused without a login (zero: only checks in flight are shared).
    pub cache: Duration,
    /// `--keep-session`: how long a logged-in session may serve checks before a fresh login
    /// replaces it; `None` logs in for every check.
    pub keep_session: Option<Duration>,
    pub defaults: Defaults,
    /// The `--ssl-*` flags, kept to reread the files on SIGHUP.
    pub ssl: Ssl,
    /// The TLS settings they gave at start; `None` without TLS (or over a unix socket).
    pub tls: Option<TlsClient>,
}

/// An allowed network. Both families live in the IPv6 space (IPv4 as `::ffff:a.b.c.d`), so an
/// IPv4 net matches IPv4-mapped IPv6 peers and `::ffff:10.0.0.0/104` means `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: u128,
    /// Prefix length in the IPv6 space (an IPv4 prefix plus 96).
    prefix: u32,
}

/// The address as 128 bits, IPv4 mapped into IPv6.
fn v6_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Cidr {
    /// `ADDR/PREFIX`, or a bare address (a single host). A network with host bits set, or an
    /// IPv4-mapped address with a prefix shorter than the mapping (`::ffff:10.0.0.0/8` reads as
    /// `::/8`, which holds every IPv4 client), is refused with the network that was meant.
    pub fn parse(s: &str) -> Result<Cidr, ConfigError> {
        let bad = |hint: String| ConfigError::Allow(s.to_string(), hint);
        let syntax = || bad("expected an IP address or CIDR such as 10.0.0.0/8".into());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let prefix = (!p.starts_with('+')).then(|| p.parse::<u32>().ok()).flatten().ok_or_else(syntax)?;
                (a.parse::<IpAddr>().map_err(|_| syntax())?, Some(prefix))
            }
            None => (s.parse::<IpAddr>().map_err(|_| syntax())?, None),
        };
        let (max, offset) = if addr.is_ipv4() { (32, 96) } else { (128, 0) };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad(format!("the prefix is at most {max}")));
        }
        if let IpAddr::V6(v6) = addr {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix < 96) {
                return Err(bad(format!(
                    "an IPv4-mapped network needs a prefix of at least 96: write the IPv4 network, \
                     e.g. {v4}/{}",
                    prefix.min(32)
                )));
            }
        }
        let prefix = prefix + offset;
        let net = v6_bits(addr);
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        if net & !mask != 0 {
            let meant = Cidr { net: net & mask, prefix };
            return Err(bad(format!("host bits are set: did you mean {meant}?")));
        }
        Ok(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = u128::MAX.checked_shl(128 - self.prefix).unwrap_or(0);
        v6_bits(ip) & mask == self.net & mask
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = std::net::Ipv6Addr::from(self.net);
        match v6.to_ipv4_mapped() {
            Some(v4) if self.prefix >= 96 => write!(f, "{v4}/{}", self.prefix - 96),
            _ => write!(f, "{v6}/{}", self.prefix),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub agent_listen: Vec<SocketAddr>,
    /// Agent answers for replicas carry a lag-derived weight (`up ready 73%`).
    pub lag_weight: bool,
    /// Allowed client networks; empty allows everyone.
    pub allow: Vec<Cidr>,
    pub inetd: bool,
    /// The password; reread from `password_file` on SIGHUP.
    pub password: Password,
    pub password_file: Option<PathBuf>,
    /// The profile `--once` checks.
    pub profile: Profile,
    /// The profile an agent connection checks when it sends no line.
    pub agent_profile: Profile,
    pub check: CheckConfig,
    pub log_level: log::LevelFilter,
    pub once: bool,
}

/// A flag or file that cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    Listen(String),
    Target(String),
    Timeout(u64),
    LogLevel(String),
    PasswordFile(PathBuf, std::io::Error),
    Empty(&'static str),
    Profile(PathError),
    CacheMs(u64),
    KeepSession(u64),
    /// The value, and what is wrong with it.
    Allow(String, String),
    PasswordFileMode(PathBuf, u32),
    /// A flag naming an operator file must name an absolute path.
    RelativeFile(&'static str, PathBuf),
    AgentProfile(PathError),
    #[cfg(feature = "tls")]
    SslMode(String),
    /// A VERIFY mode without --ssl-ca.
    #[cfg(feature = "tls")]
    SslNeedsCa(SslMode),
    /// --ssl-cert without --ssl-key, or the other way round.
    #[cfg(feature = "tls")]
    SslCertKey,
    #[cfg(feature = "tls")]
    Tls(crate::tls::LoadError),
    /// A `--ssl-*` flag (named) given to the plain build.
    #[cfg(not(feature = "tls"))]
    NoTlsBuild(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Listen(s) => {
                write!(f, "invalid --listen \"{}\": expected IP:PORT, [IPv6]:PORT or PORT (1-65535)", s.escape_debug())
            }
            ConfigError::Target(s) => {
                write!(
                    f,
                    "invalid --mysql \"{}\": expected host:port, [IPv6]:port, a port, or an absolute socket path",
                    s.escape_debug()
                )
            }
            ConfigError::Timeout(ms) => write!(f, "invalid --timeout {ms}: must be between 1 and 3600000 ms"),
            ConfigError::LogLevel(s) => {
                write!(
                    f,
                    "invalid --log-level \"{}\": expected off, error, warn, info, debug or trace",
                    s.escape_debug()
                )
            }
            ConfigError::PasswordFile(p, e) => write!(f, "cannot read --password-file {}: {e}", p.display()),
            ConfigError::Empty(flag) => write!(f, "{flag} must not be empty"),
            ConfigError::Profile(e) => write!(f, "invalid --profile: {e}; known: {PATHS}"),
            ConfigError::Allow(s, hint) => write!(f, "invalid --allow \"{}\": {hint}", s.escape_debug()),
            ConfigError::RelativeFile(flag, p) => {
                write!(f, "invalid {flag} \"{}\": expected an absolute path", p.display().to_string().escape_debug())
            }
            ConfigError::AgentProfile(e) => write!(f, "invalid --agent-profile: {e}; known: {PATHS}"),
            ConfigError::PasswordFileMode(p, mode) => write!(
                f,
                "--password-file {} is accessible by group or others (mode {mode:04o}); run chmod 600 on it",
                p.display()
            ),
            ConfigError::CacheMs(ms) => write!(f, "invalid --cache-ms {ms}: must be at most 3600000 ms"),
            ConfigError::KeepSession(s) => write!(f, "invalid --keep-session {s}: must be at most 86400 seconds"),
            #[cfg(feature = "tls")]
            ConfigError::SslMode(s) => write!(
                f,
                "invalid --ssl-mode \"{}\": expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY",
                s.escape_debug()
            ),
            #[cfg(feature = "tls")]
            ConfigError::SslNeedsCa(mode) => {
                write!(f, "--ssl-mode {mode} needs --ssl-ca (the CA bundle to verify against)")
            }
            #[cfg(feature = "tls")]
            ConfigError::SslCertKey => f.write_str("--ssl-cert and --ssl-key go together"),
            #[cfg(not(feature = "tls"))]
            ConfigError::NoTlsBuild(flag) => {
                write!(f, "{flag} needs the TLS build (mysqlchk-tls, or cargo build --features tls)")
            }
            #[cfg(feature = "tls")]
            ConfigError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A listen address: `IP:PORT`, `[IPv6]:PORT`, or a bare port on 0.0.0.0.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    let addr = match s.parse::<u16>() {
        Ok(port) => SocketAddr::from(([0, 0, 0, 0], port)),
        Err(_) => s.parse().map_err(|_| ConfigError::Listen(s.to_string()))?,
    };
    // Port 0 would bind a random port nobody knows to poll.
    if addr.port() == 0 {
        return Err(ConfigError::Listen(s.to_string()));
    }
    Ok(addr)
}

/// A profile path with its query string, as `--profile` and `--agent-profile` take it.
pub fn parse_profile(s: &str, defaults: Defaults) -> Result<Profile, PathError> {
    let (path, query) = match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    };
    Profile::from_path(path, query, defaults)
}

/// An operator file must be an absolute path: a relative one would depend on the working
/// directory, which systemd and xinetd set to `/`.
fn operator_file(flag: &'static str, p: PathBuf) -> Result<PathBuf, ConfigError> {
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(ConfigError::RelativeFile(flag, p))
    }
}

/// Reads a password file: its content, less one trailing line ending. Like ssh with its keys,
/// refuses a file that group or others may access.
pub fn read_password_file(path: &std::path::Path) -> Result<Password, ConfigError> {
    let io_err = |e| ConfigError::PasswordFile(path.to_path_buf(), e);
    if let Some(mode) = shared_mode(path).map_err(io_err)? {
        return Err(ConfigError::PasswordFileMode(path.to_path_buf(), mode));
    }
    let mut bytes = std::fs::read(path).map_err(io_err)?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(Password::new(bytes))
}

/// The permission bits of `path` when group or others may access it (ssh's rule for keys).
pub fn shared_mode(path: &std::path::Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// `--ssl-mode`, with the MySQL 8 client's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext (the default).
    Disabled,
    /// TLS when the greeting offers it, else plaintext; no certificate check.
    Preferred,
    /// TLS or fail; no certificate check.
    Required,
    /// TLS, and the chain must lead to `--ssl-ca`.
    VerifyCa,
    /// VERIFY_CA, and the host of `--mysql` must match the certificate's DNS or IP SAN.
    VerifyIdentity,
}

#[cfg(feature = "tls")]
impl SslMode {
    /// Any case, as the MySQL client accepts it.
    pub fn parse(s: &str) -> Result<SslMode, ConfigError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            _ => return Err(ConfigError::SslMode(s.to_string())),
        })
    }
}

#[cfg(feature = "tls")]
impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        })
    }
}

/// The `--ssl-*` flags, checked for consistency; the TLS build reads the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssl {
    pub mode: SslMode,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Resume TLS sessions across checks (off with `--ssl-no-resume`).
    pub resume: bool,
}

/// The plain build has no `--ssl-ca`, `--ssl-cert`, `--ssl-key` or `--ssl-no-resume` (they
/// would cost it a few KB): the first one in `args` is refused before the flags are parsed,
/// naming the TLS build rather than being an unknown flag.
#[cfg(not(feature = "tls"))]
pub fn tls_only_flag(mut args: impl Iterator<Item = String>) -> Result<(), ConfigError> {
    const FLAGS: [&str; 4] = ["--ssl-ca", "--ssl-cert", "--ssl-key", "--ssl-no-resume"];
    match args.find_map(|a| FLAGS.into_iter().find(|f| a == *f)) {
        Some(flag) => Err(ConfigError::NoTlsBuild(flag)),
        None => Ok(()),
    }
}

impl Ssl {
    /// The TLS build checks the flags for consistency; the plain build refuses every one of
    /// them, naming the TLS build.
    pub fn from_args(args: &Args) -> Result<Ssl, ConfigError> {
        #[cfg(feature = "tls")]
        {
            let ssl = Ssl {
                mode: SslMode::parse(&args.ssl_mode)?,
                ca: args.ssl_ca.clone(),
                cert: args.ssl_cert.clone(),
                key: args.ssl_key.clone(),
                resume: !args.ssl_no_resume,
            };
            if matches!(ssl.mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && ssl.ca.is_none() {
                return Err(ConfigError::SslNeedsCa(ssl.mode));
            }
            if ssl.cert.is_some() != ssl.key.is_some() {
                return Err(ConfigError::SslCertKey);
            }
            Ok(ssl)
        }
        #[cfg(not(feature = "tls"))]
        {
            if !args.ssl_mode.eq_ignore_ascii_case("DISABLED") {
                return Err(ConfigError::NoTlsBuild("--ssl-mode"));
            }
            Ok(Ssl { mode: SslMode::Disabled, ca: None, cert: None, key: None, resume: true })
        }
    }
}

impl Config {
    /// Validates flags; `env_password` is `$MYSQLCHK_PASSWORD`, passed in to keep this testable.
    pub fn from_args(args: Args, env_password: Option<Vec<u8>>) -> Result<Config, ConfigError> {
        let listen = if args.listen.is_empty() {
            vec![SocketAddr::from(([0, 0, 0, 0], 9200))]
        } else {
            args.listen.iter().map(|s| parse_listen(s)).collect::<Result<_, _>>()?
        };
        let agent_listen = args.agent_listen.iter().map(|s| parse_listen(s)).collect::<Result<_, _>>()?;
        let defaults = Defaults { max_lag: args.max_lag, donor_ok: args.galera_donor_ok };
        let profile = parse_profile(&args.profile, defaults).map_err(ConfigError::Profile)?;
        let agent_profile = parse_profile(&args.agent_profile, defaults).map_err(ConfigError::AgentProfile)?;
        if args.cache_ms > 3_600_000 {
            return Err(ConfigError::CacheMs(args.cache_ms));
        }
        if args.keep_session > 86_400 {
            return Err(ConfigError::KeepSession(args.keep_session));
        }
        let allow = args.allow.iter().map(|s| Cidr::parse(s)).collect::<Result<_, _>>()?;
        if args.timeout == 0 || args.timeout > 3_600_000 {
            return Err(ConfigError::Timeout(args.timeout));
        }
        let log_level = args.log_level.parse().map_err(|_| ConfigError::LogLevel(args.log_level.clone()))?;
        if args.user.is_empty() {
            return Err(ConfigError::Empty("--user"));
        }
        if args.query.trim().is_empty() {
            return Err(ConfigError::Empty("--query"));
        }
        let password = match &args.password_file {
            Some(path) => read_password_file(path)?,
            None => Password::new(env_password.unwrap_or_default()),
        };
        let target = Target::parse(&args.mysql)?;
        let ssl = Ssl::from_args(&args)?;
        let tls = crate::link::load_tls(&ssl, &target)?;
        Ok(Config {
            listen,
            check: CheckConfig {
                target,
                user: args.user,
                database: args.database.filter(|d| !d.is_empty()),
                query: args.query,
                timeout: Duration::from_millis(args.timeout),
                force_fail_file: operator_file("--force-fail-file", args.force_fail_file)?,
                maint_file: args.maint_file.map(|p| operator_file("--maint-file", p)).transpose()?,
                drain_file: operator_file("--drain-file", args.drain_file)?,
                cache: Duration::from_millis(args.cache_ms),
                // One check per process: nothing to keep a session for.
                keep_session: (args.keep_session > 0 && !args.once && !args.inetd)
                    .then(|| Duration::from_secs(args.keep_session)),
                defaults,
                ssl,
                tls,
            },
            agent_listen,
            lag_weight: args.lag_weight,
            allow,
            inetd: args.inetd,
            password,
            password_file: args.password_file,
            profile,
            agent_profile,
            log_level,
            once: args.once,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp { host: host.into(), port }
    }

    #[test]
    fn targets_parse_in_every_documented_form() {
        assert_eq!(Target::parse("127.0.0.1:3306").unwrap(), tcp("127.0.0.1", 3306));
        assert_eq!(Target::parse("[::1]:3307").unwrap(), tcp("::1", 3307));
        assert_eq!(Target::parse("::1").unwrap(), tcp("::1", 3306));
        assert_eq!(Target::parse("db4.example.com:13306").unwrap(), tcp("db4.example.com", 13306));
        assert_eq!(Target::parse("db4").unwrap(), tcp("db4", 3306));
        assert_eq!(Target::parse("/run/mysqld/mysqld.sock").unwrap(), Target::Unix("/run/mysqld/mysqld.sock".into()));
        for bad in ["", ":3306", "db4:", "db4:99999", "db4:0", "[::1", "[nope]:1", "a b:1", "rel/path.sock", "a:b:80"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bare_port_is_the_local_server_and_bad_ipv4_is_no_dns_name() {
        assert_eq!(Target::parse("3306").unwrap(), tcp("127.0.0.1", 3306));
        assert_eq!(Target::parse("13306").unwrap(), tcp("127.0.0.1", 13306));
        for bad in ["0", "65536", "10.0.0.256:3306", "10.0.0.256", "1.2.3:3306", "10.0.0.1.5:3306"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
        // Names that merely start with digits are still names.
        assert_eq!(Target::parse("1db.example:3306").unwrap(), tcp("1db.example", 3306));
        assert_eq!(tcp("::1", 3306).to_string(), "[::1]:3306");
    }

    #[test]
    fn listen_accepts_a_bare_port() {
        assert_eq!(parse_listen("9200").unwrap(), "0.0.0.0:9200".parse().unwrap());
        assert_eq!(parse_listen("[::]:9201").unwrap(), "[::]:9201".parse().unwrap());
        assert!(parse_listen("localhost:9200").is_err());
        for random_port in ["0", "0.0.0.0:0", "[::]:0"] {
            assert!(parse_listen(random_port).is_err(), "{random_port}");
        }
    }

    #[test]
    fn cidrs_match_v4_v6_and_mapped_peers() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.9.9".parse().unwrap()), "IPv4-mapped peer");
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("192.0.2.1".parse().unwrap()));
        assert!(Cidr::parse("::/0").unwrap().contains("::1".parse().unwrap()));
        let mapped = Cidr::parse("::ffff:127.0.0.0/104").unwrap();
        assert_eq!(mapped.to_string(), "127.0.0.0/8");
        assert!(mapped.contains("127.0.0.1".parse().unwrap()) && mapped.contains("::ffff:127.9.9.9".parse().unwrap()));
        assert!(!mapped.contains("128.0.0.1".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()) && !host.contains("127.0.0.2".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/", "/8", "10.0.0.0/+8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_mapped_ipv4_network_with_a_short_prefix_is_refused_with_the_network_meant() {
        // Read as ::/8 it would hold every IPv4 client.
        let e = Cidr::parse("::ffff:10.0.0.0/8").unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/8"), "{e}");
        assert!(Cidr::parse("::ffff:0.0.0.0/96").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::ffff:10.0.0.0/96").unwrap_err().to_string().contains("did you mean 0.0.0.0/0?"));
        assert!(!Cidr::parse("::ffff:10.0.0.0/104").unwrap().contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_network_with_host_bits_set_is_refused_naming_the_network() {
        let e = Cidr::parse("10.0.0.1/8").unwrap_err().to_string();
        assert!(e.contains("did you mean 10.0.0.0/8?"), "{e}");
        let e = Cidr::parse("2001:db8::1/32").unwrap_err().to_string();
        assert!(e.contains("did you mean 2001:db8::/32?"), "{e}");
        assert!(Cidr::parse("10.0.0.1").is_ok() && Cidr::parse("10.0.0.1/32").is_ok());
    }

    fn args(extra: &[&str]) -> Args {
        Args::from_args(&["mysqlchk"], extra).expect("flags parse")
    }

    #[test]
    fn operator_files_must_be_absolute() {
        for flag in ["--force-fail-file", "--maint-file", "--drain-file"] {
            for bad in ["", "proxyoff", "./proxyoff"] {
                let e = Config::from_args(args(&[flag, bad]), None).unwrap_err().to_string();
                assert!(e.contains(flag) && e.contains("absolute path"), "{e}");
            }
        }
        let c = Config::from_args(args(&["--drain-file", "/run/drain"]), None).unwrap();
        assert_eq!(c.check.drain_file, PathBuf::from("/run/drain"));
        assert_eq!(Config::from_args(args(&[]), None).unwrap().check.drain_file, PathBuf::from("/dev/shm/proxydrain"));
    }

    #[test]
    fn agent_profile_is_validated_at_start() {
        let c = Config::from_args(args(&["--agent-profile", "/replica?max_lag=5"]), None).unwrap();
        assert_eq!(c.agent_profile, Profile::Replica { max_lag: 5, channel: None });
        assert_eq!(Config::from_args(args(&[]), None).unwrap().agent_profile, Profile::Default);
        let e = Config::from_args(args(&["--agent-profile", "/primry"]), None).unwrap_err().to_string();
        assert!(e.contains("--agent-profile"), "{e}");
    }

    #[test]
    fn password_file_open_to_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("mysqlchk-pw-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read_password_file(&path), Err(ConfigError::PasswordFileMode(_, 0o644))));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password_file(&path).unwrap().bytes(), b"s3cret");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(read_password_file(&path), Err(ConfigError::PasswordFile(..))));
    }

    #[test]
    fn password_debug_is_redacted() {
        assert_eq!(format!("{:?}", Password::new(b"hunter2".to_vec())), "<redacted>");
    }
}
