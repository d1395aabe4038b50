use std::time::Duration;

use super::*;

#[derive(Debug, serde::Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
struct Limits {
    user_failures: u32,
    #[serde(with = "crate::settings::duration")]
    window: Duration,
    networks: Vec<String>,
}

#[derive(Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Top {
    listen: String,
    #[serde(default)]
    backlog: u32,
}

#[derive(Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Rule {
    name: String,
}

#[derive(Debug, serde::Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
struct Extra {
    issuer: Option<String>,
}

const FILE: &str = "listen = \"127.0.0.1:1\"\n\n[limits]\nuser_failures = 5\nwindow = \"5m\"\n\n[[rule]]\nname = \"a\"\n\n[[rule]]\nname = \"b\"\nissuer = \"https://i\"\n";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn line(file: &str, line: usize) -> Origin {
    Origin::File {
        file: file.into(),
        line,
    }
}

#[test]
fn sections_read_from_the_file_and_the_environment_overrides_them() {
    let source = SettingsSource::new("g.toml", FILE).with_env(
        "AUTH_",
        env(&[
            ("AUTH_LIMITS__WINDOW", "1m"),
            ("AUTH_LIMITS__NETWORKS", "[\"10.0.0.0/8\"]"),
            ("AUTH_LISTEN", "0.0.0.0:5432"),
            ("AUTH_RULE__0__NAME", "z"),
            ("OTHER", "x"),
        ]),
    );
    let s = source.parse().unwrap();
    let limits: Limits = s.section("limits").unwrap();
    assert_eq!(
        limits,
        Limits {
            user_failures: 5,
            window: Duration::from_secs(60),
            networks: vec!["10.0.0.0/8".into()],
        }
    );
    let top: Top = s.top_level().unwrap();
    assert_eq!(top.listen, "0.0.0.0:5432");
    let rules = s.each::<Rule, Extra>("rule", &["issuer"]).unwrap();
    let names: Vec<_> = rules
        .iter()
        .map(|e| e.value.as_ref().unwrap().0.name.clone())
        .collect();
    assert_eq!(names, ["z", "b"]);
    assert_eq!(
        rules[1].value.as_ref().unwrap().1.issuer.as_deref(),
        Some("https://i")
    );
    assert_eq!(rules[1].origin, line("g.toml", 10));
    assert_eq!(s.origin("limits.user_failures"), line("g.toml", 4));
    assert_eq!(
        s.origin("limits.window"),
        Origin::Env("AUTH_LIMITS__WINDOW".into())
    );
    assert_eq!(s.origin("rule[1].issuer"), line("g.toml", 12));
    let absent: Limits = s.section("nothing").unwrap();
    assert_eq!(absent, Limits::default());
}

#[test]
fn a_problem_names_its_line_or_its_variable() {
    let text = "listen = \"x\"\n[limits]\nuser_failures = \"five\"\n";
    let s = SettingsSource::new("g.toml", text);
    let s = s.parse().unwrap();
    let p = s.section::<Limits>("limits").unwrap_err();
    assert_eq!(p.origin, line("g.toml", 3), "{p}");
    assert_eq!(p.setting, "limits");

    let source = SettingsSource::new("g.toml", text)
        .with_env("AUTH_", env(&[("AUTH_LIMITS__USER_FAILURES", "many")]));
    let s = source.parse().unwrap();
    let p = s.section::<Limits>("limits").unwrap_err();
    assert_eq!(
        p.origin,
        Origin::Env("AUTH_LIMITS__USER_FAILURES".into()),
        "{p}"
    );

    let typo = SettingsSource::new("g.toml", "[limits]\nuser_failure = 3\n");
    let p = typo
        .parse()
        .unwrap()
        .section::<Limits>("limits")
        .unwrap_err();
    assert_eq!(p.origin, line("g.toml", 2), "{p}");
    assert_eq!(
        p.hint.as_deref(),
        Some("did you mean `user_failures`?"),
        "{p}"
    );
}

#[test]
fn syntax_errors_are_all_listed_with_their_lines() {
    let source = SettingsSource::new("g.toml", "a = 1\nb = \nc = 3\nd = [\n");
    let problems = source.parse().unwrap_err();
    assert!(!problems.is_empty());
    assert_eq!(problems[0].origin, line("g.toml", 2), "{problems:?}");
}

#[test]
fn unknown_keys_from_the_file_are_problems_and_from_the_environment_warnings() {
    let source = SettingsSource::new("g.toml", "lisen = \"x\"\n").with_env(
        "AUTH_",
        env(&[("AUTH_SERVICE_HOST", "10.0.0.1"), ("AUTH_LISTN", "x")]),
    );
    let s = source.parse().unwrap();
    let (problems, warnings) = s.unknown_keys(&["listen", "limits"]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].origin, line("g.toml", 1));
    assert_eq!(problems[0].hint.as_deref(), Some("did you mean `listen`?"));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.origin == Origin::Env("AUTH_LISTN".into())
                && w.hint.as_deref().is_some_and(|h| h.contains("AUTH_LISTEN")))
    );
}

#[test]
fn an_index_past_the_list_is_refused() {
    let source = SettingsSource::new("g.toml", "[[rule]]\nname = \"a\"\n")
        .with_env("AUTH_", env(&[("AUTH_RULE__3__NAME", "x")]));
    let problems = source.parse().unwrap_err();
    assert_eq!(problems[0].origin, Origin::Env("AUTH_RULE__3__NAME".into()));
    assert!(
        problems[0].message.contains("the next one is 1"),
        "{problems:?}"
    );
    let appended = SettingsSource::new("g.toml", "[[rule]]\nname = \"a\"\n")
        .with_env("AUTH_", env(&[("AUTH_RULE__1__NAME", "x")]));
    let s = appended.parse().unwrap();
    assert_eq!(s.each::<Rule, Extra>("rule", &[]).unwrap().len(), 2);
}

#[test]
fn locate_places_a_build_refusal() {
    let source = SettingsSource::new("g.toml", FILE);
    let s = source.parse().unwrap();
    let p = s.locate("limits", Invalid::new("window", "too short").hint("use 5m"));
    assert_eq!(p.origin, line("g.toml", 5));
    assert_eq!(p.setting, "limits.window");
    assert_eq!(
        p.to_string(),
        "g.toml:5: limits.window: too short\n    hint: use 5m"
    );
}
