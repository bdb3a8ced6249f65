//! The plugin manifest: what a plugin declares about itself, readable by the
//! host without running any plugin code.
//!
//! Plugin authors describe each entry with an [`Entry`] built in a `const`
//! context; [`crate::export_plugin!`] encodes the entries as JSON at compile
//! time (with [`encoded_len`] and [`encode`]) and places the bytes in the ELF
//! section `.sextant_plugin`. The host parses the same JSON into
//! [`Manifest`].
//!
//! ```
//! use sextant_plugin_api::manifest::{Entry, Kind};
//! const SLEEP: Entry = Entry::new("sleep", "1.0.0")
//!     .display_name("en", "Sleep")
//!     .description("Waits for a given number of seconds.")
//!     .parameters(r#"{"type":"object","required":["duration"]}"#)
//!     .abortable();
//! assert_eq!(SLEEP.name(), "sleep");
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many display-name translations one entry or goal may carry.
pub const MAX_TRANSLATIONS: usize = 8;

/// The kinds of plugin entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Runs one type of action (capability `action_handlers.v1`).
    ActionHandler,
    /// Recommends actions for a goal (capability `strategies.v1`).
    Strategy,
    /// Turns a solution into a DAG (capability `planners.v1`).
    Planner,
    /// Maps an action type to a handler (capability `action_mappers.v1`).
    ActionMapper,
    /// Builds the cluster model (capability `collectors.v1`).
    Collector,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 5] = [
        Kind::ActionHandler,
        Kind::Strategy,
        Kind::Planner,
        Kind::ActionMapper,
        Kind::Collector,
    ];

    /// The snake_case name used in manifests and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::ActionHandler => "action_handler",
            Kind::Strategy => "strategy",
            Kind::Planner => "planner",
            Kind::ActionMapper => "action_mapper",
            Kind::Collector => "collector",
        }
    }

    /// The capability table that serves entries of this kind.
    pub const fn capability(self) -> &'static str {
        use crate::abi::capability::*;
        match self {
            Kind::ActionHandler => ACTION_HANDLERS_V1,
            Kind::Strategy => STRATEGIES_V1,
            Kind::Planner => PLANNERS_V1,
            Kind::ActionMapper => ACTION_MAPPERS_V1,
            Kind::Collector => COLLECTORS_V1,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown plugin kind {s:?} (expected one of: {})",
                    Kind::ALL.map(Kind::as_str).join(", ")
                )
            })
    }
}

/// Translations of a display name, built in `const` context.
#[derive(Clone, Copy, Debug)]
pub struct Translations {
    items: [(&'static str, &'static str); MAX_TRANSLATIONS],
    len: usize,
}

impl Translations {
    const EMPTY: Self = Self {
        items: [("", ""); MAX_TRANSLATIONS],
        len: 0,
    };

    const fn with(mut self, lang: &'static str, text: &'static str) -> Self {
        assert!(
            self.len < MAX_TRANSLATIONS,
            "too many display-name translations"
        );
        self.items[self.len] = (lang, text);
        self.len += 1;
        self
    }
}

/// The goal a strategy achieves, as declared in its manifest entry.
#[derive(Clone, Copy, Debug)]
pub struct GoalDecl {
    name: &'static str,
    display_names: Translations,
    efficacy_specification: &'static str,
}

impl GoalDecl {
    /// A goal with an id (`server_consolidation`, …).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            display_names: Translations::EMPTY,
            efficacy_specification: "[]",
        }
    }
    /// Adds a display name in one language (`en`, `fr`, …).
    pub const fn display_name(mut self, lang: &'static str, text: &'static str) -> Self {
        self.display_names = self.display_names.with(lang, text);
        self
    }
    /// The efficacy specification, as JSON text: a list of
    /// `{name, description, unit}` indicators (reference section 5.1).
    pub const fn efficacy_specification(mut self, json: &'static str) -> Self {
        self.efficacy_specification = json;
        self
    }
}

/// One entry of a plugin, described at compile time.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    kind: Option<Kind>,
    name: &'static str,
    version: &'static str,
    display_names: Translations,
    description: &'static str,
    parameters: &'static str,
    revertible: bool,
    abortable: bool,
    idempotent: bool,
    goal: Option<GoalDecl>,
    planner: Option<&'static str>,
    metrics: &'static [&'static str],
}

