//! Audit scopes (reference section 5.4), applied to the cluster model before
//! the strategy sees it.
//!
//! A scope is a list of one-key mappings, `compute:` and `storage:`; a list
//! whose first key is neither is read as `[{compute: <list>}]`. Compute:
//! `availability_zones: [{name}]` and `host_aggregates: [{name} | {id: "*"}]`
//! keep only the nodes they name (and their instances); `exclude:` removes
//! `compute_nodes: [{name}]` (nodes in `host_aggregates`) with their
//! instances, and marks `instances: [{uuid}]`, `instance_metadata: [{k: v}]`
//! and `projects: [{uuid}]` as excluded from optimisation. Storage:
//! `availability_zones`, `volume_types`, and `exclude:` of `storage_pools`,
//! `volumes` and `projects`.

use serde_json::Value;
use sextant_plugin_api::model::ClusterModel;
use std::collections::HashSet;

fn names(list: &Value, key: &str, what: &str) -> Result<Vec<String>, String> {
    list.as_array()
        .ok_or_else(|| format!("{what} must be a list"))?
        .iter()
        .map(|item| {
            item.get(key)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .ok_or_else(|| format!("each {what} entry needs a {key}: {item}"))
        })
        .collect()
}

fn entries(scope: &Value) -> Result<Vec<(String, Value)>, String> {
    let list = scope.as_array().ok_or("a scope is a list of mappings")?;
    let mut out = Vec::new();
    for item in list {
        let m = item
            .as_object()
            .filter(|m| m.len() == 1)
            .ok_or_else(|| format!("scope entries are one-key mappings, not {item}"))?;
        let (k, v) = m.iter().next().ok_or("empty scope entry")?;
        out.push((k.clone(), v.clone()));
    }
    Ok(out)
}

/// Checks a scope's shape; the error names the entry at fault.
pub fn check(scope: &Value) -> Result<(), String> {
    apply(&ClusterModel::default(), scope).map(|_| ())
}

/// Applies a scope to a model.
pub fn apply(model: &ClusterModel, scope: &Value) -> Result<ClusterModel, String> {
    let top = entries(scope)?;
    let parts: Vec<(String, Value)> = match top.first() {
        None => return Ok(model.clone()),
        Some((k, _)) if k == "compute" || k == "storage" => top,
        Some(_) => vec![("compute".into(), scope.clone())],
    };
    let mut m = model.clone();
    for (kind, body) in parts {
        match kind.as_str() {
            "compute" => apply_compute(&mut m, &body)?,
            "storage" => apply_storage(&mut m, &body)?,
            other => {
                return Err(format!(
                    "unknown scope section {other:?} (compute, storage)"
                ));
            }
        }
    }
    Ok(m)
}

