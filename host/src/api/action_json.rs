//! The JSON of actions, written straight into the response's bytes: no
//! `serde_json::Value` per action, only the fields the answer keeps. The
//! bytes are those the generic path (`actions::to_json`, then `only` for a
//! plain list, then `collection`) gives, field order included, which the
//! tests below hold it to.

use super::links::time;
use super::version::SKIPPED_ACTION;
use crate::store::plans::ActionRow;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::collections::HashMap;

/// Which fields an action's JSON has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Every field (`/detail`), else a plain list's.
    pub detail: bool,
    /// `status_message` (microversion 1.5 on).
    pub status_message: bool,
    /// Sextant's extras (`action_type_version`, `outputs`).
    pub extras: bool,
}

impl Shape {
    /// The shape a request asks for.
    pub fn of(ctx: &super::links::Ctx, detail: bool) -> Self {
        Self {
            detail,
            status_message: ctx.at_least(SKIPPED_ACTION),
            extras: ctx.extras,
        }
    }
}

/// An object's `self` and `bookmark` links (as `Ctx::links`).
struct Links<'a> {
    base: &'a str,
    id: &'a str,
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Link<'a>(&'a str, &'static str);
        impl Serialize for Link<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("href", self.0)?;
                m.serialize_entry("rel", self.1)?;
                m.end()
            }
        }
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Link(
            &format!("{}/v1/actions/{}", self.base, self.id),
            "self",
        ))?;
        seq.serialize_element(&Link(
            &format!("{}/actions/{}", self.base, self.id),
            "bookmark",
        ))?;
        seq.end()
    }
}

/// One action as the API shows it.
struct Item<'a> {
    a: &'a ActionRow,
    description: Option<&'a str>,
    shape: Shape,
    base: &'a str,
}

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (a, shape) = (self.a, self.shape);
        let links = Links {
            base: self.base,
            id: &a.uuid,
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("uuid", &a.uuid)?;
        m.serialize_entry("state", &a.state)?;
        m.serialize_entry("action_plan_uuid", &a.action_plan_uuid)?;
        m.serialize_entry("action_type", &a.action_type)?;
        m.serialize_entry("parents", &a.parents)?;
        if shape.detail {
            m.serialize_entry("description", self.description.unwrap_or_default())?;
            m.serialize_entry("input_parameters", &a.input_parameters)?;
            let created = time(Some(&a.created_at));
            let updated = time(a.updated_at.as_deref());
            if shape.status_message {
                m.serialize_entry("status_message", &a.status_message)?;
                m.serialize_entry("created_at", &created)?;
                m.serialize_entry("updated_at", &updated)?;
                m.serialize_entry("deleted_at", &())?;
                m.serialize_entry("links", &links)?;
            } else {
                // Below 1.5 the generic path removes `status_message` with
                // serde_json's swap_remove: `links` takes its place.
                m.serialize_entry("links", &links)?;
                m.serialize_entry("created_at", &created)?;
                m.serialize_entry("updated_at", &updated)?;
                m.serialize_entry("deleted_at", &())?;
            }
        } else {
            m.serialize_entry("links", &links)?;
        }
        if shape.extras {
            m.serialize_entry("action_type_version", &a.action_type_version)?;
            m.serialize_entry("outputs", &a.outputs)?;
        }
        m.end()
    }
}

/// `{"actions": [...], "next": url}` (next only when there is one) of
/// `rows`, each with its type's description (from `descriptions`, for
/// `/detail`), as JSON bytes.
pub fn collection_bytes(
    rows: &[ActionRow],
    descriptions: &HashMap<String, Option<String>>,
    shape: Shape,
    base: &str,
    next: Option<&str>,
) -> Result<Bytes, serde_json::Error> {
    // A plain list's item is about 330 bytes with its links.
    let mut out = Vec::with_capacity(64 + rows.len() * if shape.detail { 700 } else { 340 });
    out.extend_from_slice(b"{\"actions\":[");
    for (i, a) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let item = Item {
            a,
            description: descriptions.get(&a.action_type).and_then(Option::as_deref),
            shape,
            base,
        };
        serde_json::to_writer(&mut out, &item)?;
    }
    out.push(b']');
    if let Some(n) = next {
        out.extend_from_slice(b",\"next\":");
        serde_json::to_writer(&mut out, n)?;
    }
    out.push(b'}');
    Ok(Bytes::from(out))
}

