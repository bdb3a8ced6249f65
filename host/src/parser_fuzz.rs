//! Fuzzing the YAML parsers (issue 20): action types, policies, cluster
//! snapshots, action-plan imports, `plan --input` files and the config file.
//!
//! Each target mutates valid seeds from the repository (`action-types/`,
//! `policies/`, `examples/clusters/small.yaml`, `tests/vectors/`) and also
//! parses YAML-ish text made from YAML's indicators, and asserts that the
//! parser does not panic, does not hang (every case within
//! [`CASE_BOUND`]), and that every error carries a location: a line and
//! column inside the text for syntax and structure errors, the entry or
//! field at fault for semantic ones. Case counts are bounded so that the
//! whole set runs in seconds (`cargo test -p sextant --lib parser_fuzz`);
//! `SEXTANT_FUZZ_CASES` raises them for a longer run.

use crate::action_types::ActionType;
use crate::config::Config;
use crate::input::{DataError, parse_yaml};
use crate::policy::Policy;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError};
use sextant_plugin_api::model::ClusterModel;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest one parse may take (a debug build on a loaded machine).
const CASE_BOUND: Duration = Duration::from_secs(2);

/// Pieces of YAML that parsers trip on: indicators, tags, anchors and
/// aliases, flow collections, block scalars, special floats and huge
/// numbers, documents and directives.
const SNIPPETS: &[&str] = &[
    ": ",
    "- ",
    "? ",
    "!",
    "!!binary ",
    "!include ",
    "!!str ",
    "&a ",
    "*a",
    "<<: *a",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "\n",
    "\n  ",
    "\n- ",
    "  ",
    "\t",
    "# c",
    "'",
    "\"",
    "|\n  x",
    ">-\n  y",
    "1e300",
    ".nan",
    ".inf",
    "-.inf",
    "-1",
    "~",
    "null",
    "true",
    "0x1f",
    "18446744073709551616",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "%TAG ! tag:x,2000:\n",
    "é",
    "\u{0}",
    "\\",
    "{{ x }}",
    "60s",
    "99999999h",
    "name",
    "version: 1.0.0",
    "handler: nop",
    "timeout",
    "queue: 1000000000",
    "nodes",
    "actions",
];

/// Files under `dir` (relative to the repository) ending in `.yaml`.
fn seeds_in(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(&keep)
        })
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// A mutation of a seed, applied on characters (never splitting one).
#[derive(Clone, Debug)]
enum Mutation {
    Insert(usize, &'static str),
    Delete(usize, usize),
    Replace(usize, char),
    DuplicateLine(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), proptest::sample::select(SNIPPETS)).prop_map(|(i, s)| Mutation::Insert(i, s)),
        2 => (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (any::<usize>(), proptest::char::any()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(seed: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *m {
            Mutation::Insert(i, s) => {
                let i = at(i, chars.len());
                chars.splice(i..i, s.chars());
            }
            Mutation::Delete(i, n) => {
                let i = at(i, chars.len());
                let end = (i + n).min(chars.len());
                chars.drain(i..end);
            }
            Mutation::Replace(i, c) => {
                if !chars.is_empty() {
                    let i = i % chars.len();
                    chars[i] = c;
                }
            }
            Mutation::DuplicateLine(i) => {
                let text: String = chars.iter().collect();
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                if !lines.is_empty() {
                    let k = i % lines.len();
                    let mut out = String::new();
                    for (j, l) in lines.iter().enumerate() {
                        out.push_str(l);
                        if j == k {
                            out.push_str(l);
                        }
                    }
                    chars = out.chars().collect();
                }
            }
            Mutation::Truncate(i) => {
                let i = at(i, chars.len());
                chars.truncate(i);
            }
        }
    }
    chars.into_iter().collect()
}

/// A mutated seed, or YAML-ish text built from the snippets alone.
fn input(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let mutated = (
        proptest::sample::select(seeds),
        proptest::collection::vec(mutation(), 1..6),
    )
        .prop_map(|(seed, ms)| apply(&seed, &ms));
    let random = proptest::collection::vec(proptest::sample::select(SNIPPETS), 0..40)
        .prop_map(|parts| parts.concat());
    prop_oneof![4 => mutated, 1 => random]
}

fn cases(default: u32) -> RunnerConfig {
    let cases = std::env::var("SEXTANT_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    }
}

/// `line`:`column` lies inside `text` (one past the last line allowed:
/// the end of the input).
fn check_location(text: &str, line: usize, column: usize, what: &str) -> Result<(), TestCaseError> {
    let lines = crate::input::yaml_lines(text).len().max(1);
    prop_assert!(
        line >= 1 && column >= 1 && line <= lines + 1,
        "{what}: location {line}:{column} outside the text ({lines} lines)"
    );
    Ok(())
}

/// Runs `parse` on `text` on a thread of its own, and fails the case if
/// it has not answered within [`CASE_BOUND`] (a hang fails the test instead
/// of stalling it; the stuck thread is left behind).
fn timed<T: Send + 'static>(
    text: &str,
    parse: impl FnOnce(String) -> T + Send + 'static,
) -> Result<T, TestCaseError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = text.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(parse(owned));
    });
    match rx.recv_timeout(CASE_BOUND) {
        Ok(out) => Ok(out),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "no answer within {CASE_BOUND:?} on {text:?}"
        ))),
        // The parser panicked: the thread's panic message is on stderr.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(TestCaseError::fail(format!(
            "the parser panicked on {text:?}"
        ))),
    }
}

