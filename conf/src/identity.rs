//! `--user` and `--group`: who the server runs as once its ports are bound.
//!
//! mod_wsgi-express's meaning: the options only take effect when the
//! server is started as root; naming another identity without root is an
//! error (the switch cannot happen), naming the current one is fine. Names
//! are looked up here, once, so a typo stops the start with the option's
//! name instead of failing in a worker.
//!
//! One difference, on purpose: without `--group`, mod_wsgi-express keeps
//! the group of whoever started it (root's, when started as root); rwsgi
//! takes the `--user`'s primary group, so no group 0 is kept by accident.

use crate::error::{invalid, ConfError};
use nix::unistd::{Gid, Group, Uid, User};
use rwsgi_shared::config::RunAs;
use std::path::PathBuf;

/// A `--user` as found in the user database (or given as `#UID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// How it was named on the command line.
    pub named: String,
    pub uid: u32,
    /// The primary group; `None` for a `#UID` without a passwd entry.
    pub gid: Option<u32>,
    /// The passwd name (for the supplementary groups); `None` for `#UID`.
    pub login: Option<String>,
    pub home: Option<PathBuf>,
}

/// The identity the process has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub uid: u32,
    pub gid: u32,
}

/// Decides whether and to what the server switches. Pure: the lookups
/// are done by the caller.
pub fn plan(
    current: Current,
    user: Option<Account>,
    group: Option<(String, u32)>,
) -> Result<Option<RunAs>, ConfError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let gid = match (&group, &user) {
        (Some((_, gid)), _) => *gid,
        (None, Some(account)) => match account.gid {
            Some(gid) => gid,
            None => {
                return Err(invalid(
                    "user",
                    format_args!(
                        "{} has no passwd entry, so no primary group: name one with --group",
                        account.named
                    ),
                ))
            }
        },
        (None, None) => current.gid,
    };
    let uid = user.as_ref().map_or(current.uid, |a| a.uid);
    if current.uid != 0 {
        // Without root nothing can be switched; the current identity is fine.
        if uid != current.uid {
            return Err(invalid(
                "user",
                format_args!(
                    "switching to {} needs the server to be started as root (it runs as uid {})",
                    user.as_ref().map_or("", |a| a.named.as_str()),
                    current.uid
                ),
            ));
        }
        if gid != current.gid {
            return Err(invalid(
                "group",
                format_args!(
                    "switching to group {} needs the server to be started as root (it runs as gid {})",
                    group.as_ref().map_or(gid.to_string(), |(n, _)| n.clone()),
                    current.gid
                ),
            ));
        }
        return Ok(None);
    }
    let (named, login, home) = match user {
        Some(a) => (a.named, a.login, a.home),
        // `--group` alone: root keeps its uid but changes its groups.
        None => ("root".to_owned(), Some("root".to_owned()), None),
    };
    Ok(Some(RunAs {
        user: named,
        uid,
        gid,
        login,
        home,
    }))
}

/// A number, or Apache's `#N` for an id without a database entry.
fn number(value: &str) -> Option<(u32, bool)> {
    match value.strip_prefix('#') {
        Some(n) => n.parse().ok().map(|n| (n, true)),
        None => value.parse().ok().map(|n| (n, false)),
    }
}

/// Looks up `--user`.
fn account(value: &str) -> Result<Account, ConfError> {
    if value.is_empty() {
        return Err(invalid("user", "must not be empty"));
    }
    let found = match number(value) {
        Some((uid, true)) => {
            return Ok(Account {
                named: value.to_owned(),
                uid,
                gid: None,
                login: None,
                home: None,
            })
        }
        Some((uid, false)) => User::from_uid(Uid::from_raw(uid)),
        None => User::from_name(value),
    };
    match found {
        Ok(Some(u)) => Ok(Account {
            named: value.to_owned(),
            uid: u.uid.as_raw(),
            gid: Some(u.gid.as_raw()),
            login: Some(u.name),
            home: Some(u.dir),
        }),
        Ok(None) => Err(invalid(
            "user",
            format_args!("no user {value} (for a uid without a passwd entry write #UID)"),
        )),
        Err(e) => Err(invalid("user", format_args!("cannot look up {value}: {e}"))),
    }
}

/// Looks up `--group`.
fn group(value: &str) -> Result<(String, u32), ConfError> {
    if value.is_empty() {
        return Err(invalid("group", "must not be empty"));
    }
    let found = match number(value) {
        Some((gid, true)) => return Ok((value.to_owned(), gid)),
        Some((gid, false)) => Group::from_gid(Gid::from_raw(gid)),
        None => Group::from_name(value),
    };
    match found {
        Ok(Some(g)) => Ok((value.to_owned(), g.gid.as_raw())),
        Ok(None) => Err(invalid(
            "group",
            format_args!("no group {value} (for a gid without a group entry write #GID)"),
        )),
        Err(e) => Err(invalid(
            "group",
            format_args!("cannot look up {value}: {e}"),
        )),
    }
}

/// `--user` and `--group` from the command line to what the master does.
pub fn resolve(user: Option<&str>, group_name: Option<&str>) -> Result<Option<RunAs>, ConfError> {
    let account = user.map(account).transpose()?;
    let group = group_name.map(group).transpose()?;
    let current = Current {
        uid: Uid::effective().as_raw(),
        gid: Gid::effective().as_raw(),
    };
    plan(current, account, group)
}

