//! The action-type DSL: one YAML file per action type, parsed strictly.
//!
//! Unknown keys, duplicate keys, wrong types, an invalid SemVer, a parameter
//! or output schema that is not valid JSON Schema, and a template placeholder
//! naming something undeclared are all errors, each with the file, line and
//! column at fault.

use super::template;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One problem in a definition file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct DefinitionError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in one definition file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

/// A display name: a plain string (English) or a map of translations.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DisplayName {
    Plain(String),
    Translated(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActionType {
    name: String,
    version: String,
    #[serde(default)]
    display_name: Option<DisplayName>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    target_resource_type: Option<String>,
    handler: String,
    #[serde(default)]
    with: Option<Value>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    outputs: Option<Value>,
    #[serde(default)]
    estimated_duration: Option<crate::duration::DurationValue>,
    #[serde(default)]
    idempotent: bool,
    #[serde(default)]
    revertible: bool,
    #[serde(default)]
    abortable: bool,
}

/// A validated action type.
#[derive(Clone)]
pub struct ActionType {
    /// Unique id (`migrate`).
    pub name: String,
    /// SemVer version; several may be registered side by side.
    pub version: semver::Version,
    /// Display names by language.
    pub display_name: BTreeMap<String, String>,
    /// Long description.
    pub description: String,
    /// A Heat resource type (`OS::Nova::Server`).
    pub target_resource_type: Option<String>,
    /// What the action mapper resolves to a handler entry.
    pub handler: String,
    /// Template configuration for a generic handler (`command`, `http`).
    pub with: Option<Value>,
    /// JSON Schema of the input parameters.
    pub parameters: Value,
    /// JSON Schema of the outputs, if declared.
    pub outputs: Option<Value>,
    /// For makespan-aware planning and progress estimates.
    pub estimated_duration: Duration,
    /// Safe to run again after a crash.
    pub idempotent: bool,
    /// Can be reverted.
    pub revertible: bool,
    /// Can be aborted while running.
    pub abortable: bool,
    /// The file it was read from.
    pub source: PathBuf,
    /// The file's text, as read.
    pub text: String,
    parameters_validator: Arc<jsonschema::Validator>,
    outputs_validator: Option<Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for ActionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActionType({}@{})", self.name, self.version)
    }
}

impl ActionType {
    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The display name in `lang`, else English, else the name.
    pub fn display_name_in(&self, lang: &str) -> &str {
        sextant_plugin_api::manifest::pick_translation(&self.display_name, lang)
            .unwrap_or(&self.name)
    }

    /// The compiled parameter schema.
    pub fn parameters_validator(&self) -> &jsonschema::Validator {
        &self.parameters_validator
    }

    /// The compiled output schema, if one is declared.
    pub fn outputs_validator(&self) -> Option<&jsonschema::Validator> {
        self.outputs_validator.as_deref()
    }

