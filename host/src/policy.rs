//! Scheduling and error-recovery policies (`policies/*.yaml`), parsed
//! strictly: unknown keys and wrong types are errors with file, line and
//! column; every key is optional, with the defaults below.
//!
//! A policy chooses the planner and configures it (`weights`,
//! `parallelization`, `rules`), the concurrency pools the applier enforces
//! (`limits`), error recovery (`recovery`), the execution rule and whether
//! the whole plan is simulated first.

mod check;
pub mod locate;

pub use check::Vocabulary;

use crate::action_types::dsl::locate;
use crate::states::ExecutionRule;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A policy file could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct PolicyError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// One side of an ordering rule: an action type and parameter values it
/// must have.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSide {
    /// The action type.
    pub action_type: String,
    /// Parameter values the action must have (`{state: disabled}`).
    #[serde(default, rename = "where", skip_serializing_if = "BTreeMap::is_empty")]
    pub where_: BTreeMap<String, Value>,
}

/// Which parameters of the two actions must be equal for the rule to apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenEqual {
    /// The parameter of the `first` action.
    pub first: String,
    /// The parameter of the `then` action.
    pub then: String,
}

/// An ordering rule: every `first` action runs before every matching
/// `then` action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A name, for reports.
    pub name: String,
    /// What runs first.
    pub first: RuleSide,
    /// What runs after it.
    pub then: RuleSide,
    /// Parameters that must be equal (omitted: every pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_equal: Option<WhenEqual>,
}

/// A concurrency pool: at most `max` actions of a type running at once, in
/// all or per value of a parameter (`per: source_node`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// The action type (omitted: every type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<String>,
    /// The parameter whose values each get a pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// How many at once.
    pub max: u32,
}

/// Exponential backoff between retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// First delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<String>,
    /// Multiplier per retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Largest delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// Error recovery for one action type (or the default); unset fields fall
/// back to the default entry, then to the built-in defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    /// Retries after the first failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Delay between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Timeout of one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `continue`, `stop` or `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
}

/// What a policy asks the planner for beyond the DAG (docs/flows.md,
/// "Planner-made alternatives"): the `rules` planner makes them through
/// `planners.v2`, from the strategy's ranked candidates, keeping only those
/// that are safe at their point in the plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlternativesSpec {
    /// At most this many alternatives per action (0 to
    /// [`MAX_ALTERNATIVES_PER_ACTION`]).
    #[serde(default)]
    pub per_action: u32,
    /// One flow per host the plan empties (its disable, the migrations off
    /// it, its power-off), failing this way; no such flows when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evacuation_flows: Option<OnFailure>,
}

/// The most alternatives a policy may ask for per action.
pub const MAX_ALTERNATIVES_PER_ACTION: u32 = 5;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<String>,
    description: Option<String>,
    planner: Option<String>,
    weights: Option<BTreeMap<String, f64>>,
    parallelization: Option<BTreeMap<String, f64>>,
    rules: Option<Vec<Rule>>,
    limits: Option<Vec<Limit>>,
    recovery: Option<BTreeMap<String, RecoverySpec>>,
    execution_rule: Option<String>,
    simulate: Option<bool>,
    abort_on_cancel: Option<bool>,
    alternatives: Option<AlternativesSpec>,
}

/// What happens once an action's retries are spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Independent branches go on; the plan ends FAILED.
    Continue,
    /// Launch nothing new.
    Stop,
    /// Stop, then revert the succeeded revertible actions.
    Rollback,
}

impl OnFailure {
    /// Its name, as written in policies and plans and stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            OnFailure::Continue => "continue",
            OnFailure::Stop => "stop",
            OnFailure::Rollback => "rollback",
        }
    }
}

impl std::str::FromStr for OnFailure {
    type Err = crate::states::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "continue" => Ok(OnFailure::Continue),
            "stop" => Ok(OnFailure::Stop),
            "rollback" => Ok(OnFailure::Rollback),
            _ => Err(crate::states::UnknownName {
                what: "on_failure",
                value: s.to_string(),
            }),
        }
    }
}

/// Resolved error recovery of one action type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recovery {
    /// Retries after the first failure.
    pub retries: u32,
    /// First backoff delay.
    pub backoff_initial: Duration,
    /// Backoff multiplier.
    pub backoff_factor: f64,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// After the retries.
    pub on_failure: OnFailure,
}

