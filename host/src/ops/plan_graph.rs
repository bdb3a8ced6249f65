//! A plan's DAG drawn for people and tools, as `sextant action-plan graph`
//! prints it and `GET /v1/action_plans/{id}/graph` returns it: Graphviz
//! (dot) or Mermaid text, or a JSON graph. A plan with flows and
//! alternatives (docs/flows.md) adds each flow as a cluster (dot) or a
//! subgraph (mermaid), nested as the flows are, and each alternative as a
//! dashed edge from the action it replaces; a flat plan adds nothing.

use crate::store::flows::{FlowRow, ScopeRow};
use crate::store::plans::ActionRow;
use crate::store::{Store, StoreError};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The text formats a graph is drawn in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// A plan's actions with its flows and the scopes of its actions, as
/// stored: what its graph is drawn from.
pub struct PlanGraph {
    /// The actions, in creation order.
    pub actions: Vec<ActionRow>,
    /// The flows and scopes (empty for a flat plan).
    pub structure: Structure,
}

impl PlanGraph {
    /// Reads the plan `plan_uuid`'s graph from the store.
    pub fn load(store: &Store, plan_uuid: &str) -> Result<Self, StoreError> {
        Ok(PlanGraph {
            structure: Structure {
                flows: store.plan_flows(plan_uuid)?,
                scopes: store.action_scopes(plan_uuid)?,
            },
            actions: store.actions(plan_uuid)?,
        })
    }

    /// The graph as dot or mermaid text.
    pub fn text(&self, format: GraphFormat) -> String {
        draw(&self.actions, format, &self.structure)
    }

    /// The graph as `{"nodes": [...], "edges": [[parent, child], ...]}`.
    pub fn json(&self) -> Value {
        let nodes: Vec<Value> = self
            .actions
            .iter()
            .map(|a| json!({"uuid": a.uuid, "name": a.name, "action_type": a.action_type, "state": a.state}))
            .collect();
        let edges: Vec<Value> = self
            .actions
            .iter()
            .flat_map(|a| a.parents.iter().map(move |p| json!([p, a.uuid])))
            .collect();
        json!({"nodes": nodes, "edges": edges})
    }
}

/// What an action acts on, for labels: `source -> destination` for moves,
/// else its resource name or id.
pub fn resource(a: &ActionRow) -> String {
    let p = &a.input_parameters;
    if let Some(src) = p["source_node"].as_str() {
        let dst = p["destination_node"].as_str().unwrap_or("?");
        return format!("{src} -> {dst}");
    }
    p["resource_name"]
        .as_str()
        .or_else(|| p["resource_id"].as_str())
        .map(String::from)
        .unwrap_or_default()
}

/// Renders a plan's DAG with its flows (clusters, subgraphs) and its
/// alternatives (dashed edges).
fn draw(actions: &[ActionRow], format: GraphFormat, structure: &Structure) -> String {
    let index: std::collections::HashMap<&str, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.uuid.as_str(), i))
        .collect();
    let label = |a: &ActionRow| {
        let r = resource(a);
        let text = if r.is_empty() {
            format!("{}: {}", a.name, a.action_type)
        } else {
            format!("{}: {} {}", a.name, a.action_type, r)
        };
        text.replace('"', "'").replace("->", "→")
    };
    let mut out = String::new();
    match format {
        GraphFormat::Dot => {
            out.push_str("digraph action_plan {\n  rankdir=LR;\n  node [shape=box];\n");
            for (i, a) in actions.iter().enumerate() {
                out.push_str(&format!("  a{i} [label=\"{}\\n{}\"];\n", label(a), a.state));
            }
            for (i, a) in actions.iter().enumerate() {
                for p in &a.parents {
                    if let Some(j) = index.get(p.as_str()) {
                        out.push_str(&format!("  a{j} -> a{i};\n"));
                    }
                }
            }
            out.push_str(&structure.clusters_and_alternatives(actions, format));
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, a) in actions.iter().enumerate() {
                out.push_str(&format!("  a{i}[\"{}<br/>{}\"]\n", label(a), a.state));
            }
            for (i, a) in actions.iter().enumerate() {
                for p in &a.parents {
                    if let Some(j) = index.get(p.as_str()) {
                        out.push_str(&format!("  a{j} --> a{i}\n"));
                    }
                }
            }
            out.push_str(&structure.clusters_and_alternatives(actions, format));
        }
    }
    out
}

/// A plan's flows and the scopes of its actions, as stored.
#[derive(Default)]
pub struct Structure {
    /// The flows.
    pub flows: Vec<FlowRow>,
    /// Where each structured action stands.
    pub scopes: Vec<ScopeRow>,
}