    /// The names of the declared top-level parameters.
    pub fn parameter_names(&self) -> Vec<String> {
        self.parameters["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Parses and validates one definition. `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, DefinitionErrors> {
        let at = |line: usize, column: usize, message: String| DefinitionError {
            file: file.to_path_buf(),
            line,
            column,
            message,
        };
        let yaml_error = |e: serde_yaml_ng::Error| {
            let (mut line, mut column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            if let Some(key) = msg
                .split_once("duplicate entry with key \"")
                .and_then(|(_, r)| r.split('"').next())
                && let Some((l, c)) = locate_duplicate(text, key)
            {
                (line, column) = (l, c);
            }
            DefinitionErrors(vec![at(line, column, msg)])
        };
        // Tags the parser would drop silently (`!include`, `!!binary`).
        if let Some(t) = crate::input::find_unknown_tag(text) {
            return Err(DefinitionErrors(vec![at(t.line, t.column, t.to_string())]));
        }
        // Pass 1: syntax and duplicate keys, at any depth.
        let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
        // Pass 2: structure, unknown keys and types.
        let raw: RawActionType = serde_yaml_ng::from_str(text).map_err(yaml_error)?;

        let mut errors = Vec::new();
        let mut err = |path: &[&str], message: String| {
            let (line, column) = locate(text, path);
            errors.push(at(line, column, message));
        };

        let version = match semver::Version::parse(&raw.version) {
            Ok(v) => Some(v),
            Err(e) => {
                err(
                    &["version"],
                    format!(
                        "version {:?} is not a SemVer version (like 1.0.0): {e}",
                        raw.version
                    ),
                );
                None
            }
        };
        if !is_identifier(&raw.name) {
            err(
                &["name"],
                format!(
                    "name {:?} must be letters, digits, '_', '-' or '.', starting with a letter",
                    raw.name
                ),
            );
        }
        if raw.handler.trim().is_empty() {
            err(&["handler"], "handler must not be empty".into());
        }
        let parameters = raw
            .parameters
            .unwrap_or_else(|| serde_json::json!({"type": "object"}));
        let parameters_validator = match compile_schema_at(&parameters) {
            Ok(v) => Some(v),
            Err((inner, m)) => {
                let mut path = vec!["parameters"];
                path.extend(inner.iter().map(String::as_str));
                let at = if inner.is_empty() {
                    String::new()
                } else {
                    format!(" at /{}", inner.join("/"))
                };
                err(
                    &path,
                    format!("parameters is not a valid JSON Schema{at}: {m}"),
                );
                None
            }
        };
        if parameters.get("type").is_some_and(|t| t != "object") {
            err(
                &["parameters", "type"],
                "parameters must describe an object (type: object)".into(),
            );
        }
        let outputs_validator = match &raw.outputs {
            None => None,
            Some(o) => match compile_schema(o) {
                Ok(v) => Some(v),
                Err(m) => {
                    err(
                        &["outputs"],
                        format!("outputs is not a valid JSON Schema: {m}"),
                    );
                    None
                }
            },
        };
        let estimated_duration = match raw.estimated_duration.as_ref().map(|d| d.resolve()) {
            None => Duration::ZERO,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                err(&["estimated_duration"], format!("estimated_duration: {e}"));
                Duration::ZERO
            }
        };
        let declared: Vec<String> = parameters["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(with) = &raw.with {
            for (path, problem) in template::check_all(with, &declared) {
                let mut p = vec!["with"];
                p.extend(path.iter().map(String::as_str));
                err(&p, problem);
            }
        }
        let display_name = match raw.display_name {
            None => BTreeMap::new(),
            Some(DisplayName::Plain(s)) => BTreeMap::from([("en".to_string(), s)]),
            Some(DisplayName::Translated(m)) => m,
        };
        match (version, parameters_validator) {
            (Some(version), Some(parameters_validator)) if errors.is_empty() => Ok(Self {
                name: raw.name,
                version,
                display_name,
                description: raw.description.trim().to_string(),
                target_resource_type: raw.target_resource_type,
                handler: raw.handler,
                with: raw.with,
                parameters,
                outputs: raw.outputs,
                estimated_duration,
                idempotent: raw.idempotent,
                revertible: raw.revertible,
                abortable: raw.abortable,
                source: file.to_path_buf(),
                text: text.to_string(),
                parameters_validator: Arc::new(parameters_validator),
                outputs_validator: outputs_validator.map(Arc::new),
            }),
            _ => Err(DefinitionErrors(errors)),
        }
    }

    /// Reads and parses one file (at most
    /// [`MAX_DEFINITION_BYTES`](crate::input::MAX_DEFINITION_BYTES)).
    pub fn from_file(file: &Path) -> Result<Self, DefinitionErrors> {
        let text =
            crate::input::read_text(file, crate::input::MAX_DEFINITION_BYTES, "an action type")
                .map_err(|e| {
                    DefinitionErrors(vec![DefinitionError {
                        file: file.to_path_buf(),
                        line: 1,
                        column: 1,
                        message: e.problem.to_string(),
                    }])
                })?;
        Self::parse(&text, file)
    }

    /// A JSON view for `show` and `list --format json`.
    pub fn to_json(&self, lang: &str) -> Value {
        serde_json::json!({
            "name": self.name,
            "version": self.version.to_string(),
            "display_name": self.display_name_in(lang),
            "display_names": self.display_name,
            "description": self.description,
            "target_resource_type": self.target_resource_type,
            "handler": self.handler,
            "with": self.with,
            "parameters": self.parameters,
            "outputs": self.outputs,
            "estimated_duration_seconds": self.estimated_duration.as_secs_f64(),
            "idempotent": self.idempotent,
            "revertible": self.revertible,
            "abortable": self.abortable,
            "source": self.source,
        })
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Compiles a JSON Schema after checking it against its meta-schema
/// (draft 2020-12 unless it names another with `$schema`).
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    compile_schema_at(schema).map_err(|(path, m)| {
        if path.is_empty() {
            m
        } else {
            format!("at /{}: {m}", path.join("/"))
        }
    })
}

/// As [`compile_schema`], with the path inside the schema of the problem.
fn compile_schema_at(schema: &Value) -> Result<jsonschema::Validator, (Vec<String>, String)> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err((vec![], "a schema must be a mapping".into()));
    }
    if let Err(e) = jsonschema::meta::validate(schema) {
        let path = e
            .instance_path()
            .to_string()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        return Err((path, e.to_string()));
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| (vec![], e.to_string()))
}

