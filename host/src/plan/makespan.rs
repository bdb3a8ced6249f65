//! List scheduling of a plan with estimated durations and concurrency
//! pools: the makespan a plan allows, for comparing planners.

use crate::policy::Limit;
use serde_json::Value;
use std::collections::HashMap;

fn key(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The pools an action belongs to: `(limit index, per-value)`.
pub fn pools_of(
    action_type: &str,
    params: &Value,
    limits: &[Limit],
) -> Vec<(usize, Option<String>)> {
    limits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.action_type.as_deref().is_none_or(|t| t == action_type))
        .filter_map(|(i, l)| match &l.per {
            None => Some((i, None)),
            Some(p) => params.get(p).and_then(key).map(|k| (i, Some(k))),
        })
        .collect()
}

/// Simulates running a plan: an action starts as soon as its parents are
/// done, a worker is free and every pool it belongs to has room, highest
/// priority first (then creation order). Returns the makespan.
pub fn makespan(
    types: &[String],
    params: &[Value],
    parents: &[Vec<usize>],
    durations: &[f64],
    limits: &[Limit],
    priorities: &[f64],
    workers: usize,
) -> f64 {
    let n = types.len();
    let membership: Vec<Vec<(usize, Option<String>)>> = (0..n)
        .map(|i| pools_of(&types[i], &params[i], limits))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (c, ps) in parents.iter().enumerate() {
        waiting[c] = ps.len();
        for &p in ps {
            children[p].push(c);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut in_use: HashMap<(usize, Option<String>), u32> = HashMap::new();
    let mut running: Vec<(f64, usize)> = Vec::new();
    let (mut now, mut done) = (0.0f64, 0usize);
    while done < n {
        ready.sort_by(|&a, &b| priorities[b].total_cmp(&priorities[a]).then(a.cmp(&b)));
        let mut still = Vec::with_capacity(ready.len());
        for a in ready.drain(..) {
            let fits = running.len() < workers
                && membership[a]
                    .iter()
                    .all(|k| in_use.get(k).copied().unwrap_or(0) < limits[k.0].max);
            if fits {
                for k in &membership[a] {
                    *in_use.entry(k.clone()).or_default() += 1;
                }
                running.push((now + durations[a], a));
            } else {
                still.push(a);
            }
        }
        ready = still;
        let Some(next) = running.iter().map(|r| r.0).reduce(f64::min) else {
            break; // nothing can run: a pool smaller than 1, or a cycle
        };
        now = next;
        let (finished, rest): (Vec<_>, Vec<_>) = running.into_iter().partition(|r| r.0 <= now);
        running = rest;
        for (_, a) in finished {
            done += 1;
            for k in &membership[a] {
                if let Some(c) = in_use.get_mut(k) {
                    *c -= 1;
                }
            }
            for &c in &children[a] {
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    ready.push(c);
                }
            }
        }
    }
    now
}

/// The longest chain of durations through the DAG.
pub fn critical_path(parents: &[Vec<usize>], durations: &[f64], order: &[usize]) -> f64 {
    let mut finish = vec![0.0f64; durations.len()];
    for &i in order {
        let start = parents[i].iter().map(|&p| finish[p]).fold(0.0, f64::max);
        finish[i] = start + durations[i];
    }
    finish.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pools_and_chains_bound_the_makespan() {
        let types = vec!["migrate".to_string(); 4];
        let params: Vec<Value> = (0..4)
            .map(|i| json!({"source_node": format!("h{}", i % 2)}))
            .collect();
        let limits = vec![Limit {
            action_type: Some("migrate".into()),
            per: Some("source_node".into()),
            max: 1,
        }];
        let d = vec![10.0; 4];
        let none = vec![Vec::new(); 4];
        // Two hosts, one at a time per host: two rounds.
        assert_eq!(
            makespan(&types, &params, &none, &d, &limits, &[0.0; 4], 32),
            20.0
        );
        // A chain: four rounds.
        let chain = vec![vec![], vec![0], vec![1], vec![2]];
        assert_eq!(
            makespan(&types, &params, &chain, &d, &[], &[0.0; 4], 32),
            40.0
        );
        assert_eq!(critical_path(&chain, &d, &[0, 1, 2, 3]), 40.0);
        // One worker: serial.
        assert_eq!(
            makespan(&types, &params, &none, &d, &[], &[0.0; 4], 1),
            40.0
        );
    }
}
