//! The delivery log's filters as SQL, written once for both backends. Only
//! the conditions a filter sets are written, so each combination gets a
//! plan that uses its index: a catch-all `(? IS NULL OR col = ?)` keeps
//! both SQLite and PostgreSQL from using any of them.
//!
//! The log is ordered newest first by `(created_at, seq)`, and every index
//! it pages on ends with those two columns (the `console` migrations), so a
//! time window with one filter, or webhook and status together, is one
//! index range read in order: a page reads little more than it returns.

use super::{DeliveryFilter, ReplayFilter};

/// A bound value of a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// The log's order; a page's cursor is the `(created_at, seq)` of its last row.
pub(crate) const LOG_ORDER: &str = "ORDER BY d.created_at DESC, d.seq DESC";

/// A `WHERE` clause over `deliveries d JOIN events e` and its values.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Where {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Where {
    /// Adds `cond`, in which each `{}` stands for the next placeholder, one
    /// per value of `args`.
    fn and(&mut self, cond: &str, args: Vec<Arg>, placeholder: fn(usize) -> String) {
        self.sql.push_str(if self.sql.is_empty() {
            "WHERE "
        } else {
            " AND "
        });
        let mut parts = cond.split("{}");
        self.sql.push_str(parts.next().unwrap_or_default());
        for (arg, rest) in args.into_iter().zip(parts) {
            self.args.push(arg);
            self.sql.push_str(&placeholder(self.args.len()));
            self.sql.push_str(rest);
        }
    }
}

/// SQLite's `?N` and PostgreSQL's `$N`.
pub(crate) fn sqlite_placeholder(n: usize) -> String {
    format!("?{n}")
}

pub(crate) fn postgres_placeholder(n: usize) -> String {
    format!("${n}")
}

/// The `SET` of a replay, `now` being the placeholder of the time: a
/// replayed delivery starts over, due now, with a fresh retry schedule, and
/// the plugin chain re-runs where the last outcome was not a request to send.
pub(crate) fn replay_set(now: &str) -> String {
    format!(
        "state = 'pending', next_at = {now}, failures = 0, updated_at = {now}, reason = NULL,
         body = CASE WHEN state IN ('held', 'filtered') THEN NULL ELSE body END,
         headers = CASE WHEN state IN ('held', 'filtered') THEN NULL ELSE headers END,
         plugin_log = CASE WHEN state IN ('held', 'filtered') THEN NULL ELSE plugin_log END"
    )
}

/// The log's filter; `before` is the cursor, the `(created_at, seq)` of
/// the last row of the previous page (rows after it in [`LOG_ORDER`]).
/// Conditions on the columns in `unindexed` are written so that no index is
/// used for them (SQLite's unary `+`): the SQLite store picks which filter
/// drives the page (see `sqlite::driving`); PostgreSQL's planner, which has
/// statistics, gets none.
pub(crate) fn log_where(
    f: &DeliveryFilter,
    before: Option<(i64, i64)>,
    placeholder: fn(usize) -> String,
    unindexed: &[&str],
) -> Where {
    let mut w = Where::default();
    let text = |s: &Option<String>| s.clone().map(|s| vec![Arg::Text(s)]);
    let int = |n: Option<i64>| n.map(|n| vec![Arg::Int(n)]);
    let state = f.state.map(|s| vec![Arg::Text(s.as_str().to_owned())]);
    let cursor = before.map(|(at, seq)| vec![Arg::Int(at), Arg::Int(seq)]);
    let conditions = [
        ("d.webhook_id = {}", text(&f.webhook)),
        ("d.tenant = {}", text(&f.tenant)),
        ("d.state = {}", state),
        ("e.id = {}", text(&f.event_id)),
        ("d.event_type = {}", text(&f.event_type)),
        ("d.created_at >= {}", int(f.since)),
        ("d.created_at < {}", int(f.until)),
        ("(d.created_at, d.seq) < ({}, {})", cursor),
    ];
    for (cond, args) in conditions {
        if let Some(args) = args {
            let column = cond.split(' ').next().unwrap_or_default();
            if unindexed.contains(&column) {
                w.and(&format!("+{cond}"), args, placeholder);
            } else {
                w.and(cond, args, placeholder);
            }
        }
    }
    w
}

/// A bulk replay's filter, over `deliveries d` alone.
pub(crate) fn replay_where(f: &ReplayFilter, placeholder: fn(usize) -> String) -> Where {
    let mut w = Where::default();
    let conditions = [
        ("d.webhook_id = {}", Some(Arg::Text(f.webhook.clone()))),
        ("d.state = {}", Some(Arg::Text(f.state.as_str().to_owned()))),
        ("d.event_type = {}", f.event_type.clone().map(Arg::Text)),
        ("d.updated_at >= {}", f.since.map(Arg::Int)),
        ("d.updated_at < {}", f.until.map(Arg::Int)),
    ];
    for (cond, arg) in conditions {
        if let Some(arg) = arg {
            w.and(cond, vec![arg], placeholder);
        }
    }
    match &f.tenant {
        Some(t) => w.and("d.tenant = {}", vec![Arg::Text(t.clone())], placeholder),
        None => w.and("d.tenant IS NULL", vec![], placeholder),
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeliveryState;

    #[test]
    fn only_the_conditions_set_are_written_numbered_in_order() {
        let f = DeliveryFilter {
            webhook: Some("w".into()),
            event_type: Some("a.b".into()),
            until: Some(9),
            limit: 50,
            ..Default::default()
        };
        let w = log_where(&f, Some((8, 7)), postgres_placeholder, &[]);
        assert_eq!(
            w.sql,
            "WHERE d.webhook_id = $1 AND d.event_type = $2 AND d.created_at < $3 \
             AND (d.created_at, d.seq) < ($4, $5)"
        );
        assert_eq!(
            w.args,
            [
                Arg::Text("w".into()),
                Arg::Text("a.b".into()),
                Arg::Int(9),
                Arg::Int(8),
                Arg::Int(7)
            ]
        );
        let none = log_where(&DeliveryFilter::default(), None, sqlite_placeholder, &[]);
        assert_eq!(none, Where::default());
        let hinted = log_where(&f, None, sqlite_placeholder, &["d.event_type"]);
        assert_eq!(
            hinted.sql,
            "WHERE d.webhook_id = ?1 AND +d.event_type = ?2 AND d.created_at < ?3"
        );
    }

    #[test]
    fn a_replay_always_names_its_webhook_and_state() {
        let f = ReplayFilter {
            webhook: "w".into(),
            tenant: Some("org".into()),
            state: DeliveryState::Dead,
            event_type: None,
            since: Some(1),
            until: None,
        };
        let w = replay_where(&f, sqlite_placeholder);
        assert_eq!(
            w.sql,
            "WHERE d.webhook_id = ?1 AND d.state = ?2 AND d.updated_at >= ?3 AND d.tenant = ?4"
        );
        assert_eq!(w.args.len(), 4);
        // A webhook of no owner replays only deliveries made for no owner.
        let w = replay_where(&ReplayFilter { tenant: None, ..f }, sqlite_placeholder);
        assert_eq!(
            w.sql,
            "WHERE d.webhook_id = ?1 AND d.state = ?2 AND d.updated_at >= ?3 AND d.tenant IS NULL"
        );
    }
}
