//! `action-plan graph` for plans with flows and alternatives
//! (docs/flows.md): each flow a cluster (dot) or a subgraph (mermaid), nested
//! as the flows are, and each alternative a dashed edge from the action it
//! replaces. A flat plan adds nothing.

use super::plans::GraphFormat;
use crate::store::flows::{FlowRow, ScopeRow};
use crate::store::plans::ActionRow;
use std::collections::HashMap;

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
    pub fn render(&self, actions: &[ActionRow], format: GraphFormat) -> String {
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
