//! Simulation: the checks a plan passes before any action executes, and
//! the prediction of its effect on the cluster model.
//!
//! The whole plan is simulated, in a topological order of its DAG:
//!
//! * every pending action maps to a loaded handler, its parameters are
//!   valid against its recorded action-type version, and its templates
//!   name only ancestors (their outputs are unknown until they run);
//! * with a cluster model (collected once, from the configured collector),
//!   each action's handler predicts its effect on one mutable copy of the
//!   model (`predict.v1`, see [`sextant_plugin_api::prediction`]), which is
//!   also its pre-condition check against the state its ancestors leave;
//!   the actions whose handler declares no effect are checked for mapping,
//!   parameters and templates only, and a note says the prediction is
//!   partial;
//! * an action whose effect was not predicted and that starts the plan (no
//!   parents) has its handler's `pre_condition` run against the cloud now,
//!   under its action's timeout (see [`super::live_checks`]).
//!
//! A stop ([`StopSignal`]) ends the simulation at once, with nothing
//! written: the plan stays ONGOING for a resume, as a stop leaves it.
//!
//! Every problem is reported at once, each naming its action (and the
//! earlier action that changed what it trips on); nothing executes and
//! nothing is written.

use super::live_checks::{ChecksEnd, LiveCheck, run_live_checks};
use super::*;
use crate::plugins::Predictor;
use sextant_plugin_api::Kind;
use sextant_plugin_api::model::{ClusterModel, Instance};
use sextant_plugin_api::prediction::{ModelChange, PredictedModel};

/// Simulation ended early: the applier was asked to stop.
#[derive(Debug)]
pub(super) struct Stopped;

/// What simulating a plan found and predicted.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Prediction {
    /// The plan.
    pub action_plan: String,
    /// Why the plan would fail; empty when it passes.
    pub problems: Vec<String>,
    /// What the prediction could not cover.
    pub notes: Vec<String>,
    /// Whether some effects are unknown (see `notes`).
    pub partial: bool,
    /// Nodes hosting at least one instance, before and after the plan.
    pub nodes_in_use: Option<InUse>,
    /// Each node before and after the plan.
    pub nodes: Vec<NodeUse>,
    /// Each pending action, in the order simulated.
    pub actions: Vec<ActionEffect>,
    /// The predicted cluster model after the plan.
    pub model_after: Option<ClusterModel>,
}

/// Nodes in use before and after.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct InUse {
    /// Before the plan.
    pub before: usize,
    /// After the plan.
    pub after: usize,
}

/// One node before and after the plan.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeUse {
    /// Its hostname.
    pub hostname: String,
    /// Usable capacity: `(total - reserved) × ratio`.
    pub capacity: Resources,
    /// Before the plan.
    pub before: Usage,
    /// After the plan.
    pub after: Usage,
}

/// vCPUs, memory (MB), disk (GB).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Resources {
    /// vCPUs.
    pub vcpus: f64,
    /// Memory, MB.
    pub memory: f64,
    /// Disk, GB.
    pub disk: f64,
}

/// A node's state and what its instances use.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Compute service status.
    pub status: String,
    /// Power state.
    pub power_state: String,
    /// Instances on it (shelved and offloaded ones are not).
    pub instances: usize,
    /// What they use.
    pub used: Resources,
}

/// What simulation says about one action.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ActionEffect {
    /// The action's name.
    pub name: String,
    /// Its action type.
    pub action_type: String,
    /// `changes`, `skipped` (nothing to do), `refused` (see the problems),
    /// `unknown` (its handler declares no effect, or it uses the outputs of
    /// earlier actions) or `invalid` (mapping, parameters or templates).
    pub effect: &'static str,
    /// What it changes, one line per change.
    pub changes: Vec<String>,
    /// Why it is skipped, refused, unknown or invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The actions in a topological order of the DAG (Kahn's algorithm, ties
/// by creation order), and the actions left on a cycle.
fn topological_order(nodes: &[Node]) -> (Vec<usize>, Vec<usize>) {
    let mut indegree: Vec<usize> = nodes.iter().map(|n| n.parents.len()).collect();
    let mut queue: std::collections::VecDeque<usize> =
        (0..nodes.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &c in &nodes[i].children {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                queue.push_back(c);
            }
        }
    }
    let cyclic = (0..nodes.len()).filter(|&i| indegree[i] > 0).collect();
    (order, cyclic)
}

