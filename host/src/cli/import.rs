//! `sextant action-plan import FILE`: a RECOMMENDED plan from a file of
//! actions with parents by name (Watcher's applier vectors).
//!
//! Every step is linear in the actions and edges, but for the check that a
//! template reads only the outputs of ancestors, which searches only from
//! the actions that hold references (see [`crate::plan::ancestry`]).

use super::output::outln;
use super::output::{Format, print_structured};
use super::{CliError, CliResult, Env};
use crate::action_types::template;
use crate::action_types::{ActionFactory, ActionTypeRegistry, NewAction};
use crate::plan::PlanError;
use crate::states::{ActionState, ExecutionRule, PlanState};
use crate::store::plans::{NewPlan, NewPlanRow};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportFile {
    actions: Vec<ImportAction>,
    /// Flows (docs/flows.md).
    #[serde(default)]
    flows: Vec<super::import_flows::ImportFlow>,
    /// The plan's execution rule (Watcher's applier vectors name theirs
    /// here; `null`: none). Stored in the plan's extras; `start` applies it
    /// unless `--execution-rule` says otherwise, over the policy's.
    #[serde(default)]
    execution_rule: Option<Value>,
    // Test metadata in Watcher's applier vectors; read past, not kept.
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "engine")]
    _engine: Option<IgnoredAny>,
    #[serde(default, rename = "scenario")]
    _scenario: Option<IgnoredAny>,
    #[serde(default, rename = "expected")]
    _expected: Option<IgnoredAny>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportAction {
    pub(crate) id: String,
    pub(crate) action_type: String,
    #[serde(default)]
    pub(crate) input_parameters: Value,
    #[serde(default)]
    pub(crate) parents: Vec<String>,
    #[serde(default)]
    pub(crate) initial_state: Option<String>,
    /// Alternatives, in order (docs/flows.md).
    #[serde(default)]
    pub(crate) alternatives: Vec<super::import_flows::ImportAlternative>,
}

/// An action as it is stored: its parameters serialized, the parsed form
/// dropped as soon as it is checked.
struct Row {
    name: String,
    action_type: String,
    action_type_version: String,
    input_parameters_json: String,
    parents: Vec<String>,
    state: ActionState,
    /// Names of the actions whose outputs its parameters read.
    refs: Vec<String>,
    /// The parameters (JSON pointers) that hold those context references:
    /// what the plan declares, and all the applier will ever substitute.
    pointers: Vec<String>,
}

fn input(msg: impl std::fmt::Display) -> CliError {
    CliError::input(anyhow::anyhow!("{msg}"))
}

/// Parses the file: JSON with serde_json (a typed, single pass over the
/// text; the YAML parser first builds the whole document's event list: at
/// 200,000 actions the import took 4.7 s and 468 MB through it, 3.1 s and
/// 177 MB through serde_json), anything else as YAML. A file that
/// starts with `{` but is not JSON is YAML's flow style: the YAML parser
/// reads it and reports its errors.
fn parse(file: &Path, text: &str) -> Result<ImportFile, CliError> {
    if text.trim_start().starts_with('{') {
        match serde_json::from_str(text) {
            Ok(f) => return Ok(f),
            Err(e) if e.is_data() => return Err(json_refusal(file, text, e)),
            Err(_) => {}
        }
    }
    // Unknown YAML tags are refused with their place, as in every reader.
    crate::input::parse_yaml(text, file).map_err(CliError::input)
}

/// A JSON file's field of the wrong type, unknown or missing (`e`),
/// refused naming its line, column and path (`actions[2].parents`) as a
/// YAML file's are. The path is found by reading the file a second time,
/// tracking it: only a refused file pays for it.
fn json_refusal(file: &Path, text: &str, e: serde_json::Error) -> CliError {
    use serde_path_to_error::Segment;
    let mut de = serde_json::Deserializer::from_str(text);
    let (path, last, e) = match serde_path_to_error::deserialize::<_, ImportFile>(&mut de) {
        Err(tracked) if tracked.inner().is_data() => {
            let path = tracked.path();
            let last = path.iter().next_back().cloned();
            let path = if last.is_some() {
                path.to_string()
            } else {
                String::new()
            };
            (path, last, tracked.into_inner())
        }
        _ => (String::new(), None, e),
    };
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    // An unknown key is named by the message, not the path (as in YAML:
    // `actions[1]: unknown field `x``).
    let path = match last {
        Some(Segment::Map { key }) if msg.starts_with(&format!("unknown field `{key}`")) => path
            .strip_suffix(&key)
            .map(|p| p.strip_suffix('.').unwrap_or(p))
            .unwrap_or(&path)
            .to_string(),
        _ => path,
    };
    let path = if path.is_empty() { path } else { path + ": " };
    input(format!(
        "{}: line {} column {}: {path}{msg}",
        file.display(),
        e.line(),
        e.column(),
    ))
}

