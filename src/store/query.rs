//! The delivery log's filters as SQL, written once for both backends. Only
//! the conditions a filter sets are written, so each combination gets a
//! plan that uses its index: a catch-all `(? IS NULL OR col = ?)` keeps
//! both SQLite and PostgreSQL from using any of them.

use super::{DeliveryFilter, ReplayFilter};

/// A bound value of a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// A `WHERE` clause over `deliveries d JOIN events e` and its values.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Where {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Where {
    /// Adds `cond`, in which `{}` stands for the next placeholder.
    fn and(&mut self, cond: &str, arg: Arg, placeholder: fn(usize) -> String) {
        self.sql.push_str(if self.sql.is_empty() {
            "WHERE "
        } else {
            " AND "
        });
        self.args.push(arg);
        self.sql
            .push_str(&cond.replace("{}", &placeholder(self.args.len())));
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

/// The log's filter; `before_seq` is the cursor (deliveries older than it).
pub(crate) fn log_where(
    f: &DeliveryFilter,
    before_seq: Option<i64>,
    placeholder: fn(usize) -> String,
) -> Where {
    let mut w = Where::default();
    let text = |s: &Option<String>| s.clone().map(Arg::Text);
    let conditions = [
        ("d.webhook_id = {}", text(&f.webhook)),
        ("d.tenant = {}", text(&f.tenant)),
        (
            "d.state = {}",
            f.state.map(|s| Arg::Text(s.as_str().to_owned())),
        ),
        ("e.id = {}", text(&f.event_id)),
        ("d.event_type = {}", text(&f.event_type)),
        ("d.created_at >= {}", f.since.map(Arg::Int)),
        ("d.created_at < {}", f.until.map(Arg::Int)),
        ("d.seq < {}", before_seq.map(Arg::Int)),
    ];
    for (cond, arg) in conditions {
        if let Some(arg) = arg {
            w.and(cond, arg, placeholder);
        }
    }
    w
}

/// A bulk replay's filter, over `deliveries d` alone.
pub(crate) fn replay_where(f: &ReplayFilter, placeholder: fn(usize) -> String) -> Where {
    let mut w = Where::default();
    w.and(
        "d.webhook_id = {}",
        Arg::Text(f.webhook.clone()),
        placeholder,
    );
    w.and(
        "d.state = {}",
        Arg::Text(f.state.as_str().to_owned()),
        placeholder,
    );
    let optional: [(&str, Option<Arg>); 4] = [
        ("d.tenant = {}", f.tenant.clone().map(Arg::Text)),
        ("d.event_type = {}", f.event_type.clone().map(Arg::Text)),
        ("d.updated_at >= {}", f.since.map(Arg::Int)),
        ("d.updated_at < {}", f.until.map(Arg::Int)),
    ];
    for (cond, arg) in optional {
        if let Some(arg) = arg {
            w.and(cond, arg, placeholder);
        }
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
        let w = log_where(&f, Some(7), postgres_placeholder);
        assert_eq!(
            w.sql,
            "WHERE d.webhook_id = $1 AND d.event_type = $2 AND d.created_at < $3 AND d.seq < $4"
        );
        assert_eq!(
            w.args,
            [
                Arg::Text("w".into()),
                Arg::Text("a.b".into()),
                Arg::Int(9),
                Arg::Int(7)
            ]
        );
        let none = log_where(&DeliveryFilter::default(), None, sqlite_placeholder);
        assert_eq!(none, Where::default());
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
            "WHERE d.webhook_id = ?1 AND d.state = ?2 AND d.tenant = ?3 AND d.updated_at >= ?4"
        );
        assert_eq!(w.args.len(), 4);
    }
}
