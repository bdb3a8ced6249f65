//! Who may do what: Watcher's policy rules (watcher-service-facts.md 1.2)
//! with Sextant's `reader`, overridable by a policy file in the style of
//! oslo.policy.
//!
//! Every request is named by a rule as Watcher names it (`audit:create`,
//! `goal:get_all`, `action_plan:start`, `strategy:state`, …; [`rule_of`]).
//! The defaults: `admin_api` is `role:admin or role:administrator` (as
//! Watcher's); `reader_api` is `role:reader`; every rule of a GET is
//! `rule:admin_api or rule:reader_api`, `webhook:trigger` is `rule:admin_api
//! or role:service`, `version:get` (the `/v1` document) `@`, every other
//! rule `rule:admin_api`. A rule no default names falls back on `default`
//! (`rule:admin_api`).
//!
//! The policy file (`api.policy_file`, YAML: a map of rule name to check
//! string) replaces the rules it names. Check strings are a subset of
//! oslo.policy's: `role:NAME` (case-insensitive), `rule:NAME`,
//! `user_id:ID`, `project_id:ID`, `@` (always), `!` (never), the empty
//! string (always), `not`, `and`, `or` (binding in that order) and
//! parentheses. A file that cannot be read or parsed, a check string that
//! does not parse, or a `rule:` naming no rule stops the API from starting,
//! naming the file, the rule and what is wrong.

use axum::http::Method;
use std::collections::BTreeMap;
use std::path::Path;

/// What a check looks at: the caller's roles and ids.
pub trait Credentials {
    /// Whether the caller holds `role` (case-insensitive).
    fn has_role(&self, role: &str) -> bool;
    /// The caller's user id, when known.
    fn user_id(&self) -> Option<&str>;
    /// The caller's project id, when known.
    fn project_id(&self) -> Option<&str>;
}

/// A parsed check string.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// `@` or the empty string.
    Always,
    /// `!`.
    Never,
    /// `role:NAME`.
    Role(String),
    /// `rule:NAME`.
    Rule(String),
    /// `user_id:ID`.
    UserId(String),
    /// `project_id:ID`.
    ProjectId(String),
    /// `not X`.
    Not(Box<Check>),
    /// `X and Y and …`.
    And(Vec<Check>),
    /// `X or Y or …`.
    Or(Vec<Check>),
}

/// The rules in force.
#[derive(Clone, Debug)]
pub struct Policy {
    rules: BTreeMap<String, Check>,
}

/// The policy file is not acceptable.
#[derive(Debug, thiserror::Error)]
#[error("policy file {file}: {message}")]
pub struct PolicyError {
    /// The file.
    pub file: String,
    /// What is wrong, naming the rule.
    pub message: String,
}

/// The rule names Watcher's defaults and Sextant give, with their check
/// strings (the GET rules of each resource are made by [`Policy::defaults`]).
const BASE: &[(&str, &str)] = &[
    ("admin_api", "role:admin or role:administrator"),
    ("reader_api", "role:reader"),
    ("default", "rule:admin_api"),
    ("webhook:trigger", "rule:admin_api or role:service"),
    // The `/v1` discovery document: any caller the authentication let in
    // (Watcher checks no rule there).
    ("version:get", "@"),
];

/// The resources of the API, as rules name them.
const RESOURCES: &[&str] = &[
    "goal",
    "strategy",
    "audit_template",
    "audit",
    "action_plan",
    "action",
    "scoring_engine",
    "service",
    "data_model",
    "action_type",
    "event",
    "policy",
    "plugin",
];

impl Policy {
    /// Watcher's defaults plus `reader`.
    pub fn defaults() -> Self {
        let mut rules = BTreeMap::new();
        for (name, check) in BASE {
            rules.insert(name.to_string(), parse(check).unwrap_or(Check::Never));
        }
        let read = parse("rule:admin_api or rule:reader_api").unwrap_or(Check::Never);
        let admin = Check::Rule("admin_api".into());
        for r in RESOURCES {
            for action in ["get", "get_all", "detail"] {
                rules.insert(format!("{r}:{action}"), read.clone());
            }
            for action in ["create", "update", "delete"] {
                rules.insert(format!("{r}:{action}"), admin.clone());
            }
        }
        for name in ["strategy:state", "action_plan:graph"] {
            rules.insert(name.into(), read.clone());
        }
        rules.insert("action_plan:start".into(), admin);
        Self { rules }
    }

