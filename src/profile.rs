//! Check profiles: what to ask the server for each path, and how to judge the answers.
//!
//! Sans-IO like `mysql/`: [`Kind::plan`] names the queries, the check driver runs them, and
//! [`Profile::judge`] turns the result sets into a verdict. Several requests for the same
//! [`Kind`] can share one database round trip and still be judged with their own parameters
//! (e.g. different `max_lag`).

use std::borrow::Cow;
use std::fmt;

use crate::mysql::resultset::Keep;
use crate::mysql::ResultSet;

/// What a profile needs from the server; single-flight and caching are per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Default,
    Primary,
    Replica,
    Galera,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Default, Kind::Primary, Kind::Replica, Kind::Galera];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Default => "default",
            Kind::Primary => "primary",
            Kind::Replica => "replica",
            Kind::Galera => "galera",
        }
    }

    /// The queries after the default `--query`, in order, for a server of `flavor`.
    ///
    /// Every kind asks whether the node takes queries at all: a Galera node that lost quorum, is
    /// not yet synced, or has `wsrep_reject_queries` set still answers `select @@hostname`
    /// (no table), while every real query gets 1047. [`PROBE`] touches a (derived) table, so it
    /// gets that 1047 too; `/galera` reads the reasons from the wsrep variables instead.
    pub fn plan(self, flavor: Flavor) -> &'static [Step] {
        match (self, flavor) {
            (Kind::Default, _) => &[PROBE],
            // With wsrep_dirty_reads a Galera node without quorum lets the probe through, so
            // there (only) its wsrep_ready is read too.
            (Kind::Primary, _) => &[
                PROBE,
                Step { sql: &[PRIMARY_SQL], keep: VARIABLE_COLUMNS, when: When::Always },
                Step { sql: &[WSREP_READY_SQL], keep: VARIABLE_COLUMNS, when: When::DirtyReads },
            ],
            // MariaDB's SHOW REPLICA STATUS shows only the default connection of a multi-source
            // replica; SHOW ALL ... shows every one (10.0+; the REPLICAS spelling from 10.5.1).
            (Kind::Replica, Flavor::MariaDb) => &[
                PROBE,
                Step {
                    sql: &["SHOW ALL REPLICAS STATUS", "SHOW ALL SLAVES STATUS"],
                    keep: REPLICA_COLUMNS,
                    when: When::Always,
                },
            ],
            // MySQL shows every channel, one row each (SHOW REPLICA STATUS from 8.0.22).
            (Kind::Replica, Flavor::MySql) => &[
                PROBE,
                Step { sql: &["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"], keep: REPLICA_COLUMNS, when: When::Always },
            ],
            (Kind::Galera, _) => &[
                Step { sql: &[GALERA_VARIABLES_SQL], keep: VARIABLE_COLUMNS, when: When::Always },
                Step { sql: &[GALERA_STATUS_SQL], keep: VARIABLE_COLUMNS, when: When::Always },
            ],
        }
    }
}

/// Which server family a greeting comes from: the statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    /// MySQL, Percona, and anything else that speaks the protocol.
    MySql,
}

impl Flavor {
    /// From the greeting's server version, e.g. `5.5.5-10.11.19-MariaDB-0+deb12u1`.
    pub fn from_version(version: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }
}

/// A query that any user may run and that touches a table, so that a Galera node refusing
/// queries answers it with [`ER_UNKNOWN_COM_ERROR`] (1047) as it does real queries; a plain
/// server answers one row.
pub const PROBE: Step =
    Step { sql: &["SELECT 1 FROM (SELECT 1) AS mysqlchk_probe"], keep: Keep::All, when: When::Always };

/// `--query` with the [`PROBE`] riding along, so that the probe costs no round trip of its own.
/// The default query reads its value from the probe's derived table: one statement, one result
/// (and one wait for it). Any other query and the probe go as one multi-statement, for a server
/// that agreed to CLIENT_MULTI_STATEMENTS (`multi_statements`); its reply is the query's result,
/// or the first ERR (a refused probe's 1047), and the newline ends a trailing `--` or `#`
/// comment. `None` for a query with a semicolon anywhere: `select 1; -- why` would leave an
/// empty statement (an error), and telling that apart needs an SQL lexer; such a query and the
/// probe go one after the other.
pub fn with_probe(query: &str, multi_statements: bool) -> Option<Cow<'static, str>> {
    if query.trim().eq_ignore_ascii_case(DEFAULT_QUERY) {
        return Some(Cow::Borrowed(DEFAULT_QUERY_PROBED));
    }
    (multi_statements && !query.contains(';')).then(|| Cow::Owned(format!("{}\n;{}", query.trim_end(), PROBE.sql[0])))
}

/// `--query`'s default.
pub const DEFAULT_QUERY: &str = "select @@hostname";

/// The default query reading from the [`PROBE`]'s derived table: the same value, and the same
/// refusal (1047) from a Galera node that takes no queries.
const DEFAULT_QUERY_PROBED: &str = "SELECT @@hostname FROM (SELECT 1) AS mysqlchk_probe";

/// What a Galera node that takes no queries answers ("WSREP has not yet prepared node for
/// application use").
pub const ER_UNKNOWN_COM_ERROR: u16 = 1047;

const PRIMARY_SQL: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
     ('read_only', 'super_read_only', 'wsrep_on', 'wsrep_dirty_reads')";