/// Finds the line and column of a key path in YAML text by indentation:
/// the first segment at the top level, each next one deeper inside the
/// previous one's block. Falls back to the deepest segment found (or 1:1).
pub fn locate(text: &str, path: &[&str]) -> (usize, usize) {
    let lines = crate::input::yaml_lines(text);
    // (line index, column index of the key, indentation of its line)
    let mut cur: Option<(usize, usize, usize)> = None;
    for seg in path {
        // A flow mapping on the current line: `e: {f: 1, seg: 2}`.
        if let Some((li, col, _)) = cur
            && let Some(c) = flow_key(&lines[li][col..], seg)
        {
            cur = Some((li, col + c, cur.map_or(0, |c| c.2)));
            continue;
        }
        let (from, parent_indent) = match cur {
            None => (0, None),
            Some((li, _, ind)) => (li + 1, Some(ind)),
        };
        let mut found = None;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let content = line.trim_start();
            let indent = line.len() - content.len();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            if parent_indent.is_some_and(|p| indent <= p) {
                break;
            }
            let key = content.trim_start_matches("- ");
            let col = line.len() - key.len();
            if key.strip_prefix(seg).is_some_and(|r| r.starts_with(':'))
                || key
                    .strip_prefix(&format!("\"{seg}\""))
                    .is_some_and(|r| r.starts_with(':'))
            {
                found = Some((i, col, indent));
                break;
            }
        }
        match found {
            Some(f) => cur = Some(f),
            None => break,
        }
    }
    cur.map_or((1, 1), |(l, c, _)| (l + 1, c + 1))
}

/// The offset of `seg:` as a key of a flow mapping in `s`.
fn flow_key(s: &str, seg: &str) -> Option<usize> {
    for pat in [format!("{{{seg}:"), format!(" {seg}:"), format!(",{seg}:")] {
        if let Some(i) = s.find(&pat) {
            return Some(i + 1);
        }
    }
    None
}

