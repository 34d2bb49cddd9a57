//! Check profiles: what to ask the server for each path, and how to judge the answers.
//!
//! Sans-IO like `mysql/`: [`Kind::plan`] names the queries, the check driver runs them, and
//! [`Profile::judge`] turns the result sets into a verdict. Several requests for the same
//! [`Kind`] can share one database round trip and still be judged with their own parameters
//! (e.g. different `max_lag`).

use std::fmt;

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

    /// The queries after the default `--query`, in order. A step's fallback runs instead when
    /// the server rejects the first form as a syntax error (older servers).
    pub fn plan(self) -> &'static [Step] {
        match self {
            Kind::Default => &[],
            Kind::Primary => &[Step { sql: PRIMARY_SQL, fallback: None }],
            Kind::Replica => &[Step { sql: "SHOW REPLICA STATUS", fallback: Some("SHOW SLAVE STATUS") }],
            Kind::Galera => &[Step { sql: GALERA_SQL, fallback: None }],
        }
    }
}

const PRIMARY_SQL: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'super_read_only')";
const GALERA_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_cluster_status')";

/// ER_PARSE_ERROR: what MySQL < 8.0.22 and MariaDB < 10.5 say to SHOW REPLICA STATUS.
pub const ER_PARSE_ERROR: u16 = 1064;

/// One query of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub sql: &'static str,
    pub fallback: Option<&'static str>,
}

/// A profile with its parameters, as named by a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Default,
    Primary,
    Replica { max_lag: u64 },
    Galera { donor_ok: bool },
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
            "/replica" => Profile::Replica { max_lag: d.max_lag },
            "/galera" => Profile::Galera { donor_ok: d.donor_ok },
            _ => return Err(PathError::Unknown(path.to_string())),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || PathError::BadParameter(pair.to_string());
            match (&mut profile, key) {
                (Profile::Replica { max_lag }, "max_lag") => *max_lag = value.parse().map_err(|_| bad())?,
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

    pub fn kind(self) -> Kind {
        match self {
            Profile::Default => Kind::Default,
            Profile::Primary => Kind::Primary,
            Profile::Replica { .. } => Kind::Replica,
            Profile::Galera { .. } => Kind::Galera,
        }
    }

    /// Judges the results of [`Kind::plan`] (without the default query's). `Ok` carries a short
    /// detail for the response body, `Err` the condition that failed.
    pub fn judge(self, results: &[ResultSet]) -> Result<Option<String>, String> {
        let rs = results.first();
        match (self, rs) {
            (Profile::Default, _) => Ok(None),
            (_, None) => Err("missing result".into()),
            (Profile::Primary, Some(rs)) => primary(rs),
            (Profile::Replica { max_lag }, Some(rs)) => replica(rs, max_lag),
            (Profile::Galera { donor_ok }, Some(rs)) => galera(rs, donor_ok),
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

fn replica(rs: &ResultSet, max_lag: u64) -> Result<Option<String>, String> {
    if rs.rows.is_empty() {
        return Err("not a replica".into());
    }
    let mut worst = 0;
    // Every channel (MySQL multi-source returns one row each) must be healthy.
    for row in &rs.rows {
        for (what, names) in
            [("IO", ["Replica_IO_Running", "Slave_IO_Running"]), ("SQL", ["Replica_SQL_Running", "Slave_SQL_Running"])]
        {
            let state = text(rs, row, names).unwrap_or_default();
            if state != "Yes" {
                let state = if state.is_empty() { "unknown".into() } else { state };
                return Err(format!("replica {what} thread not running ({state})"));
            }
        }
        let lag = text(rs, row, ["Seconds_Behind_Source", "Seconds_Behind_Master"]);
        let lag: u64 = match lag.as_deref().map(str::parse) {
            Some(Ok(lag)) => lag,
            _ => return Err("replica lag unknown (NULL)".into()),
        };
        if lag > max_lag {
            return Err(format!("replica lag {lag} s > {max_lag} s"));
        }
        worst = worst.max(lag);
    }
    Ok(Some(format!("replica lag {worst} s <= {max_lag} s")))
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
        assert_eq!(Profile::from_path("/replica/", Some("max_lag=10"), D), Ok(Profile::Replica { max_lag: 10 }));
        assert_eq!(Profile::from_path("/replica", None, D), Ok(Profile::Replica { max_lag: 30 }));
        assert_eq!(Profile::from_path("/galera", Some("donor_ok=1"), D), Ok(Profile::Galera { donor_ok: true }));
        assert!(matches!(Profile::from_path("/primry", None, D), Err(PathError::Unknown(_))));
        assert!(matches!(Profile::from_path("/replica", Some("max_lga=10"), D), Err(PathError::BadParameter(_))));
        assert!(matches!(Profile::from_path("/replica", Some("max_lag=-1"), D), Err(PathError::BadParameter(_))));
        assert!(matches!(Profile::from_path("/primary", Some("max_lag=1"), D), Err(PathError::BadParameter(_))));
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
        let p = |max_lag| Profile::Replica { max_lag };
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