impl Entry {
    /// An entry named `name` at `version` (SemVer). Its kind is set by the
    /// line of [`crate::export_plugin!`] that exports it.
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            kind: None,
            name,
            version,
            display_names: Translations::EMPTY,
            description: "",
            parameters: r#"{"type":"object"}"#,
            revertible: false,
            abortable: false,
            idempotent: false,
            goal: None,
            planner: None,
            metrics: &[],
        }
    }
    /// Adds a display name in one language (`en`, `fr`, …).
    pub const fn display_name(mut self, lang: &'static str, text: &'static str) -> Self {
        self.display_names = self.display_names.with(lang, text);
        self
    }
    /// A one-paragraph description.
    pub const fn description(mut self, text: &'static str) -> Self {
        self.description = text;
        self
    }
    /// The JSON Schema of the entry's parameters, as JSON text
    /// (for example `include_str!("sleep.schema.json")`).
    pub const fn parameters(mut self, json_schema: &'static str) -> Self {
        self.parameters = json_schema;
        self
    }
    /// Handlers: `revert` undoes `execute`.
    pub const fn revertible(mut self) -> Self {
        self.revertible = true;
        self
    }
    /// Handlers: `abort` stops a running `execute`.
    pub const fn abortable(mut self) -> Self {
        self.abortable = true;
        self
    }
    /// Handlers: running `execute` twice has the effect of running it once.
    pub const fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
    /// Strategies: the goal the strategy achieves.
    pub const fn goal(mut self, goal: GoalDecl) -> Self {
        self.goal = Some(goal);
        self
    }
    /// Strategies: the planner that schedules their solutions (Watcher's
    /// choice for the strategy; `weight` when not set).
    pub const fn planner(mut self, planner: &'static str) -> Self {
        self.planner = Some(planner);
        self
    }
    /// Strategies: the metrics they read from the cluster model, by
    /// Watcher's names (`host_cpu_usage`, `instance_ram_usage`, …; Watcher's
    /// `DATASOURCE_METRICS`). When a metrics source is configured, an audit
    /// fails naming the one it cannot get.
    pub const fn metrics(mut self, names: &'static [&'static str]) -> Self {
        self.metrics = names;
        self
    }
    /// Sets the kind; used by [`crate::export_plugin!`].
    #[doc(hidden)]
    pub const fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// The entry's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The entry's kind, once set by [`crate::export_plugin!`].
    pub const fn kind(&self) -> Option<Kind> {
        self.kind
    }
}

/// A `const` writer that either counts bytes (empty buffer) or fills them.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    const fn byte(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
        }
        self.len += 1;
    }
    const fn raw(&mut self, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            self.byte(b[i]);
            i += 1;
        }
    }
    const fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let b = s.as_bytes();
        self.byte(b'"');
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match c {
                b'"' => self.raw("\\\""),
                b'\\' => self.raw("\\\\"),
                b'\n' => self.raw("\\n"),
                b'\r' => self.raw("\\r"),
                b'\t' => self.raw("\\t"),
                0..=0x1f => {
                    self.raw("\\u00");
                    self.byte(HEX[(c >> 4) as usize]);
                    self.byte(HEX[(c & 0xf) as usize]);
                }
                _ => self.byte(c),
            }
            i += 1;
        }
        self.byte(b'"');
    }
    const fn key(&mut self, k: &str) {
        self.byte(b',');
        self.string(k);
        self.byte(b':');
    }
    const fn bool(&mut self, v: bool) {
        self.raw(if v { "true" } else { "false" });
    }
    const fn translations(&mut self, t: &Translations) {
        self.byte(b'{');
        let mut i = 0;
        while i < t.len {
            if i > 0 {
                self.byte(b',');
            }
            self.string(t.items[i].0);
            self.byte(b':');
            self.string(t.items[i].1);
            i += 1;
        }
        self.byte(b'}');
    }
    const fn entry(&mut self, e: &Entry) {
        self.raw("{\"kind\":");
        match e.kind {
            Some(k) => self.string(k.as_str()),
            None => self.raw("null"),
        }
        self.key("name");
        self.string(e.name);
        self.key("version");
        self.string(e.version);
        self.key("display_name");
        self.translations(&e.display_names);
        self.key("description");
        self.string(e.description);
        self.key("parameters");
        self.raw(e.parameters);
        self.key("revertible");
        self.bool(e.revertible);
        self.key("abortable");
        self.bool(e.abortable);
        self.key("idempotent");
        self.bool(e.idempotent);
        if let Some(g) = &e.goal {
            self.key("goal");
            self.raw("{\"name\":");
            self.string(g.name);
            self.key("display_name");
            self.translations(&g.display_names);
            self.key("efficacy_specification");
            self.raw(g.efficacy_specification);
            self.byte(b'}');
        }
        if let Some(p) = e.planner {
            self.key("planner");
            self.string(p);
        }
        if !e.metrics.is_empty() {
            self.key("metrics");
            self.byte(b'[');
            let mut i = 0;
            while i < e.metrics.len() {
                if i > 0 {
                    self.byte(b',');
                }
                self.string(e.metrics[i]);
                i += 1;
            }
            self.byte(b']');
        }
        self.byte(b'}');
    }
    const fn manifest(&mut self, entries: &[Entry], unwind: bool) {
        self.raw("{\"format\":1");
        self.key("interface_version");
        self.string(crate::abi::INTERFACE_VERSION);
        self.key("panic");
        self.string(if unwind { "unwind" } else { "abort" });
        self.key("entries");
        self.byte(b'[');
        let mut i = 0;
        while i < entries.len() {
            if i > 0 {
                self.byte(b',');
            }
            self.entry(&entries[i]);
            i += 1;
        }
        self.raw("]}");
    }
}