/// The file's `execution_rule:` (not `null`): one of the rules, else
/// refused naming the file, its line and the key.
fn execution_rule(file: &Path, text: &str, rule: Value) -> Result<ExecutionRule, CliError> {
    let parsed = match &rule {
        Value::String(r) => r.parse::<ExecutionRule>().map_err(|e| e.to_string()),
        other => Err(format!("{other} is not a string")),
    };
    parsed.map_err(|why| {
        use crate::policy::locate::{Point, Seg, locate};
        let place = locate(text, &[Seg::Field("execution_rule")], Point::Value)
            .map(|(l, c)| format!("line {l} column {c}: "))
            .unwrap_or_default();
        input(format!(
            "{}: {place}execution_rule: {why}: give STRICT, ALWAYS or ANY (or null: the policy's)",
            file.display()
        ))
    })
}

/// The plan's extras: the parameters that hold context references, and
/// the execution rule the file gives (read by `start`, see
/// `cli::apply::resolve`).
fn extra(references: serde_json::Map<String, Value>, rule: Option<ExecutionRule>) -> Value {
    let mut extra = serde_json::Map::new();
    if !references.is_empty() {
        extra.insert("references".into(), Value::Object(references));
    }
    if let Some(r) = rule {
        extra.insert("execution_rule".into(), Value::from(r.as_str()));
    }
    if extra.is_empty() {
        Value::Null
    } else {
        Value::Object(extra)
    }
}

/// Checks one action and serializes its parameters.
fn row(
    file: &Path,
    types: &ActionTypeRegistry,
    factory: &ActionFactory<'_>,
    a: ImportAction,
) -> Result<Row, CliError> {
    let at_fault =
        |e: &dyn std::fmt::Display| input(format!("{}: action {}: {e}", file.display(), a.id));
    let state = match a.initial_state.as_deref() {
        None | Some("PENDING") => ActionState::Pending,
        Some("SKIPPED") => ActionState::Skipped,
        Some(s) => {
            return Err(at_fault(&format!(
                "initial_state {s} is not PENDING or SKIPPED"
            )));
        }
    };
    // The plan declares its context references: the parameters that hold
    // `{{ actions.<name>.outputs.<key> }}` exactly. Only those are ever
    // substituted, and only textually (template::substitute_references).
    let declared = template::declared_references(&a.input_parameters);
    let mut refs: Vec<String> = declared.iter().flat_map(|(_, n)| n.clone()).collect();
    refs.sort();
    refs.dedup();
    let pointers: Vec<String> = declared.into_iter().map(|(p, _)| p).collect();
    let (action_type, action_type_version, params) = if refs.is_empty() {
        let inst = factory
            .instantiate(&NewAction::new(a.action_type.clone(), a.input_parameters))
            .map_err(|e| at_fault(&e))?;
        (
            inst.action_type,
            inst.action_type_version,
            inst.input_parameters,
        )
    } else {
        // Parameters filled from other actions' outputs are validated when
        // they are known; the type must exist now.
        let t = types.resolve(&a.action_type).map_err(|e| at_fault(&e))?;
        (t.name.clone(), t.version.to_string(), a.input_parameters)
    };
    Ok(Row {
        input_parameters_json: params.to_string(),
        name: a.id,
        action_type,
        action_type_version,
        parents: a.parents,
        state,
        refs,
        pointers,
    })
}

