//! `sextant plugins list | show | check`.

use super::output::{Format, Table, print_structured};
use super::output::{out, outln};
use super::{CliError, CliResult, Env, user_lang};
use crate::plugins::{EntryRef, Library, PluginRegistry, discovery};
use clap::Subcommand;

use serde_json::json;
use sextant_plugin_api::Kind;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// What was discovered, loaded and rejected, and why (exit 0 even when
    /// some files are rejected).
    List {
        /// Only entries of this kind (action_handler, strategy, planner,
        /// action_mapper, collector).
        #[arg(long)]
        kind: Option<Kind>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One entry's manifest and parameter schema: NAME or KIND/NAME.
    Show {
        /// NAME, or KIND/NAME when several kinds have an entry of that name.
        name: String,
        /// Display names in this language (default: $LANG, else English).
        #[arg(long)]
        lang: Option<String>,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Whether FILE would load, and why not (exit 2 when it would not).
    Check {
        /// The shared library (.so) to check.
        file: PathBuf,
        /// Output format: a table for people, json or yaml for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(env: &Env, cmd: PluginsCommand) -> CliResult {
    match cmd {
        PluginsCommand::List { kind, format } => list(env, kind, format),
        PluginsCommand::Show { name, lang, format } => show(env, &name, lang, format),
        PluginsCommand::Check { file, format } => check(&file, format),
    }
}

fn list(env: &Env, kind: Option<Kind>, format: Format) -> CliResult {
    let reg = env.registry()?;
    let lang = user_lang(None);
    let entries = crate::ops::plugins::entries(&reg, kind);
    let doc = crate::ops::plugins::list(&reg, kind, &lang);
    if print_structured(format, &doc)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["KIND", "NAME", "VERSION", "GOAL", "FILE"]);
    for e in &entries {
        let v = crate::ops::plugins::entry_view(e, &lang);
        t.row(vec![
            v.kind.to_string(),
            v.name.to_string(),
            v.version.to_string(),
            v.goal.unwrap_or("-").to_string(),
            v.file,
        ]);
    }
    if t.is_empty() {
        outln!("No plugin entries found. Searched:");
        for (d, s) in &reg.search_path.dirs {
            outln!("  {} ({s:?})", d.display());
        }
    } else {
        out!("{}", t.render());
    }
    print_rejections(&reg);
    Ok(ExitCode::SUCCESS)
}

fn print_rejections(reg: &PluginRegistry) {
    if !reg.rejected.is_empty() {
        outln!();
        outln!("Rejected:");
        let mut t = Table::new(&["FILE", "REASON"]);
        for r in &reg.rejected {
            t.row(vec![r.path.display().to_string(), r.reason.clone()]);
        }
        out!("{}", t.render());
    }
    if !reg.duplicates.is_empty() {
        outln!();
        outln!("Duplicates (the first file wins):");
        for d in &reg.duplicates {
            outln!(
                "  {} {}: using {}, ignoring {}",
                d.kind,
                d.name,
                d.kept.display(),
                d.ignored.display()
            );
        }
    }
}

fn show(env: &Env, name: &str, lang: Option<String>, format: Format) -> CliResult {
    let reg = env.registry()?;
    let lang = user_lang(lang);
    let (kind, bare) = match name.split_once('/') {
        Some((k, n)) => (
            Some(
                k.parse::<Kind>()
                    .map_err(|e| CliError::input(anyhow::anyhow!(e)))?,
            ),
            n,
        ),
        None => (None, name),
    };
    let found: Vec<&EntryRef> = reg
        .entries
        .iter()
        .filter(|e| e.manifest().name == bare && kind.is_none_or(|k| e.manifest().kind == k))
        .collect();
    let entry = match found.as_slice() {
        [] => {
            return Err(CliError::input(anyhow::anyhow!(
                "no plugin entry named {name:?} is loaded (`sextant plugins list` shows what is)"
            )));
        }
        [one] => *one,
        many => {
            let kinds: Vec<String> = many
                .iter()
                .map(|e| format!("{}/{}", e.manifest().kind, bare))
                .collect();
            return Err(CliError::input(anyhow::anyhow!(
                "{name:?} names several entries; say which: {}",
                kinds.join(", ")
            )));
        }
    };
    let m = entry.manifest();
    let doc = json!({
        "entry": m,
        "display_name": m.display_name_in(&lang),
        "file": entry.library.path,
        "interface_version": entry.library.manifest.interface_version,
    });
    if print_structured(format, &doc)? {
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} {} {}", m.kind, m.name, m.version);
    outln!("  display name: {}", m.display_name_in(&lang));
    if !m.description.is_empty() {
        outln!("  description:  {}", m.description);
    }
    if let Some(g) = &m.goal {
        outln!(
            "  goal:         {} ({})",
            g.name,
            sextant_plugin_api::manifest::pick_translation(&g.display_name, &lang)
                .unwrap_or(&g.name)
        );
    }
    if m.kind == Kind::ActionHandler {
        outln!(
            "  flags:        revertible={} abortable={} idempotent={}",
            m.revertible,
            m.abortable,
            m.idempotent
        );
    }
    outln!("  file:         {}", entry.library.path.display());
    outln!(
        "  interface:    {}",
        entry.library.manifest.interface_version
    );
    outln!("  parameters:");
    for line in serde_json::to_string_pretty(&m.parameters)?.lines() {
        outln!("    {line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check(file: &std::path::Path, format: Format) -> CliResult {
    // A symlink that loops or dangles exists: its rejection says why.
    if file.symlink_metadata().is_err() {
        return Err(CliError::input(anyhow::anyhow!(
            "{}: no such file",
            file.display()
        )));
    }
    // The directory checks of `plugins list` first, as if FILE's directory
    // were on the search path; then the file's own.
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let result = discovery::vet_directory(dir).and_then(|()| Library::open(file));
    let doc = match &result {
        Ok(lib) => json!({
            "file": file,
            "loadable": true,
            "interface_version": lib.manifest.interface_version,
            "entries": lib.manifest.entries.iter().map(|e| json!({
                "kind": e.kind, "name": e.name, "version": e.version
            })).collect::<Vec<_>>(),
        }),
        Err(r) => json!({
            "file": file,
            "loadable": false,
            "code": r.code,
            "reason": r.reason,
        }),
    };
    if !print_structured(format, &doc)? {
        match &result {
            Ok(lib) => {
                outln!(
                    "{}: loads (interface {}, {} entries)",
                    file.display(),
                    lib.manifest.interface_version,
                    lib.manifest.entries.len()
                );
                for e in &lib.manifest.entries {
                    outln!("  {} {} {}", e.kind, e.name, e.version);
                }
            }
            Err(r) => outln!("{}: would not load: {}", file.display(), r.reason),
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
