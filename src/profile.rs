//! Check profiles: what to ask the server for each path, and how to judge the answers.
//!
//! Sans-IO like `mysql/`: [`Kind::plan`] names the queries, the check driver runs them, and
//! [`Profile::judge`] turns the result sets into a verdict. Several requests for the same
//! [`Kind`] can share one database round trip and still be judged with their own parameters
//! (e.g. different `max_lag`).

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
    pub fn plan(self, flavor: Flavor) -> &'static [Step] {
        match (self, flavor) {
            (Kind::Default, _) => &[],
            (Kind::Primary, _) => &[Step { sql: &[PRIMARY_SQL], keep: VARIABLE_COLUMNS }],
            // MariaDB's SHOW REPLICA STATUS shows only the default connection of a multi-source
            // replica; SHOW ALL ... shows every one (10.0+; the REPLICAS spelling from 10.5.1).
            (Kind::Replica, Flavor::MariaDb) => {
                &[Step { sql: &["SHOW ALL REPLICAS STATUS", "SHOW ALL SLAVES STATUS"], keep: REPLICA_COLUMNS }]
            }
            // MySQL shows every channel, one row each (SHOW REPLICA STATUS from 8.0.22).
            (Kind::Replica, Flavor::MySql) => {
                &[Step { sql: &["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"], keep: REPLICA_COLUMNS }]
            }
            (Kind::Galera, _) => &[Step { sql: &[GALERA_SQL], keep: VARIABLE_COLUMNS }],
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

const PRIMARY_SQL: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'super_read_only')";
const GALERA_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_cluster_status')";

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

    /// Judges the results of [`Kind::plan`] (without the default query's). `Ok` carries a short
    /// detail for the response body, `Err` the condition that failed.
    pub fn judge(&self, results: &[ResultSet]) -> Result<Option<String>, String> {
        let rs = results.first();
        match (self, rs) {
            (Profile::Default, _) => Ok(None),
            (_, None) => Err("missing result".into()),
            (Profile::Primary, Some(rs)) => primary(rs),
            (Profile::Replica { max_lag, channel }, Some(rs)) => replica(rs, *max_lag, channel.as_deref()),
            (Profile::Galera { donor_ok }, Some(rs)) => galera(rs, *donor_ok),
        }
    }
}

/// The canonical request, parameters included: what state changes and the `mysqlchk_up` gauge
/// are keyed by, so two requests judged differently never overwrite each other's state.
impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Profile::Default => f.write_str("/"),
            Profile::Primary => f.write_str("/primary"),
            Profile::Replica { max_lag, channel: None } => write!(f, "/replica?max_lag={max_lag}"),
            Profile::Replica { max_lag, channel: Some(c) } => write!(f, "/replica?max_lag={max_lag}&channel={c}"),
            Profile::Galera { donor_ok } => write!(f, "/galera?donor_ok={}", u8::from(*donor_ok)),
        }
    }
}

/// Rows of `SHOW ... WHERE Variable_name IN (...)`, as (name, value).
fn variables(rs: &ResultSet) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    rs.rows.iter().filter_map(|row| {
        let name = row.first()?.as_deref()?;
        let value = row.get(1)?.as_deref();
        Some((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            value.map(|v| String::from_utf8_lossy(v).into_owned()),
        ))
    })
}