    /// The defaults with `path`'s rules over them.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::defaults().with_overrides(&text).map_err(err)
    }

    /// These rules with the YAML map `text`'s over them.
    pub fn with_overrides(mut self, text: &str) -> Result<Self, String> {
        let map: Option<BTreeMap<String, String>> = serde_yaml_ng::from_str(text).map_err(|e| {
            format!(
                "{e} (a map of rule name to check string, e.g. \"audit:create\": \"role:admin\")"
            )
        })?;
        for (name, check) in map.unwrap_or_default() {
            let parsed = parse(&check).map_err(|e| format!("rule {name:?}: {e}"))?;
            self.rules.insert(name, parsed);
        }
        for (name, check) in &self.rules {
            if let Some(missing) = check.undefined(&self.rules) {
                return Err(format!(
                    "rule {name:?} refers to rule:{missing}, which is not defined"
                ));
            }
            if self.cycles(name, check, &mut Vec::new()) {
                return Err(format!("rule {name:?} refers to itself"));
            }
        }
        Ok(self)
    }

    fn cycles<'a>(&'a self, name: &'a str, check: &'a Check, seen: &mut Vec<&'a str>) -> bool {
        if seen.contains(&name) {
            return true;
        }
        seen.push(name);
        let found = check.rules().into_iter().any(|r| {
            self.rules
                .get_key_value(r)
                .is_some_and(|(k, c)| self.cycles(k, c, seen))
        });
        seen.pop();
        found
    }

    /// Whether `who` passes rule `name` (`default` when no rule has that
    /// name).
    pub fn allows(&self, name: &str, who: &dyn Credentials) -> bool {
        let check = self.rules.get(name).or_else(|| self.rules.get("default"));
        check.is_some_and(|c| self.eval(c, who, 0))
    }

    fn eval(&self, c: &Check, who: &dyn Credentials, depth: usize) -> bool {
        // Cycles are refused at load; the bound is a second guard.
        if depth > 64 {
            return false;
        }
        match c {
            Check::Always => true,
            Check::Never => false,
            Check::Role(r) => who.has_role(r),
            Check::Rule(r) => self
                .rules
                .get(r)
                .is_some_and(|c| self.eval(c, who, depth + 1)),
            Check::UserId(id) => who.user_id() == Some(id.as_str()),
            Check::ProjectId(id) => who.project_id() == Some(id.as_str()),
            Check::Not(c) => !self.eval(c, who, depth + 1),
            Check::And(cs) => cs.iter().all(|c| self.eval(c, who, depth + 1)),
            Check::Or(cs) => cs.iter().any(|c| self.eval(c, who, depth + 1)),
        }
    }
}

impl Check {
    fn rules(&self) -> Vec<&str> {
        match self {
            Check::Rule(r) => vec![r.as_str()],
            Check::Not(c) => c.rules(),
            Check::And(cs) | Check::Or(cs) => cs.iter().flat_map(|c| c.rules()).collect(),
            _ => Vec::new(),
        }
    }
    fn undefined<'a>(&'a self, rules: &BTreeMap<String, Check>) -> Option<&'a str> {
        self.rules().into_iter().find(|r| !rules.contains_key(*r))
    }
}

/// The rule Watcher names a request by: `RESOURCE:ACTION`, where ACTION is
/// `get_all` (a list), `detail` (`/detail`), `get` (one), `create`,
/// `update`, `delete`, `start`, `trigger` (webhooks), `state`
/// (`/strategies/{id}/state`), `graph`; `/v1` itself is `version:get`.
pub fn rule_of(method: &Method, path: &str) -> String {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let mut parts = path
        .trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty());
    let resource = parts.next().unwrap_or("");
    let id = parts.next();
    let sub = parts.next();
    let singular = match resource {
        "" => return "version:get".to_string(),
        r if r.ends_with("ies") => format!("{}y", &r[..r.len() - 3]),
        "data_model" => "data_model".to_string(),
        r => r.strip_suffix('s').unwrap_or(r).to_string(),
    };
    let action = match (method.clone(), id, sub) {
        (Method::POST, _, _) if resource == "webhooks" => "trigger",
        (Method::POST, _, Some("start")) => "start",
        (Method::GET | Method::HEAD, Some("detail"), None) => "detail",
        (Method::GET | Method::HEAD, Some(_), Some(s)) => s,
        (Method::GET | Method::HEAD, Some(_), None) => "get",
        (Method::GET | Method::HEAD, None, _) => "get_all",
        (Method::POST, _, _) => "create",
        (Method::PATCH | Method::PUT, _, _) => "update",
        (Method::DELETE, _, _) => "delete",
        _ => "other",
    };
    format!("{singular}:{action}")
}