fn apply_compute(m: &mut ClusterModel, body: &Value) -> Result<(), String> {
    let mut include_azs: Option<HashSet<String>> = None;
    let mut include_aggs: Option<HashSet<String>> = None;
    let mut exclude_aggs_given = false;
    for (k, v) in entries(body)? {
        match k.as_str() {
            "availability_zones" => {
                include_azs = Some(
                    names(&v, "name", "availability_zones")?
                        .into_iter()
                        .collect(),
                )
            }
            "host_aggregates" => {
                let mut set = HashSet::new();
                for item in v.as_array().ok_or("host_aggregates must be a list")? {
                    let n = item
                        .get("name")
                        .or_else(|| item.get("id"))
                        .and_then(|x| match x {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .ok_or_else(|| {
                            format!("host_aggregates entries need a name or an id: {item}")
                        })?;
                    set.insert(n);
                }
                include_aggs = Some(set);
            }
            "exclude" => {
                for (ek, ev) in entries(&v)? {
                    match ek.as_str() {
                        "instances" => {
                            let ids: HashSet<String> = names(&ev, "uuid", "exclude.instances")?
                                .into_iter()
                                .collect();
                            for i in &mut m.instances {
                                if ids.contains(&i.uuid) {
                                    i.watcher_exclude = true;
                                }
                            }
                        }
                        "projects" => {
                            let ids: HashSet<String> = names(&ev, "uuid", "exclude.projects")?
                                .into_iter()
                                .collect();
                            for i in &mut m.instances {
                                if ids.contains(&i.project_id) {
                                    i.watcher_exclude = true;
                                }
                            }
                        }
                        "instance_metadata" => {
                            let pairs = ev
                                .as_array()
                                .ok_or("exclude.instance_metadata must be a list")?;
                            for i in &mut m.instances {
                                let hit = pairs
                                    .iter()
                                    .filter_map(Value::as_object)
                                    .any(|p| p.iter().all(|(k, v)| i.metadata.get(k) == Some(v)));
                                if hit {
                                    i.watcher_exclude = true;
                                }
                            }
                        }
                        "compute_nodes" => {
                            let gone: HashSet<String> =
                                names(&ev, "name", "exclude.compute_nodes")?
                                    .into_iter()
                                    .collect();
                            remove_nodes(m, |n| gone.contains(&n.hostname));
                        }
                        "host_aggregates" => {
                            exclude_aggs_given = true;
                            let gone: HashSet<String> =
                                names(&ev, "name", "exclude.host_aggregates")?
                                    .into_iter()
                                    .collect();
                            remove_nodes(m, |n| n.aggregates.iter().any(|a| gone.contains(a)));
                        }
                        other => return Err(format!("unknown compute exclusion {other:?}")),
                    }
                }
            }
            other => return Err(format!("unknown compute scope entry {other:?}")),
        }
    }
    if include_aggs.is_some() && exclude_aggs_given {
        return Err("host_aggregates cannot be both included and excluded".into());
    }
    if let Some(azs) = include_azs {
        remove_nodes(m, |n| {
            !n.availability_zone
                .as_ref()
                .is_some_and(|z| azs.contains(z))
        });
    }
    if let Some(aggs) = include_aggs {
        let all = aggs.contains("*");
        remove_nodes(m, |n| !n.aggregates.iter().any(|a| all || aggs.contains(a)));
    }
    Ok(())
}

fn remove_nodes(m: &mut ClusterModel, gone: impl Fn(&sextant_plugin_api::model::Node) -> bool) {
    let removed: HashSet<String> = m
        .nodes
        .iter()
        .filter(|n| gone(n))
        .map(|n| n.hostname.clone())
        .collect();
    m.nodes.retain(|n| !removed.contains(&n.hostname));
    m.instances.retain(|i| !removed.contains(&i.host));
}

fn apply_storage(m: &mut ClusterModel, body: &Value) -> Result<(), String> {
    for (k, v) in entries(body)? {
        match k.as_str() {
            "availability_zones" => {
                let azs: HashSet<String> = names(&v, "name", "availability_zones")?
                    .into_iter()
                    .collect();
                m.storage_pools.retain(|p| {
                    p.availability_zone
                        .as_ref()
                        .is_some_and(|z| azs.contains(z))
                });
            }
            "volume_types" => {
                let types: HashSet<String> =
                    names(&v, "name", "volume_types")?.into_iter().collect();
                m.storage_pools
                    .retain(|p| p.volume_type.iter().any(|t| types.contains(t)));
                m.volumes.retain(|vol| types.contains(&vol.volume_type));
            }
            "exclude" => {
                for (ek, ev) in entries(&v)? {
                    match ek.as_str() {
                        "storage_pools" => {
                            let gone: HashSet<String> =
                                names(&ev, "name", "exclude.storage_pools")?
                                    .into_iter()
                                    .collect();
                            m.storage_pools.retain(|p| !gone.contains(&p.name));
                        }
                        "volumes" => {
                            let gone: HashSet<String> =
                                names(&ev, "uuid", "exclude.volumes")?.into_iter().collect();
                            m.volumes.retain(|v| !gone.contains(&v.uuid));
                        }
                        "projects" => {
                            let gone: HashSet<String> = names(&ev, "uuid", "exclude.projects")?
                                .into_iter()
                                .collect();
                            m.volumes.retain(|v| !gone.contains(&v.project_id));
                        }
                        other => return Err(format!("unknown storage exclusion {other:?}")),
                    }
                }
            }
            other => return Err(format!("unknown storage scope entry {other:?}")),
        }
    }
    let pools: HashSet<String> = m.storage_pools.iter().map(|p| p.name.clone()).collect();
    m.volumes.retain(|v| pools.contains(&v.pool));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> ClusterModel {
        serde_json::from_value(json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 8, "memory": 8192, "disk": 100, "availability_zone": "az1", "aggregates": ["fast"]},
                {"uuid": "n2", "hostname": "h2", "vcpus": 8, "memory": 8192, "disk": 100, "availability_zone": "az2"},
                {"uuid": "n3", "hostname": "h3", "vcpus": 8, "memory": 8192, "disk": 100, "availability_zone": "az1"}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 1, "memory": 512, "disk": 1, "project_id": "p1"},
                {"uuid": "i2", "name": "b", "host": "h2", "vcpus": 1, "memory": 512, "disk": 1, "metadata": {"optimize": false}},
                {"uuid": "i3", "name": "c", "host": "h3", "vcpus": 1, "memory": 512, "disk": 1}
            ]
        }))
        .expect("model")
    }

    fn hosts(m: &ClusterModel) -> Vec<&str> {
        m.nodes.iter().map(|n| n.hostname.as_str()).collect()
    }

    #[test]
    fn zones_aggregates_and_exclusions() {
        let m = apply(
            &model(),
            &json!([{"availability_zones": [{"name": "az1"}]}]),
        )
        .expect("scope");
        assert_eq!(hosts(&m), ["h1", "h3"]);
        assert_eq!(m.instances.len(), 2);

        let m = apply(
            &model(),
            &json!([{"compute": [{"host_aggregates": [{"name": "fast"}]}]}]),
        )
        .expect("scope");
        assert_eq!(hosts(&m), ["h1"]);

        let m = apply(
            &model(),
            &json!([{"exclude": [
                {"compute_nodes": [{"name": "h3"}]},
                {"instances": [{"uuid": "i1"}]},
                {"instance_metadata": [{"optimize": false}]}
            ]}]),
        )
        .expect("scope");
        assert_eq!(hosts(&m), ["h1", "h2"]);
        assert!(m.instances.iter().all(|i| i.watcher_exclude));

        assert!(apply(&model(), &json!([{"teleport": []}])).is_err());
        assert!(apply(
            &model(),
            &json!([{"host_aggregates": [{"name": "fast"}]}, {"exclude": [{"host_aggregates": [{"name": "fast"}]}]}])
        )
        .is_err());
        assert_eq!(apply(&model(), &json!([])).expect("empty"), model());
    }
}