/// The line and column of the second `key:` at the indentation of the
/// first: where a duplicate key is (the YAML parser reports only the
/// mapping's start).
fn locate_duplicate(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut first_indent = None;
    for (i, line) in crate::input::yaml_lines(text).into_iter().enumerate() {
        let content = line.trim_start();
        let indent = line.len() - content.len();
        let content = content.trim_start_matches("- ");
        let col = line.len() - content.len();
        let is_key = content
            .strip_prefix(key)
            .is_some_and(|r| r.starts_with(':'))
            || content
                .strip_prefix(&format!("\"{key}\""))
                .is_some_and(|r| r.starts_with(':'));
        if is_key {
            match first_indent {
                None => first_indent = Some(indent),
                Some(f) if f == indent => return Some((i + 1, col + 1)),
                Some(_) => {}
            }
        } else if let Some(c) = flow_key(line, key) {
            // Two in one flow mapping: the second on the same line.
            if let Some(c2) = flow_key(&line[c + key.len()..], key) {
                return Some((i + 1, c + key.len() + c2 + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ActionType, DefinitionErrors> {
        ActionType::parse(text, Path::new("t.yaml"))
    }

    fn first_error(text: &str) -> DefinitionError {
        parse(text).expect_err("refused").0.remove(0)
    }

    const GOOD: &str = "name: drain\nversion: 1.2.3\nhandler: command\nwith:\n  argv: [/bin/echo, \"{{ host }}\"]\nparameters:\n  type: object\n  properties:\n    host: {type: string}\n";

    #[test]
    fn a_good_definition_parses() {
        let t = parse(GOOD).expect("valid");
        assert_eq!(t.id(), "drain@1.2.3");
        assert_eq!(t.parameter_names(), vec!["host".to_string()]);
        assert_eq!(t.display_name_in("fr"), "drain");
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = first_error("name: x\nversion: 1.0\nhandler: nop\n");
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.message.contains("SemVer"), "{e}");

        let e = first_error("name: x\nversion: 1.0.0\nhandler: nop\nbogus: 1\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("bogus"), "{e}");

        let e = first_error("name: x\nversion: 1.0.0\nhandler: nop\nname: y\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("duplicate"), "{e}");

        let e = first_error(
            "name: x\nversion: 1.0.0\nhandler: nop\nparameters:\n  type: object\n  properties:\n    a: {type: string}\n    a: {type: number}\n",
        );
        assert!(e.message.contains("duplicate"), "{e}");
        assert_eq!(e.line, 8, "{e}");

        let e = first_error("name: x\nversion: 1.0.0\nhandler: nop\nidempotent: maybe\n");
        assert_eq!(e.line, 4, "{e}");

        let e = first_error(
            "name: x\nversion: 1.0.0\nhandler: nop\nparameters:\n  type: object\n  properties:\n    a: {type: strng}\n",
        );
        assert_eq!((e.line, e.column), (7, 9), "{e}");
        assert!(e.message.contains("JSON Schema"), "{e}");

        let e = first_error(
            "name: x\nversion: 1.0.0\nhandler: command\nwith:\n  argv: [\"{{ nope }}\"]\n",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("nope"), "{e}");

        let e = first_error("name: x\nversion: 1.0.0\nhandler: nop\nparameters: [1]\n");
        assert!(e.message.contains("JSON Schema"), "{e}");
    }

    #[test]
    fn locate_follows_indentation_and_flow_maps() {
        let text = "a: 1\nb:\n  c:\n    d: 2\n  e: {f: 1, g: 2}\n";
        assert_eq!(locate(text, &["b", "c", "d"]), (4, 5));
        assert_eq!(locate(text, &["b", "e", "g"]), (5, 13));
        assert_eq!(locate(text, &["zz"]), (1, 1));
        assert_eq!(locate(text, &["b", "zz"]), (2, 1));
    }

    #[test]
    fn durations() {
        let t = parse("name: x\nversion: 1.0.0\nhandler: nop\nestimated_duration: 1m 30s\n")
            .expect("valid");
        assert_eq!(t.estimated_duration, Duration::from_secs(90));
        let t = parse("name: x\nversion: 1.0.0\nhandler: nop\nestimated_duration: 2.5\n")
            .expect("valid");
        assert_eq!(t.estimated_duration, Duration::from_millis(2500));
        let e = first_error("name: x\nversion: 1.0.0\nhandler: nop\nestimated_duration: soon\n");
        assert_eq!(e.line, 4);
    }

    #[test]
    fn huge_estimated_duration_is_refused_with_location() {
        for v in [
            "1e300",
            "2e19",
            "-1",
            ".nan",
            ".inf",
            "\"400d\"",
            "\"1e300\"",
        ] {
            let e = first_error(&format!(
                "name: x\nversion: 1.0.0\nhandler: nop\nestimated_duration: {v}\n"
            ));
            assert_eq!((e.line, e.column), (4, 1), "{v}: {e}");
            assert!(e.message.contains("estimated_duration"), "{v}: {e}");
        }
    }

    #[test]
    fn yaml_tags_refused() {
        let e = first_error("name: x\nversion: 1.0.0\nhandler: nop\ndescription: !include d.txt\n");
        assert_eq!((e.line, e.column), (4, 14), "{e}");
        assert!(e.message.contains("!include"), "{e}");
        let e = first_error("name: x\nversion: 1.0.0\nhandler: nop\ndescription: !!binary aGk=\n");
        assert_eq!((e.line, e.column), (4, 14), "{e}");
        assert!(e.message.contains("!!binary"), "{e}");
    }
}