/// The words of a message that may name an entry (hostnames, uuids,
/// pool names).
fn words(message: &str) -> impl Iterator<Item = &str> {
    message
        .split(|c: char| !(c.is_alphanumeric() || "-_.@#:".contains(c)))
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| !w.is_empty())
}

/// The cluster model as the plan changes it, with who changed what.
struct Model {
    model: PredictedModel,
    /// Entry key (hostname, node or instance uuid, pool name, volume uuid)
    /// → the last action that changed it.
    changed_by: HashMap<String, String>,
}

impl Model {
    /// Lines describing a change against the model before it, and the
    /// entries it touches.
    fn describe(&self, c: &ModelChange) -> (Vec<String>, Vec<String>) {
        let mut lines = Vec::new();
        let mut keys = Vec::new();
        let diff = |lines: &mut Vec<String>, what: &str, field: &str, a: &str, b: &str| {
            if a != b {
                lines.push(format!("{what}: {field} {a} -> {b}"));
            }
        };
        match c {
            ModelChange::Node(n) => {
                let what = format!("node {}", n.hostname);
                match self.model.node_by_uuid(&n.uuid) {
                    Some(o) => {
                        diff(&mut lines, &what, "status", &o.status, &n.status);
                        diff(&mut lines, &what, "state", &o.state, &n.state);
                        diff(&mut lines, &what, "power", &o.power_state, &n.power_state);
                    }
                    None => lines.push(format!("{what}: added")),
                }
                keys.extend([n.hostname.clone(), n.uuid.clone()]);
            }
            ModelChange::Instance(i) => {
                let what = format!("instance {} ({})", i.name, i.uuid);
                let flavor = |i: &Instance| format!("{}/{}/{}", i.vcpus, i.memory, i.disk);
                match self.model.instance(&i.uuid) {
                    Some(o) => {
                        diff(&mut lines, &what, "host", &o.host, &i.host);
                        diff(&mut lines, &what, "state", &o.state, &i.state);
                        diff(
                            &mut lines,
                            &what,
                            "vcpus/memory/disk",
                            &flavor(o),
                            &flavor(i),
                        );
                        keys.push(o.host.clone());
                    }
                    None => lines.push(format!("{what}: added on {}", i.host)),
                }
                keys.extend([i.uuid.clone(), i.host.clone()]);
            }
            ModelChange::InstanceRemoved(u) => {
                if let Some(o) = self.model.instance(u) {
                    lines.push(format!(
                        "instance {} ({u}): deleted from {}",
                        o.name, o.host
                    ));
                    keys.push(o.host.clone());
                }
                keys.push(u.clone());
            }
            ModelChange::StoragePool(p) => {
                let before = self
                    .model
                    .storage_pool(&p.name)
                    .map_or(f64::NAN, |o| o.free_capacity_gb);
                if before != p.free_capacity_gb {
                    lines.push(format!(
                        "storage pool {}: free GB {before} -> {}",
                        p.name, p.free_capacity_gb
                    ));
                }
                keys.push(p.name.clone());
            }
            ModelChange::Volume(v) => {
                let what = format!("volume {}", v.uuid);
                match self.model.volume(&v.uuid) {
                    Some(o) => {
                        diff(&mut lines, &what, "pool", &o.pool, &v.pool);
                        diff(&mut lines, &what, "type", &o.volume_type, &v.volume_type);
                    }
                    None => lines.push(format!("{what}: added in {}", v.pool)),
                }
                keys.extend([v.uuid.clone(), v.pool.clone()]);
            }
        }
        (lines, keys)
    }

    /// Applies one action's changes; returns what they change.
    fn apply(&mut self, action: &str, changes: Vec<ModelChange>) -> Vec<String> {
        let mut lines = Vec::new();
        for c in changes {
            let (l, keys) = self.describe(&c);
            lines.extend(l);
            for k in keys {
                self.changed_by.insert(k, action.to_string());
            }
            self.model.apply(c);
        }
        lines
    }

