//! Templates in an action type's `with` block, rendered by minijinja.
//!
//! Every string leaf of `with` is a template. A placeholder names a declared
//! parameter (`{{ resource_id }}`) or an output of an earlier action of the
//! same plan (`{{ actions.<name>.outputs.<key> }}`). Each leaf renders to one
//! string: an argv element stays one argument whatever the value holds, and
//! nothing is ever passed through a shell. Rendering is bounded: a template
//! gets [`FUEL`] instructions, so a loop in an action type cannot hang the
//! applier.
//!
//! An action's *parameters* are data, never templates: they carry cluster
//! data (host and instance names that tenants choose). The only thing ever
//! substituted in them is a context reference that the plan declared
//! (an imported plan's `{{ actions.<name>.outputs.<key> }}`, recorded at
//! import by [`declared_references`]), and it is substituted textually by
//! [`substitute_references`], never evaluated.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

fn environment() -> &'static Environment<'static> {
    static ENV: std::sync::LazyLock<Environment<'static>> = std::sync::LazyLock::new(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(FUEL));
        env
    });
    &ENV
}

/// The instructions one template may run: far more than any real `with`
/// block needs (a few per placeholder), far less than a second of work.
pub const FUEL: u64 = 100_000;

/// The longest string a context reference may produce in a parameter.
const MAX_SUBSTITUTED: usize = 1 << 20;

/// A context reference found in a string: `{{ actions.<name>.outputs.<key>… }}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Where it starts and ends in the string (the braces included).
    pub span: std::ops::Range<usize>,
    /// The action whose outputs it reads.
    pub action: String,
    /// The keys into its outputs (at least one).
    pub keys: Vec<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// The context references in `s`, exactly as written: `{{`, optional
/// spaces, `actions.<name>.outputs.<key>[.<key>…]`, optional spaces, `}}`.
/// Anything else (an expression, a filter, another variable) is not a
/// reference, and stays text.
pub fn references_in(s: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = s[from..].find("{{").map(|i| i + from) {
        from = open + 2;
        let Some(close) = s[from..].find("}}").map(|i| i + from) else {
            break;
        };
        let inner = s[open + 2..close].trim_matches(' ');
        let mut parts = inner.split('.');
        let (Some("actions"), Some(name), Some("outputs")) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let keys: Vec<String> = parts.map(str::to_string).collect();
        let ok = |p: &str| !p.is_empty() && p.chars().all(is_name_char);
        if ok(name) && !keys.is_empty() && keys.iter().all(|k| ok(k)) {
            out.push(Reference {
                span: open..close + 2,
                action: name.to_string(),
                keys,
            });
            from = close + 2;
        }
    }
    out
}

/// The JSON pointers of the string leaves of `params` that hold context
/// references, and the actions each names: what an imported plan declares.
pub fn declared_references(params: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    walk(params, &mut Vec::new(), &mut |path, s| {
        let refs = references_in(s);
        if !refs.is_empty() {
            let mut names: Vec<String> = refs.into_iter().map(|r| r.action).collect();
            names.sort();
            names.dedup();
            out.push((pointer(path), names));
        }
    });
    out
}

fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Substitutes the context references of the string leaves at `pointers`
/// with the outputs of earlier actions (`{"<name>": {"outputs": {...}}}`):
/// a string output as it is, any other value as its JSON text. Nothing else
/// in `params` is read as a template.
pub fn substitute_references(
    params: &Value,
    pointers: &[String],
    actions: &Value,
) -> Result<Value, String> {
    if pointers.is_empty() {
        return Ok(params.clone());
    }
    let mut out = params.clone();
    for p in pointers {
        let Some(Value::String(s)) = out.pointer_mut(p) else {
            continue;
        };
        let mut text = String::with_capacity(s.len());
        let mut last = 0;
        for r in references_in(s) {
            text.push_str(&s[last..r.span.start]);
            let mut v = &actions[&r.action]["outputs"];
            for k in &r.keys {
                v = &v[k.as_str()];
            }
            match v {
                Value::Null => {
                    return Err(format!(
                        "parameter {p}: action {} has no output {}",
                        r.action,
                        r.keys.join(".")
                    ));
                }
                Value::String(x) => text.push_str(x),
                other => text.push_str(&other.to_string()),
            }
            if text.len() > MAX_SUBSTITUTED {
                return Err(format!(
                    "parameter {p}: the outputs it reads make it longer than {MAX_SUBSTITUTED} bytes"
                ));
            }
            last = r.span.end;
        }
        text.push_str(&s[last..]);
        *s = text;
    }
    Ok(out)
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
    fn only_exact_references_are_references() {
        let r = references_in("a {{ actions.x-1.outputs.k.j }} b {{actions.y.outputs.z}}");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].action, "x-1");
        assert_eq!(r[0].keys, vec!["k", "j"]);
        assert_eq!(r[1].action, "y");
        for not in [
            "c{{ 7*7 }}",
            "{{ 'compute-003' }}",
            "{{ actions.x.outputs }}",
            "{{ actions.x.k }}",
            "{{ actions.x.outputs.k | upper }}",
            "{{ actions.x.outputs.k ~ 'a' }}",
            "{% for i in range(9) %}x{% endfor %}",
            "{{ actions.x.outputs.k",
        ] {
            assert!(references_in(not).is_empty(), "{not}");
        }
    }

    #[test]
    fn parameters_are_never_evaluated() {
        let params = json!({"host": "c{{ 7*7 }}", "name": "{{ 'compute-003' }}",
            "v": "id={{ actions.a.outputs.id }}", "n": 3});
        let declared = declared_references(&params);
        assert_eq!(declared, vec![("/v".to_string(), vec!["a".to_string()])]);
        let pointers: Vec<String> = declared.into_iter().map(|d| d.0).collect();
        let out = substitute_references(&params, &pointers, &json!({"a": {"outputs": {"id": 7}}}))
            .expect("substitutes");
        assert_eq!(
            out,
            json!({"host": "c{{ 7*7 }}", "name": "{{ 'compute-003' }}", "v": "id=7", "n": 3})
        );
        // An undeclared reference stays text, whatever the outputs hold.
        let out = substitute_references(&params, &[], &json!({"a": {"outputs": {"id": 7}}}))
            .expect("nothing to do");
        assert_eq!(out, params);
        let missing = substitute_references(&params, &pointers, &json!({}));
        assert!(missing.is_err_and(|e| e.contains("/v") && e.contains("no output id")));
    }

    #[test]
    fn a_template_loop_runs_out_of_fuel() {
        let with = json!([
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
        ]);
        let started = std::time::Instant::now();
        let e = render(&with, &json!({}), &json!({})).expect_err("out of fuel");
        assert!(e.contains("fuel"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

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