/// The length of the manifest JSON for these entries; `unwind` is the
/// plugin's `cfg!(panic = "unwind")`.
pub const fn encoded_len(entries: &[Entry], unwind: bool) -> usize {
    let mut empty: [u8; 0] = [];
    let mut w = Writer {
        buf: &mut empty,
        len: 0,
    };
    w.manifest(entries, unwind);
    w.len
}

/// The manifest JSON for these entries, in an array of exactly
/// [`encoded_len`] bytes.
pub const fn encode<const N: usize>(entries: &[Entry], unwind: bool) -> [u8; N] {
    let mut buf = [0u8; N];
    let mut w = Writer {
        buf: &mut buf,
        len: 0,
    };
    w.manifest(entries, unwind);
    assert!(w.len == N, "manifest length mismatch");
    buf
}

/// A parsed manifest, as the host reads it from the ELF section. Unknown
/// fields are ignored: a plugin may be newer than the host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version (1).
    pub format: u32,
    /// The plugin-interface version the plugin was built against.
    pub interface_version: String,
    /// `unwind` or `abort`: the plugin's panic strategy.
    pub panic: String,
    /// The plugin's entries.
    pub entries: Vec<ManifestEntry>,
}

/// One entry of a parsed manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The entry's kind.
    pub kind: Kind,
    /// The entry's name, unique per kind.
    pub name: String,
    /// The entry's version (SemVer).
    pub version: String,
    /// Display names by language.
    pub display_name: BTreeMap<String, String>,
    /// A one-paragraph description.
    pub description: String,
    /// JSON Schema of the parameters.
    pub parameters: serde_json::Value,
    /// Handlers: `revert` undoes `execute`.
    pub revertible: bool,
    /// Handlers: `abort` stops a running `execute`.
    pub abortable: bool,
    /// Handlers: safe to run again after a crash.
    pub idempotent: bool,
    /// Strategies: the goal achieved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<ManifestGoal>,
    /// Strategies: the planner their solutions are scheduled with (unless
    /// the audit's policy names another); `weight` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    /// Strategies: the metrics they read (Watcher's `DATASOURCE_METRICS`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
}

impl ManifestEntry {
    /// The display name in `lang` (`fr_FR.UTF-8` matches `fr`), else English,
    /// else the name.
    pub fn display_name_in(&self, lang: &str) -> &str {
        pick_translation(&self.display_name, lang).unwrap_or(&self.name)
    }
}

/// A goal as declared by a strategy entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestGoal {
    /// The goal's id.
    pub name: String,
    /// Display names by language.
    pub display_name: BTreeMap<String, String>,
    /// Efficacy indicators specification.
    pub efficacy_specification: serde_json::Value,
}

