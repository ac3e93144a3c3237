//! CSV tables read and written the way pandas does it in the seed (`read_csv`, `to_csv(index=False)`).

use crate::diag::Diag;

/// A CSV file read as strings, with the header and the line number of every row for error messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Table {
    pub file: String,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Row {
    pub line: u32,
    pub fields: Vec<String>,
}

impl Table {
    pub fn parse(file: &str, text: &str) -> Result<Table, Diag> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| csv_diag(file, text, &e))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect::<Vec<_>>();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_diag(file, text, &e))?;
            let line = record.position().map_or(0, |p| p.line() as u32);
            if record.iter().all(str::is_empty) {
                continue; // pandas skips blank lines
            }
            rows.push(Row {
                line,
                fields: record.iter().map(str::to_owned).collect(),
            });
        }
        Ok(Table {
            file: file.to_owned(),
            headers,
            rows,
        })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The index of a column the caller cannot do without.
    pub fn require(&self, name: &str) -> Result<usize, Diag> {
        self.column(name).ok_or_else(|| {
            Diag::new(format!("{} has no `{name}` column", self.file))
                .in_file(&self.file)
                .help(format!("its columns are: {}", self.headers.join(", ")))
        })
    }

    /// A row's field, empty when the row is shorter than the header (pandas reads NaN there).
    pub fn get<'a>(&self, row: &'a Row, col: usize) -> &'a str {
        row.fields.get(col).map_or("", String::as_str)
    }

    /// A non-empty field, or an error naming the file, line and column.
    pub fn non_empty<'a>(&self, row: &'a Row, col: usize) -> Result<&'a str, Diag> {
        let value = self.get(row, col).trim();
        if value.is_empty() {
            return Err(Diag::new(format!(
                "empty `{}` in {} line {}",
                self.headers[col], self.file, row.line
            ))
            .in_file(&self.file)
            .at(None, row.line, 0)
            .help("every row needs this field; fill it in or delete the row"));
        }
        Ok(value)
    }
}

fn csv_diag(file: &str, text: &str, e: &csv::Error) -> Diag {
    let line = e.position().map(|p| p.line() as u32);
    let msg = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{file}: a row has {len} fields where the header has {expected_len}")
        }
        _ => format!("{file}: malformed CSV: {e}"),
    };
    let d = Diag::new(msg)
        .in_file(file)
        .help("fix the row (quote fields that contain commas)");
    match line {
        Some(l) => d.at(Some(text), l, 1),
        None => d,
    }
}

impl Table {
    /// A boolean column as the seed's `== True` tests see it after pandas' `read_csv`, which types
    /// the whole column at once: when every non-empty cell is `true`/`false` in any letter case
    /// it is boolean; when every one is a number, a cell is true if it equals 1; otherwise the
    /// column holds strings and no cell equals `True`. Empty cells are never true.
    pub fn bool_column(&self, col: usize) -> Vec<bool> {
        let cells: Vec<&str> = self.rows.iter().map(|r| self.get(r, col)).collect();
        let filled = || cells.iter().filter(|c| !c.is_empty());
        let is_bool = |c: &&&str| c.eq_ignore_ascii_case("true") || c.eq_ignore_ascii_case("false");
        if filled().all(|c| is_bool(&c)) {
            cells.iter().map(|c| c.eq_ignore_ascii_case("true")).collect()
        } else if filled().all(|c| c.trim().parse::<f64>().is_ok()) {
            cells.iter().map(|c| c.trim().parse::<f64>() == Ok(1.0)).collect()
        } else {
            vec![false; cells.len()]
        }
    }
}

/// Writes rows like pandas `to_csv(index=False)`: `,` separated, `\n` line ends, fields quoted
/// only when they contain `,`, `"`, `\r` or `\n`.
pub fn write_csv<S: AsRef<str>>(headers: &[&str], rows: impl IntoIterator<Item = Vec<S>>) -> String {
    let mut out = String::new();
    write_row(&mut out, headers.iter().copied());
    for row in rows {
        write_row(&mut out, row.iter().map(AsRef::as_ref));
    }
    out
}

fn write_row<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_like_pandas() {
        let s = write_csv(&["a", "b"], [vec!["x,y", "he said \"hi\""], vec!["1", ""]]);
        assert_eq!(s, "a,b\n\"x,y\",\"he said \"\"hi\"\"\"\n1,\n");
    }

    #[test]
    fn booleans_follow_read_csv_column_typing() {
        let col = |cells: &[&str]| {
            let text: String = std::iter::once("a".to_owned())
                .chain(cells.iter().map(|c| format!("{c}\n")))
                .collect::<Vec<_>>()
                .join("\n");
            let t = Table::parse("t.csv", &text.replace("\n\n", "\n")).unwrap();
            t.bool_column(0)
        };
        assert_eq!(col(&["True", "false", "tRuE", "FALSE"]), [true, false, true, false]);
        assert_eq!(col(&["1", "0", "1.0"]), [true, false, true]);
        // one string makes the column text: nothing is `== True`
        assert_eq!(col(&["True", "yes"]), [false, false]);
        assert_eq!(col(&["True", "1"]), [false, false]);
    }

    #[test]
    fn ragged_row_names_file_and_line() {
        let e = Table::parse("m.csv", "a,b\n1,2\n3,4,5\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("m.csv"), "{}", e.message);
    }
}