const WSREP_READY_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready')";
const GALERA_VARIABLES_SQL: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('wsrep_on', 'wsrep_reject_queries')";
const GALERA_STATUS_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
     ('wsrep_cluster_status', 'wsrep_ready', 'wsrep_local_state', 'wsrep_local_state_comment')";

const VARIABLE_COLUMNS: Keep = Keep::Columns(&["Variable_name", "Value"]);

/// The replica status columns judgement reads, in both spellings; a status row has ~60 more
/// (filters, GTID sets, errors) that stream past unkept.
const REPLICA_COLUMNS: Keep = Keep::Columns(&[
    "Connection_name",
    "Channel_Name",
    "Slave_IO_Running",
    "Replica_IO_Running",
    "Slave_SQL_Running",
    "Replica_SQL_Running",
    "Seconds_Behind_Master",
    "Seconds_Behind_Source",
]);

/// ER_PARSE_ERROR: what older servers say to a statement spelling they do not know.
pub const ER_PARSE_ERROR: u16 = 1064;

/// One query of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The statement, then the spellings tried in turn while the server calls the previous one a
    /// syntax error ([`ER_PARSE_ERROR`]).
    pub sql: &'static [&'static str],
    /// The columns judgement reads.
    pub keep: Keep,
    /// Whether it runs, from the results before it; a step skipped gives an empty result.
    pub when: When,
}

/// When a [`Step`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// After variables saying `wsrep_on` and `wsrep_dirty_reads` are ON: a Galera node that
    /// answers reads even without quorum.
    DirtyReads,
}

impl When {
    /// Whether the step runs after `results`.
    pub fn holds(self, results: &[ResultSet]) -> bool {
        match self {
            When::Always => true,
            When::DirtyReads => results.last().is_some_and(|rs| {
                let vars = Variables(rs);
                ["wsrep_on", "wsrep_dirty_reads"].iter().all(|v| vars.get(v).is_some_and(|v| is_on(&v)))
            }),
        }
    }
}

/// A boolean variable's ON (`ON` or `1`).
fn is_on(value: &str) -> bool {
    value.eq_ignore_ascii_case("ON") || value == "1"
}

/// A profile with its parameters, as named by a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    Default,
    Primary,
    /// `channel`: judge only this replication channel (MariaDB connection name); otherwise every
    /// one must be healthy.
    Replica {
        max_lag: u64,
        channel: Option<String>,
    },
    Galera {
        donor_ok: bool,
    },
}

/// Defaults that flags set for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub max_lag: u64,
    pub donor_ok: bool,
}

/// Why a path names no profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// No such profile: 404, with the list of profiles.
    Unknown(String),
    /// A known profile with a parameter it does not take, or a bad value: 400.
    BadParameter(String),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Unknown(p) => write!(f, "unknown profile \"{}\"", p.escape_debug()),
            PathError::BadParameter(p) => write!(f, "bad parameter \"{}\"", p.escape_debug()),
        }
    }
}

/// The paths a client may ask for, for 404 bodies and `--help`.
pub const PATHS: &str = "/ (login and --query), /primary (also writable), /replica?max_lag=N (replication running, lag <= N s), /galera (wsrep Synced and Primary)";

impl Profile {
    /// Parses a request path and query string. Unknown parameters are refused, so that a typo
    /// such as `max_lga=10` cannot silently fall back to the default lag.
    pub fn from_path(path: &str, query: Option<&str>, d: Defaults) -> Result<Profile, PathError> {
        let mut profile = match path.trim_end_matches('/') {
            "" => Profile::Default,
            "/primary" => Profile::Primary,
            "/replica" => Profile::Replica { max_lag: d.max_lag, channel: None },
            "/galera" => Profile::Galera { donor_ok: d.donor_ok },
            _ => return Err(PathError::Unknown(path.to_string())),
        };
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || PathError::BadParameter(pair.to_string());
            // `?max_lag=5&max_lag=1000` is ambiguous: refuse it rather than pick one.
            if seen.contains(&key) {
                return Err(PathError::BadParameter(format!("{key} given twice")));
            }
            seen.push(key);
            match (&mut profile, key) {
                (Profile::Replica { max_lag, .. }, "max_lag") => *max_lag = value.parse().map_err(|_| bad())?,
                (Profile::Replica { channel, .. }, "channel") => {
                    // MariaDB connection names and MySQL channel names: at most 64 characters.
                    let ok = value.len() <= 64
                        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
                    if !ok {
                        return Err(bad());
                    }
                    *channel = Some(value.to_string());
                }
                (Profile::Galera { donor_ok }, "donor_ok") => {
                    *donor_ok = match value {
                        "1" | "true" | "yes" | "" => true,
                        "0" | "false" | "no" => false,
                        _ => return Err(bad()),
                    }
                }
                _ => return Err(bad()),
            }
        }
        Ok(profile)
    }

    pub fn kind(&self) -> Kind {
        match self {
            Profile::Default => Kind::Default,
            Profile::Primary => Kind::Primary,
            Profile::Replica { .. } => Kind::Replica,
            Profile::Galera { .. } => Kind::Galera,
        }
    }

    /// Judges the results of [`Kind::plan`] (without the default query's), one per step. `Ok`
    /// carries a short detail for the response body, `Err` the condition that failed.
    pub fn judge(&self, results: &[ResultSet]) -> Result<Option<String>, String> {
        // Results come in plan order; the probe's (first for all but Galera) needs no judging:
        // that it answered at all is the point.
        let step = |i: usize| results.get(i).ok_or_else(|| "missing result".to_string());
        match self {
            Profile::Default => Ok(None),
            Profile::Primary => primary(step(1)?, results.get(2)),
            Profile::Replica { max_lag, channel } => replica(step(1)?, *max_lag, channel.as_deref()),
            Profile::Galera { donor_ok } => galera(step(0)?, step(1)?, *donor_ok),
        }
    }
}