/// Picks a translation for `lang` (`fr_FR.UTF-8`, `fr-FR` and `fr` all match
/// `fr`), falling back to English.
pub fn pick_translation<'a>(map: &'a BTreeMap<String, String>, lang: &str) -> Option<&'a str> {
    let short: String = lang
        .split(['_', '-', '.'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    map.get(lang)
        .or_else(|| map.get(&short))
        .or_else(|| map.get("en"))
        .map(String::as_str)
}

impl Manifest {
    /// Parses manifest JSON and checks what JSON alone cannot: names and
    /// versions are non-empty, and each `(kind, name)` appears once.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut seen = std::collections::BTreeSet::new();
        for e in &m.entries {
            if e.name.is_empty() {
                return Err(format!("a {} entry has an empty name", e.kind));
            }
            if e.version.is_empty() {
                return Err(format!("entry {} {} has an empty version", e.kind, e.name));
            }
            if !seen.insert((e.kind, e.name.clone())) {
                return Err(format!("entry {} {} is declared twice", e.kind, e.name));
            }
            if e.kind == Kind::Strategy && e.goal.is_none() {
                return Err(format!("strategy {} declares no goal", e.name));
            }
        }
        Ok(m)
    }

    /// The major component of `interface_version`.
    pub fn interface_major(&self) -> Option<u64> {
        self.interface_version.split('.').next()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRIES: &[Entry] = &[
        Entry::new("nop", "1.0.0")
            .with_kind(Kind::ActionHandler)
            .display_name("en", "No \"op\"")
            .display_name("fr", "Rien\tdu tout")
            .description("line\nbreak \\ and \u{1} control")
            .parameters(r#"{"type":"object","properties":{"x":{"type":"number"}}}"#)
            .revertible()
            .abortable(),
        Entry::new("dummy", "0.1.0")
            .with_kind(Kind::Strategy)
            .metrics(&["host_cpu_usage", "instance_ram_usage"])
            .goal(
                GoalDecl::new("dummy")
                    .display_name("en", "Dummy goal")
                    .efficacy_specification("[]"),
            ),
    ];
    const LEN: usize = encoded_len(ENTRIES, true);
    static BYTES: [u8; LEN] = encode::<LEN>(ENTRIES, true);

    #[test]
    fn const_encoding_round_trips_through_serde() {
        let m = Manifest::parse(&BYTES).expect("valid manifest");
        assert_eq!(m.interface_version, crate::abi::INTERFACE_VERSION);
        assert_eq!(m.panic, "unwind");
        assert_eq!(m.entries.len(), 2);
        let nop = &m.entries[0];
        assert_eq!(nop.kind, Kind::ActionHandler);
        assert_eq!(nop.display_name["en"], "No \"op\"");
        assert_eq!(nop.display_name["fr"], "Rien\tdu tout");
        assert_eq!(nop.description, "line\nbreak \\ and \u{1} control");
        assert!(nop.revertible && nop.abortable && !nop.idempotent);
        assert_eq!(nop.parameters["properties"]["x"]["type"], "number");
        assert_eq!(
            m.entries[1].goal.as_ref().map(|g| g.name.as_str()),
            Some("dummy")
        );
        assert_eq!(
            m.entries[1].metrics,
            ["host_cpu_usage", "instance_ram_usage"]
        );
        assert!(nop.metrics.is_empty(), "no metrics declared, none read");
    }

    #[test]
    fn abort_strategy_is_recorded() {
        const L: usize = encoded_len(ENTRIES, false);
        let bytes = encode::<L>(ENTRIES, false);
        assert_eq!(Manifest::parse(&bytes).map(|m| m.panic), Ok("abort".into()));
    }

    #[test]
    fn duplicate_entries_and_goalless_strategies_are_refused() {
        const DUP: &[Entry] = &[
            Entry::new("a", "1.0.0").with_kind(Kind::Planner),
            Entry::new("a", "1.0.0").with_kind(Kind::Planner),
        ];
        const L: usize = encoded_len(DUP, true);
        let err = Manifest::parse(&encode::<L>(DUP, true)).unwrap_err();
        assert!(err.contains("declared twice"), "{err}");

        const NOGOAL: &[Entry] = &[Entry::new("s", "1.0.0").with_kind(Kind::Strategy)];
        const L2: usize = encoded_len(NOGOAL, true);
        let err = Manifest::parse(&encode::<L2>(NOGOAL, true)).unwrap_err();
        assert!(err.contains("no goal"), "{err}");
    }

    #[test]
    fn translations_fall_back_to_english() {
        let mut map = BTreeMap::new();
        map.insert("en".to_string(), "Sleep".to_string());
        map.insert("fr".to_string(), "Dormir".to_string());
        assert_eq!(pick_translation(&map, "fr_FR.UTF-8"), Some("Dormir"));
        assert_eq!(pick_translation(&map, "de"), Some("Sleep"));
        assert_eq!(pick_translation(&BTreeMap::new(), "de"), None);
    }
}