/// A JSON body already written, answered as `axum::Json` answers.
pub struct JsonBytes(pub Bytes);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        ([(CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::links::{Ctx, collection, only};
    use crate::api::version::Version;
    use crate::states::ActionState;
    use serde_json::json;

    /// The fields of a plain list (besides `links`), Watcher's, then
    /// Sextant's extras: what the generic path keeps of `to_json`.
    const LIST_FIELDS: &[&str] = &[
        "uuid",
        "state",
        "action_plan_uuid",
        "action_type",
        "parents",
    ];
    const EXTRA_FIELDS: &[&str] = &["action_type_version", "outputs"];

    fn row(i: usize, with_outputs: bool) -> ActionRow {
        ActionRow {
            uuid: format!("00000000-0000-4000-8000-{i:012}"),
            name: format!("a{i}"),
            action_plan_uuid: "11111111-1111-4111-8111-111111111111".into(),
            action_type: if i.is_multiple_of(2) { "nop" } else { "sleep" }.into(),
            action_type_version: "1.0.0".into(),
            input_parameters: json!({"message": format!("m \"{i}\" é"), "z": 1, "a": [1, 2]}),
            state: if i.is_multiple_of(3) {
                ActionState::Succeeded
            } else {
                ActionState::Pending
            },
            parents: (0..i.min(2))
                .map(|p| format!("00000000-0000-4000-8000-{p:012}"))
                .collect(),
            outputs: with_outputs.then(|| json!({"out": i})),
            status_message: (i % 2 == 1).then(|| format!("why {i}")),
            created_at: "2026-12-06T10:35:15.123Z".into(),
            updated_at: i
                .is_multiple_of(2)
                .then(|| "2026-12-06T10:36:00.004Z".to_string()),
            execute_failed: false,
        }
    }

    #[test]
    fn the_bytes_are_those_of_the_generic_path_in_every_shape() {
        let rows: Vec<ActionRow> = (0..5).map(|i| row(i, i % 2 == 0)).collect();
        let descriptions: HashMap<String, Option<String>> = [
            ("nop".to_string(), Some("Does nothing".to_string())),
            ("sleep".to_string(), None),
        ]
        .into();
        for minor in [0, 4, 5, 7] {
            for detail in [false, true] {
                for extras in [false, true] {
                    for next in [None, Some("http://h:1/v1/actions?limit=5&marker=x")] {
                        let ctx = Ctx {
                            base: "http://h:1".into(),
                            version: Version { major: 1, minor },
                            lang: "en".into(),
                            extras,
                        };
                        let mut items: Vec<serde_json::Value> = rows
                            .iter()
                            .map(|a| {
                                crate::api::actions::to_json(
                                    a,
                                    descriptions[&a.action_type].clone(),
                                    &ctx,
                                )
                            })
                            .collect();
                        if !detail {
                            let mut keep = LIST_FIELDS.to_vec();
                            if extras {
                                keep.extend(EXTRA_FIELDS);
                            }
                            items.iter_mut().for_each(|v| only(v, &keep));
                        }
                        let want = serde_json::to_vec(&collection(
                            "actions",
                            items,
                            next.map(str::to_string),
                        ))
                        .expect("json");
                        let got = collection_bytes(
                            &rows,
                            &descriptions,
                            Shape::of(&ctx, detail),
                            &ctx.base,
                            next,
                        )
                        .expect("bytes");
                        assert_eq!(
                            String::from_utf8_lossy(&got),
                            String::from_utf8_lossy(&want),
                            "version 1.{minor}, detail {detail}, extras {extras}"
                        );
                    }
                }
            }
        }
    }
}