/// The canonical request, parameters included: what state changes and the `mysqlchk_up` gauge
/// are keyed by, so two requests judged differently never overwrite each other's state.
impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Profile::Default | Profile::Primary => f.write_str(&self.canonical()),
            Profile::Replica { max_lag, channel: None } => write!(f, "/replica?max_lag={max_lag}"),
            Profile::Replica { max_lag, channel: Some(c) } => write!(f, "/replica?max_lag={max_lag}&channel={c}"),
            Profile::Galera { donor_ok } => write!(f, "/galera?donor_ok={}", u8::from(*donor_ok)),
        }
    }
}

impl Profile {
    /// The canonical request, as `Display` writes it; the profiles without parameters need no
    /// allocation (one a check otherwise, for the metrics).
    pub fn canonical(&self) -> Cow<'static, str> {
        match self {
            Profile::Default => Cow::Borrowed("/"),
            Profile::Primary => Cow::Borrowed("/primary"),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// The agent weight in percent for an up verdict: for a replica, `max(10, 100 - 90 × lag /
    /// max_lag)` of its largest lag (integer arithmetic), so reads drift away from a lagging
    /// replica before it has to be cut off; `None` for other profiles or an unreadable lag.
    pub fn weight(&self, results: &[ResultSet]) -> Option<u64> {
        let Profile::Replica { max_lag, channel } = self else { return None };
        let rs = results.get(1)?;
        let mut lag = 0;
        // The channels judgement looked at: the named one, or all.
        for row in &rs.rows {
            let name = text(rs, row, ["Connection_name", "Channel_Name"]).unwrap_or_default();
            if channel.as_deref().is_some_and(|c| !c.eq_ignore_ascii_case(&name)) {
                continue;
            }
            lag = lag.max(text(rs, row, LAG_COLUMNS)?.parse::<u64>().ok()?);
        }
        Some(lag_weight(lag, *max_lag))
    }
}

/// `max(10, 100 - 90 × lag / max_lag)`; a lag at or past `max_lag` (or `max_lag` 0 with any
/// lag) gives the floor, 10.
pub fn lag_weight(lag: u64, max_lag: u64) -> u64 {
    if lag == 0 {
        return 100;
    }
    if lag >= max_lag {
        return 10;
    }
    // 0 < lag < max_lag. In u64 (no 128-bit division routine in the 32-bit builds); when
    // 90 × lag overflows, count how often 90 additions of lag pass max_lag: the same quotient.
    let drop = match lag.checked_mul(90) {
        Some(scaled) => scaled / max_lag,
        None => {
            let (mut rest, mut drop) = (0, 0);
            for _ in 0..90 {
                // rest < max_lag and lag < max_lag: compare without overflowing.
                if lag >= max_lag - rest {
                    rest = lag - (max_lag - rest);
                    drop += 1;
                } else {
                    rest += lag;
                }
            }
            drop
        }
    };
    100 - drop.min(90)
}

/// The lag column of a replica status row: MySQL 8.0.22+ name, then the older one.
const LAG_COLUMNS: [&str; 2] = ["Seconds_Behind_Source", "Seconds_Behind_Master"];

/// The rows of `SHOW ... WHERE Variable_name IN (...)`, looked up by name. A server may ignore
/// the WHERE clause and send every variable (proxies and MySQL-compatible engines do), so rows
/// are only ever read by the names asked for.
struct Variables<'a>(&'a ResultSet);

impl Variables<'_> {
    /// `None` when the server sent no such row; a NULL value reads as `NULL`.
    fn get(&self, name: &str) -> Option<String> {
        self.0.rows.iter().find_map(|row| {
            let found = row.first()?.as_deref()?;
            if !found.eq_ignore_ascii_case(name.as_bytes()) {
                return None;
            }
            Some(match row.get(1).and_then(Option::as_deref) {
                Some(v) => String::from_utf8_lossy(v).into_owned(),
                None => "NULL".to_string(),
            })
        })
    }
}

fn primary(rs: &ResultSet, wsrep: Option<&ResultSet>) -> Result<Option<String>, String> {
    // Read only where dirty reads could have let the probe past a node without quorum.
    if let Some(ready) = wsrep.and_then(|rs| Variables(rs).get("wsrep_ready")) {
        if !is_on(&ready) {
            return Err(format!("wsrep_ready {ready} (wsrep_dirty_reads lets reads through)"));
        }
    }
    let vars = Variables(rs);
    let read_only = vars.get("read_only").ok_or("read_only missing")?;
    // MariaDB has no super_read_only.
    for (name, value) in [("read_only", Some(read_only)), ("super_read_only", vars.get("super_read_only"))] {
        match value {
            Some(v) if !(v.eq_ignore_ascii_case("OFF") || v == "0") => return Err(format!("{name} is {v}")),
            _ => {}
        }
    }
    Ok(Some("read_only is OFF".into()))
}

