//! The default action mapper: the handler entry named exactly as the action
//! type's `handler`, else `<driver>.<handler>` for the configured drivers.

use serde::Deserialize;
use sextant_plugin_api::prelude::*;

#[derive(Default)]
pub struct DefaultMapper;

#[derive(Deserialize)]
struct Request {
    action_type: String,
    handler: Option<String>,
    #[serde(default)]
    drivers: Vec<String>,
    #[serde(default)]
    handlers: Vec<String>,
}

impl ActionMapper for DefaultMapper {
    fn map(&self, request: Value) -> Result<String, PluginError> {
        let r: Request = serde_json::from_value(request)
            .map_err(|e| PluginError::invalid_input(format!("mapping request: {e}")))?;
        let handler = r.handler.unwrap_or_else(|| r.action_type.clone());
        if r.handlers.contains(&handler) {
            return Ok(handler);
        }
        for d in &r.drivers {
            let name = format!("{d}.{handler}");
            if r.handlers.contains(&name) {
                return Ok(name);
            }
        }
        Err(PluginError::unsupported(format!(
            "no loaded handler named {handler:?}{}",
            if r.drivers.is_empty() {
                String::new()
            } else {
                format!(
                    " or {}",
                    r.drivers
                        .iter()
                        .map(|d| format!("{:?}", format!("{d}.{handler}")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_name_first_then_drivers() {
        let m = DefaultMapper;
        let req = |h: &str, handlers: &[&str]| json!({"action_type": "t", "handler": h, "drivers": ["sim", "nova"], "handlers": handlers});
        assert_eq!(
            m.map(req("nop", &["nop", "sim.nop"])).ok(),
            Some("nop".into())
        );
        assert_eq!(
            m.map(req("migrate", &["nova.migrate", "sim.migrate"])).ok(),
            Some("sim.migrate".into())
        );
        let e = m.map(req("migrate", &["nop"])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UNSUPPORTED);
        assert!(e.message().contains("\"sim.migrate\""), "{}", e.message());
    }
}
