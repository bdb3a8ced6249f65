//! What `sextant plugins list` and `GET /v1/plugins` show: the plugin
//! search path, the loaded entries (sorted by kind and name), the files
//! rejected with their one-line reasons, and the duplicate entries.

use crate::plugins::{EntryRef, PluginRegistry};
use serde::Serialize;
use serde_json::{Value, json};
use sextant_plugin_api::{Kind, ManifestEntry};

/// One loaded entry as it is listed.
#[derive(Serialize)]
pub struct EntryView<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its display name in the caller's language.
    pub display_name: &'a str,
    /// What it does.
    pub description: &'a str,
    /// A strategy's goal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<&'a str>,
    /// An action handler's `revert`.
    pub revertible: bool,
    /// An action handler's `abort`.
    pub abortable: bool,
    /// Running it twice does no more than once.
    pub idempotent: bool,
    /// The library it is in.
    pub file: String,
}

/// One entry as it is listed, display name in `lang`.
pub fn entry_view<'a>(e: &'a EntryRef, lang: &str) -> EntryView<'a> {
    let m: &ManifestEntry = e.manifest();
    EntryView {
        kind: m.kind,
        name: &m.name,
        version: &m.version,
        display_name: m.display_name_in(lang),
        description: &m.description,
        goal: m.goal.as_ref().map(|g| g.name.as_str()),
        revertible: m.revertible,
        abortable: m.abortable,
        idempotent: m.idempotent,
        file: e.library.path.display().to_string(),
    }
}

/// The loaded entries of `kind` (all without), by kind then name.
pub fn entries(reg: &PluginRegistry, kind: Option<Kind>) -> Vec<&EntryRef> {
    let mut entries: Vec<&EntryRef> = reg
        .entries
        .iter()
        .filter(|e| kind.is_none_or(|k| e.manifest().kind == k))
        .collect();
    entries.sort_by(|a, b| {
        (a.manifest().kind, &a.manifest().name).cmp(&(b.manifest().kind, &b.manifest().name))
    });
    entries
}

/// The whole listing: `search_path`, `plugins`, `rejected`, `duplicates`.
pub fn list(reg: &PluginRegistry, kind: Option<Kind>, lang: &str) -> Value {
    let search_path: Vec<Value> = reg
        .search_path
        .dirs
        .iter()
        .map(|(d, s)| json!({"dir": d, "source": s}))
        .collect();
    json!({
        "search_path": search_path,
        "plugins": entries(reg, kind).iter().map(|e| entry_view(e, lang)).collect::<Vec<_>>(),
        "rejected": reg.rejected,
        "duplicates": reg.duplicates,
    })
}
