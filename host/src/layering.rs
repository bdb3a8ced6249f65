//! The dependency rules of docs/architecture.md's code map, checked on the
//! source (tests only): which module of this crate may name which, and the
//! external crates only one module may name. Comments, doc comments and
//! `#[cfg(test)]` items are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's top-level modules (`src/NAME.rs` or `src/NAME/`).
fn modules(src: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for e in std::fs::read_dir(src).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(m) = name.strip_suffix(".rs") {
            found.insert(m.to_string());
        } else if e.path().is_dir() {
            found.insert(name);
        }
    }
    for root in ["lib", "main", "layering", "parser_fuzz"] {
        found.remove(root);
    }
    found
}

/// The crate's source files: each as its path under src/ and its text.
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap_or(f).to_string_lossy();
            (
                rel.into_owned(),
                std::fs::read_to_string(f).unwrap_or_default(),
            )
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of `text` that are code outside tests: comments removed, each
/// `#[cfg(test)]` item (up to its closing brace or semicolon) blanked.
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let code = line.split("//").next().unwrap_or_default();
        out.push(code.to_string());
    }
    out
}

/// `module -> (module it names -> first place)` over the crate's code.
fn dependencies() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut deps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (rel, text) in sources() {
        let top = rel
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs");
        if !mods.contains(top) || rel.ends_with("testing.rs") {
            continue;
        }
        for (n, line) in code_lines(&text).iter().enumerate() {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name != top && mods.contains(&name) {
                    deps.entry(top.to_string())
                        .or_default()
                        .entry(name)
                        .or_insert_with(|| format!("{rel}:{}", n + 1));
                }
            }
        }
    }
    deps
}

/// The leaves: they name no other module, and any module may name them.
const LEAVES: &[&str] = &[
    "states",
    "duration",
    "input",
    "suggest",
    "trust",
    "installation",
];

/// Names `module` may use besides the leaves, for the modules whose
/// dependencies are closed.
const ONLY: &[(&str, &[&str])] = &[
    ("plugins", &[]),
    // `policy::OnFailure` is stored with flows; the Syncer reads the
    // plugins' manifests; a retry resolves finished actions' templates.
    ("store", &["states", "policy", "plugins", "action_types"]),
    ("notify", &["store"]),
    ("telemetry", &["store"]),
    ("datasource", &["config"]),
];

/// Modules that never name others: the engines never reach the edges
/// (the CLI, the API) or the notifier, which only reads the store.
const NEVER: &[(&str, &[&str])] = &[
    (
        "plan",
        &[
            "apply",
            "decide",
            "ops",
            "api",
            "cli",
            "notify",
            "telemetry",
        ],
    ),
    (
        "decide",
        &["apply", "ops", "api", "cli", "notify", "telemetry"],
    ),
    ("apply", &["ops", "api", "cli", "notify", "telemetry"]),
    ("ops", &["api", "cli", "notify", "telemetry"]),
    (
        "action_types",
        &["store", "apply", "decide", "plan", "ops", "api", "cli"],
    ),
    (
        "policy",
        &["store", "apply", "decide", "plan", "ops", "api", "cli"],
    ),
    ("api", &["apply"]),
    ("config", &["plan", "decide", "apply", "ops", "cli"]),
];

/// Known breaks of the rules, each to be fixed where it lies:
/// `(module, module it names)`.
const KNOWN: &[(&str, &str)] = &[];

#[test]
fn modules_name_only_what_the_code_map_allows() {
    let deps = dependencies();
    assert!(
        deps.get("cli").is_some_and(|d| d.contains_key("store")),
        "the scan found nothing: {deps:?}"
    );
    let mut broken = Vec::new();
    for leaf in LEAVES {
        for (d, at) in deps.get(*leaf).into_iter().flatten() {
            broken.push(format!("{leaf} names {d} ({at}): it is a leaf"));
        }
    }
    for (m, allowed) in ONLY {
        for (d, at) in deps.get(*m).into_iter().flatten() {
            if !allowed.contains(&d.as_str()) && !LEAVES.contains(&d.as_str()) {
                broken.push(format!(
                    "{m} names {d} ({at}); it may name only {allowed:?} and the leaves"
                ));
            }
        }
    }
    for (m, never) in NEVER {
        for (d, at) in deps.get(*m).into_iter().flatten() {
            if never.contains(&d.as_str()) {
                broken.push(format!("{m} names {d} ({at}), which it must never"));
            }
        }
    }
    // Only the command line depends on the command line.
    for (m, names) in &deps {
        if m != "cli"
            && let Some(at) = names.get("cli")
            && !KNOWN.contains(&(m.as_str(), "cli"))
        {
            broken.push(format!("{m} names cli ({at}): only the binary does"));
        }
    }
    for (m, d) in KNOWN {
        assert!(
            deps.get(*m).is_some_and(|n| n.contains_key(*d)),
            "{m} no longer names {d}: take it off KNOWN"
        );
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

/// Files outside `allowed` (prefixes of paths under src/) that name `word`
/// in code.
fn named_outside(word: &str, allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (rel, text) in sources() {
        if allowed.iter().any(|a| rel.starts_with(a)) || rel == "layering.rs" {
            continue;
        }
        if let Some(n) = code_lines(&text).iter().position(|l| l.contains(word)) {
            found.push(format!("{rel}:{}", n + 1));
        }
    }
    found
}

#[test]
fn only_the_loader_names_abi_stable_and_only_the_store_a_database_crate() {
    // plan/ built ActionSpec from abi_stable's RString itself.
    assert_eq!(
        named_outside("abi_stable::", &["plugins/abi.rs"]),
        Vec::<String>::new()
    );
    for db in ["rusqlite", "postgres::", "tokio_postgres"] {
        assert_eq!(named_outside(db, &["store/"]), Vec::<String>::new(), "{db}");
    }
    assert_eq!(
        named_outside("lib_header_from_path", &["plugins/abi.rs"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_cfg_test_item_and_comments_are_left_out() {
    let text = "use crate::a; // crate::b\n#[cfg(test)]\nmod tests {\n    use crate::c;\n}\n/// crate::d\nfn f() { crate::e::g() }\n";
    let code = code_lines(text).join("\n");
    assert!(
        code.contains("crate::a") && code.contains("crate::e"),
        "{code}"
    );
    assert!(
        !code.contains("crate::b") && !code.contains("crate::c"),
        "{code}"
    );
    assert!(!code.contains("crate::d"), "{code}");
}