/// A validated policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The planner entry (`rules`, `weight`, …).
    pub planner: String,
    /// Planner weights (planner default when absent).
    pub weights: Option<BTreeMap<String, f64>>,
    /// Planner parallelization (planner default when absent).
    pub parallelization: Option<BTreeMap<String, f64>>,
    /// Ordering rules (for the rules planner).
    pub rules: Vec<Rule>,
    /// Concurrency pools.
    pub limits: Vec<Limit>,
    /// Recovery by action type (`default` for the rest).
    pub recovery: BTreeMap<String, RecoverySpec>,
    /// `STRICT`, `ALWAYS` or `ANY`.
    pub execution_rule: ExecutionRule,
    /// Simulate the whole plan before executing.
    pub simulate: bool,
    /// On cancel, abort the running abortable actions (Watcher lets them
    /// finish).
    pub abort_on_cancel: bool,
    /// Planner-made alternatives and flows (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<AlternativesSpec>,
    /// The file it was read from.
    pub source: Option<PathBuf>,
}

/// A policy duration: humantime text or seconds, bounded (see
/// [`crate::duration`]).
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse_text(text).map_err(|e| e.to_string())
}

impl Policy {
    /// Parses and checks policy text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, PolicyError> {
        let at = |path: &[&str], message: String| {
            let (line, column) = locate(text, path);
            PolicyError {
                file: file.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let yaml_err = |e: serde_yaml_ng::Error| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            PolicyError {
                file: file.to_path_buf(),
                line,
                column,
                message: crate::config::yaml_error_message(&e)
                    .split_once(": ")
                    .map(|(_, m)| m.to_string())
                    .unwrap_or_else(|| e.to_string()),
            }
        };
        if let Some(t) = crate::input::find_unknown_tag(text) {
            return Err(PolicyError {
                file: file.to_path_buf(),
                line: t.line,
                column: t.column,
                message: t.to_string(),
            });
        }
        let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(yaml_err)?;
        let raw: RawPolicy = if text.trim().is_empty() {
            RawPolicy::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(yaml_err)?
        };
        let execution_rule = raw
            .execution_rule
            .clone()
            .unwrap_or_else(|| ExecutionRule::Strict.to_string())
            .to_uppercase();
        let Ok(execution_rule) = execution_rule.parse::<ExecutionRule>() else {
            return Err(at(
                &["execution_rule"],
                format!("execution_rule {execution_rule:?} is not STRICT, ALWAYS or ANY"),
            ));
        };
        for (k, w) in raw.weights.iter().flatten() {
            if !w.is_finite() {
                return Err(at(
                    &["weights", k],
                    format!("weight of {k} must be a number"),
                ));
            }
        }
        for (k, n) in raw.parallelization.iter().flatten() {
            if !(n.is_finite() && *n >= 0.0) {
                return Err(at(
                    &["parallelization", k],
                    format!("parallelization of {k} must be >= 0"),
                ));
            }
        }
        for (i, l) in raw.limits.iter().flatten().enumerate() {
            if l.max == 0 {
                return Err(at(
                    &["limits"],
                    format!("limit #{} has max 0: nothing could run", i + 1),
                ));
            }
        }
        for (k, r) in raw.recovery.iter().flatten() {
            if let Some(t) = &r.timeout {
                let d = duration(t).map_err(|m| {
                    at(
                        &["recovery", k, "timeout"],
                        format!("recovery.{k}.timeout: {m}"),
                    )
                })?;
                // A zero timeout fails every action that takes any time.
                if d.is_zero() {
                    return Err(at(
                        &["recovery", k, "timeout"],
                        format!("recovery.{k}.timeout is 0: every action would time out"),
                    ));
                }
            }
            if let Some(b) = &r.backoff {
                for (what, v) in [("initial", &b.initial), ("max", &b.max)] {
                    if let Some(v) = v {
                        duration(v).map_err(|m| {
                            at(
                                &["recovery", k, "backoff", what],
                                format!("recovery.{k}.backoff.{what}: {m}"),
                            )
                        })?;
                    }
                }
                if let Some(f) = b.factor
                    && !(f.is_finite() && f >= 1.0)
                {
                    return Err(at(
                        &["recovery", k, "backoff", "factor"],
                        format!("recovery.{k}.backoff.factor must be >= 1, not {f}"),
                    ));
                }
            }
            if let Some(o) = &r.on_failure
                && !["continue", "stop", "rollback"].contains(&o.as_str())
            {
                return Err(at(
                    &["recovery", k, "on_failure"],
                    format!("recovery.{k}.on_failure {o:?} is not continue, stop or rollback"),
                ));
            }
        }
        let planner = raw.planner.unwrap_or_else(|| "rules".into());
        if let Some(a) = &raw.alternatives {
            if a.per_action > MAX_ALTERNATIVES_PER_ACTION {
                return Err(at(
                    &["alternatives", "per_action"],
                    format!(
                        "alternatives.per_action is at most {MAX_ALTERNATIVES_PER_ACTION}, not {}",
                        a.per_action
                    ),
                ));
            }
            if planner != "rules" {
                return Err(at(
                    &["alternatives"],
                    format!(
                        "alternatives: planner {planner} makes none (only the rules planner makes alternatives and flows)"
                    ),
                ));
            }
        }
        Ok(Self {
            name: raw.name.unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "policy".into())
            }),
            description: raw.description.unwrap_or_default(),
            planner,
            weights: raw.weights,
            parallelization: raw.parallelization,
            rules: raw.rules.unwrap_or_default(),
            limits: raw.limits.unwrap_or_default(),
            recovery: raw.recovery.unwrap_or_default(),
            execution_rule,
            simulate: raw.simulate.unwrap_or(true),
            abort_on_cancel: raw.abort_on_cancel.unwrap_or(true),
            alternatives: raw.alternatives,
            source: Some(file.to_path_buf()),
        })
    }

    /// Reads one file (at most
    /// [`MAX_DEFINITION_BYTES`](crate::input::MAX_DEFINITION_BYTES)).
    pub fn from_file(file: &Path) -> Result<Self, PolicyError> {
        Self::parse(&read_policy_text(file)?, file)
    }

    /// The planner's config from this policy.
    pub fn planner_config(&self) -> Value {
        let mut c = serde_json::Map::new();
        if let Some(w) = &self.weights {
            c.insert("weights".into(), json!(w));
        }
        if let Some(p) = &self.parallelization {
            c.insert("parallelization".into(), json!(p));
        }
        if self.planner == "rules" {
            c.insert("rules".into(), json!(self.rules));
            c.insert("limits".into(), json!(self.limits));
            if let Some(a) = &self.alternatives {
                c.insert("alternatives".into(), json!(a));
            }
        }
        Value::Object(c)
    }

    /// The resolved recovery of an action type.
    pub fn recovery_for(&self, action_type: &str) -> Recovery {
        let d = self.recovery.get("default").cloned().unwrap_or_default();
        let t = self.recovery.get(action_type).cloned().unwrap_or_default();
        let backoff = |f: fn(&Backoff) -> Option<String>| {
            t.backoff
                .as_ref()
                .and_then(f)
                .or_else(|| d.backoff.as_ref().and_then(f))
        };
        let dur = |s: Option<String>, default: Duration| {
            s.and_then(|s| duration(&s).ok()).unwrap_or(default)
        };
        Recovery {
            retries: t.retries.or(d.retries).unwrap_or(0),
            backoff_initial: dur(backoff(|b| b.initial.clone()), Duration::from_secs(1)),
            backoff_factor: t
                .backoff
                .as_ref()
                .and_then(|b| b.factor)
                .or_else(|| d.backoff.as_ref().and_then(|b| b.factor))
                .unwrap_or(2.0),
            backoff_max: dur(backoff(|b| b.max.clone()), Duration::from_secs(60)),
            timeout: dur(
                t.timeout.clone().or(d.timeout.clone()),
                Duration::from_secs(900),
            ),
            on_failure: match t.on_failure.as_deref().or(d.on_failure.as_deref()) {
                Some("stop") => OnFailure::Stop,
                Some("rollback") => OnFailure::Rollback,
                _ => OnFailure::Continue,
            },
        }
    }
}