    /// The earlier actions that changed what a message names.
    fn culprits(&self, message: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for w in words(message) {
            if let Some(a) = self.changed_by.get(w)
                && !found.iter().any(|f| f.starts_with(&format!("action {a} ")))
            {
                found.push(format!("action {a} (which changed {w})"));
            }
        }
        found
    }
}

/// Per node: state and use, counting what Nova counts (shelved and
/// offloaded instances use nothing).
fn usage(m: &ClusterModel) -> HashMap<&str, Usage> {
    let mut u: HashMap<&str, Usage> = m
        .nodes
        .iter()
        .map(|n| {
            (
                n.hostname.as_str(),
                Usage {
                    status: n.status.clone(),
                    power_state: n.power_state.clone(),
                    ..Usage::default()
                },
            )
        })
        .collect();
    for i in &m.instances {
        if i.state == "shelved_offloaded" {
            continue;
        }
        if let Some(x) = u.get_mut(i.host.as_str()) {
            x.instances += 1;
            x.used.vcpus += i.vcpus as f64;
            x.used.memory += i.memory as f64;
            x.used.disk += i.disk as f64;
        }
    }
    u
}

impl Prediction {
    /// Fills the per-node summary from the models before and after.
    fn summarise(&mut self, before: &ClusterModel, after: ClusterModel) {
        let (ub, ua) = (usage(before), usage(&after));
        let in_use = |u: &HashMap<&str, Usage>| u.values().filter(|x| x.instances > 0).count();
        self.nodes_in_use = Some(InUse {
            before: in_use(&ub),
            after: in_use(&ua),
        });
        self.nodes = after
            .nodes
            .iter()
            .map(|n| {
                let (v, m, d) = n.capacity();
                NodeUse {
                    hostname: n.hostname.clone(),
                    capacity: Resources {
                        vcpus: v,
                        memory: m,
                        disk: d,
                    },
                    before: ub.get(n.hostname.as_str()).cloned().unwrap_or_default(),
                    after: ua.get(n.hostname.as_str()).cloned().unwrap_or_default(),
                }
            })
            .collect();
        self.model_after = Some(after);
    }
}

/// The predictors opened during one simulation, one per library.
#[derive(Default)]
struct Predictors<'a> {
    open: Vec<(&'a crate::plugins::Library, Predictor<'a>)>,
    /// Libraries whose predictor could not be opened: not asked again.
    failed: Vec<&'a crate::plugins::Library>,
}

impl<'a> Predictors<'a> {
    /// The predictor of `lib`, opened on the model as it is now.
    fn of(
        &mut self,
        lib: &'a crate::plugins::Library,
        model: &PredictedModel,
    ) -> Result<Option<usize>, String> {
        if let Some(i) = self.open.iter().position(|(l, _)| std::ptr::eq(*l, lib)) {
            return Ok(Some(i));
        }
        if !lib.predicts() || self.failed.iter().any(|l| std::ptr::eq(*l, lib)) {
            return Ok(None);
        }
        let text = serde_json::to_string(&model.to_model()).map_err(|e| e.to_string())?;
        match lib.open_predictor(&text) {
            Ok(Some(p)) => {
                self.open.push((lib, p));
                Ok(Some(self.open.len() - 1))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed.push(lib);
                Err(format!(
                    "plugin {} could not open a prediction: {e}",
                    lib.path.display()
                ))
            }
        }
    }

    /// Tells every other predictor what predictor `from` changed.
    fn forward(&mut self, from: usize, changes_json: &str) -> Result<(), String> {
        for (i, (lib, p)) in self.open.iter_mut().enumerate() {
            if i != from {
                p.observe(changes_json)
                    .map_err(|e| format!("plugin {}: {e}", lib.path.display()))?;
            }
        }
        Ok(())
    }
}

/// What one action type (name and recorded version) resolves to during a
/// simulation: looked up once per type, not once per action.
struct TypeInfo<'a> {
    action_type: Result<&'a crate::action_types::ActionType, String>,
    /// The handler entry (the mapper's answer).
    entry: Result<String, String>,
    /// The entry's library.
    library: Option<&'a crate::plugins::Library>,
    /// Its parameter schema declares defaults (filled before checking).
    declares_defaults: bool,
    /// Its `with` templates use the outputs of earlier actions.
    uses_outputs: bool,
    /// The policy's timeout for it.
    timeout: Duration,
    /// Its estimated duration, in seconds (for the handler context).
    duration: f64,
    /// The note that its handler declares no effect is written.
    noted_without_effect: bool,
}

