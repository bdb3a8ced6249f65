//! Flows and alternatives in `action-plan import` files (docs/flows.md):
//! parsed beside the actions, checked (every error names the file, the line
//! and column, and the field at fault), and expanded: each alternative
//! becomes an action of the plan with the primary's type, parameters and
//! parents (its own parameters merged over them), and the plan's
//! [`PlanStructure`] records which flow each action is in and which
//! alternatives go together.

use super::CliError;
use super::import::ImportAction;
use crate::policy::OnFailure;
use crate::policy::locate::{Point, Seg, locate};
use crate::store::flows::{NewFlow, NewScope, PlanStructure};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// An alternative of an action, as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportAlternative {
    id: String,
    #[serde(default)]
    action_type: Option<String>,
    #[serde(default)]
    input_parameters: Option<Value>,
}

/// A flow, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportFlow {
    id: String,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    flows: Vec<String>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    /// Flows tried, in order, when this one fails for good.
    #[serde(default)]
    alternatives: Vec<String>,
    /// Runs of the whole flow again after it failed for good and was
    /// rolled back: each a copy of the flow, tried before `alternatives`.
    #[serde(default)]
    retries: Option<u32>,
}

/// The most retries of a whole flow (each copies the flow's actions).
const MAX_FLOW_RETRIES: u32 = 10;

/// Expands `retries: N` of a flow into N copies of it (`<flow>-retryK`,
/// actions `<action>-retryK`, parents inside the flow mapped to the copies),
/// tried, in order, as the flow's first alternatives.
fn expand_retries(
    at: &At<'_>,
    actions: &mut Vec<ImportAction>,
    flows: &mut Vec<ImportFlow>,
) -> Result<(), CliError> {
    let mut added_flows = Vec::new();
    for (k, f) in flows.iter_mut().enumerate() {
        let Some(n) = f.retries.filter(|&n| n > 0) else {
            continue;
        };
        let path = [Seg::Field("flows"), Seg::Item(k), Seg::Field("retries")];
        if n > MAX_FLOW_RETRIES {
            return Err(at.err(
                &path,
                format!("at most {MAX_FLOW_RETRIES} retries of a whole flow"),
            ));
        }
        if !f.flows.is_empty() {
            return Err(at.err(
                &path,
                format!(
                    "flow {} has nested flows: give the nested flows retries",
                    f.id
                ),
            ));
        }
        let members: HashSet<String> = f.actions.iter().cloned().collect();
        let originals: Vec<ImportAction> = actions
            .iter()
            .filter(|a| members.contains(&a.id))
            .cloned()
            .collect();
        for a in &originals {
            let reads = crate::action_types::template::declared_references(&a.input_parameters);
            if !reads.is_empty() {
                return Err(at.err(
                    &path,
                    format!(
                        "action {} reads other actions' outputs: a flow whose actions do cannot be retried as a copy",
                        a.id
                    ),
                ));
            }
        }
        let mut retry_names = Vec::new();
        for r in 1..=n {
            let suffix = format!("-retry{r}");
            let rename = |name: &str| {
                if members.contains(name) {
                    format!("{name}{suffix}")
                } else {
                    name.to_string()
                }
            };
            for a in &originals {
                let mut c = a.clone();
                c.id = format!("{}{suffix}", a.id);
                c.parents = a.parents.iter().map(|p| rename(p)).collect();
                for alt in &mut c.alternatives {
                    alt.id = format!("{}{suffix}", alt.id);
                }
                actions.push(c);
            }
            let name = format!("{}{suffix}", f.id);
            added_flows.push(ImportFlow {
                id: name.clone(),
                actions: originals
                    .iter()
                    .map(|a| format!("{}{suffix}", a.id))
                    .collect(),
                flows: Vec::new(),
                on_failure: f.on_failure,
                alternatives: Vec::new(),
                retries: None,
            });
            retry_names.push(name);
        }
        retry_names.append(&mut f.alternatives);
        f.alternatives = retry_names;
        f.retries = None;
    }
    flows.extend(added_flows);
    Ok(())
}

/// An error at a place of the file.
struct At<'t> {
    file: &'t Path,
    text: &'t str,
}

impl At<'_> {
    fn err(&self, path: &[Seg<'_>], msg: impl std::fmt::Display) -> CliError {
        let field = path
            .iter()
            .map(|s| match s {
                Seg::Field(f) => format!(".{f}"),
                Seg::Item(i) => format!("[{i}]"),
            })
            .collect::<String>();
        let field = field.trim_start_matches('.');
        let place = locate(self.text, path, Point::Value)
            .map(|(l, c)| format!("line {l} column {c}: "))
            .unwrap_or_default();
        CliError::input(anyhow::anyhow!(
            "{}: {place}{field}: {msg}",
            self.file.display()
        ))
    }
}

