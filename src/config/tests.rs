use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/weir/config.toml"), text)
}

fn problems(text: &str) -> Vec<String> {
    parse(text).expect_err("config should be rejected").problems
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let c = parse("[[webhooks]]\nid = \"a\"\nurl = \"https://example.com/h\"\n").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8700");
    assert_eq!(c.server.data_dir, Path::new("/etc/weir/data"));
    assert_eq!(c.server.max_body_bytes, 1_048_576);
    assert_eq!(c.plugins, PluginLimits::DEFAULT);
    let w = &c.webhooks[0];
    assert!(w.active);
    assert_eq!(w.ordering, Ordering::Unordered);
    assert!(w.wants("anything.at_all", None));
    assert_eq!(w.policy.timeout, Duration::from_secs(20));
    assert_eq!(w.policy.max_retries, 25);
    assert_eq!(w.policy.success, 200..=207);
    assert_eq!(w.policy.max_in_flight, 32);
    assert_eq!(w.policy.disable_after, Duration::from_secs(120 * 3600));
    assert!(w.policy.retry_delays.is_empty());
}

#[test]
fn webhook_overrides_delivery_defaults() {
    let c = parse(
        r#"
[delivery]
timeout_secs = 5
max_retries = 3
allow_targets = ["127.0.0.0/8"]

[[webhooks]]
id = "a"
url = "http://127.0.0.1:9/x"
max_retries = 7
retry_delays_secs = [1, 2]
success_status = [200, 299]

[[webhooks]]
id = "b"
url = "http://127.0.0.1:9/y"
"#,
    )
    .unwrap();
    let (a, b) = (&c.webhooks[0].policy, &c.webhooks[1].policy);
    assert_eq!(
        (a.timeout, a.max_retries, a.success.clone()),
        (Duration::from_secs(5), 7, 200..=299)
    );
    assert_eq!(
        a.retry_delays,
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!(b.max_retries, 3);
    assert_eq!(
        b.allow_targets,
        vec!["127.0.0.0/8".parse::<IpNet>().unwrap()]
    );
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let p = problems("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 5\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("/etc/weir/config.toml:3:"), "{}", p[0]);
    assert!(p[0].contains("listen_port"), "{}", p[0]);
}

#[test]
fn every_validation_problem_is_reported_at_once() {
    let p = problems(
        r#"
[[webhooks]]
id = "dup"
url = "https://example.com/a"

[[webhooks]]
id = "dup"
url = "not a url"
events = ["Record.*"]
secrets = ["nope"]
ordering = "sorted"
"#,
    );
    let all = p.join("\n");
    assert_eq!(p.len(), 5, "{all}");
    assert!(
        all.contains("config.toml:7: webhooks[1].id: duplicate webhook id \"dup\""),
        "{all}"
    );
    assert!(
        all.contains("config.toml:8: webhooks[1].url: not a valid URL"),
        "{all}"
    );
    assert!(all.contains("config.toml:9: webhooks[1].events"), "{all}");
    assert!(
        all.contains("config.toml:10: webhooks[1].secrets: a secret must start with `whsec_`"),
        "{all}"
    );
    assert!(
        all.contains("config.toml:11: webhooks[1].ordering"),
        "{all}"
    );
}

#[test]
fn secrets_are_never_echoed() {
    let p = problems(
        "[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nsecrets = [\"whsec_!!!topsecret!!!\"]\n",
    );
    assert!(!p[0].contains("topsecret"), "{}", p[0]);
    let c = parse("[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n").unwrap();
    assert!(!format!("{c:?}").contains("MfKQ9r8"));
}

#[test]
fn missing_plugin_is_an_error() {
    let p = problems(
        "[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\n[[webhooks.plugins]]\nname = \"nowhere\"\n",
    );
    assert!(
        p[0].contains(":5: webhooks[0].plugins[0].name: plugin \"nowhere\" not found"),
        "{}",
        p[0]
    );
}

#[test]
fn owners_filter_and_globs() {
    let c = parse(
        "[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nevents = [\"record.*\", \"form.create\"]\nowners = [\"org_42\"]\n",
    )
    .unwrap();
    let w = &c.webhooks[0];
    assert!(w.wants("record.update", Some("org_42")));
    assert!(w.wants("form.create", Some("org_42")));
    assert!(!w.wants("form.delete", Some("org_42")));
    assert!(!w.wants("record.update", Some("org_7")));
    assert!(!w.wants("record.update", None));
}

#[test]
fn tokens_compare_exactly() {
    let t = Token::new("s3cret".into()).unwrap();
    assert!(t.matches("s3cret"));
    assert!(!t.matches("s3cre"));
    assert!(!t.matches("s3cret "));
    assert!(!t.matches(""));
    assert!(Token::new(String::new()).is_none());
}

/// Edits near secrets that toml or validation refuse: each names file, line
/// and key, and none repeats the value.
#[test]
fn errors_under_secret_keys_never_quote_the_value() {
    let hook = "[[webhooks]]\nid = \"a\"\n";
    let cases = [
        (
            format!("{hook}url = \"https://e.com\"\nsecrets = \"whsec_TOPSECRETvalue\"\n"),
            "config.toml:4: webhooks[0].secrets: invalid type: string, expected a sequence",
            "TOPSECRET",
        ),
        (
            format!("{hook}url = \"http://user:PASSWORD@127.0.0.1:99999/x\"\n"),
            "config.toml:3: webhooks[0].url: not a valid URL (invalid port number)",
            "PASSWORD",
        ),
        (
            "[server]\nadmin_token = 987654321987\n".to_owned(),
            "config.toml:2: server.admin_token: invalid type: integer, expected a string",
            "987654321987",
        ),
        (
            format!("{hook}url = \"https://e.com\"\nheaders = {{ \"x-api-key\" = 424242 }}\n"),
            "config.toml:4: webhooks[0].headers.x-api-key: invalid type: integer",
            "424242",
        ),
        (
            format!("{hook}url = \"https://e.com\"\nsecrets = [\"whsec_ok\", 31337]\n"),
            "config.toml:4: webhooks[0].secrets[1]: invalid type: integer",
            "31337",
        ),
        (
            format!("{hook}url = \"https://e.com\"\nsecrets = [\"whsec_abcd!efgh\"]\n"),
            "config.toml:4: webhooks[0].secrets: the part after `whsec_` is not valid",
            "!",
        ),
    ];
    for (text, expected, secret) in cases {
        let all = problems(&text).join("\n");
        assert!(all.contains(expected), "{all}");
        assert!(!all.contains(secret), "{secret:?} shown in: {all}");
    }
}

#[test]
fn errors_under_other_keys_still_show_the_value() {
    let p = problems("[server]\nlisten = 8700\n");
    assert_eq!(
        p,
        ["/etc/weir/config.toml:2: server.listen: invalid type: integer `8700`, expected a string"]
    );
}
