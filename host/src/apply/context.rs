//! The handler context: an action's type, handler entry and parameters,
//! and what its handler is told about it.

use super::*;

pub(super) fn message_of(e: &PluginCallError) -> String {
    match e {
        PluginCallError::Plugin { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Everything an action needs before its handler can be created: its type,
/// the handler entry, and the handler's parameters: the declared context
/// references (`refs`, JSON pointers) substituted with the outputs of its
/// ancestors, then the type's `with` templates rendered. Parameters are
/// never rendered as templates: they carry cluster data.
pub(super) fn prepare_handler(
    shared: &Shared,
    row: &ActionRow,
    refs: &[String],
    ancestors_outputs: &Value,
) -> Result<(String, Value, bool), String> {
    let (entry, t) = handler_entry(shared, row)?;
    let params = handler_params(shared, t, row, refs, ancestors_outputs)?;
    Ok((entry, params, t.idempotent))
}

/// The handler's parameters of an action of type `t` (see
/// [`prepare_handler`]).
pub(super) fn handler_params(
    shared: &Shared,
    t: &crate::action_types::ActionType,
    row: &ActionRow,
    refs: &[String],
    ancestors_outputs: &Value,
) -> Result<Value, String> {
    let mut params =
        template::substitute_references(&row.input_parameters, refs, ancestors_outputs)?;
    if !refs.is_empty() {
        // Checked now that the outputs are in: the import could not.
        params = crate::action_types::ActionFactory::new(&shared.types)
            .instantiate(&crate::action_types::NewAction::new(
                format!("{}@{}", t.name, t.version),
                params,
            ))
            .map_err(|e| format!("parameters after substitution: {e}"))?
            .input_parameters;
    }
    Ok(match &t.with {
        Some(with) => template::render(with, &params, ancestors_outputs)?,
        None => params,
    })
}

/// The handler entry an action maps to (cached per type and version), and
/// its action type.
pub(super) fn handler_entry<'a>(
    shared: &'a Shared,
    row: &ActionRow,
) -> Result<(String, &'a crate::action_types::ActionType), String> {
    let version = semver::Version::parse(&row.action_type_version).ok();
    let t = shared
        .types
        .get(&row.action_type, version.as_ref())
        .map_err(|e| e.to_string())?;
    let key = (t.name.clone(), t.version.to_string());
    let cached = shared
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    let entry = match cached {
        Some(e) => e,
        None => {
            let mapper =
                HandlerMapper::new(&shared.plugins, &shared.opts.mapper, &shared.opts.drivers);
            let e = mapper.handler_for(t).map_err(|e| e.reason);
            shared
                .entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, e.clone());
            e
        }
    }?;
    Ok((entry, t))
}

/// What a handler is told about its action, as the JSON text that crosses
/// the plugin boundary: built straight into a string, with the parts the
/// whole run shares serialized once (`Shared::context_tail`).
pub(super) fn handler_context_json(shared: &Shared, row: &ActionRow) -> String {
    let version = semver::Version::parse(&row.action_type_version).ok();
    let duration = shared
        .types
        .get(&row.action_type, version.as_ref())
        .map(|t| t.estimated_duration.as_secs_f64())
        .unwrap_or(0.0);
    context_json(row, duration, &shared.context_tail)
}

pub(super) fn context_json(row: &ActionRow, duration: f64, tail: &str) -> String {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"uuid":{},"name":{},"action_type":{},"action_type_version":{},"estimated_duration_seconds":{},{}}}"#,
        text(&row.uuid),
        text(&row.name),
        text(&row.action_type),
        text(&row.action_type_version),
        serde_json::Number::from_f64(duration).map_or_else(|| "0".to_string(), |n| n.to_string()),
        tail,
    )
}

/// [`handler_context_json`] as a value.
pub(super) fn handler_context(shared: &Shared, row: &ActionRow) -> Value {
    serde_json::from_str(&handler_context_json(shared, row)).unwrap_or(Value::Null)
}

/// `"action_plan":…,"config":…`: the part of every handler context that
/// does not change during a run.
pub(super) fn context_tail(
    plan_uuid: &str,
    driver_config: &crate::config::Secret<Value>,
) -> String {
    format!(
        r#""action_plan":{},"config":{}"#,
        serde_json::to_string(plan_uuid).unwrap_or_else(|_| "\"\"".into()),
        crate::json_text(driver_config.expose())
    )
}

pub(super) async fn create_handler(
    shared: &Arc<Shared>,
    entry: String,
    params: Value,
    ctx: Value,
) -> Result<Arc<Handler>, PluginCallError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.plugins.handler(&entry, &params, &ctx).map(Arc::new))
        .await
        .map_err(|e| PluginCallError::Host(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_context_is_valid_json_whatever_its_names_hold() {
        let mut row = test_row("odd \"name\" \\ with\nbreaks");
        row.uuid = "u-1".into();
        let tail = context_tail(
            "plan-\"x\"",
            &crate::config::Secret::new(json!({"sim": {"sim_db": "/a b/c.db"}})),
        );
        let v: Value = serde_json::from_str(&context_json(&row, 1.5, &tail)).expect("json");
        assert_eq!(
            v,
            json!({
                "uuid": "u-1",
                "name": row.name,
                "action_type": "nop",
                "action_type_version": "1.0.0",
                "action_plan": "plan-\"x\"",
                "estimated_duration_seconds": 1.5,
                "config": {"sim": {"sim_db": "/a b/c.db"}},
            })
        );
    }
}