fn primary(rs: &ResultSet) -> Result<Option<String>, String> {
    let mut seen = false;
    for (name, value) in variables(rs) {
        seen |= name == "read_only";
        let value = value.unwrap_or_else(|| "NULL".into());
        if !(value.eq_ignore_ascii_case("OFF") || value == "0") {
            return Err(format!("{name} is {value}"));
        }
    }
    if !seen {
        return Err("read_only unknown".into());
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

fn galera(rs: &ResultSet, donor_ok: bool) -> Result<Option<String>, String> {
    let mut state = None;
    let mut cluster = None;
    for (name, value) in variables(rs) {
        match name.as_str() {
            "wsrep_local_state" => state = value,
            "wsrep_cluster_status" => cluster = value,
            _ => {}
        }
    }
    let Some(state) = state else {
        return Err("wsrep not enabled".into());
    };
    let comment = match state.as_str() {
        "1" => "Joining",
        "2" => "Donor/Desynced",
        "3" => "Joined",
        "4" => "Synced",
        _ => "unknown",
    };
    if !(state == "4" || (state == "2" && donor_ok)) {
        return Err(format!("wsrep_local_state {state} ({comment})"));
    }
    match cluster.as_deref() {
        Some("Primary") => Ok(Some(format!("wsrep_local_state {state} ({comment}), cluster Primary"))),
        other => Err(format!("wsrep_cluster_status {}", other.unwrap_or("unknown"))),
    }
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
        assert_eq!(Kind::Replica.plan(Flavor::MariaDb)[0].sql, ["SHOW ALL REPLICAS STATUS", "SHOW ALL SLAVES STATUS"]);
        assert_eq!(Kind::Replica.plan(Flavor::MySql)[0].sql, ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"]);
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
        assert_eq!(p(None).judge(&[named_only]), Ok(Some("replica lag 2 s <= 10 s".into())));
        let one_broken = sources(&[("", "Yes", "Yes", Some("0")), ("b", "Connecting", "Yes", Some("0"))]);
        assert_eq!(
            p(None).judge(std::slice::from_ref(&one_broken)),
            Err("replica IO thread not running (Connecting) on channel \"b\"".into())
        );
        assert!(
            p(Some("")).judge(std::slice::from_ref(&one_broken)).is_ok(),
            "the default connection alone is healthy"
        );
        let lags = sources(&[("a", "Yes", "Yes", Some("3")), ("b", "Yes", "Yes", Some("7"))]);
        assert_eq!(p(None).judge(std::slice::from_ref(&lags)), Ok(Some("replica lag 7 s <= 10 s (2 channels)".into())));
        assert_eq!(p(Some("A")).judge(std::slice::from_ref(&lags)), Ok(Some("replica lag 3 s <= 10 s".into())));
        assert_eq!(p(Some("c")).judge(&[lags]), Err("replica channel \"c\" not found".into()));
        let late = sources(&[("a", "Yes", "Yes", Some("3")), ("b", "Yes", "Yes", Some("11"))]);
        assert_eq!(p(None).judge(&[late]), Err("replica lag 11 s > 10 s on channel \"b\"".into()));
    }

    #[test]
    fn primary_needs_read_only_and_super_read_only_off() {
        let p = Profile::Primary;
        assert!(p.judge(&[vars(&[("read_only", "OFF"), ("super_read_only", "OFF")])]).is_ok());
        assert!(p.judge(&[vars(&[("read_only", "OFF")])]).is_ok(), "MariaDB has no super_read_only");
        assert_eq!(p.judge(&[vars(&[("read_only", "ON")])]), Err("read_only is ON".into()));
        assert_eq!(
            p.judge(&[vars(&[("read_only", "OFF"), ("super_read_only", "ON")])]),
            Err("super_read_only is ON".into())
        );
        assert_eq!(p.judge(&[vars(&[])]), Err("read_only unknown".into()));
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
            assert!(p(10).judge(&[replica_rs("Yes", "Yes", Some("3"), mysql8)]).is_ok());
            assert_eq!(
                p(10).judge(&[replica_rs("Yes", "Yes", Some("45"), mysql8)]),
                Err("replica lag 45 s > 10 s".into())
            );
            assert_eq!(
                p(30).judge(&[replica_rs("Yes", "Yes", Some("30"), mysql8)]),
                Ok(Some("replica lag 30 s <= 30 s".into()))
            );
            assert_eq!(
                p(10).judge(&[replica_rs("Yes", "Yes", None, mysql8)]),
                Err("replica lag unknown (NULL)".into())
            );
            assert_eq!(
                p(10).judge(&[replica_rs("Connecting", "Yes", Some("0"), mysql8)]),
                Err("replica IO thread not running (Connecting)".into())
            );
            assert_eq!(
                p(10).judge(&[replica_rs("Yes", "No", Some("0"), mysql8)]),
                Err("replica SQL thread not running (No)".into())
            );
        }
        assert_eq!(p(10).judge(&[rs(&["Slave_IO_Running"], &[])]), Err("not a replica".into()));
    }

    #[test]
    fn galera_needs_synced_and_primary() {
        let g = |donor_ok| Profile::Galera { donor_ok };
        let status = |state, cluster| vars(&[("wsrep_local_state", state), ("wsrep_cluster_status", cluster)]);
        assert!(g(false).judge(&[status("4", "Primary")]).is_ok());
        assert_eq!(g(false).judge(&[status("2", "Primary")]), Err("wsrep_local_state 2 (Donor/Desynced)".into()));
        assert!(g(true).judge(&[status("2", "Primary")]).is_ok());
        assert_eq!(g(true).judge(&[status("1", "Primary")]), Err("wsrep_local_state 1 (Joining)".into()));
        assert_eq!(g(false).judge(&[status("4", "non-Primary")]), Err("wsrep_cluster_status non-Primary".into()));
        assert_eq!(g(false).judge(&[vars(&[])]), Err("wsrep not enabled".into()));
    }
}
