//! Context references: the earlier actions whose outputs an action reads
//! (`{{ actions.<name>.outputs.<key> }}`), in the parameters its plan
//! declared as references and in its type's `with` templates.

use super::*;

pub(super) fn ancestors_of(nodes: &[Node], i: usize) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = nodes[i].parents.clone();
    while let Some(p) = stack.pop() {
        if seen.insert(p) {
            stack.extend(nodes[p].parents.iter().copied());
        }
    }
    seen
}

/// `{name: {"outputs": …}}` of the ancestors an action's templates name
/// (only those: a long chain does not copy every output into each action).
pub(super) fn ancestor_outputs(nodes: &[Node], i: usize, types: &ActionTypeRegistry) -> Value {
    let row = &nodes[i].row;
    let mut refs = declared_names(row, &nodes[i].refs);
    let version = semver::Version::parse(&row.action_type_version).ok();
    if let Ok(t) = types.get(&row.action_type, version.as_ref())
        && let Some(w) = &t.with
    {
        refs.extend(referenced_actions(w));
    }
    let mut m = serde_json::Map::new();
    if refs.is_empty() {
        return Value::Object(m);
    }
    let ancestors = ancestors_of(nodes, i);
    for a in ancestors {
        if refs.contains(&nodes[a].row.name) {
            m.insert(
                nodes[a].row.name.clone(),
                json!({"outputs": nodes[a].row.outputs.clone().unwrap_or(Value::Null)}),
            );
        }
    }
    Value::Object(m)
}

/// The actions named by the context references at `pointers` in an
/// action's parameters.
pub(super) fn declared_names(row: &ActionRow, pointers: &[String]) -> Vec<String> {
    let mut out: Vec<String> = pointers
        .iter()
        .filter_map(|p| row.input_parameters.pointer(p).and_then(Value::as_str))
        .flat_map(template::references_in)
        .map(|r| r.action)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The action names an action type's `with` templates refer to
/// (`actions.<name>.…`, inside any expression: those templates are the
/// operator's, rendered by minijinja). Parameters use the plan's declared
/// references instead ([`declared_names`]).
pub(super) fn referenced_actions(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    pub(super) fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(i) = rest.find("actions.") {
                    let after = &rest[i + "actions.".len()..];
                    let name: String = after
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                        .collect();
                    if !name.is_empty() && s.contains("{{") {
                        out.push(name);
                    }
                    rest = after;
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out.sort();
    out.dedup();
    out
}
