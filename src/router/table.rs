//! Every webhook weir routes to, config and API ones alike, indexed so that
//! matching an event costs the webhooks that could want it, not all of them.
//!
//! A table is immutable and swapped whole (`ArcSwap`) when the config reloads
//! or a webhook changes through the API. The index buckets active webhooks by
//! owner (webhooks without `owners` go to a shared bucket), and within a
//! bucket by the first segment of each event glob (`record` for `record.*`),
//! with a wildcard list for globs that start with `*`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{Source, Webhook};
use crate::event::Event;
use crate::store::Target;

#[derive(Default)]
pub struct Table {
    /// Every webhook by id, in id order (the API lists them so).
    hooks: BTreeMap<String, Arc<Webhook>>,
    by_owner: HashMap<String, Bucket>,
    any_owner: Bucket,
}

/// Webhooks that could want an event, by the event type's first segment.
#[derive(Default)]
struct Bucket {
    by_segment: HashMap<String, Vec<Arc<Webhook>>>,
    wildcard: Vec<Arc<Webhook>>,
}

impl Bucket {
    fn add(&mut self, hook: &Arc<Webhook>) {
        let mut placed = Vec::new();
        for glob in &hook.events {
            let pattern = glob.as_str();
            let segment = pattern.split('.').next().unwrap_or_default();
            if segment.contains('*') {
                if !placed.contains(&None) {
                    self.wildcard.push(hook.clone());
                    placed.push(None);
                }
            } else if !placed.contains(&Some(segment)) {
                self.by_segment
                    .entry(segment.to_owned())
                    .or_default()
                    .push(hook.clone());
                placed.push(Some(segment));
            }
        }
    }

    fn candidates<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Arc<Webhook>> {
        let segment = event_type.split('.').next().unwrap_or_default();
        self.by_segment
            .get(segment)
            .into_iter()
            .flatten()
            .chain(&self.wildcard)
    }
}

impl Table {
    /// A table of `config` webhooks and `api` webhooks (ids are unique
    /// across both; the caller checks).
    pub fn new(config: &[Arc<Webhook>], api: impl IntoIterator<Item = Arc<Webhook>>) -> Table {
        let mut t = Table::default();
        for hook in config.iter().cloned().chain(api) {
            if hook.active {
                match &hook.owners {
                    None => t.any_owner.add(&hook),
                    Some(owners) => {
                        for o in owners {
                            t.by_owner.entry(o.clone()).or_default().add(&hook);
                        }
                    }
                }
            }
            t.hooks.insert(hook.id.clone(), hook);
        }
        t
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Webhook>> {
        self.hooks.get(id)
    }

    /// Every webhook in id order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Webhook>> {
        self.hooks.values()
    }

    /// Webhooks after `after` in id order.
    pub fn after<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a Arc<Webhook>> {
        use std::ops::Bound;
        let start = match after {
            Some(id) => Bound::Excluded(id.to_owned()),
            None => Bound::Unbounded,
        };
        self.hooks
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(_, h)| h)
    }

    /// The API webhooks, for rebuilding after a config reload.
    pub fn api_hooks(&self) -> impl Iterator<Item = &Arc<Webhook>> {
        self.hooks.values().filter(|h| h.source == Source::Api)
    }

    /// The active webhooks whose `events` and `owners` match `event`, each
    /// once, in id order.
    pub fn matching(&self, event: &Event) -> Vec<Target> {
        let owned = event
            .owner_id
            .as_deref()
            .and_then(|o| self.by_owner.get(o))
            .into_iter()
            .flat_map(|b| b.candidates(&event.event_type));
        let mut out: Vec<&Arc<Webhook>> = self
            .any_owner
            .candidates(&event.event_type)
            .chain(owned)
            .filter(|w| w.wants(&event.event_type, event.owner_id.as_deref()))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        out.into_iter()
            .map(|w| Target {
                webhook: w.id.clone(),
                tenant: w.tenant().map(str::to_owned),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn table(webhooks: &str) -> Table {
        let c = Config::parse(std::path::Path::new("/x/config.toml"), webhooks).unwrap();
        Table::new(&c.webhooks, [])
    }

    fn event(t: &str, owner: Option<&str>) -> Event {
        Event {
            id: "e".into(),
            event_type: t.into(),
            owner_id: owner.map(Into::into),
            data: "{}".into(),
            occurred_at: String::new(),
        }
    }

    fn ids(t: &Table, e: &Event) -> Vec<String> {
        t.matching(e).into_iter().map(|x| x.webhook).collect()
    }

    #[test]
    fn the_index_finds_exactly_what_a_scan_would() {
        let t = table(
            r#"
[[webhooks]]
id = "all"
url = "https://e.com"
[[webhooks]]
id = "records"
url = "https://e.com"
events = ["record.*", "form.create"]
[[webhooks]]
id = "deletes"
url = "https://e.com"
events = ["*.delete", "record.*"]
[[webhooks]]
id = "org42"
url = "https://e.com"
owners = ["org_42"]
events = ["record.create"]
[[webhooks]]
id = "two-orgs"
url = "https://e.com"
owners = ["org_42", "org_7"]
[[webhooks]]
id = "off"
url = "https://e.com"
active = false
[[webhooks]]
id = "bare-star"
url = "https://e.com"
events = ["rec*"]
"#,
        );
        let cases = [
            ("record.create", Some("org_42")),
            ("record.delete", None),
            ("form.create", Some("org_7")),
            ("form.delete", Some("org_1")),
            ("recording", None),
            ("x", None),
        ];
        for (ty, owner) in cases {
            let e = event(ty, owner);
            let scan: Vec<String> = t
                .all()
                .filter(|w| w.active && w.wants(ty, owner))
                .map(|w| w.id.clone())
                .collect();
            assert_eq!(ids(&t, &e), scan, "{ty} {owner:?}");
        }
        assert_eq!(
            ids(&t, &event("record.delete", Some("org_42"))),
            ["all", "bare-star", "deletes", "records", "two-orgs"]
        );
        let org = t.matching(&event("record.create", Some("org_42")));
        let org42 = org.iter().find(|x| x.webhook == "org42").unwrap();
        assert_eq!(org42.tenant.as_deref(), Some("org_42"));
    }
}
