//! Where a node of a YAML document is: its line and column, found by the
//! YAML parser itself rather than by searching the text.
//!
//! The document is walked with serde along a path of keys and sequence
//! indexes; at the node sought the walk fails on purpose, and serde_yaml_ng
//! marks that failure with the position of the event it was reading (the
//! key's scalar, or the value's first event). Flow and block style, quoting,
//! comments and repeated keys elsewhere in the file do not confuse it.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One step of a path into a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg<'a> {
    /// The value of a mapping's key.
    Field(&'a str),
    /// An item of a sequence (0-based).
    Item(usize),
}

/// What the path points at: the node itself, or (when the path ends with a
/// [`Seg::Field`]) that key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// The node the path leads to.
    Value,
    /// The key of the path's last field.
    Key,
}

/// The message of the deliberate failure that marks the node found.
const FOUND: &str = "\u{0}sextant-node-found";

/// The 1-based line and column of the node at `path` in `text`, or `None`
/// when the document has no such node (or cannot be parsed).
pub fn locate(text: &str, path: &[Seg<'_>], point: Point) -> Option<(usize, usize)> {
    let seed = Find { path, point };
    match seed.deserialize(serde_yaml_ng::Deserializer::from_str(text)) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        Err(_) => None,
    }
}

struct Find<'p> {
    path: &'p [Seg<'p>],
    point: Point,
}

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Find<'_> {
    /// A scalar: found if the path ends here, else the path does not exist.
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let mut i = 0;
        loop {
            let more = match first {
                Seg::Item(n) if *n == i => seq
                    .next_element_seed(Find {
                        path: rest,
                        point: self.point,
                    })?
                    .is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let wanted = match first {
            Seg::Field(name) => Some(*name),
            Seg::Item(_) => None,
        };
        let at_key = rest.is_empty() && self.point == Point::Key;
        while let Some(hit) = map.next_key_seed(Key { wanted, at_key })? {
            if hit {
                map.next_value_seed(Find {
                    path: rest,
                    point: self.point,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A mapping key: is it the one wanted? Fails there when the key itself is
/// the node sought.
struct Key<'a> {
    wanted: Option<&'a str>,
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<bool, E> {
        let hit = self.wanted == Some(k);
        if hit && self.at_key {
            return Err(E::custom(FOUND));
        }
        Ok(hit)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Seg::{Field, Item};

    const DOC: &str = "\
# a comment with weights: {migrate: 1}
name: p
weights: {nop: 70, \"migrat\": 30}
rules:
  - name: a
    first: {action_type: nop}
  - name: b
    first:
      action_type: migrate
      where: {state: disabled}
limits:
- {action_type: migrate, per: source_nod, max: 2}
";

    #[test]
    fn finds_keys_and_values_in_block_and_flow_style() {
        assert_eq!(
            locate(DOC, &[Field("weights"), Field("migrat")], Point::Key),
            Some((3, 20))
        );
        assert_eq!(
            locate(DOC, &[Field("weights"), Field("nop")], Point::Value),
            Some((3, 16))
        );
        assert_eq!(
            locate(
                DOC,
                &[
                    Field("rules"),
                    Item(1),
                    Field("first"),
                    Field("action_type")
                ],
                Point::Value
            ),
            Some((9, 20))
        );
        assert_eq!(
            locate(
                DOC,
                &[
                    Field("rules"),
                    Item(1),
                    Field("first"),
                    Field("where"),
                    Field("state")
                ],
                Point::Key
            ),
            Some((10, 15))
        );
        assert_eq!(
            locate(DOC, &[Field("limits"), Item(0), Field("per")], Point::Value),
            Some((12, 31))
        );
    }

    #[test]
    fn a_missing_node_or_a_broken_document_is_none() {
        assert_eq!(locate(DOC, &[Field("planner")], Point::Value), None);
        assert_eq!(locate(DOC, &[Field("rules"), Item(5)], Point::Value), None);
        assert_eq!(locate("]", &[Field("a")], Point::Value), None);
    }
}