impl<'a> TypeInfo<'a> {
    fn of(shared: &'a Shared, row: &ActionRow) -> Self {
        let version = semver::Version::parse(&row.action_type_version).ok();
        let action_type = shared
            .types
            .get(&row.action_type, version.as_ref())
            .map_err(|e| e.to_string());
        let entry = match &action_type {
            Ok(_) => handler_entry(shared, row).map(|(e, _)| e),
            Err(e) => Err(e.clone()),
        };
        let library = entry
            .as_ref()
            .ok()
            .and_then(|e| shared.plugins.find(Kind::ActionHandler, e))
            .map(|e| e.library.as_ref());
        let t = action_type.as_ref().ok();
        Self {
            declares_defaults: t
                .is_some_and(|t| crate::action_types::declares_defaults(&t.parameters)),
            uses_outputs: t.is_some_and(|t| {
                t.with
                    .as_ref()
                    .is_some_and(|w| !referenced_actions(w).is_empty())
            }),
            timeout: shared.opts.policy.recovery_for(&row.action_type).timeout,
            duration: t.map_or(0.0, |t| t.estimated_duration.as_secs_f64()),
            action_type,
            entry,
            library,
            noted_without_effect: false,
        }
    }
}

/// Adds one action's effect to the prediction, when details are wanted.
fn record(
    out: &mut Prediction,
    detail: bool,
    row: &ActionRow,
    effect: &'static str,
    changes: Vec<String>,
    message: Option<String>,
) {
    if detail {
        out.actions.push(ActionEffect {
            name: row.name.clone(),
            action_type: row.action_type.clone(),
            effect,
            changes,
            message,
        });
    }
}

impl Applier {
    /// Simulates the pending actions (see the module documentation) and
    /// returns every problem found; an empty list lets the plan run.
    /// `Err(Stopped)`: the applier was asked to stop meanwhile.
    pub(super) async fn simulate(&self, nodes: &[Node]) -> Result<Vec<String>, Stopped> {
        let p = self.check_plan(nodes, false).await?;
        for n in &p.notes {
            tracing::info!("simulation of action plan {}: {n}", self.shared.plan_uuid);
        }
        Ok(p.problems)
    }

    /// Simulates the plan as `start` would, without taking its lease,
    /// changing its state or running anything: what `action-plan show
    /// --predict` prints.
    pub async fn predict(&self) -> Result<Prediction, ApplyError> {
        let shared = self.shared.clone();
        let u = shared.plan_uuid.clone();
        let plan = db(&shared, move |s| s.plan(&u)).await?;
        let u = plan.uuid.clone();
        let rows = db(&shared, move |s| s.actions(&u)).await?;
        let mut nodes = self.build_nodes(rows, &plan);
        self.load_flows(&mut nodes)?;
        self.check_plan(&nodes, true)
            .await
            .map_err(|Stopped| ApplyError::Interrupted {
                plan: plan.uuid.clone(),
                why: "the applier was asked to stop during simulation".into(),
            })
    }

    /// The cluster model now, from the configured collector.
    fn collect_model(&self) -> Result<Option<ClusterModel>, String> {
        let Some(src) = &self.shared.opts.model_source else {
            return Ok(None);
        };
        let raw = self
            .shared
            .plugins
            .collect(&src.collector, &src.config)
            .map_err(|e| format!("collector {}: {e}", src.collector))?;
        let m: ClusterModel = serde_json::from_value(raw)
            .map_err(|e| format!("collector {} returned an invalid model: {e}", src.collector))?;
        let errors = m.check().errors;
        if !errors.is_empty() {
            return Err(format!(
                "collector {} returned a contradictory model: {}",
                src.collector,
                errors.join("; ")
            ));
        }
        Ok(Some(m))
    }