/// `DataError::Invalid` has a location inside the text.
fn check_data_error(text: &str, e: &DataError) -> Result<(), TestCaseError> {
    match e {
        DataError::Invalid { line, column, .. } => {
            check_location(text, *line, *column, &e.to_string())
        }
        DataError::Read(r) => Err(TestCaseError::fail(format!("a parse read a file: {r}"))),
    }
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn action_type_parser(text in input(seeds_in("action-types", |_| true))) {
        if let Err(errs) = timed(&text, |t| ActionType::parse(&t, Path::new("t.yaml")))? {
            prop_assert!(!errs.0.is_empty(), "an error with no problem in it");
            for e in &errs.0 {
                check_location(&text, e.line, e.column, &e.to_string())?;
                prop_assert!(e.to_string().starts_with("t.yaml:"), "{e}");
            }
        }
    }

    #[test]
    fn policy_parser(text in input(seeds_in("policies", |_| true))) {
        if let Err(e) = timed(&text, |t| Policy::parse(&t, Path::new("p.yaml")))? {
            check_location(&text, e.line, e.column, &e.to_string())?;
            prop_assert!(e.to_string().starts_with("p.yaml:"), "{e}");
        }
    }

    #[test]
    fn snapshot_parser(text in input(seeds_in("examples/clusters", |n| n == "small.yaml"))) {
        match timed(&text, |t| parse_yaml::<ClusterModel>(&t, Path::new("s.yaml")))? {
            Err(e) => check_data_error(&text, &e)?,
            // Semantic problems name their entry.
            Ok(m) => for e in timed(&text, move |_| m.check())?.errors {
                prop_assert!(
                    ["node ", "instance ", "volume ", "storage pool "].iter().any(|k| e.starts_with(k)),
                    "{e}"
                );
            },
        }
    }

    #[test]
    fn plan_import_parser(text in input(seeds_in("tests/vectors/watcher-17.0.0", |n| n.starts_with('A')))) {
        if let Err(e) = timed(&text, |t| parse_yaml::<crate::cli::import::ImportFile>(&t, Path::new("a.yaml")).map(|_| ()))? {
            check_data_error(&text, &e)?;
        }
    }

    #[test]
    fn plan_input_parser(text in input(plan_input_seeds())) {
        match timed(&text, |t| crate::plan::read_input(&t).map(|_| ()))? {
            Ok(()) => {}
            Err(crate::plan::input::InputError::Syntax(m)) => match line_column(&m) {
                Some((l, c)) => check_location(&text, l, c, &m)?,
                None => return Err(TestCaseError::fail(format!("no line and column: {m}"))),
            },
            // Semantic: names the field.
            Err(crate::plan::input::InputError::Invalid(m)) => {
                prop_assert!(m.starts_with("solution: "), "{m}");
            }
        }
    }

    #[test]
    fn config_parser(text in input(vec![CONFIG_SEED.to_string()])) {
        if let Err(e) = timed(&text, |t| Config::parse(&t, Path::new("/c.yaml")))? {
            let msg = e.to_string();
            prop_assert!(msg.starts_with("/c.yaml: line "), "no location: {msg}");
            match line_column(&msg) {
                Some((l, c)) => check_location(&text, l, c, &msg)?,
                None => return Err(TestCaseError::fail(format!("no line and column: {msg}"))),
            }
        }
    }
}

/// The first `line L column C` in a message.
fn line_column(msg: &str) -> Option<(usize, usize)> {
    let (_, rest) = msg.split_once("line ")?;
    let (line, rest) = rest.split_once(" column ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// The planner vectors, as YAML and as JSON (`plan --input` reads JSON
/// without building its parameters' values: another parser).
fn plan_input_seeds() -> Vec<String> {
    let yaml = seeds_in("tests/vectors/watcher-17.0.0", |n| !n.starts_with('A'));
    let json: Vec<String> = yaml
        .iter()
        .filter_map(|y| serde_yaml_ng::from_str::<serde_json::Value>(y).ok())
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .collect();
    yaml.into_iter().chain(json).collect()
}

const CONFIG_SEED: &str = "plugin_dirs: [/opt/sextant/plugins, ~/p]\naction_type_dirs: [types]\nmapper: default\ndrivers: [sim]\ncollector: sim\nnotifications:\n  - {type: log}\n  - {type: jsonl, path: /var/log/sextant.jsonl}\n  - type: webhook\n    url: \"http://127.0.0.1:9/hook\"\n    retries: 3\n    timeout: 5s\n    queue: 1000\n";

#[test]
fn the_seeds_are_found_and_valid() {
    let types = seeds_in("action-types", |_| true);
    assert!(types.len() >= 10, "{} action types", types.len());
    for t in &types {
        ActionType::parse(t, Path::new("t.yaml")).expect("a shipped type parses");
    }
    for p in seeds_in("policies", |_| true) {
        Policy::parse(&p, Path::new("p.yaml")).expect("a shipped policy parses");
    }
    assert_eq!(
        seeds_in("examples/clusters", |n| n == "small.yaml").len(),
        1
    );
    assert!(!seeds_in("tests/vectors/watcher-17.0.0", |n| n.starts_with('A')).is_empty());
    Config::parse(CONFIG_SEED, Path::new("/c.yaml")).expect("the config seed parses");
}
