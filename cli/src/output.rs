//! Printing an answer: one JSON document (default, for CI) or aligned columns (for people).

use serde_json::Value;

use crate::args::OutputFormat;
use crate::error::CliError;

/// Rows and columns for `--output table`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headings.
    pub headings: Vec<&'static str>,
    /// One entry per row, as many cells as headings.
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table (a summary).
    pub footer: Vec<String>,
}

impl Table {
    /// A table with these headings and no rows yet.
    pub fn new(headings: &[&'static str]) -> Self {
        Self {
            headings: headings.to_vec(),
            ..Self::default()
        }
    }

    /// The table as text: columns padded to their widest cell, two spaces apart.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headings.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = String::new();
        out.push_str(&line(self.headings.clone()));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        for footer in &self.footer {
            out.push_str(footer);
            out.push('\n');
        }
        out
    }
}

/// A value's text for a table cell: strings bare, null as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Prints `document` as JSON, or `table()` for `--output table`.
pub fn print(
    format: OutputFormat,
    document: &Value,
    table: impl FnOnce() -> Table,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string(document)?),
        OutputFormat::Table => print!("{}", table().render()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut table = Table::new(&["ID", "STATUS"]);
        table.rows.push(vec!["web:1".into(), "SUCCEEDED".into()]);
        table.rows.push(vec!["web-long:2".into(), "-".into()]);
        table.footer.push("2 builds".into());
        assert_eq!(
            table.render(),
            "ID          STATUS\nweb:1       SUCCEEDED\nweb-long:2  -\n2 builds\n"
        );
    }
}
