//! Rendering for the command line: `--format table|json|yaml`, tables sized
//! to the terminal (comfy-table), and the one place standard output is
//! written: [`out!`] and [`outln!`], which end the process quietly with
//! status 0 when the reader went away (`sextant history | head`).
//!
//! Why not SIGPIPE's default action instead: it would kill `sextant serve`
//! and `start --wait` on any write to a closed pipe or socket that a plugin
//! or a handler makes, and a killed process exits 141, not 0. Here only a
//! failed write to standard output ends the process, after whatever it
//! stored is committed. `clippy::print_stdout` (denied in `cli`) keeps
//! `println!` out.

use clap::ValueEnum;
use serde::Serialize;
use std::io::{IsTerminal, Write};

/// The output formats of list and show commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Stable JSON for scripts.
    Json,
    /// YAML.
    Yaml,
}

/// Writes to standard output, as `print!` does, through [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!($($arg)*), false)
    };
}

/// Writes a line to standard output, as `println!` does, through
/// [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!($($arg)*), true)
    };
}

pub(crate) use {out, outln};

/// Writes `args` (and a newline) to standard output. A closed pipe ends
/// the process at once with status 0 and nothing printed; any other write
/// error (a full disk) with status 1 and the error.
pub fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = written {
        stdout_failed(&e);
    }
}

/// Ends the process after a failed write to standard output.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    // Standard error may be gone too: nothing more to do then.
    let _ = writeln!(std::io::stderr(), "error: standard output: {e}");
    std::process::exit(1);
}

/// Standard output as a writer for serializers (`serde_json::to_writer`),
/// with [`write_stdout`]'s handling of a closed pipe.
pub fn stdout() -> StdoutWriter {
    StdoutWriter(std::io::stdout().lock())
}

/// See [`stdout`].
pub struct StdoutWriter(std::io::StdoutLock<'static>);

impl Write for StdoutWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).or_else(|e| stdout_failed(&e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().or_else(|e| stdout_failed(&e))
    }
}

/// Whether a command's error is a write to a closed standard output (a
/// serializer writing to it directly), which ends the command quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints `value` as JSON or YAML; returns `false` for `Table`, which the
/// caller renders itself.
pub fn print_structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<bool> {
    match format {
        Format::Table => Ok(false),
        Format::Json => {
            outln!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        Format::Yaml => {
            out!("{}", serde_yaml_ng::to_string(value)?);
            Ok(true)
        }
    }
}

/// The width tables fit in: `COLUMNS` when set, else the terminal's when
/// standard output is one; `None` (no limit) when it is a pipe or a file.
pub fn table_width() -> Option<u16> {
    width_from(
        std::env::var("COLUMNS").ok().as_deref(),
        std::io::stdout().is_terminal(),
    )
}

fn width_from(columns: Option<&str>, terminal: bool) -> Option<u16> {
    if let Some(c) = columns.and_then(|c| c.trim().parse::<u16>().ok())
        && c > 0
    {
        return Some(c);
    }
    if terminal {
        return console::Term::stdout()
            .size_checked()
            .map(|(_rows, cols)| cols);
    }
    None
}

/// A table with a header row and no borders: columns two spaces apart,
/// padded to their widest cell; given a width, cells wrap to fit it
/// (comfy-table).
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the table for standard output ([`table_width`]).
    pub fn render(&self) -> String {
        self.render_in(table_width())
    }

    /// Renders the table within `width` columns (no limit for `None`),
    /// with no trailing spaces.
    pub fn render_in(&self, width: Option<u16>) -> String {
        match width {
            Some(w) => self.render_wrapped(w),
            None => self.render_full(),
        }
    }

    /// Full width: each column padded to its widest cell, in one pass and
    /// one string (comfy-table took 1.3 GB for a 200,000-action plan).
    fn render_full(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let start = out.len();
            for (i, c) in r.iter().enumerate().take(n) {
                out.push_str(c);
                if i + 1 < n {
                    let pad = widths[i] - c.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let end = out[start..].trim_end().len() + start;
            out.truncate(end);
            out.push('\n');
        }
        out
    }

    /// Within `width` columns: comfy-table wraps the cells to fit.
    fn render_wrapped(&self, width: u16) -> String {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::NOTHING);
        t.set_header(self.headers.clone());
        for r in &self.rows {
            t.add_row(
                r.iter()
                    .take(self.headers.len())
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        let n = self.headers.len();
        for (i, c) in t.column_iter_mut().enumerate() {
            c.set_padding((0, if i + 1 == n { 0 } else { 2 }));
        }
        t.set_width(width);
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        let mut out = t.trim_fmt();
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let mut t = Table::new(&["KIND", "NAME"]);
        t.row(vec!["action_handler".into(), "nop".into()]);
        t.row(vec!["planner".into(), "weight".into()]);
        assert_eq!(
            t.render_in(None),
            "KIND            NAME\naction_handler  nop\nplanner         weight\n"
        );
    }

    #[test]
    fn a_table_wraps_to_fit_the_width_given() {
        let mut t = Table::new(&["UUID", "NAME", "STATUS MESSAGE"]);
        for i in 0..3 {
            t.row(vec![
                format!("9f8e7d6c-5b4a-4000-8000-00000000000{i}"),
                format!("action-{i}"),
                "the destination node compute-0042 is disabled: the migration cannot start".into(),
            ]);
        }
        let wide = t.render_in(None);
        assert!(wide.lines().any(|l| l.chars().count() > 100), "{wide}");
        // A width the table fits in changes nothing.
        assert_eq!(t.render_in(Some(400)), wide);
        for w in [60u16, 80, 100] {
            let text = t.render_in(Some(w));
            for l in text.lines() {
                assert!(
                    l.chars().count() <= w as usize,
                    "wider than {w}: {l:?}\n{text}"
                );
            }
            // Nothing is lost: every word of the message is still there.
            assert!(text.contains("compute-0042"), "{text}");
        }
    }

    #[test]
    fn the_width_is_columns_else_the_terminal_else_none() {
        assert_eq!(width_from(Some("72"), false), Some(72));
        assert_eq!(width_from(Some("0"), false), None);
        assert_eq!(width_from(Some("wide"), false), None);
        assert_eq!(width_from(None, false), None);
    }
}