/// `action-plan import FILE`: a RECOMMENDED plan from a list of actions
/// with parents by name.
pub fn import(env: &Env, file: &Path, format: Format) -> CliResult {
    let text = crate::input::read_text(file, crate::input::MAX_DATA_BYTES, "an action-plan import")
        .map_err(CliError::input)?;
    let f = parse(file, &text)?;
    let execution_rule = f
        .execution_rule
        .map(|rule| execution_rule(file, &text, rule))
        .transpose()?;
    let (actions, structure) = super::import_flows::expand(file, &text, f.actions, f.flows)?;
    drop(text);
    let types = env.action_types();
    let factory = ActionFactory::new(&types);
    let rows = actions
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            // The id is the action's name: what `action show`, context
            // references and the plan's parents name it by.
            if a.id.is_empty() {
                return Err(input(format!(
                    "{}: action #{} has an empty id",
                    file.display(),
                    i + 1
                )));
            }
            row(file, &types, &factory, a)
        })
        .collect::<Result<Vec<Row>, CliError>>()?;
    let n = rows.len();
    let mut names: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, r) in rows.iter().enumerate() {
        if let Some(j) = names.insert(&r.name, i) {
            return Err(input(format!(
                "{}: actions #{} and #{} have the same id {}",
                file.display(),
                j + 1,
                i + 1,
                r.name
            )));
        }
    }
    let mut edges = Vec::with_capacity(rows.iter().map(|r| r.parents.len()).sum());
    for (i, r) in rows.iter().enumerate() {
        for p in &r.parents {
            let j = names.get(p.as_str()).ok_or_else(|| {
                input(format!(
                    "{}: action {}: unknown parent {p}",
                    file.display(),
                    r.name
                ))
            })?;
            edges.push((*j, i));
        }
    }
    let specs: Vec<sextant_plugin_api::abi::ActionSpec> = rows
        .iter()
        .map(|r| crate::plan::spec(&r.name, &r.action_type, None, &Value::Null))
        .collect();
    // Created in file order: positions are indexes in the file.
    let (start, parents) =
        crate::plan::check("import", &specs, &(0..n).collect::<Vec<_>>(), &edges).map_err(|e| {
            match e {
                PlanError::InvalidOutput { message, .. } => {
                    input(format!("{}: {message}", file.display()))
                }
                e => input(format!("{}: {e}", file.display())),
            }
        })?;
    drop((specs, edges));
    // A template may only read the outputs of an ancestor: checked for the
    // actions that hold references, and only for them.
    let mut queries = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        for name in &r.refs {
            // An unknown name is never an ancestor: n refuses it.
            queries.push((i, names.get(name.as_str()).copied().unwrap_or(n)));
        }
    }
    let holds = crate::plan::ancestry::ancestors_hold(&start, &parents, &queries);
    // The first refusal in file order (queries are made in file order).
    if let Some(q) = holds.iter().position(|ok| !ok) {
        let (i, _) = queries[q];
        let k = q - queries.iter().position(|&(a, _)| a == i).unwrap_or(q);
        return Err(input(format!(
            "{}: action {}: its parameters use the outputs of {}, which is not one of its ancestors",
            file.display(),
            rows[i].name,
            rows[i].refs[k]
        )));
    }
    drop((names, queries, holds));
    let references: serde_json::Map<String, Value> = rows
        .iter()
        .filter(|r| !r.pointers.is_empty())
        .map(|r| {
            let pointers = r.pointers.iter().map(|p| Value::from(p.as_str())).collect();
            (r.name.clone(), Value::Array(pointers))
        })
        .collect();
    let (mut store, _, _) = env.open_store_synced_with(&types)?;
    let plan = store.create_plan_with_structure(
        &NewPlan {
            state: PlanState::Recommended,
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, r)| NewPlanRow {
                    name: &r.name,
                    action_type: &r.action_type,
                    action_type_version: &r.action_type_version,
                    input_parameters_json: &r.input_parameters_json,
                    parents: &parents[start[i]..start[i + 1]],
                    state: r.state,
                })
                .collect(),
            extra: extra(references, execution_rule),
            ..Default::default()
        },
        &structure,
    )?;
    if !print_structured(format, &serde_json::json!({"action_plan": plan.uuid}))? {
        outln!("{}", plan.uuid);
    }
    Ok(ExitCode::SUCCESS)
}