/// Expands the alternatives into actions (each right after its primary)
/// and checks the flows; returns the actions to import and the structure
/// to store with them (empty for a flat plan).
pub(crate) fn expand(
    file: &Path,
    text: &str,
    mut actions: Vec<ImportAction>,
    mut flows: Vec<ImportFlow>,
) -> Result<(Vec<ImportAction>, PlanStructure), CliError> {
    let at = At { file, text };
    let mut structure = PlanStructure::default();
    if flows.is_empty() && actions.iter().all(|a| a.alternatives.is_empty()) {
        return Ok((actions, structure));
    }
    expand_retries(&at, &mut actions, &mut flows)?;
    // Alternatives: name → its primary.
    let mut alternative_of: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(actions.len());
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (k, mut a) in actions.into_iter().enumerate() {
        let alts = std::mem::take(&mut a.alternatives);
        let primary = a.id.clone();
        let mut members = vec![primary.clone()];
        let mut expanded = Vec::with_capacity(alts.len());
        for alt in alts {
            let mut params = a.input_parameters.clone();
            match (&mut params, alt.input_parameters) {
                (Value::Object(p), Some(Value::Object(o))) => {
                    for (key, v) in o {
                        p.insert(key, v);
                    }
                }
                (_, Some(Value::Object(o))) => params = Value::Object(o),
                (_, None) => {}
                (_, Some(_)) => {
                    let j = members.len() - 1;
                    return Err(at.err(
                        &[
                            Seg::Field("actions"),
                            Seg::Item(k),
                            Seg::Field("alternatives"),
                            Seg::Item(j),
                            Seg::Field("input_parameters"),
                        ],
                        "input_parameters must be a mapping",
                    ));
                }
            }
            alternative_of.insert(alt.id.clone(), primary.clone());
            members.push(alt.id.clone());
            expanded.push(ImportAction {
                id: alt.id,
                action_type: alt.action_type.unwrap_or_else(|| a.action_type.clone()),
                input_parameters: params,
                parents: a.parents.clone(),
                initial_state: None,
                alternatives: Vec::new(),
            });
        }
        if members.len() > 1 {
            groups.push((primary, members));
        }
        out.push(a);
        out.extend(expanded);
    }
    // Nothing waits on an alternative: dependents name the primary.
    for (k, a) in out.iter().enumerate() {
        if alternative_of.contains_key(&a.id) {
            continue;
        }
        for (j, p) in a.parents.iter().enumerate() {
            if let Some(primary) = alternative_of.get(p) {
                let file_index = out[..k]
                    .iter()
                    .filter(|x| !alternative_of.contains_key(&x.id))
                    .count();
                return Err(at.err(
                    &[
                        Seg::Field("actions"),
                        Seg::Item(file_index),
                        Seg::Field("parents"),
                        Seg::Item(j),
                    ],
                    format!(
                        "{p} is an alternative of {primary}: name {primary}, whose dependents wait for whichever alternative succeeds"
                    ),
                ));
            }
        }
    }
    // Flows.
    let names: HashSet<&str> = out.iter().map(|a| a.id.as_str()).collect();
    let mut flow_index: HashMap<&str, usize> = HashMap::new();
    for (k, f) in flows.iter().enumerate() {
        if flow_index.insert(&f.id, k).is_some() {
            return Err(at.err(
                &[Seg::Field("flows"), Seg::Item(k), Seg::Field("id")],
                format!("two flows are named {}", f.id),
            ));
        }
    }
    let mut flow_of_action: HashMap<&str, &str> = HashMap::new();
    let mut parent_of_flow: HashMap<&str, &str> = HashMap::new();
    for (k, f) in flows.iter().enumerate() {
        for (j, name) in f.actions.iter().enumerate() {
            let path = [
                Seg::Field("flows"),
                Seg::Item(k),
                Seg::Field("actions"),
                Seg::Item(j),
            ];
            if let Some(primary) = alternative_of.get(name) {
                return Err(at.err(
                    &path,
                    format!("{name} is an alternative of {primary}: it is in {primary}'s flow"),
                ));
            }
            if !names.contains(name.as_str()) {
                return Err(at.err(&path, format!("unknown action {name}")));
            }
            if let Some(other) = flow_of_action.insert(name, &f.id) {
                return Err(at.err(
                    &path,
                    format!("action {name} is already in flow {other}: an action is in one flow"),
                ));
            }
        }
        for (j, name) in f.flows.iter().enumerate() {
            let path = [
                Seg::Field("flows"),
                Seg::Item(k),
                Seg::Field("flows"),
                Seg::Item(j),
            ];
            if !flow_index.contains_key(name.as_str()) {
                return Err(at.err(&path, format!("unknown flow {name}")));
            }
            if let Some(other) = parent_of_flow.insert(name, &f.id) {
                return Err(at.err(
                    &path,
                    format!("flow {name} is already nested in {other}: a flow is in one flow"),
                ));
            }
        }
    }
    // No flow contains itself.
    for (k, f) in flows.iter().enumerate() {
        let mut seen = HashSet::new();
        let mut cur = f.id.as_str();
        while let Some(&up) = parent_of_flow.get(cur) {
            if !seen.insert(up) || up == f.id {
                return Err(at.err(
                    &[Seg::Field("flows"), Seg::Item(k), Seg::Field("flows")],
                    format!("flow {} is nested in itself", f.id),
                ));
            }
            cur = up;
        }
    }
    // Alternative flows: each stands in for one flow, at its place.
    let mut flow_alternative_of: HashMap<&str, (&str, u32)> = HashMap::new();
    for (k, f) in flows.iter().enumerate() {
        for (j, name) in f.alternatives.iter().enumerate() {
            let path = [
                Seg::Field("flows"),
                Seg::Item(k),
                Seg::Field("alternatives"),
                Seg::Item(j),
            ];
            let Some(&g) = flow_index.get(name.as_str()) else {
                return Err(at.err(&path, format!("unknown flow {name}")));
            };
            if name == &f.id {
                return Err(at.err(&path, format!("flow {name} cannot be its own alternative")));
            }
            if let Some(up) = parent_of_flow.get(name.as_str()) {
                return Err(at.err(
                    &path,
                    format!(
                        "flow {name} is nested in {up}: an alternative flow takes the place of {}",
                        f.id
                    ),
                ));
            }
            if !flows[g].alternatives.is_empty() {
                return Err(at.err(
                    &path,
                    format!("flow {name} has alternatives of its own: list them all, in order, under {}", f.id),
                ));
            }
            if let Some((other, _)) = flow_alternative_of.insert(name, (&f.id, j as u32 + 1)) {
                return Err(at.err(
                    &path,
                    format!("flow {name} is already an alternative of {other}"),
                ));
            }
        }
    }
    for (k, f) in flows.iter().enumerate() {
        if !f.alternatives.is_empty() && flow_alternative_of.contains_key(f.id.as_str()) {
            return Err(at.err(
                &[Seg::Field("flows"), Seg::Item(k), Seg::Field("alternatives")],
                format!("flow {} is itself an alternative: list every alternative under the primary flow", f.id),
            ));
        }
    }
    // The flows an action is in, innermost first.
    let chain = |a: &str| -> Vec<&str> {
        let mut out = Vec::new();
        let mut cur = flow_of_action.get(a).copied();
        while let Some(f) = cur {
            out.push(f);
            cur = parent_of_flow.get(f).copied();
        }
        out
    };
    // Nothing outside an alternative flow waits on its actions: dependents
    // name the primary flow's.
    for (k, a) in out.iter().enumerate() {
        let own = chain(&a.id);
        for (j, p) in a.parents.iter().enumerate() {
            for g in chain(p) {
                if let Some((primary, _)) = flow_alternative_of.get(g)
                    && !own.contains(&g)
                {
                    let file_index = out[..k]
                        .iter()
                        .filter(|x| !alternative_of.contains_key(&x.id))
                        .count();
                    return Err(at.err(
                        &[
                            Seg::Field("actions"),
                            Seg::Item(file_index),
                            Seg::Field("parents"),
                            Seg::Item(j),
                        ],
                        format!(
                            "{p} is in flow {g}, an alternative of {primary}: depend on {primary}'s actions, whose dependents wait for whichever flow succeeds"
                        ),
                    ));
                }
            }
        }
    }
    structure.flows = flows
        .iter()
        .map(|f| {
            let alt = flow_alternative_of.get(f.id.as_str());
            // An alternative flow sits where its primary sits.
            let parent = match alt {
                Some((primary, _)) => parent_of_flow.get(primary),
                None => parent_of_flow.get(f.id.as_str()),
            };
            NewFlow {
                name: f.id.clone(),
                parent: parent.map(|p| p.to_string()),
                on_failure: f.on_failure.unwrap_or(OnFailure::Continue),
                alternative_of: alt.map(|(p, r)| (p.to_string(), *r)),
            }
        })
        .collect();
    let group_of: HashMap<&str, (&str, u32)> = groups
        .iter()
        .flat_map(|(p, members)| {
            members
                .iter()
                .enumerate()
                .map(move |(r, m)| (m.as_str(), (p.as_str(), r as u32)))
        })
        .collect();
    for a in &out {
        let primary = alternative_of
            .get(&a.id)
            .map_or(a.id.as_str(), |p| p.as_str());
        let flow = flow_of_action.get(primary).map(|f| f.to_string());
        let group = group_of
            .get(a.id.as_str())
            .map(|(p, r)| (p.to_string(), *r));
        if flow.is_some() || group.is_some() {
            structure.scopes.push(NewScope {
                action: a.id.clone(),
                flow,
                primary: group,
            });
        }
    }
    Ok((out, structure))
}
