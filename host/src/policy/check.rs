//! The checks of a policy against what this installation has: every action
//! type it names is registered, every parameter it names (`where`,
//! `when_equal`, `per`) is one of that type's, and its planner is loaded.
//! A misspelt name would otherwise make a rule, a weight or a pool silently
//! match nothing. Each fault is reported at the file, line and column of
//! the name, found by the YAML parser ([`super::locate`]).

use super::locate::{Point, Seg, locate};
use super::{Policy, PolicyError};
use crate::action_types::ActionTypeRegistry;
use crate::plugins::PluginRegistry;
use crate::suggest::candidates_message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a policy may name: the registered action types with their
/// parameters, and the loaded planners.
#[derive(Clone, Debug, Default)]
pub struct Vocabulary {
    /// Action type → its parameter names (over all its versions); `None`
    /// when its schema does not list them (then any name is accepted).
    types: BTreeMap<String, Option<BTreeSet<String>>>,
    planners: BTreeSet<String>,
}

/// A parameter every action has besides its type's: the resource it acts on
/// (the planners read it from the action, not its parameters).
const RESOURCE_ID: &str = "resource_id";

impl Vocabulary {
    /// From explicit lists (for tests and tools).
    pub fn new<T, P>(types: T, planners: P) -> Self
    where
        T: IntoIterator<Item = (String, Option<BTreeSet<String>>)>,
        P: IntoIterator<Item = String>,
    {
        Self {
            types: types.into_iter().collect(),
            planners: planners.into_iter().collect(),
        }
    }

    /// The registered action types and the loaded planner entries.
    pub fn of(types: &ActionTypeRegistry, plugins: &PluginRegistry) -> Self {
        let mut map: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
        for t in types.all() {
            let names: Option<BTreeSet<String>> = t.parameters["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect());
            match (map.get_mut(&t.name), names) {
                (Some(Some(known)), Some(names)) => known.extend(names),
                (Some(known), None) => *known = None,
                (Some(None), Some(_)) => {}
                (None, names) => {
                    map.insert(t.name.clone(), names);
                }
            }
        }
        let planners = plugins
            .of_kind(sextant_plugin_api::manifest::Kind::Planner)
            .map(|e| e.manifest().name.clone())
            .collect();
        Self {
            types: map,
            planners,
        }
    }

    fn type_names(&self) -> Vec<&str> {
        self.types.keys().map(String::as_str).collect()
    }

    /// `None` when `name` is a parameter of `action_type` (or of any type,
    /// when no type is given), else the parameters it could have been.
    fn unknown_parameter(&self, action_type: Option<&str>, name: &str) -> Option<Vec<String>> {
        if name == RESOURCE_ID {
            return None;
        }
        let sets: Vec<&Option<BTreeSet<String>>> = match action_type {
            Some(t) => self.types.get(t).into_iter().collect(),
            None => self.types.values().collect(),
        };
        if sets.is_empty() || sets.iter().any(|s| s.is_none()) {
            return None;
        }
        if sets
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.contains(name)))
        {
            return None;
        }
        let mut all: BTreeSet<String> = sets.into_iter().flatten().flatten().cloned().collect();
        all.insert(RESOURCE_ID.into());
        Some(all.into_iter().collect())
    }
}

/// One fault: where it is and what is wrong.
struct Fault<'a> {
    path: Vec<Seg<'a>>,
    point: Point,
    message: String,
}

