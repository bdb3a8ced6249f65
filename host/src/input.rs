//! Reading the files a user hands Sextant: bounded in size, and YAML
//! refused when it carries a tag the parsers would drop silently.
//!
//! Every YAML/JSON input reader goes through [`read_text`]: action types,
//! policies, the config file and audit scopes are at most
//! [`MAX_DEFINITION_BYTES`] (1 MiB);
//! cluster snapshots, action-plan imports and `plan --input` files at most
//! [`MAX_DATA_BYTES`] (512 MiB, room for the large example cluster's
//! 100,000 instances many times over). A bigger file is refused with its
//! name, its size and the limit, before it is read.
//!
//! [`find_unknown_tag`] finds the first YAML tag outside the core schema
//! (`!include`, `!!binary`, `!foo`): serde_yaml_ng resolves `!!binary` to a
//! plain string and ignores local tags on struct fields, so a file that
//! means something else than it says would be read as if the tag were not
//! there.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most an action type, a policy or the config file may weigh: 1 MiB.
pub const MAX_DEFINITION_BYTES: u64 = 1024 * 1024;

/// The most a snapshot, a plan import or a `plan --input` file may weigh:
/// 512 MiB.
pub const MAX_DATA_BYTES: u64 = 512 * 1024 * 1024;

/// A file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (without the file name).
    pub problem: ReadProblem,
}

/// What went wrong reading a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadProblem {
    /// Bigger than the limit for its kind.
    #[error("the file is {size} bytes, more than the {limit} bytes accepted for {what}")]
    TooLarge {
        /// Its size (at least), bytes.
        size: u64,
        /// The limit, bytes.
        limit: u64,
        /// What kind of file (`an action type`).
        what: &'static str,
    },
    /// The OS said no, or the text is not UTF-8 (not a `source`: the
    /// message carries it, so it is printed once).
    #[error("cannot read: {0}")]
    Io(std::io::Error),
}

/// Reads `path` as UTF-8 text if it is at most `limit` bytes; `what` names
/// the kind of file in the error.
pub fn read_text(path: &Path, limit: u64, what: &'static str) -> Result<String, ReadError> {
    let fail = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    let io = |e| fail(ReadProblem::Io(e));
    let file = std::fs::File::open(path).map_err(io)?;
    let too_large = |size| fail(ReadProblem::TooLarge { size, limit, what });
    if let Ok(m) = file.metadata()
        && m.is_file()
        && m.len() > limit
    {
        return Err(too_large(m.len()));
    }
    // A pipe or a file still growing: read one byte past the limit to know.
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > limit {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// A YAML (or JSON) data file could not be used: unreadable, too large, or
/// not what it should be, with the line and column at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Unreadable or too large.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Invalid, at a line and column.
    #[error("{}: line {line} column {column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Parses YAML (or JSON) `text` read from `path` into `T`: unknown tags
/// refused, errors with the line and column (1:1 when the parser knows
/// none, such as an empty document).
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, DataError> {
    let invalid = |line, column, message| DataError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    if let Some(t) = find_unknown_tag(text) {
        return Err(invalid(t.line, t.column, t.to_string()));
    }
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let msg = e.to_string();
        // serde_yaml_ng appends " at line L column C": keep one copy.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        invalid(line, column, msg)
    })
}

/// [`read_text`] then [`parse_yaml`].
pub fn read_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> Result<T, DataError> {
    let text = read_text(path, limit, what)?;
    parse_yaml(&text, path)
}

/// A YAML tag outside the core schema, where it is (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTag {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The tag as written (`!include`).
    pub tag: String,
}

impl std::fmt::Display for UnknownTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "YAML tag {} is not supported (only the core tags !!str, !!int, !!float, !!bool, !!null, !!seq, !!map are)",
            self.tag
        )
    }
}

/// The lines of `text` as YAML counts them (and so the parser's line
/// numbers): `\r\n`, a lone `\r`, `\n`, NEL, LS and PS each end one.
pub fn yaml_lines(text: &str) -> Vec<&str> {
    // On bytes: every break is ASCII or starts with a byte (0xC2, 0xE2)
    // that no UTF-8 continuation byte equals.
    let b = text.as_bytes();
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        let width = match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => 2,
            b'\r' | b'\n' => 1,
            0xC2 if b.get(i + 1) == Some(&0x85) => 2,
            0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => 3,
            _ => {
                i += 1;
                continue;
            }
        };
        lines.push(&text[start..i]);
        i += width;
        start = i;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The core-schema tags serde_yaml_ng honours.
const CORE_TAGS: &[&str] = &[
    "!!str", "!!int", "!!float", "!!bool", "!!null", "!!seq", "!!map",
];