/// Parses a check string.
pub fn parse(text: &str) -> Result<Check, String> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Ok(Check::Always);
    }
    let mut p = Parser { tokens, at: 0 };
    let c = p.or()?;
    match p.tokens.get(p.at) {
        None => Ok(c),
        Some(t) => Err(format!("unexpected {t:?} in {text:?}")),
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for ch in text.chars() {
        match ch {
            '(' | ')' => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                out.push(ch.to_string());
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }
    fn or(&mut self) -> Result<Check, String> {
        let mut all = vec![self.and()?];
        while self.peek() == Some("or") {
            self.at += 1;
            all.push(self.and()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Check::Or(all)
        })
    }
    fn and(&mut self) -> Result<Check, String> {
        let mut all = vec![self.not()?];
        while self.peek() == Some("and") {
            self.at += 1;
            all.push(self.not()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Check::And(all)
        })
    }
    fn not(&mut self) -> Result<Check, String> {
        if self.peek() == Some("not") {
            self.at += 1;
            return Ok(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<Check, String> {
        let Some(t) = self.tokens.get(self.at).cloned() else {
            return Err("the check string ends too early".into());
        };
        self.at += 1;
        match t.as_str() {
            "(" => {
                let c = self.or()?;
                if self.peek() != Some(")") {
                    return Err("a '(' is not closed".into());
                }
                self.at += 1;
                Ok(c)
            }
            "@" => Ok(Check::Always),
            "!" => Ok(Check::Never),
            _ => {
                let (kind, value) = t.split_once(':').ok_or_else(|| {
                    format!("{t:?} is not a check (role:NAME, rule:NAME, user_id:ID, project_id:ID, @, !)")
                })?;
                if value.is_empty() {
                    return Err(format!("{t:?} names nothing after the ':'"));
                }
                match kind {
                    "role" => Ok(Check::Role(value.to_string())),
                    "rule" => Ok(Check::Rule(value.to_string())),
                    "user_id" => Ok(Check::UserId(value.to_string())),
                    "project_id" => Ok(Check::ProjectId(value.to_string())),
                    _ => Err(format!(
                        "{kind:?} checks are not supported (role, rule, user_id, project_id)"
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Who(&'static [&'static str], Option<&'static str>);
    impl Credentials for Who {
        fn has_role(&self, role: &str) -> bool {
            self.0.iter().any(|r| r.eq_ignore_ascii_case(role))
        }
        fn user_id(&self) -> Option<&str> {
            self.1
        }
        fn project_id(&self) -> Option<&str> {
            Some("p1")
        }
    }

    #[test]
    fn watcher_s_defaults_with_a_reader_role() {
        let p = Policy::defaults();
        let (admin, reader, service) = (
            Who(&["admin"], None),
            Who(&["reader"], None),
            Who(&["service"], None),
        );
        let r = |m: Method, path: &str| rule_of(&m, path);
        assert!(p.allows(&r(Method::DELETE, "/v1/audits/x"), &admin));
        assert!(p.allows(
            &r(Method::POST, "/v1/audits"),
            &Who(&["Administrator"], None)
        ));
        assert!(p.allows(&r(Method::GET, "/v1/audits"), &reader));
        assert!(p.allows(&r(Method::GET, "/v1/strategies/dummy/state"), &reader));
        assert!(!p.allows(&r(Method::POST, "/v1/audits"), &reader));
        assert!(!p.allows(&r(Method::POST, "/v1/webhooks/a"), &reader));
        assert!(p.allows(&r(Method::POST, "/v1/webhooks/a"), &service));
        assert!(p.allows(&r(Method::POST, "/webhooks/a"), &service));
        assert!(!p.allows(&r(Method::GET, "/v1/goals"), &service));
        assert!(!p.allows(&r(Method::GET, "/v1/goals"), &Who(&["member"], None)));
        assert!(p.allows(&r(Method::GET, "/v1"), &service));
        // An unknown rule falls back on `default`.
        assert!(!p.allows("frobnicator:get", &reader));
        assert!(p.allows("frobnicator:get", &admin));
    }

    #[test]
    fn rules_are_named_as_watcher_names_them() {
        let r = |m: Method, path: &str| rule_of(&m, path);
        assert_eq!(r(Method::POST, "/v1/audits"), "audit:create");
        assert_eq!(r(Method::POST, "/audits/"), "audit:create");
        assert_eq!(r(Method::GET, "/v1/goals/dummy"), "goal:get");
        assert_eq!(r(Method::GET, "/v1/goals/detail"), "goal:detail");
        assert_eq!(r(Method::GET, "/v1/goals/"), "goal:get_all");
        assert_eq!(r(Method::GET, "/v1/strategies/s/state"), "strategy:state");
        assert_eq!(
            r(Method::POST, "/v1/action_plans/u/start"),
            "action_plan:start"
        );
        assert_eq!(r(Method::PATCH, "/v1/action_plans/u"), "action_plan:update");
        assert_eq!(
            r(Method::DELETE, "/v1/audit_templates/t"),
            "audit_template:delete"
        );
        assert_eq!(r(Method::POST, "/v1/webhooks/a"), "webhook:trigger");
        assert_eq!(r(Method::GET, "/v1/data_model"), "data_model:get_all");
        assert_eq!(r(Method::GET, "/v1/policies"), "policy:get_all");
        assert_eq!(r(Method::GET, "/v1/"), "version:get");
        assert_eq!(r(Method::GET, "/v1"), "version:get");
    }

    #[test]
    fn check_strings_parse_with_oslo_s_precedence() {
        assert_eq!(parse("").unwrap(), Check::Always);
        assert_eq!(parse("@").unwrap(), Check::Always);
        assert_eq!(
            parse("role:a or role:b and not role:c").unwrap(),
            Check::Or(vec![
                Check::Role("a".into()),
                Check::And(vec![
                    Check::Role("b".into()),
                    Check::Not(Box::new(Check::Role("c".into())))
                ])
            ])
        );
        assert_eq!(
            parse("(role:a or role:b) and !").unwrap(),
            Check::And(vec![
                Check::Or(vec![Check::Role("a".into()), Check::Role("b".into())]),
                Check::Never
            ])
        );
        for bad in [
            "role:",
            "(role:a",
            "role:a or",
            "tenant:x",
            "role:a role:b",
            "admin",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_policy_file_overrides_rules_and_is_checked() {
        let p = Policy::defaults()
            .with_overrides("\"audit:create\": \"role:member or rule:admin_api\"\n\"goal:get_all\": \"!\"\n\"audit:delete\": \"user_id:u1 and project_id:p1\"\n")
            .unwrap();
        let member = Who(&["member"], Some("u1"));
        assert!(p.allows("audit:create", &member));
        assert!(!p.allows("audit:update", &member));
        assert!(!p.allows("goal:get_all", &Who(&["admin"], None)));
        assert!(p.allows("audit:delete", &member));
        assert!(!p.allows("audit:delete", &Who(&["admin"], Some("u2"))));

        let e = Policy::defaults()
            .with_overrides("\"audit:create\": \"rule:nope\"\n")
            .unwrap_err();
        assert!(e.contains("audit:create") && e.contains("rule:nope"), "{e}");
        let e = Policy::defaults()
            .with_overrides("\"a\": \"rule:b\"\n\"b\": \"rule:a\"\n")
            .unwrap_err();
        assert!(e.contains("refers to itself"), "{e}");
        let e = Policy::defaults()
            .with_overrides("\"audit:create\": \"role:a or\"\n")
            .unwrap_err();
        assert!(
            e.contains("audit:create") && e.contains("ends too early"),
            "{e}"
        );
        let e = Policy::defaults().with_overrides("- a\n- b\n").unwrap_err();
        assert!(e.contains("a map of rule name"), "{e}");
        // Empty file: the defaults.
        assert!(Policy::defaults().with_overrides("").is_ok());
    }
}