    /// Simulates the pending actions. `detail`: also each action's effect
    /// and the end state (for `predict`); without it, only the problems and
    /// notes (for `start`).
    async fn check_plan(&self, nodes: &[Node], detail: bool) -> Result<Prediction, Stopped> {
        let shared = &self.shared;
        let started = std::time::Instant::now();
        let mut out = Prediction {
            action_plan: shared.plan_uuid.clone(),
            ..Prediction::default()
        };
        let (order, cyclic) = topological_order(nodes);
        for i in cyclic {
            out.problems.push(format!(
                "action {} ({}): it is on a cycle of the plan's DAG",
                nodes[i].row.name, nodes[i].row.action_type
            ));
        }
        let before = match self.collect_model() {
            Ok(m) => m,
            Err(e) => {
                out.notes.push(format!(
                    "the cluster model could not be collected ({e}): effects were not predicted"
                ));
                None
            }
        };
        if before.is_none() && out.notes.is_empty() {
            out.notes
                .push("no cluster model source: effects were not predicted".into());
        }
        let mut model = before.as_ref().map(|m| Model {
            model: PredictedModel::new(m.clone()),
            changed_by: HashMap::new(),
        });
        let mut predictors = Predictors::default();
        // Action name → index, built when a template first needs it.
        let mut names: Option<HashMap<&str, usize>> = None;
        let mut no_predict: std::collections::BTreeSet<String> = Default::default();
        // What each action type resolves to, looked up once per type.
        let mut types: HashMap<(&str, &str), TypeInfo<'_>> = HashMap::new();
        // Roots whose effect was not predicted: their pre_condition runs
        // against the cloud now, after the walk.
        let mut live_checks: Vec<LiveCheck> = Vec::new();
        let mut simulated = 0usize;
        for i in order {
            if shared.opts.stop.is_stopping() {
                return Err(Stopped);
            }
            let n = &nodes[i];
            if n.state != St::Pending || n.dormant {
                continue;
            }
            simulated += 1;
            let row = &n.row;
            let label = || format!("action {} ({})", row.name, row.action_type);
            let info = types
                .entry((row.action_type.as_str(), row.action_type_version.as_str()))
                .or_insert_with(|| TypeInfo::of(shared, row));
            let t = match &info.action_type {
                Ok(t) => *t,
                Err(e) => {
                    out.problems.push(format!("{}: {e}", label()));
                    let message = Some(e.clone());
                    record(&mut out, detail, row, "invalid", Vec::new(), message);
                    continue;
                }
            };
            let problems_before = out.problems.len();
            if let Err(e) = &info.entry {
                out.problems.push(format!("{}: {e}", label()));
            }
            // Templates may only name ancestors; their outputs are unknown yet.
            let refs = declared_names(row, &n.refs);
            let has_refs = !refs.is_empty();
            if has_refs {
                let names = names.get_or_insert_with(|| {
                    nodes
                        .iter()
                        .enumerate()
                        .map(|(i, n)| (n.row.name.as_str(), i))
                        .collect()
                });
                let ancestors = ancestors_of(nodes, i);
                for r in refs {
                    match names.get(r.as_str()) {
                        Some(j) if ancestors.contains(j) => {}
                        _ => out.problems.push(format!(
                            "{}: its parameters use the outputs of {r}, which is not one of its ancestors",
                            label()
                        )),
                    }
                }
            } else if let Err(e) = crate::action_types::check_parameters(
                t,
                &row.input_parameters,
                info.declares_defaults,
            ) {
                // With references, parameters are checked once substituted.
                out.problems.push(format!("{}: {e}", label()));
            }
            if out.problems.len() > problems_before {
                let message = Some(out.problems[problems_before..].join("; "));
                record(&mut out, detail, row, "invalid", Vec::new(), message);
                continue;
            }
            let Ok(entry) = &info.entry else { continue };
            if has_refs || info.uses_outputs {
                out.partial = true;
                let message =
                    Some("it uses the outputs of earlier actions, unknown before they run".into());
                record(&mut out, detail, row, "unknown", Vec::new(), message);
                continue; // pre_condition needs outputs that do not exist yet
            }
            let params = match handler_params(shared, t, row, &n.refs, &json!({})) {
                Ok(params) => params,
                Err(e) => {
                    out.problems.push(format!("{}: {e}", label()));
                    record(&mut out, detail, row, "invalid", Vec::new(), Some(e));
                    continue;
                }
            };
            let live_check = |params: Value| LiveCheck {
                uuid: row.uuid.clone(),
                name: row.name.clone(),
                action_type: row.action_type.clone(),
                entry: entry.clone(),
                params,
                context: context_json(row, info.duration, &shared.context_tail),
                timeout: info.timeout,
            };
            let Some(m) = model.as_mut() else {
                out.partial = true;
                if n.parents.is_empty() {
                    live_checks.push(live_check(params));
                }
                let message = detail.then(|| "no cluster model".to_string());
                record(&mut out, detail, row, "unknown", Vec::new(), message);
                continue;
            };
            let lib = info.library;
            let slot = match lib.map(|l| predictors.of(l, &m.model)) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    out.notes.push(e);
                    None
                }
                None => None,
            };
            let Some(slot) = slot else {
                if !info.noted_without_effect {
                    info.noted_without_effect = true;
                    let path = lib.map_or_else(String::new, |l| l.path.display().to_string());
                    no_predict.insert(format!("{entry} ({path})"));
                }
                out.partial = true;
                if n.parents.is_empty() {
                    live_checks.push(live_check(params));
                }
                let message = detail.then(|| {
                    format!("handler {entry}'s plugin declares no effects (no predict.v1)")
                });
                record(&mut out, detail, row, "unknown", Vec::new(), message);
                continue;
            };
            let predicted = predictors.open[slot]
                .1
                .apply(entry, &crate::json_text(&params));
            match predicted {
                Ok(text) => match serde_json::from_str::<Vec<ModelChange>>(&text) {
                    Ok(changes) => {
                        if let Err(e) = predictors.forward(slot, &text) {
                            out.notes.push(e);
                        }
                        let changes = m.apply(&row.name, changes);
                        record(&mut out, detail, row, "changes", changes, None);
                    }
                    Err(e) => {
                        let why = format!("handler {entry} predicted unreadable changes: {e}");
                        out.problems.push(format!("{}: {why}", label()));
                        record(&mut out, detail, row, "invalid", Vec::new(), Some(why));
                    }
                },
                Err(e) if e.kind() == Some(ErrorKind::SKIPPED) => {
                    let message = Some(message_of(&e));
                    record(&mut out, detail, row, "skipped", Vec::new(), message);
                }
                Err(e) if e.kind() == Some(ErrorKind::UNSUPPORTED) => {
                    no_predict.insert(entry.clone());
                    out.partial = true;
                    if n.parents.is_empty() {
                        live_checks.push(live_check(params));
                    }
                    let message = Some(message_of(&e));
                    record(&mut out, detail, row, "unknown", Vec::new(), message);
                }
                Err(e) => {
                    let msg = message_of(&e);
                    let culprits = m.culprits(&msg);
                    let after = if culprits.is_empty() {
                        String::new()
                    } else {
                        format!(", after {}", culprits.join(", "))
                    };
                    let kind = e
                        .kind()
                        .filter(|k| *k != ErrorKind::PRECONDITION_FAILED)
                        .map(|k| format!("{k}: "))
                        .unwrap_or_default();
                    out.problems.push(format!(
                        "{}: predicted to fail: {kind}{msg}{after}",
                        label()
                    ));
                    let message = Some(format!("{kind}{msg}{after}"));
                    record(&mut out, detail, row, "refused", Vec::new(), message);
                }
            }
        }
        if !no_predict.is_empty() {
            out.notes.push(format!(
                "the prediction is partial: these handlers declare no effect, so their actions were checked for mapping, parameters and templates only: {}",
                no_predict.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        drop(predictors);
        if detail && let (Some(b), Some(m)) = (&before, model) {
            out.summarise(b, m.model.to_model());
        }
        tracing::info!(
            "simulated {simulated} actions of action plan {} in {:?}",
            shared.plan_uuid,
            started.elapsed()
        );
        // The roots whose effect was not predicted: pre_condition against
        // the cloud now, each under its action's timeout, stopped by a stop.
        match run_live_checks(shared.clone(), live_checks).await {
            ChecksEnd::Done(p) => out.problems.extend(p),
            ChecksEnd::Stopped => return Err(Stopped),
        }
        if !out.problems.is_empty() || detail {
            // Nothing runs after this simulation: no handler is wanted.
            lock(&shared.prechecked).clear();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, parents: &[usize]) -> Node {
        Node {
            row: test_row(name),
            parents: parents.to_vec(),
            children: Vec::new(),
            state: St::Pending,
            execute_failed: false,
            pools: Vec::new(),
            priority: 0.0,
            refs: Vec::new(),
            dormant: false,
        }
    }

    fn linked(mut nodes: Vec<Node>) -> Vec<Node> {
        for i in 0..nodes.len() {
            for p in nodes[i].parents.clone() {
                nodes[p].children.push(i);
            }
        }
        nodes
    }

    #[test]
    fn the_walk_visits_parents_first_and_finds_cycles() {
        // 0 <- 2 <- 1, 3 alone; 4 <-> 5 a cycle.
        let nodes = linked(vec![
            node("a", &[]),
            node("b", &[2]),
            node("c", &[0]),
            node("d", &[]),
            node("e", &[5]),
            node("f", &[4]),
        ]);
        let (order, cyclic) = topological_order(&nodes);
        assert_eq!(order, [0, 3, 2, 1]);
        assert_eq!(cyclic, [4, 5]);
    }

    #[test]
    fn the_walk_of_a_long_chain_is_linear() {
        let n: usize = 100_000;
        let nodes = linked(
            (0..n)
                .map(|i| {
                    node(
                        &format!("a{i}"),
                        &(0..i).skip(i.saturating_sub(1)).collect::<Vec<_>>(),
                    )
                })
                .collect(),
        );
        let t = std::time::Instant::now();
        let (order, cyclic) = topological_order(&nodes);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(order.len(), n);
        assert!(cyclic.is_empty());
    }

    fn model() -> ClusterModel {
        serde_json::from_value(json!({
            "nodes": [
                {"uuid": "n1", "hostname": "h1", "vcpus": 4, "memory": 4096, "disk": 40},
                {"uuid": "n2", "hostname": "h2", "vcpus": 4, "memory": 4096, "disk": 40}
            ],
            "instances": [
                {"uuid": "i1", "name": "a", "host": "h1", "vcpus": 1, "memory": 1024, "disk": 10},
                {"uuid": "i2", "name": "b", "host": "h2", "vcpus": 2, "memory": 1024, "disk": 10,
                 "state": "shelved_offloaded"}
            ]
        }))
        .expect("model")
    }

    #[test]
    fn a_refusal_names_the_earlier_action_that_changed_its_target() {
        let mut m = Model {
            model: PredictedModel::new(model()),
            changed_by: HashMap::new(),
        };
        let mut n = m.model.node("h2").expect("h2").clone();
        n.status = "disabled".into();
        let lines = m.apply("disable-h2", vec![ModelChange::Node(n)]);
        assert_eq!(lines, ["node h2: status enabled -> disabled"]);
        assert_eq!(
            m.culprits("host h2 is disabled."),
            ["action disable-h2 (which changed h2)"]
        );
        assert!(m.culprits("host h1 is full").is_empty());
    }

    #[test]
    fn a_move_is_described_and_counted_on_both_nodes() {
        let before = model();
        let mut m = Model {
            model: PredictedModel::new(before.clone()),
            changed_by: HashMap::new(),
        };
        let mut i = m.model.instance("i1").expect("i1").clone();
        i.host = "h2".into();
        let lines = m.apply("move-a", vec![ModelChange::Instance(i)]);
        assert_eq!(lines, ["instance a (i1): host h1 -> h2"]);
        assert_eq!(
            m.culprits("h1 has room"),
            ["action move-a (which changed h1)"]
        );
        let mut p = Prediction::default();
        p.summarise(&before, m.model.to_model());
        let in_use = p.nodes_in_use.expect("in use");
        // b is shelved and offloaded: it uses nothing on h2.
        assert_eq!((in_use.before, in_use.after), (1, 1));
        assert_eq!(p.nodes[0].after.instances, 0);
        assert_eq!(p.nodes[1].after.used.vcpus, 1.0);
        assert_eq!(p.nodes[1].capacity.vcpus, 4.0);
    }
}