/// The first tag outside [`CORE_TAGS`] in YAML `text`, found where YAML
/// allows a tag: at the start of a node (after indentation, `- `, `? `,
/// `key: `, `---`, or inside a flow collection after `[`, `{`, `,`), never
/// inside quotes, comments, block scalars or plain scalars.
pub fn find_unknown_tag(text: &str) -> Option<UnknownTag> {
    // No `!`, no tag: the common case, at memchr speed (a 32 MB snapshot
    // costs milliseconds instead of a scan a tenth as long as its parse).
    if !text.contains('!') {
        return None;
    }
    // On bytes: every indicator is ASCII, and no byte of a multi-byte
    // UTF-8 character is.
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let mut flow = 0usize;
    // Inside a quoted scalar spanning lines: the quote character.
    let mut quote: Option<u8> = None;
    // Inside a block scalar: lines indented more than this belong to it.
    let mut block_scalar: Option<usize> = None;
    let mut node_start = true;
    for (li, line) in yaml_lines(text).into_iter().enumerate() {
        let b = line.as_bytes();
        let indent = b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
        if let Some(parent) = block_scalar {
            if indent == b.len() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        if quote.is_none() && flow == 0 {
            if b.get(indent) == Some(&b'%') {
                continue;
            }
            node_start = true;
        }
        let next_is_blank = |k: usize| b.get(k + 1).is_none_or(|c| blank(*c));
        let mut k = 0;
        while k < b.len() {
            let c = b[k];
            if let Some(q) = quote {
                if c == q {
                    // '' inside single quotes is an escaped quote.
                    if q == b'\'' && b.get(k + 1) == Some(&b'\'') {
                        k += 2;
                        continue;
                    }
                    quote = None;
                } else if q == b'"' && c == b'\\' {
                    k += 1;
                }
                k += 1;
                continue;
            }
            if c == b' ' || c == b'\t' {
                k += 1;
                continue;
            }
            if c == b'#' && (k == 0 || blank(b[k - 1])) {
                break;
            }
            if node_start {
                match c {
                    b'!' => {
                        let end = b[k..]
                            .iter()
                            .position(|c| blank(*c) || b",[]{}".contains(c))
                            .map_or(b.len(), |p| k + p);
                        let tag = &line[k..end];
                        if !CORE_TAGS.contains(&tag) {
                            return Some(UnknownTag {
                                line: li + 1,
                                column: line[..k].chars().count() + 1,
                                tag: tag.to_string(),
                            });
                        }
                        k = end;
                        continue;
                    }
                    b'&' => {
                        // An anchor: the node starts after it.
                        while k < b.len() && !blank(b[k]) {
                            k += 1;
                        }
                        continue;
                    }
                    b'-' | b'?' if flow == 0 && next_is_blank(k) => {
                        k += 1;
                        continue;
                    }
                    b'?' if next_is_blank(k) => {
                        k += 1;
                        continue;
                    }
                    b'"' | b'\'' => {
                        quote = Some(c);
                        node_start = false;
                        k += 1;
                        continue;
                    }
                    b'[' | b'{' => {
                        flow += 1;
                        k += 1;
                        continue;
                    }
                    b'|' | b'>' if flow == 0 => {
                        block_scalar = Some(indent);
                        break;
                    }
                    _ => node_start = false,
                }
            }
            match c {
                b':' if next_is_blank(k) || flow > 0 => node_start = true,
                b',' if flow > 0 => node_start = true,
                b'[' | b'{' if flow > 0 => {
                    flow += 1;
                    node_start = true;
                }
                b']' | b'}' if flow > 0 => flow -= 1,
                b'-' if k == 0 && line.starts_with("---") && next_is_blank(k + 2) => {
                    node_start = true;
                    k += 3;
                    continue;
                }
                _ => {}
            }
            k += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_at(text: &str) -> Option<(usize, usize, String)> {
        find_unknown_tag(text).map(|t| (t.line, t.column, t.tag))
    }

    #[test]
    fn unknown_tags_are_found_where_they_are() {
        assert_eq!(
            tag_at("a: !include x.yaml\n"),
            Some((1, 4, "!include".into()))
        );
        assert_eq!(
            tag_at("a: 1\nb: !!binary aGVsbG8=\n"),
            Some((2, 4, "!!binary".into()))
        );
        assert_eq!(tag_at("!foo\na: 1\n"), Some((1, 1, "!foo".into())));
        assert_eq!(tag_at("a:\n  - !x 1\n"), Some((2, 5, "!x".into())));
        assert_eq!(tag_at("a: [1, !x 2]\n"), Some((1, 8, "!x".into())));
        assert_eq!(tag_at("a: {b: !x 2}\n"), Some((1, 8, "!x".into())));
        assert_eq!(tag_at("--- !x\na: 1\n"), Some((1, 5, "!x".into())));
        assert_eq!(tag_at("a: &anc !x 1\n"), Some((1, 9, "!x".into())));
        assert_eq!(tag_at("? !x a\n: 1\n"), Some((1, 3, "!x".into())));
        // A lone CR ends a line in YAML.
        assert_eq!(tag_at("a: 1\rb: !x 2\n"), Some((2, 4, "!x".into())));
        assert_eq!(yaml_lines("a\r\nb\rc\nd"), ["a", "b", "c", "d"]);
    }

    #[test]
    fn exclamation_marks_that_are_not_tags_are_left_alone() {
        for text in [
            "a: hello !x\n",
            "a: \"!x\"\n",
            "a: '!x'\n",
            "a: 'it''s !x'\n",
            "a: 1 # !x\n",
            "a: |\n  !x\n  more !y\nb: 2\n",
            "a: >-\n  !x\n",
            "a: wow!\n",
            "a: \"multi\n  !x line\"\n",
            "a: !!str 1\nb: !!int 2\nc: !!float 1\n",
            "a: [x!, y]\n",
        ] {
            assert_eq!(tag_at(text), None, "{text:?}");
        }
    }
}