/// A name as a graph identifier.
fn ident(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn quoted(name: &str) -> String {
    name.replace('"', "'")
}

impl Structure {
    /// The clusters and dashed edges to add after the nodes and edges.
    fn clusters_and_alternatives(&self, actions: &[ActionRow], format: GraphFormat) -> String {
        if self.flows.is_empty() && self.scopes.is_empty() {
            return String::new();
        }
        let index: HashMap<&str, usize> = actions
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.as_str(), i))
            .collect();
        let mut out = String::new();
        // Alternatives: member k-1 to member k, in rank order.
        let mut groups: HashMap<&str, Vec<(u32, usize)>> = HashMap::new();
        for s in &self.scopes {
            if let (Some((p, r)), Some(&i)) = (&s.primary, index.get(s.name.as_str())) {
                groups.entry(p.as_str()).or_default().push((*r, i));
            }
        }
        let mut groups: Vec<Vec<(u32, usize)>> = groups.into_values().collect();
        groups.sort_by_key(|g| g.iter().map(|m| m.1).min());
        for mut g in groups {
            g.sort();
            for w in g.windows(2) {
                let (j, i) = (w[0].1, w[1].1);
                out.push_str(&match format {
                    GraphFormat::Dot => {
                        format!("  a{j} -> a{i} [style=dashed, label=\"alternative\"];\n")
                    }
                    GraphFormat::Mermaid => format!("  a{j} -. alternative .-> a{i}\n"),
                });
            }
        }
        // Flows, nested.
        let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
        for s in &self.scopes {
            if let (Some(f), Some(&i)) = (&s.flow, index.get(s.name.as_str())) {
                members.entry(f.as_str()).or_default().push(i);
            }
        }
        let mut children: HashMap<Option<&str>, Vec<&str>> = HashMap::new();
        for f in &self.flows {
            children
                .entry(f.parent.as_deref())
                .or_default()
                .push(f.name.as_str());
        }
        self.flow_clusters(None, 1, &members, &children, format, &mut out);
        // Alternative flows: a dashed edge from the first action of the
        // flow before to the first action of the alternative.
        let mut alternatives: Vec<(&str, u32, &str)> = self
            .flows
            .iter()
            .filter_map(|f| {
                f.alternative_of
                    .as_ref()
                    .map(|(p, r)| (p.as_str(), *r, f.name.as_str()))
            })
            .collect();
        alternatives.sort();
        for (k, (primary, rank, alt)) in alternatives.iter().enumerate() {
            let before = if *rank <= 1 {
                *primary
            } else {
                alternatives
                    .get(k.wrapping_sub(1))
                    .filter(|(p, _, _)| p == primary)
                    .map_or(*primary, |(_, _, a)| *a)
            };
            let first = |f: &str| members.get(f).and_then(|m| m.iter().min().copied());
            if let (Some(j), Some(i)) = (first(before), first(alt)) {
                out.push_str(&match format {
                    GraphFormat::Dot => format!(
                        "  a{j} -> a{i} [style=dashed, label=\"alternative flow {}\"];\n",
                        quoted(alt)
                    ),
                    GraphFormat::Mermaid => format!("  a{j} -. alternative flow .-> a{i}\n"),
                });
            }
        }
        out
    }

    fn flow_clusters(
        &self,
        parent: Option<&str>,
        depth: usize,
        members: &HashMap<&str, Vec<usize>>,
        children: &HashMap<Option<&str>, Vec<&str>>,
        format: GraphFormat,
        out: &mut String,
    ) {
        let pad = "  ".repeat(depth);
        for &f in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            let state = self
                .flows
                .iter()
                .find(|x| x.name == f)
                .map(|x| x.state.as_str())
                .unwrap_or("");
            match format {
                GraphFormat::Dot => {
                    out.push_str(&format!(
                        "{pad}subgraph cluster_{} {{\n{pad}  label=\"flow {}\\n{state}\";\n{pad}  style=rounded;\n",
                        ident(f),
                        quoted(f)
                    ));
                    for i in members.get(f).map(Vec::as_slice).unwrap_or(&[]) {
                        out.push_str(&format!("{pad}  a{i};\n"));
                    }
                }
                GraphFormat::Mermaid => {
                    out.push_str(&format!(
                        "{pad}subgraph f_{}[\"flow {}\"]\n",
                        ident(f),
                        quoted(f)
                    ));
                    for i in members.get(f).map(Vec::as_slice).unwrap_or(&[]) {
                        out.push_str(&format!("{pad}  a{i}\n"));
                    }
                }
            }
            self.flow_clusters(Some(f), depth + 1, members, children, format, out);
            out.push_str(&match format {
                GraphFormat::Dot => format!("{pad}}}\n"),
                GraphFormat::Mermaid => format!("{pad}end\n"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(uuid: &str, name: &str, parents: &[&str]) -> ActionRow {
        ActionRow {
            uuid: uuid.into(),
            name: name.into(),
            action_plan_uuid: "p".into(),
            action_type: "migrate".into(),
            action_type_version: "1.0.0".into(),
            input_parameters: json!({"resource_id": "vm-1"}),
            state: crate::states::ActionState::Pending,
            parents: parents.iter().map(|p| p.to_string()).collect(),
            outputs: None,
            status_message: None,
            created_at: "t".into(),
            updated_at: None,
            execute_failed: false,
        }
    }

    #[test]
    fn graphs_label_type_and_resource() {
        let a = vec![action("u1", "m1", &[]), action("u2", "m2", &["u1"])];
        let dot = draw(&a, GraphFormat::Dot, &Structure::default());
        assert!(
            dot.contains("a0 [label=\"m1: migrate vm-1\\nPENDING\"]"),
            "{dot}"
        );
        assert!(dot.contains("a0 -> a1;"), "{dot}");
        let mut moved = action("u3", "m3", &[]);
        moved.input_parameters = json!({"source_node": "h1", "destination_node": "h2"});
        assert!(
            draw(&[moved], GraphFormat::Dot, &Structure::default()).contains("m3: migrate h1 → h2")
        );
        let mm = draw(&a, GraphFormat::Mermaid, &Structure::default());
        assert!(mm.starts_with("flowchart LR"), "{mm}");
        assert!(mm.contains("a0 --> a1"), "{mm}");
    }
}