fn text<'a>(rs: &ResultSet, row: &'a [Option<Vec<u8>>], names: [&str; 2]) -> Option<std::borrow::Cow<'a, str>> {
    let i = names.iter().find_map(|n| rs.column(n))?;
    row.get(i)?.as_deref().map(String::from_utf8_lossy)
}

fn replica(rs: &ResultSet, max_lag: u64, channel: Option<&str>) -> Result<Option<String>, String> {
    if rs.rows.is_empty() {
        return Err("not a replica".into());
    }
    let mut worst = 0;
    let mut judged = 0;
    // Every channel (MySQL: one row each; MariaDB's SHOW ALL REPLICAS STATUS: one row per
    // connection) must be healthy, unless the request names one.
    for row in &rs.rows {
        let name = text(rs, row, ["Connection_name", "Channel_Name"]).unwrap_or_default();
        if channel.is_some_and(|c| !c.eq_ignore_ascii_case(&name)) {
            continue;
        }
        judged += 1;
        let on = if name.is_empty() { String::new() } else { format!(" on channel \"{name}\"") };
        for (what, names) in
            [("IO", ["Replica_IO_Running", "Slave_IO_Running"]), ("SQL", ["Replica_SQL_Running", "Slave_SQL_Running"])]
        {
            let state = text(rs, row, names).unwrap_or_default();
            if state != "Yes" {
                let state = if state.is_empty() { "unknown".into() } else { state };
                return Err(format!("replica {what} thread not running ({state}){on}"));
            }
        }
        let lag = text(rs, row, ["Seconds_Behind_Source", "Seconds_Behind_Master"]);
        let lag: u64 = match lag.as_deref().map(str::parse) {
            Some(Ok(lag)) => lag,
            _ => return Err(format!("replica lag unknown (NULL){on}")),
        };
        if lag > max_lag {
            return Err(format!("replica lag {lag} s > {max_lag} s{on}"));
        }
        worst = worst.max(lag);
    }
    match (judged, channel) {
        (0, Some(c)) => Err(format!("replica channel \"{c}\" not found")),
        (1, _) => Ok(Some(format!("replica lag {worst} s <= {max_lag} s"))),
        (n, _) => Ok(Some(format!("replica lag {worst} s <= {max_lag} s ({n} channels)"))),
    }
}

