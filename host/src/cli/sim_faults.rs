//! `sextant sim init --faults FILE`: the faults of a simulated run, read
//! strictly (unknown keys, bad durations and probabilities, unknown hosts
//! are errors naming the file, line and column) and handed to sim.db.

use super::CliError;
use crate::duration::BoundedDuration;
use crate::policy::locate::{Point, Seg, locate};
use serde::Deserialize;
use sextant_plugin_api::model::ClusterModel;
use sextant_sim_store::faults::{ActionFault, Faults, HostFault, HostFaultKind, RandomFailures};
use std::path::Path;

/// The file as an operator writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    #[serde(default)]
    hosts: Vec<HostFaultText>,
    #[serde(default)]
    actions: Vec<ActionFault>,
    #[serde(default)]
    random: Option<RandomFailures>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFaultText {
    host: String,
    /// Simulated time since the cloud was seeded: seconds or `90s`, `2m`.
    at: BoundedDuration,
    becomes: HostFaultKind,
}

/// Reads and checks a faults file against the cloud it goes with.
pub fn read(path: &Path, model: &ClusterModel) -> Result<Faults, CliError> {
    let text = crate::input::read_text(path, crate::input::MAX_DATA_BYTES, "a faults file")
        .map_err(CliError::input)?;
    let file: FaultsFile = crate::input::parse_yaml(&text, path).map_err(CliError::input)?;
    let faults = Faults {
        hosts: file
            .hosts
            .into_iter()
            .map(|h| HostFault {
                host: h.host,
                at_seconds: h.at.0.as_secs_f64(),
                becomes: h.becomes,
            })
            .collect(),
        actions: file.actions,
        random: file.random,
    };
    let hostnames: Vec<&str> = model.nodes.iter().map(|n| n.hostname.as_str()).collect();
    let problems = faults.problems(&hostnames);
    if problems.is_empty() {
        return Ok(faults);
    }
    let located: Vec<String> = problems
        .iter()
        .map(|p| {
            let where_ = node_of(p).and_then(|segs| locate(&text, &segs, Point::Value));
            match where_ {
                Some((line, column)) => format!("line {line} column {column}: {p}"),
                None => p.clone(),
            }
        })
        .collect();
    Err(CliError::input(anyhow::anyhow!(
        "{}: {}",
        path.display(),
        located.join("; ")
    )))
}

/// The document path a problem names (`hosts[1].host: …`).
fn node_of(problem: &str) -> Option<Vec<Seg<'_>>> {
    let head = problem.split(':').next()?;
    let mut segs = Vec::new();
    for part in head.split('.') {
        match part.split_once('[') {
            Some((field, rest)) => {
                segs.push(Seg::Field(field));
                let k = rest.trim_end_matches(']').parse().ok()?;
                segs.push(Seg::Item(k));
            }
            None => segs.push(Seg::Field(part)),
        }
    }
    Some(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ClusterModel {
        serde_json::from_value(serde_json::json!({
            "nodes": [{"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 100}]
        }))
        .expect("model")
    }

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("faults.yaml");
        std::fs::write(&p, text).expect("write");
        (dir, p)
    }

    #[test]
    fn a_faults_file_reads_durations_and_selectors() {
        let (_d, p) = write(
            "hosts:\n  - {host: h1, at: 1m 30s, becomes: down}\nactions:\n  - {name: m1, times: 1}\n  - {action_type: migrate, parameters: {destination_node: h1}}\nrandom: {probability: 0.1, seed: 42, action_types: [migrate]}\n",
        );
        let f = read(&p, &model()).expect("valid");
        assert_eq!(f.hosts[0].at_seconds, 90.0);
        assert_eq!(f.hosts[0].becomes, HostFaultKind::Down);
        assert_eq!(f.actions[0].times, Some(1));
        assert_eq!(f.actions[1].parameters["destination_node"], "h1");
        assert_eq!(f.random.as_ref().map(|r| r.seed), Some(42));
    }

    #[test]
    fn a_bad_faults_file_is_refused_with_the_line_and_field_at_fault() {
        for (text, wanted) in [
            (
                "hosts:\n  - {host: h1, at: 10s, becomes: down}\n  - {host: h9, at: 10s, becomes: full}\n",
                "line 3 column 12: hosts[1].host: no host \"h9\"",
            ),
            ("hosts:\n  - {host: h1, at: -1, becomes: down}\n", "line 2"),
            (
                "hosts:\n  - {host: h1, at: 1s, becomes: sideways}\n",
                "line 2",
            ),
            ("actions:\n  - {nmae: m1}\n", "unknown field `nmae`"),
            (
                "actions:\n  - {}\n",
                "line 2 column 5: actions[0]: names no action",
            ),
            (
                "random: {probability: 2, seed: 1}\n",
                "line 1 column 23: random.probability",
            ),
        ] {
            let (_d, p) = write(text);
            let e = read(&p, &model()).expect_err("refused");
            assert_eq!(e.status, 2);
            let msg = format!("{:#}", e.error);
            assert!(msg.contains("faults.yaml"), "{msg}");
            assert!(msg.contains(wanted), "{text}: {msg}");
        }
    }
}