/// `--service-user SERVICE USER` and `--service-group SERVICE GROUP`: who
/// service `service` runs as, started by a master that runs as `master`
/// (its `--user`, if any) or as the current identity. The same rule as
/// `--user`: another identity needs root, and the master keeps root only
/// without `--user`. Errors name the service option.
pub fn resolve_service(
    service: &str,
    user: Option<&str>,
    group_name: Option<&str>,
    master: Option<&RunAs>,
) -> Result<Option<RunAs>, ConfError> {
    let rename = |e: ConfError| match e {
        ConfError::Invalid(m) => {
            let m = m
                .replacen("'--user'", &format!("'--service-user {service}'"), 1)
                .replacen("'--group'", &format!("'--service-group {service}'"), 1);
            ConfError::Invalid(match master {
                Some(run_as) if m.contains("needs the server to be started as root") => format!(
                    "{m}; with --user {} the master gives up root at start, so its services run as that user",
                    run_as.user
                ),
                _ => m,
            })
        }
        other => other,
    };
    let account = user.map(account).transpose().map_err(rename)?;
    let group = group_name.map(group).transpose().map_err(rename)?;
    let current = match master {
        Some(run_as) => Current {
            uid: run_as.uid,
            gid: run_as.gid,
        },
        None => Current {
            uid: Uid::effective().as_raw(),
            gid: Gid::effective().as_raw(),
        },
    };
    plan(current, account, group).map_err(rename)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Current = Current { uid: 0, gid: 0 };
    const ALICE: Current = Current {
        uid: 1000,
        gid: 1000,
    };

    fn www() -> Account {
        Account {
            named: "www-data".into(),
            uid: 33,
            gid: Some(33),
            login: Some("www-data".into()),
            home: Some("/var/www".into()),
        }
    }

    fn raw(uid: u32) -> Account {
        Account {
            named: format!("#{uid}"),
            uid,
            gid: None,
            login: None,
            home: None,
        }
    }

    fn message(r: Result<Option<RunAs>, ConfError>) -> String {
        match r {
            Err(ConfError::Invalid(m)) => m,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn nothing_asked_nothing_switched() {
        assert_eq!(plan(ROOT, None, None).expect("a plan"), None);
        assert_eq!(plan(ALICE, None, None).expect("a plan"), None);
    }

    #[test]
    fn root_switches_to_the_user_and_its_primary_group() {
        let run = plan(ROOT, Some(www()), None)
            .expect("a plan")
            .expect("a plan");
        assert_eq!((run.uid, run.gid), (33, 33));
        assert_eq!(run.login.as_deref(), Some("www-data"));
    }

    #[test]
    fn a_named_group_wins_over_the_primary_group() {
        let run = plan(ROOT, Some(www()), Some(("staff".into(), 50)))
            .expect("a plan")
            .expect("a plan");
        assert_eq!((run.uid, run.gid), (33, 50));
    }

    #[test]
    fn a_raw_uid_needs_a_group() {
        assert!(message(plan(ROOT, Some(raw(123456)), None)).contains("--user"));
        let run = plan(ROOT, Some(raw(123456)), Some(("#0".into(), 0)))
            .expect("a plan")
            .expect("a plan");
        assert_eq!((run.uid, run.gid, run.login), (123456, 0, None));
    }

    #[test]
    fn group_alone_keeps_the_uid() {
        let run = plan(ROOT, None, Some(("staff".into(), 50)))
            .expect("a plan")
            .expect("a plan");
        assert_eq!((run.uid, run.gid), (0, 50));
    }

    #[test]
    fn without_root_another_user_is_an_error_naming_the_option() {
        let m = message(plan(ALICE, Some(www()), None));
        assert!(m.contains("--user") && m.contains("root"), "{m}");
        let mut alice = www();
        alice.uid = 1000;
        alice.gid = Some(1000);
        let m = message(plan(ALICE, Some(alice), Some(("staff".into(), 50))));
        assert!(m.contains("--group") && m.contains("root"), "{m}");
    }

    #[test]
    fn without_root_the_current_identity_is_fine() {
        let mut alice = www();
        alice.uid = 1000;
        alice.gid = Some(1000);
        assert_eq!(plan(ALICE, Some(alice), None).expect("a plan"), None);
        assert_eq!(
            plan(ALICE, None, Some(("alice".into(), 1000))).expect("a plan"),
            None
        );
    }

    #[test]
    fn numbers_and_raw_ids() {
        assert_eq!(number("33"), Some((33, false)));
        assert_eq!(number("#33"), Some((33, true)));
        assert_eq!(number("www-data"), None);
        assert_eq!(number("#x"), None);
    }

    #[test]
    fn unknown_names_are_errors_naming_the_option() {
        let m = match account("no-such-user-rwsgi") {
            Err(ConfError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            m.contains("--user") && m.contains("no-such-user-rwsgi"),
            "{m}"
        );
        let m = match group("no-such-group-rwsgi") {
            Err(ConfError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m.contains("--group"), "{m}");
        assert_eq!(account("0").expect("a plan").uid, 0);
    }
}