/// In this order, so the reason is the cause rather than a symptom: wsrep enabled, the status
/// complete, the cluster Primary, the node ready and taking queries, then its local state (a
/// node that lost quorum is in state 0, "Initialized", because it is non-Primary).
fn galera(variables: &ResultSet, status: &ResultSet, donor_ok: bool) -> Result<Option<String>, String> {
    let (variables, status) = (Variables(variables), Variables(status));
    let required = ["wsrep_cluster_status", "wsrep_ready", "wsrep_local_state"];
    let missing: Vec<&str> = required.into_iter().filter(|n| status.get(n).is_none()).collect();
    match variables.get("wsrep_on") {
        Some(on) if !is_on(&on) => return Err(format!("wsrep not enabled (wsrep_on {on})")),
        None if missing.len() == required.len() => return Err("wsrep not enabled".into()),
        _ => {}
    }
    if !missing.is_empty() {
        return Err(format!("wsrep status missing {}", missing.join(", ")));
    }
    let get = |name| status.get(name).unwrap_or_default();
    let cluster = get("wsrep_cluster_status");
    if cluster != "Primary" {
        return Err(format!("wsrep_cluster_status {cluster}"));
    }
    let ready = get("wsrep_ready");
    if !ready.eq_ignore_ascii_case("ON") {
        return Err(format!("wsrep_ready {ready}"));
    }
    // MariaDB's manual switch; servers without it take queries.
    if let Some(reject) = variables.get("wsrep_reject_queries").filter(|r| !r.eq_ignore_ascii_case("NONE")) {
        return Err(format!("wsrep_reject_queries {reject}"));
    }
    let state = get("wsrep_local_state");
    let comment = match status.get("wsrep_local_state_comment").filter(|c| !c.is_empty()) {
        Some(comment) => comment,
        None => match state.as_str() {
            "0" => "Initialized",
            "1" => "Joining",
            "2" => "Donor/Desynced",
            "3" => "Joined",
            "4" => "Synced",
            _ => "unknown",
        }
        .to_string(),
    };
    if !(state == "4" || (state == "2" && donor_ok)) {
        return Err(format!("wsrep_local_state {state} ({comment})"));
    }
    Ok(Some(format!("wsrep_local_state {state} ({comment}), cluster Primary")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Defaults = Defaults { max_lag: 30, donor_ok: false };

    fn rs(columns: &[&str], rows: &[&[Option<&str>]]) -> ResultSet {
        ResultSet {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows.iter().map(|r| r.iter().map(|v| v.map(|v| v.as_bytes().to_vec())).collect()).collect(),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> ResultSet {
        let rows: Vec<Vec<Option<&str>>> = pairs.iter().map(|(k, v)| vec![Some(*k), Some(*v)]).collect();
        let rows: Vec<&[Option<&str>]> = rows.iter().map(Vec::as_slice).collect();
        rs(&["Variable_name", "Value"], &rows)
    }

    #[test]
    fn paths_name_profiles_and_typos_fail_safe() {
        assert_eq!(Profile::from_path("/", None, D), Ok(Profile::Default));
        assert_eq!(Profile::from_path("/primary", None, D), Ok(Profile::Primary));
        assert_eq!(
            Profile::from_path("/replica/", Some("max_lag=10"), D),
            Ok(Profile::Replica { max_lag: 10, channel: None })
        );
        assert_eq!(Profile::from_path("/replica", None, D), Ok(Profile::Replica { max_lag: 30, channel: None }));
        assert_eq!(Profile::from_path("/galera", Some("donor_ok=1"), D), Ok(Profile::Galera { donor_ok: true }));
        assert!(matches!(Profile::from_path("/primry", None, D), Err(PathError::Unknown(_))));
        assert!(matches!(Profile::from_path("/replica", Some("max_lga=10"), D), Err(PathError::BadParameter(_))));
        assert!(matches!(Profile::from_path("/replica", Some("max_lag=-1"), D), Err(PathError::BadParameter(_))));
        assert!(matches!(Profile::from_path("/primary", Some("max_lag=1"), D), Err(PathError::BadParameter(_))));
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        for q in ["max_lag=5&max_lag=1000", "channel=a&channel=b"] {
            assert!(matches!(Profile::from_path("/replica", Some(q), D), Err(PathError::BadParameter(_))), "{q}");
        }
        assert!(matches!(
            Profile::from_path("/galera", Some("donor_ok=0&donor_ok=1"), D),
            Err(PathError::BadParameter(_))
        ));
    }

    #[test]
    fn canonical_requests_name_every_parameter() {
        let p = |path, q| Profile::from_path(path, q, D).unwrap().to_string();
        assert_eq!(p("/", None), "/");
        assert_eq!(p("/replica/", None), "/replica?max_lag=30");
        assert_eq!(p("/replica", Some("channel=b&max_lag=5")), "/replica?max_lag=5&channel=b");
        assert_eq!(p("/galera", Some("donor_ok")), "/galera?donor_ok=1");
        assert!(Profile::from_path("/replica", Some("channel=a%20b"), D).is_err());
    }

    #[test]
    fn plans_use_show_all_replicas_status_on_mariadb_only() {
        assert_eq!(Flavor::from_version("5.5.5-10.11.19-MariaDB-0+deb12u1"), Flavor::MariaDb);
        assert_eq!(Flavor::from_version("8.4.0"), Flavor::MySql);
        assert_eq!(Kind::Replica.plan(Flavor::MariaDb)[1].sql, ["SHOW ALL REPLICAS STATUS", "SHOW ALL SLAVES STATUS"]);
        assert_eq!(Kind::Replica.plan(Flavor::MySql)[1].sql, ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"]);
    }

    /// MariaDB's SHOW ALL REPLICAS STATUS: one row per connection, the default one named "".
    fn sources(rows: &[(&str, &str, &str, Option<&str>)]) -> ResultSet {
        let rows: Vec<Vec<Option<&str>>> =
            rows.iter().map(|(name, io, sql, lag)| vec![Some(*name), Some(*io), Some(*sql), *lag]).collect();
        let rows: Vec<&[Option<&str>]> = rows.iter().map(Vec::as_slice).collect();
        rs(&["Connection_name", "Slave_IO_Running", "Slave_SQL_Running", "Seconds_Behind_Master"], &rows)
    }

    #[test]
    fn every_replication_source_must_run_and_the_lag_is_the_largest() {
        let p = |channel: Option<&str>| Profile::Replica { max_lag: 10, channel: channel.map(str::to_string) };
        let named_only = sources(&[("a", "Yes", "Yes", Some("2"))]);
        assert_eq!(p(None).judge(&probed(named_only)), Ok(Some("replica lag 2 s <= 10 s".into())));
        let one_broken = sources(&[("", "Yes", "Yes", Some("0")), ("b", "Connecting", "Yes", Some("0"))]);
        assert_eq!(
            p(None).judge(&probed(one_broken.clone())),
            Err("replica IO thread not running (Connecting) on channel \"b\"".into())
        );
        assert!(p(Some("")).judge(&probed(one_broken.clone())).is_ok(), "the default connection alone is healthy");
        let lags = sources(&[("a", "Yes", "Yes", Some("3")), ("b", "Yes", "Yes", Some("7"))]);
        assert_eq!(p(None).judge(&probed(lags.clone())), Ok(Some("replica lag 7 s <= 10 s (2 channels)".into())));
        assert_eq!(p(Some("A")).judge(&probed(lags.clone())), Ok(Some("replica lag 3 s <= 10 s".into())));
        assert_eq!(p(Some("c")).judge(&probed(lags)), Err("replica channel \"c\" not found".into()));
        let late = sources(&[("a", "Yes", "Yes", Some("3")), ("b", "Yes", "Yes", Some("11"))]);
        assert_eq!(p(None).judge(&probed(late)), Err("replica lag 11 s > 10 s on channel \"b\"".into()));
    }

    /// The probe's answer on a server that takes queries.
    fn probe() -> ResultSet {
        rs(&["1"], &[&[Some("1")]])
    }

    /// What the plan of a probing kind gives: the probe's row, then `rs`.
    fn probed(rs: ResultSet) -> [ResultSet; 2] {
        [probe(), rs]
    }

    #[test]
    fn every_kind_probes_with_a_table_but_galera_reads_wsrep_instead() {
        for flavor in [Flavor::MariaDb, Flavor::MySql] {
            for kind in [Kind::Default, Kind::Primary, Kind::Replica] {
                assert_eq!(kind.plan(flavor)[0], PROBE, "{}", kind.name());
            }
            assert!(!Kind::Galera.plan(flavor).contains(&PROBE), "a refusal would hide the wsrep reason");
        }
        assert!(PROBE.sql[0].contains(" FROM ("), "a derived table: no privilege needed, and a table");
    }

    #[test]
    fn the_probe_folds_into_any_query_as_a_second_statement() {
        let folded = "select @@version\n;SELECT 1 FROM (SELECT 1) AS mysqlchk_probe";
        assert_eq!(with_probe("select @@version", true).as_deref(), Some(folded));
        assert_eq!(with_probe("select @@version \n", true).as_deref(), Some(folded));
        assert_eq!(with_probe("select @@version", false), None, "two statements need multi-statements");
        assert!(with_probe("select 1 -- why", true).is_some_and(|q| q.contains("-- why\n;SELECT")), "the comment ends");
        assert_eq!(with_probe("select 1; -- why", true), None, "would leave an empty statement");
        assert_eq!(with_probe("select ';'", true), None, "no lexer: any semicolon goes the long way");
    }

    #[test]
    fn the_default_query_reads_its_value_through_the_probe() {
        // One statement: one result to wait for, and no multi-statements needed.
        for multi in [true, false] {
            for q in ["select @@hostname", "SELECT @@hostname \n"] {
                let probed = with_probe(q, multi).unwrap();
                assert_eq!(probed, "SELECT @@hostname FROM (SELECT 1) AS mysqlchk_probe");
                assert!(!probed.contains(';') && probed.ends_with(PROBE.sql[0].rsplit(" FROM ").next().unwrap()));
            }
        }
    }

    #[test]
    fn primary_needs_read_only_and_super_read_only_off() {
        let p = Profile::Primary;
        assert!(p.judge(&probed(vars(&[("read_only", "OFF"), ("super_read_only", "OFF")]))).is_ok());
        assert!(p.judge(&probed(vars(&[("read_only", "OFF")]))).is_ok(), "MariaDB has no super_read_only");
        assert_eq!(p.judge(&probed(vars(&[("read_only", "ON")]))), Err("read_only is ON".into()));
        assert_eq!(p.judge(&probed(vars(&[("read_only", "1")]))), Err("read_only is 1".into()));
        assert_eq!(
            p.judge(&probed(vars(&[("read_only", "OFF"), ("super_read_only", "ON")]))),
            Err("super_read_only is ON".into())
        );
        assert_eq!(p.judge(&probed(vars(&[]))), Err("read_only missing".into()));
        assert_eq!(p.judge(&[probe()]), Err("missing result".into()));
    }

    #[test]
    fn primary_reads_only_the_rows_it_asked_for_when_the_server_ignores_where() {
        let p = Profile::Primary;
        // What a server that ignores `WHERE Variable_name IN (...)` sends: every variable.
        let all = |read_only| {
            vars(&[
                ("auto_increment_increment", "1"),
                ("autocommit", "ON"),
                ("read_only", read_only),
                ("report_host", ""),
                ("sql_mode", "STRICT_TRANS_TABLES"),
                ("wsrep_on", "OFF"),
            ])
        };
        assert_eq!(p.judge(&probed(all("OFF"))), Ok(Some("read_only is OFF".into())));
        assert_eq!(p.judge(&probed(all("ON"))), Err("read_only is ON".into()));
        let without = vars(&[("auto_increment_increment", "1"), ("autocommit", "ON")]);
        assert_eq!(p.judge(&probed(without)), Err("read_only missing".into()));
        // NULL is not OFF.
        let null = rs(&["Variable_name", "Value"], &[&[Some("read_only"), None]]);
        assert_eq!(p.judge(&probed(null)), Err("read_only is NULL".into()));
    }

    fn replica_rs(io: &str, sql: &str, lag: Option<&str>, mysql8: bool) -> ResultSet {
        let cols = if mysql8 {
            ["Replica_IO_Running", "Replica_SQL_Running", "Seconds_Behind_Source"]
        } else {
            ["Slave_IO_Running", "Slave_SQL_Running", "Seconds_Behind_Master"]
        };
        rs(&cols, &[&[Some(io), Some(sql), lag]])
    }

    #[test]
    fn replica_needs_both_threads_and_bounded_lag() {
        let p = |max_lag| Profile::Replica { max_lag, channel: None };
        for mysql8 in [false, true] {
            assert!(p(10).judge(&probed(replica_rs("Yes", "Yes", Some("3"), mysql8))).is_ok());
            assert_eq!(
                p(10).judge(&probed(replica_rs("Yes", "Yes", Some("45"), mysql8))),
                Err("replica lag 45 s > 10 s".into())
            );
            assert_eq!(
                p(30).judge(&probed(replica_rs("Yes", "Yes", Some("30"), mysql8))),
                Ok(Some("replica lag 30 s <= 30 s".into()))
            );
            assert_eq!(
                p(10).judge(&probed(replica_rs("Yes", "Yes", None, mysql8))),
                Err("replica lag unknown (NULL)".into())
            );
            assert_eq!(
                p(10).judge(&probed(replica_rs("Connecting", "Yes", Some("0"), mysql8))),
                Err("replica IO thread not running (Connecting)".into())
            );
            assert_eq!(
                p(10).judge(&probed(replica_rs("Yes", "No", Some("0"), mysql8))),
                Err("replica SQL thread not running (No)".into())
            );
        }
        assert_eq!(p(10).judge(&probed(rs(&["Slave_IO_Running"], &[]))), Err("not a replica".into()));
    }

    /// Galera's two result sets: variables, then status.
    fn galera_rs(variables: &[(&str, &str)], status: &[(&str, &str)]) -> [ResultSet; 2] {
        [vars(variables), vars(status)]
    }

    const WSREP_ON: &[(&str, &str)] = &[("wsrep_on", "ON"), ("wsrep_reject_queries", "NONE")];

    fn node(cluster: &'static str, ready: &'static str, state: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![("wsrep_cluster_status", cluster), ("wsrep_ready", ready), ("wsrep_local_state", state)]
    }

    #[test]
    fn lag_weight_shrinks_from_100_to_a_floor_of_10() {
        assert_eq!(lag_weight(0, 10), 100);
        assert_eq!(lag_weight(3, 10), 73);
        assert_eq!(lag_weight(5, 10), 55);
        assert_eq!(lag_weight(10, 10), 10);
        assert_eq!(lag_weight(1, 30), 97);
        assert_eq!(lag_weight(0, 0), 100);
        assert_eq!(lag_weight(u64::MAX, 10), 10, "no overflow");
        assert_eq!(lag_weight(1, 0), 10);
        assert_eq!(lag_weight(u64::MAX - 1, u64::MAX), 11, "no overflow near the top");
        assert_eq!(lag_weight(u64::MAX / 2, u64::MAX), 56, "90 × (2^63 - 1) / (2^64 - 1) is just under 45");
    }

    #[test]
    fn only_a_replica_with_a_readable_lag_has_a_weight() {
        let r = Profile::Replica { max_lag: 10, channel: None };
        assert_eq!(r.weight(&probed(replica_rs("Yes", "Yes", Some("3"), true))), Some(73));
        assert_eq!(r.weight(&probed(replica_rs("Yes", "Yes", Some("0"), false))), Some(100));
        assert_eq!(r.weight(&probed(replica_rs("Yes", "Yes", None, false))), None);
        let two = rs(&["Seconds_Behind_Master"], &[&[Some("1")], &[Some("5")]]);
        assert_eq!(r.weight(&probed(two)), Some(55), "the largest lag of all channels");
        let lags = sources(&[("a", "Yes", "Yes", Some("3")), ("b", "Yes", "Yes", Some("7"))]);
        assert_eq!(r.weight(&probed(lags.clone())), Some(37));
        let only_a = Profile::Replica { max_lag: 10, channel: Some("a".into()) };
        assert_eq!(only_a.weight(&probed(lags)), Some(73), "the named channel's lag");
        assert_eq!(Profile::Primary.weight(&probed(vars(&[("read_only", "OFF")]))), None);
        assert_eq!(Profile::Default.weight(&[probe()]), None);
    }

    #[test]
    fn galera_needs_synced_and_primary() {
        let g = |donor_ok| Profile::Galera { donor_ok };
        let status = |state| galera_rs(WSREP_ON, &node("Primary", "ON", state));
        assert_eq!(g(false).judge(&status("4")), Ok(Some("wsrep_local_state 4 (Synced), cluster Primary".into())));
        assert_eq!(g(false).judge(&status("2")), Err("wsrep_local_state 2 (Donor/Desynced)".into()));
        assert!(g(true).judge(&status("2")).is_ok());
        assert_eq!(g(true).judge(&status("1")), Err("wsrep_local_state 1 (Joining)".into()));
        assert_eq!(g(true).judge(&status("0")), Err("wsrep_local_state 0 (Initialized)".into()));
    }

    #[test]
    fn galera_names_states_by_the_servers_comment() {
        let mut status = node("Primary", "ON", "2");
        status.push(("wsrep_local_state_comment", "Donor/Desynced (SST)"));
        let got = Profile::Galera { donor_ok: false }.judge(&galera_rs(WSREP_ON, &status));
        assert_eq!(got, Err("wsrep_local_state 2 (Donor/Desynced (SST))".into()));
    }

    #[test]
    fn galera_judges_the_cluster_and_readiness_before_the_local_state() {
        let g = Profile::Galera { donor_ok: true };
        // What a node that lost quorum reports (MariaDB 10.11, galera-4 26.4).
        let mut lost = node("non-Primary", "OFF", "0");
        lost.push(("wsrep_local_state_comment", "Initialized"));
        assert_eq!(g.judge(&galera_rs(WSREP_ON, &lost)), Err("wsrep_cluster_status non-Primary".into()));
        assert_eq!(g.judge(&galera_rs(WSREP_ON, &node("Primary", "OFF", "4"))), Err("wsrep_ready OFF".into()));
        let rejecting = [("wsrep_on", "ON"), ("wsrep_reject_queries", "ALL_KILL")];
        assert_eq!(
            g.judge(&galera_rs(&rejecting, &node("Primary", "ON", "4"))),
            Err("wsrep_reject_queries ALL_KILL".into())
        );
        // Servers without the switch (Percona XtraDB Cluster) take queries.
        assert!(g.judge(&galera_rs(&[("wsrep_on", "ON")], &node("Primary", "ON", "4"))).is_ok());
    }

    #[test]
    fn galera_names_what_is_missing_never_a_misleading_value() {
        let g = Profile::Galera { donor_ok: false };
        // A plain MariaDB: wsrep compiled in but off, and a misleading wsrep_ready OFF.
        let plain = galera_rs(
            &[("wsrep_on", "OFF"), ("wsrep_reject_queries", "NONE")],
            &[("wsrep_cluster_status", "Disconnected"), ("wsrep_ready", "OFF")],
        );
        assert_eq!(g.judge(&plain), Err("wsrep not enabled (wsrep_on OFF)".into()));
        // MySQL: no wsrep variables at all.
        assert_eq!(g.judge(&galera_rs(&[], &[])), Err("wsrep not enabled".into()));
        let partial = galera_rs(WSREP_ON, &[("wsrep_cluster_status", "Primary")]);
        assert_eq!(g.judge(&partial), Err("wsrep status missing wsrep_ready, wsrep_local_state".into()));
        let no_state = galera_rs(WSREP_ON, &[("wsrep_cluster_status", "Primary"), ("wsrep_ready", "ON")]);
        assert_eq!(g.judge(&no_state), Err("wsrep status missing wsrep_local_state".into()));
        // NULLs are named, never taken for a state.
        let null = [
            vars(WSREP_ON),
            rs(
                &["Variable_name", "Value"],
                &[
                    &[Some("wsrep_cluster_status"), None],
                    &[Some("wsrep_ready"), Some("ON")],
                    &[Some("wsrep_local_state"), Some("4")],
                ],
            ),
        ];
        assert_eq!(g.judge(&null), Err("wsrep_cluster_status NULL".into()));
        assert_eq!(g.judge(&[vars(WSREP_ON)]), Err("missing result".into()));
    }

    /// A text result set as a server sends it with CLIENT_DEPRECATE_EOF (column count, column
    /// definitions, rows of length-encoded values with 0xFB for NULL, OK as terminator), read
    /// back by the protocol parser.
    fn wire(columns: &[&str], rows: &[&[Option<&str>]]) -> ResultSet {
        fn lenenc(out: &mut Vec<u8>, s: &str) {
            out.push(u8::try_from(s.len()).expect("short fixture values"));
            out.extend_from_slice(s.as_bytes());
        }
        let mut packets = vec![vec![u8::try_from(columns.len()).expect("few columns")]];
        for c in columns {
            let mut p = Vec::new();
            for s in ["def", "", "", "", c, ""] {
                lenenc(&mut p, s);
            }
            p.extend_from_slice(&[0x0c, 0x21, 0, 0, 1, 0, 0, 0xfd, 0, 0, 0x27, 0, 0]);
            packets.push(p);
        }
        for row in rows {
            let mut p = Vec::new();
            for v in *row {
                match v {
                    Some(v) => lenenc(&mut p, v),
                    None => p.push(0xFB),
                }
            }
            packets.push(p);
        }
        packets.push(vec![0xFE, 0, 0, 0x02, 0, 0, 0]);
        let mut parser = crate::mysql::resultset::Parser::new(true);
        for p in &packets {
            if let crate::mysql::resultset::Progress::Done(done) = parser.packet(p).expect("a valid fixture") {
                return done.expect("rows, not an error");
            }
        }
        panic!("the fixture never ended");
    }

    #[test]
    fn bytes_of_a_server_that_ignores_where_are_judged_by_name() {
        let cols = ["Variable_name", "Value"];
        let all = wire(
            &cols,
            &[
                &[Some("auto_increment_increment"), Some("1")],
                &[Some("innodb_read_only"), Some("ON")],
                &[Some("read_only"), Some("OFF")],
                &[Some("wsrep_on"), Some("ON")],
                &[Some("wsrep_reject_queries"), Some("NONE")],
            ],
        );
        assert_eq!(Profile::Primary.judge(&probed(all.clone())), Ok(Some("read_only is OFF".into())));
        let status = wire(
            &cols,
            &[
                &[Some("wsrep_cluster_size"), Some("3")],
                &[Some("wsrep_cluster_status"), Some("Primary")],
                &[Some("wsrep_local_state"), Some("4")],
                &[Some("wsrep_local_state_comment"), Some("Synced")],
                &[Some("wsrep_ready"), Some("ON")],
            ],
        );
        let g = Profile::Galera { donor_ok: false };
        assert_eq!(g.judge(&[all.clone(), status]), Ok(Some("wsrep_local_state 4 (Synced), cluster Primary".into())));
        let incomplete = wire(&cols, &[&[Some("wsrep_cluster_status"), Some("Primary")], &[Some("wsrep_ready"), None]]);
        assert_eq!(g.judge(&[all, incomplete]), Err("wsrep status missing wsrep_local_state".into()));
        let no_read_only = wire(&cols, &[&[Some("auto_increment_increment"), Some("1")], &[Some("read_only"), None]]);
        assert_eq!(Profile::Primary.judge(&probed(no_read_only)), Err("read_only is NULL".into()));
    }

    #[test]
    fn galera_reads_only_the_rows_it_asked_for_when_the_server_ignores_where() {
        let mut status = vec![("wsrep_apply_oooe", "0"), ("wsrep_cluster_size", "3"), ("wsrep_local_index", "0")];
        status.extend(node("Primary", "ON", "4"));
        status.push(("wsrep_local_state_uuid", "4c687524"));
        let variables = [("auto_increment_increment", "3"), ("wsrep_on", "ON"), ("wsrep_reject_queries", "NONE")];
        assert!(Profile::Galera { donor_ok: false }.judge(&galera_rs(&variables, &status)).is_ok());
    }
}
