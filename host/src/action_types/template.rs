//! Templates in an action type's `with` block, rendered by minijinja.
//!
//! Every string leaf of `with` is a template. A placeholder names a declared
//! parameter (`{{ resource_id }}`) or an output of an earlier action of the
//! same plan (`{{ actions.<name>.outputs.<key> }}`). Each leaf renders to one
//! string: an argv element stays one argument whatever the value holds, and
//! nothing is ever passed through a shell.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

fn environment() -> &'static Environment<'static> {
    static ENV: std::sync::LazyLock<Environment<'static>> = std::sync::LazyLock::new(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env
    });
    &ENV
}

/// Whether a value holds any template (so rendering can be skipped).
fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(o) => o.values().any(has_template),
        _ => false,
    }
}

/// Whether a string holds template syntax at all.
fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Checks every string leaf of `with`: the template must parse and every
/// variable must be a declared parameter or `actions.<name>.outputs.<key>`.
/// Returns `(path inside with, problem)` pairs.
pub fn check_all(with: &Value, declared: &[String]) -> Vec<(Vec<String>, String)> {
    let env = environment();
    let mut problems = Vec::new();
    walk(with, &mut Vec::new(), &mut |path, s| {
        if !is_template(s) {
            return;
        }
        let tmpl = match env.template_from_str(s) {
            Ok(t) => t,
            Err(e) => {
                problems.push((path.to_vec(), format!("template {s:?} does not parse: {e}")));
                return;
            }
        };
        let mut vars: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
        vars.sort();
        for var in vars {
            if let Some(problem) = check_variable(&var, declared) {
                problems.push((path.to_vec(), problem));
            }
        }
    });
    problems
}

fn check_variable(var: &str, declared: &[String]) -> Option<String> {
    let parts: Vec<&str> = var.split('.').collect();
    if parts[0] == "actions" {
        return match parts.as_slice() {
            ["actions", _name, "outputs", _key, ..] => None,
            // `undeclared_variables(true)` may also report the prefixes.
            ["actions"] | ["actions", _] | ["actions", _, "outputs"] => None,
            _ => Some(format!(
                "placeholder {var:?}: outputs of other actions are written actions.<name>.outputs.<key>"
            )),
        };
    }
    if declared.iter().any(|d| d == parts[0]) {
        None
    } else {
        Some(format!(
            "placeholder {{{{ {var} }}}} names no declared parameter (declared: {})",
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        ))
    }
}

fn walk(v: &Value, path: &mut Vec<String>, f: &mut dyn FnMut(&[String], &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                walk(x, path, f);
                path.pop();
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                path.push(k.clone());
                walk(x, path, f);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Renders every string leaf of `with` with the action's parameters and
/// the outputs of earlier actions (`{"<name>": {"outputs": {...}}}`).
pub fn render(with: &Value, params: &Value, actions: &Value) -> Result<Value, String> {
    if !has_template(with) {
        return Ok(with.clone());
    }
    let env = environment();
    let mut ctx = match params {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    ctx.insert("actions".into(), actions.clone());
    let ctx = Value::Object(ctx);
    fn go(env: &Environment<'_>, v: &Value, ctx: &Value, path: &str) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) if is_template(s) => Value::String(
                env.render_str(s, ctx)
                    .map_err(|e| format!("with{path}: cannot render {s:?}: {e}"))?,
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| go(env, x, ctx, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), go(env, x, ctx, &format!("{path}.{k}"))?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
    go(env, with, &ctx, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undeclared_placeholders_are_found() {
        let with = json!({"argv": ["x", "{{ host }}", "{{ other }}"], "env": {"A": "{{ actions.a1.outputs.k }}"}});
        let p = check_all(&with, &["host".to_string()]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, vec!["argv".to_string(), "2".to_string()]);
        assert!(p[0].1.contains("other"));
        let p = check_all(&json!(["{{ actions.a1.k }}"]), &[]);
        assert_eq!(p.len(), 1, "{p:?}");
        let p = check_all(&json!(["{{ unclosed"]), &[]);
        assert!(p[0].1.contains("does not parse"), "{p:?}");
    }

    #[test]
    fn a_value_stays_one_string_whatever_it_holds() {
        let nasty = "a b; rm -rf / \"q\" 'q' $(x) `y` | z";
        let out = render(
            &json!({"argv": ["/bin/echo", "{{ v }}"], "n": 3}),
            &json!({"v": nasty}),
            &json!({}),
        )
        .expect("renders");
        assert_eq!(out, json!({"argv": ["/bin/echo", nasty], "n": 3}));
    }

    #[test]
    fn outputs_of_earlier_actions_and_strict_undefined() {
        let out = render(
            &json!("{{ actions.a1.outputs.host }}"),
            &json!({}),
            &json!({"a1": {"outputs": {"host": "n2"}}}),
        )
        .expect("renders");
        assert_eq!(out, json!("n2"));
        assert!(render(&json!("{{ missing }}"), &json!({}), &json!({})).is_err());
    }
}