impl Policy {
    /// Checks every name the policy uses against `vocab`; `text` is the
    /// policy's file as read (for locations), `file` names it. The first
    /// fault in the file's order is reported.
    pub fn check_names(
        &self,
        text: &str,
        file: &Path,
        vocab: &Vocabulary,
    ) -> Result<(), PolicyError> {
        let mut faults = Vec::new();
        self.name_faults(vocab, &mut faults);
        let located = faults.into_iter().map(|f| {
            let (line, column) = locate(text, &f.path, f.point).unwrap_or((1, 1));
            PolicyError {
                file: file.to_path_buf(),
                line,
                column,
                message: f.message,
            }
        });
        match located.min_by_key(|e| (e.line, e.column)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn name_faults<'a>(&'a self, vocab: &Vocabulary, out: &mut Vec<Fault<'a>>) {
        use Seg::{Field, Item};
        if !vocab.planners.contains(&self.planner) {
            let known: Vec<&str> = vocab.planners.iter().map(String::as_str).collect();
            out.push(Fault {
                path: vec![Field("planner")],
                point: Point::Value,
                message: format!(
                    "planner: no planner named {:?} is loaded ({})",
                    self.planner,
                    candidates_message(&self.planner, &known)
                ),
            });
        }
        let type_names = vocab.type_names();
        let unknown_type = |what: String, t: &str| {
            (!vocab.types.contains_key(t)).then(|| {
                format!(
                    "{what}: unknown action type {t:?} ({})",
                    candidates_message(t, &type_names)
                )
            })
        };
        let unknown_param = |what: String, t: Option<&str>, p: &str| {
            vocab.unknown_parameter(t, p).map(|known| {
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                let of = t.map_or("any action type".to_string(), |t| {
                    format!("action type {t}")
                });
                format!(
                    "{what}: {p:?} is not a parameter of {of} ({})",
                    candidates_message(p, &known)
                )
            })
        };
        for (section, map) in [
            ("weights", &self.weights),
            ("parallelization", &self.parallelization),
        ] {
            for t in map.iter().flat_map(|m| m.keys()) {
                if let Some(message) = unknown_type(section.to_string(), t) {
                    out.push(Fault {
                        path: vec![Field(section), Field(t)],
                        point: Point::Key,
                        message,
                    });
                }
            }
        }
        for t in self.recovery.keys().filter(|k| *k != "default") {
            if let Some(message) = unknown_type("recovery".into(), t) {
                out.push(Fault {
                    path: vec![Field("recovery"), Field(t)],
                    point: Point::Key,
                    message,
                });
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            let rule = format!("rules[{i}] ({})", r.name);
            for (side, s) in [("first", &r.first), ("then", &r.then)] {
                let side_path = [Field("rules"), Item(i), Field(side)];
                match unknown_type(format!("{rule}.{side}.action_type"), &s.action_type) {
                    Some(message) => out.push(Fault {
                        path: [&side_path[..], &[Field("action_type")]].concat(),
                        point: Point::Value,
                        message,
                    }),
                    None => {
                        for p in s.where_.keys() {
                            if let Some(message) = unknown_param(
                                format!("{rule}.{side}.where"),
                                Some(&s.action_type),
                                p,
                            ) {
                                out.push(Fault {
                                    path: [&side_path[..], &[Field("where"), Field(p)]].concat(),
                                    point: Point::Key,
                                    message,
                                });
                            }
                        }
                    }
                }
            }
            if let Some(w) = &r.when_equal {
                for (side, p, t) in [
                    ("first", &w.first, &r.first.action_type),
                    ("then", &w.then, &r.then.action_type),
                ] {
                    if !vocab.types.contains_key(t) {
                        continue;
                    }
                    if let Some(message) =
                        unknown_param(format!("{rule}.when_equal.{side}"), Some(t), p)
                    {
                        out.push(Fault {
                            path: vec![Field("rules"), Item(i), Field("when_equal"), Field(side)],
                            point: Point::Value,
                            message,
                        });
                    }
                }
            }
        }
        for (i, l) in self.limits.iter().enumerate() {
            let limit = format!("limits[{i}]");
            if let Some(t) = &l.action_type
                && let Some(message) = unknown_type(format!("{limit}.action_type"), t)
            {
                out.push(Fault {
                    path: vec![Field("limits"), Item(i), Field("action_type")],
                    point: Point::Value,
                    message,
                });
                continue;
            }
            if let Some(p) = &l.per
                && let Some(message) =
                    unknown_param(format!("{limit}.per"), l.action_type.as_deref(), p)
            {
                out.push(Fault {
                    path: vec![Field("limits"), Item(i), Field("per")],
                    point: Point::Value,
                    message,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        let params = |p: &[&str]| Some(p.iter().map(|s| s.to_string()).collect());
        Vocabulary::new(
            [
                (
                    "migrate".to_string(),
                    params(&["source_node", "destination_node", "migration_type"]),
                ),
                (
                    "change_nova_service_state".to_string(),
                    params(&["resource_name", "state"]),
                ),
                ("nop".to_string(), params(&["message"])),
                ("free_form".to_string(), None),
            ],
            ["rules".to_string(), "weight".to_string()],
        )
    }

    fn check(text: &str) -> Result<(), PolicyError> {
        let file = Path::new("p.yaml");
        Policy::parse(text, file)
            .expect("parses")
            .check_names(text, file, &vocab())
    }

    fn fault(text: &str) -> (usize, usize, String) {
        let e = check(text).expect_err("refused");
        (e.line, e.column, e.message)
    }

    #[test]
    fn the_shipped_kinds_of_names_pass() {
        check(
            "planner: weight\nweights: {migrate: 3, nop: 1}\nparallelization: {migrate: 2}\n\
             rules:\n  - name: r\n    first: {action_type: change_nova_service_state, where: {state: disabled}}\n\
             \x20   then: {action_type: migrate}\n    when_equal: {first: resource_name, then: source_node}\n\
             limits:\n  - {action_type: migrate, per: source_node, max: 2}\n  - {per: resource_id, max: 3}\n\
             \x20 - {action_type: free_form, per: anything, max: 1}\n\
             recovery:\n  default: {retries: 1}\n  migrate: {retries: 2}\n",
        )
        .expect("valid");
    }

    #[test]
    fn an_unknown_action_type_is_refused_where_it_is_named() {
        let (l, c, m) = fault("weights: {nop: 1, migrat: 2}\n");
        assert_eq!((l, c), (1, 19), "{m}");
        assert!(
            m.contains("\"migrat\"") && m.contains("did you mean migrate?"),
            "{m}"
        );
        let (l, c, m) = fault("parallelization:\n  nop: 1\n  mirgate: 2\n");
        assert_eq!((l, c), (3, 3), "{m}");
        let (l, c, m) = fault("recovery:\n  default: {retries: 1}\n  migrat: {retries: 2}\n");
        assert_eq!((l, c), (3, 3), "{m}");
        let (l, c, m) = fault(
            "rules:\n  - name: a\n    first: {action_type: nop}\n    then: {action_type: migrat}\n",
        );
        assert_eq!((l, c), (4, 25), "{m}");
        assert!(m.starts_with("rules[0] (a).then.action_type"), "{m}");
        let (l, c, _) = fault("limits:\n  - {action_type: nope, max: 2}\n");
        assert_eq!((l, c), (2, 19));
    }

    #[test]
    fn an_unknown_parameter_is_refused_where_it_is_named() {
        let (l, c, m) = fault(
            "rules:\n  - name: a\n    first: {action_type: change_nova_service_state, where: {stat: disabled}}\n    then: {action_type: migrate}\n",
        );
        assert_eq!((l, c), (3, 61), "{m}");
        assert!(m.contains("did you mean state?"), "{m}");
        let (l, c, m) = fault(
            "rules:\n  - name: a\n    first: {action_type: change_nova_service_state}\n    then: {action_type: migrate}\n    when_equal: {first: resource_name, then: source_nod}\n",
        );
        assert_eq!((l, c), (5, 46), "{m}");
        assert!(
            m.contains("when_equal.then") && m.contains("source_node"),
            "{m}"
        );
        let (l, c, m) = fault("limits:\n  - {action_type: migrate, per: source, max: 2}\n");
        assert_eq!((l, c), (2, 33), "{m}");
    }

    #[test]
    fn an_unknown_planner_is_refused_and_the_first_fault_is_reported() {
        let (l, c, m) = fault("planner: rulez\n");
        assert_eq!((l, c), (1, 10), "{m}");
        assert!(m.contains("did you mean rules?"), "{m}");
        // Without a `planner` key, the default (rules) must be loaded.
        let e = Policy::parse("", Path::new("p.yaml"))
            .expect("parses")
            .check_names("", Path::new("p.yaml"), &Vocabulary::default())
            .expect_err("no planner loaded");
        assert!(e.message.contains("\"rules\""), "{e}");
        let (l, _, _) = fault("weights: {nop: 1}\nplanner: nope\nrecovery: {migrat: {}}\n");
        assert_eq!(l, 2);
    }
}
