//! `docs/cli.md`, rendered from the clap definitions: every visible
//! command's `--help`, in the order of the command tree. `sextant
//! help-markdown` (hidden) prints it; a test fails when the file drifts.

use super::Cli;
use clap::CommandFactory;

const PREAMBLE: &str = "# The sextant command line\n\n\
Generated from the clap definitions by `sextant help-markdown > docs/cli.md` \
(a test fails when this file and the definitions differ). Exit statuses: 0 \
success, 1 runtime failure, 2 bad usage or bad input (the message names the \
file, field or id at fault). Every list/show command, and every command that \
changes state, takes `--format table|json|yaml`.\n";

/// The whole `docs/cli.md`.
pub fn render() -> String {
    let mut paths = Vec::new();
    command_paths(&Cli::command(), &mut Vec::new(), &mut paths);
    let mut out = String::from(PREAMBLE);
    for path in paths {
        let name: Vec<&str> = std::iter::once("sextant")
            .chain(path.iter().map(String::as_str))
            .collect();
        out.push_str(&format!("\n## {}\n\n```text\n", name.join(" ")));
        for line in help_of(&path).trim_end().lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str("```\n");
    }
    out
}

/// Every visible command's path below `sextant`, depth first.
fn command_paths(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(path.clone());
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        path.push(sub.get_name().to_string());
        command_paths(sub, path, out);
        path.pop();
    }
}

/// What `sextant PATH… --help` prints.
fn help_of(path: &[String]) -> String {
    let argv = std::iter::once("sextant".to_string())
        .chain(path.iter().cloned())
        .chain(std::iter::once("--help".to_string()));
    match Cli::command().try_get_matches_from(argv) {
        Err(e) => e.render().to_string(),
        Ok(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_cli_md_is_the_rendering_of_the_clap_tree() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let rendered = render();
        if on_disk != rendered {
            let line = on_disk
                .lines()
                .zip(rendered.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| on_disk.lines().count().min(rendered.lines().count()));
            panic!(
                "docs/cli.md differs from the clap definitions from line {}: regenerate it with\n    \
                 cargo run -q -p sextant -- help-markdown > docs/cli.md",
                line + 1
            );
        }
    }

    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let said = |s: Option<&clap::builder::StyledStr>| {
                    s.is_some_and(|h| !h.to_string().trim().is_empty())
                };
                if !said(arg.get_help()) && !said(arg.get_long_help()) {
                    missing.push(format!("{path}: argument {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{sub_path}: the command itself"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut root = Cli::command();
        root.build();
        let mut missing = Vec::new();
        walk(&root, "sextant", &mut missing);
        assert!(
            missing.is_empty(),
            "without help text:\n  {}",
            missing.join("\n  ")
        );
    }
}