/// Directories holding named policies: `SEXTANT_POLICY_PATH`, then the
/// installation's `policies/` (see [`crate::installation`]:
/// `EXE_DIR/../share/sextant/policies`, else the source tree above the
/// executable).
pub fn policy_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var("SEXTANT_POLICY_PATH")
        .ok()
        .map(|p| {
            p.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let exe = std::env::current_exe().ok();
    dirs.extend(crate::installation::subdir_of(exe.as_deref(), "policies"));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// Resolves `--policy NAME|FILE`: a path to a file, or the name of a policy
/// in the policy directories. Every directory visited and the file read are
/// vetted by the rules of [`crate::trust`]: a lookup that reaches a
/// directory or file others could have written fails, naming it and the fix.
pub fn load(reference: &str) -> Result<Policy, PolicyError> {
    Policy::from_file(&resolve(reference)?)
}

/// Resolves `--policy NAME|FILE` and checks every name the policy uses
/// against what is installed ([`Vocabulary`]): what an audit or a plan is
/// given. Its `source` is the file's absolute path.
pub fn load_checked(reference: &str, vocab: &Vocabulary) -> Result<Policy, PolicyError> {
    check_file(&resolve(reference)?, vocab)
}

/// A policy file's text, at most
/// [`MAX_DEFINITION_BYTES`](crate::input::MAX_DEFINITION_BYTES).
fn read_policy_text(file: &Path) -> Result<String, PolicyError> {
    crate::input::read_text(file, crate::input::MAX_DEFINITION_BYTES, "a policy").map_err(|e| {
        PolicyError {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: e.problem.to_string(),
        }
    })
}

/// Reads, parses and checks one policy file ([`load_checked`] without the
/// lookup by name).
pub fn check_file(file: &Path, vocab: &Vocabulary) -> Result<Policy, PolicyError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let text = read_policy_text(&file)?;
    let policy = Policy::parse(&text, &file)?;
    policy.check_names(&text, &file, vocab)?;
    Ok(policy)
}

impl Policy {
    /// The form stored with an audit and its plans (JSON, read back with
    /// serde): what a later run uses, whatever becomes of the file.
    pub fn to_stored(&self) -> String {
        // A struct of strings, numbers and string-keyed maps: serializing
        // it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The named policies of the policy directories, in lookup order: the
/// first file of each name is the one `--policy NAME` uses.
pub fn named_policies() -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for d in policy_dirs() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for f in files {
            let Some(name) = f.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            if !name.starts_with('.') && !found.iter().any(|(n, _)| *n == name) {
                found.push((name, f));
            }
        }
    }
    found
}

/// The file `--policy NAME|FILE` names: a path, or the first
/// `NAME.yaml`/`NAME.yml` of the policy directories.
pub fn resolve(reference: &str) -> Result<PathBuf, PolicyError> {
    let as_path = Path::new(reference);
    if reference.contains('/') || reference.ends_with(".yaml") || reference.ends_with(".yml") {
        if as_path.symlink_metadata().is_ok() {
            vet_file(as_path)?;
        }
        return Ok(as_path.to_path_buf());
    }
    for d in policy_dirs() {
        crate::trust::vet_dir(&d, "policy directory").map_err(untrusted)?;
        for ext in ["yaml", "yml"] {
            let f = d.join(format!("{reference}.{ext}"));
            if f.symlink_metadata().is_ok() {
                vet_file(&f)?;
                return Ok(f);
            }
        }
    }
    let names: Vec<String> = named_policies().into_iter().map(|(n, _)| n).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Err(PolicyError {
        file: PathBuf::from(reference),
        line: 1,
        column: 1,
        message: format!(
            "no policy named {reference:?} ({}; looked in {})",
            crate::suggest::candidates_message(reference, &names),
            policy_dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// A policy file and the directory it really lives in pass the rules of
/// [`crate::trust`].
fn vet_file(file: &Path) -> Result<(), PolicyError> {
    crate::trust::vet_file(file, "policy file")
        .map(|_| ())
        .map_err(untrusted)
}

fn untrusted(u: crate::trust::Untrusted) -> PolicyError {
    PolicyError {
        file: u.path,
        line: 1,
        column: 1,
        message: u.reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Policy, PolicyError> {
        Policy::parse(t, Path::new("p.yaml"))
    }

    #[test]
    fn defaults_and_recovery_fallbacks() {
        let p = parse("").expect("empty is valid");
        assert_eq!(
            (p.planner.as_str(), p.execution_rule.as_str(), p.simulate),
            ("rules", "STRICT", true)
        );
        let r = p.recovery_for("migrate");
        assert_eq!(
            (r.retries, r.timeout, r.on_failure),
            (0, Duration::from_secs(900), OnFailure::Continue)
        );
        let p = parse(
            "recovery:\n  default: {retries: 1, timeout: 30s, on_failure: stop, backoff: {initial: 2s}}\n  migrate: {retries: 3}\n",
        )
        .expect("valid");
        let m = p.recovery_for("migrate");
        assert_eq!(
            (m.retries, m.timeout, m.on_failure),
            (3, Duration::from_secs(30), OnFailure::Stop)
        );
        assert_eq!(m.backoff_initial, Duration::from_secs(2));
        assert_eq!(p.recovery_for("nop").retries, 1);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("planner: rules\nweigths: {nop: 1}\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("weigths"), "{e}");
        let e = parse("weights: {nop: heavy}\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        let e = parse("execution_rule: SOMETIMES\n").unwrap_err();
        assert!(e.message.contains("SOMETIMES"), "{e}");
        let e = parse("recovery:\n  migrate:\n    timeout: soon\n").unwrap_err();
        assert_eq!((e.line, e.message.contains("soon")), (3, true), "{e}");
        let e = parse("limits:\n  - {action_type: migrate, max: 0}\n").unwrap_err();
        assert!(e.message.contains("max 0"), "{e}");
        let e = parse("rules:\n  - name: r\n    first: {action_type: a}\n    then: {action_type: b, whre: {}}\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn alternatives_go_to_the_rules_planner_and_bad_ones_are_refused_where_written() {
        let p =
            parse("alternatives: {per_action: 2, evacuation_flows: rollback}\n").expect("valid");
        assert_eq!(
            p.alternatives,
            Some(AlternativesSpec {
                per_action: 2,
                evacuation_flows: Some(OnFailure::Rollback)
            })
        );
        assert_eq!(
            p.planner_config()["alternatives"],
            json!({"per_action": 2, "evacuation_flows": "rollback"})
        );
        // Stored and read back as audits keep it; absent, nothing changes.
        let back: Policy = serde_json::from_str(&p.to_stored()).expect("stored");
        assert_eq!(back.alternatives, p.alternatives);
        let flat = parse("name: flat\n").expect("valid");
        assert!(flat.planner_config().get("alternatives").is_none());
        assert!(!flat.to_stored().contains("alternatives"));
        let e = parse("name: x\nalternatives:\n  per_action: 9\n").unwrap_err();
        assert_eq!((e.line, e.message.contains("at most 5")), (3, true), "{e}");
        let e = parse("planner: weight\nalternatives: {per_action: 1}\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("planner weight makes none"), "{e}");
        let e = parse("alternatives: {per_action: 1, evacuation_flows: later}\n").unwrap_err();
        assert!(e.message.contains("later"), "{e}");
        let e = parse("alternatives: {per_acton: 1}\n").unwrap_err();
        assert!(e.message.contains("per_acton"), "{e}");
    }

    #[test]
    fn huge_timeouts_and_backoffs_are_refused_with_location() {
        let e = parse("recovery:\n  default:\n    timeout: 1e300\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 5), "{e}");
        assert!(e.message.contains("366 days"), "{e}");
        let e = parse("recovery:\n  migrate:\n    backoff: {initial: 1s, max: 99999999999h}\n")
            .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("backoff.max"), "{e}");
        let e = parse("recovery:\n  migrate:\n    backoff:\n      initial: \"-5\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (4, 7), "{e}");
        let e = parse("planner: !include x\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 10), "{e}");
    }

    #[test]
    fn a_zero_timeout_is_refused_with_location() {
        // Accepted before: the plan ran and every action that took any
        // time FAILED on its timeout.
        for zero in ["0", "0s", "0ms"] {
            let e = parse(&format!("recovery:\n  migrate:\n    timeout: {zero}\n")).unwrap_err();
            assert_eq!((e.line, e.column), (3, 5), "{zero}: {e}");
            assert!(e.message.contains("recovery.migrate.timeout is 0"), "{e}");
        }
        assert!(parse("recovery:\n  migrate:\n    timeout: 1ms\n").is_ok());
    }
}
