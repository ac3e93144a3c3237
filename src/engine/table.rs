//! CSV tables read and written the way pandas does it in the seed (`read_csv`, `to_csv(index=False)`).

use crate::engine::diag::Diag;

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
    /// Byte offset of the row in the file, to point at one of its cells.
    pub byte: u64,
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
            let (line, byte) = record.position().map_or((0, 0), |p| (p.line() as u32, p.byte()));
            if record.iter().all(str::is_empty) {
                continue; // pandas skips blank lines
            }
            rows.push(Row {
                line,
                byte,
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

/// The longest id a CSV may hold (`concept_id`, `template_id`, a model's `id`).
pub const ID_MAX: usize = 64;

/// The longest task id (`<combo>_<template>_<model>`, and an evaluation's
/// `<generation task>_<template>_<model>`): with `_runNN` and a file name's affixes it still fits
/// the 255 bytes of a file name.
pub const TASK_ID_MAX: usize = 200;

/// The id grammar, as error messages state it.
pub fn id_grammar(max: usize) -> String {
    format!(
        "an id is 1 to {max} characters: ASCII letters, digits, `.`, `_` and `-`, starting with a letter, \
         digit or `_` (ids become file names)"
    )
}

/// Whether `c` may appear in an id (so also what `{id}` can stand for in an output pattern).
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The bytes an id may hold (`is_id_char`), as a table the check above folds over every byte.
static ID_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
        c += 1;
    }
    t
};

/// Why `value` is not an id of at most `max` characters; `None` when it is one. Every id that
/// becomes part of a path is checked here, so none can hold `/`, be `.` or `..`, or be too long
/// for a file name.
pub fn id_problem(value: &str, max: usize) -> Option<String> {
    // the common case, checked by bytes: every id of a task table passes here
    let b = value.as_bytes();
    if !b.is_empty()
        && b.len() <= max
        && !matches!(b[0], b'.' | b'-')
        && b.iter().fold(true, |ok, &c| ok & ID_BYTES[c as usize])
    {
        return None;
    }
    let Some(first) = value.chars().next() else {
        return Some("it is empty".into());
    };
    if let Some(c) = value.chars().find(|c| !is_id_char(*c)) {
        return Some(format!("{} is not allowed", describe_char(c)));
    }
    if first == '.' || first == '-' {
        return Some(format!("it starts with `{first}`"));
    }
    let n = value.chars().count();
    (n > max).then(|| format!("it is {n} characters long (at most {max})"))
}

fn describe_char(c: char) -> String {
    match c {
        '\n' => "a newline".into(),
        '\0' => "a NUL character".into(),
        ' ' => "a space".into(),
        c if c.is_control() => format!("the control character {}", c.escape_unicode()),
        c => format!("`{c}`"),
    }
}

/// A cell's value for a message: escaped (newlines, NUL, quotes), and cut when it is long.
pub fn shown(value: &str) -> String {
    const SHOWN: usize = 80;
    let n = value.chars().count();
    if n <= SHOWN {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(SHOWN).collect();
        format!("{cut:?}... ({n} characters)")
    }
}

/// The spellings a boolean cell may take, as messages list them.
pub const BOOL_SPELLINGS: &str = "true/false, yes/no or 1/0, in any letter case; an empty cell is false";

impl Table {
    /// Where a row's cell starts in `text` (the file this table was parsed from): its line and
    /// column, both 1-based, the column in characters.
    pub fn cell_at(&self, text: &str, row: &Row, col: usize) -> (u32, u32) {
        let (mut line, mut column) = (row.line, 1u32);
        let (mut field, mut quoted) = (0, false);
        let mut chars = text.get(row.byte as usize..).unwrap_or("").chars();
        while field < col {
            let Some(c) = chars.next() else { break };
            if c == '\n' {
                if !quoted {
                    break; // the row ended before the cell: it is missing
                }
                (line, column) = (line + 1, 1);
                continue;
            }
            column += 1;
            match c {
                '"' => quoted = !quoted, // a doubled quote toggles twice
                ',' if !quoted => field += 1,
                _ => {}
            }
        }
        (line, column)
    }

    /// An error about one cell: `file line L column C`, with the line shown.
    pub fn cell_diag(&self, text: &str, row: &Row, col: usize, message: impl std::fmt::Display) -> Diag {
        let (line, column) = self.cell_at(text, row, col);
        let name = self.headers.get(col).map_or("", String::as_str);
        // the cell as written on its first line: up to its comma, or its line's end
        let rest: String = text
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
            .chars()
            .skip(column.saturating_sub(1) as usize)
            .collect();
        let mut quoted = false;
        let width = rest
            .chars()
            .take_while(|&c| {
                quoted ^= c == '"';
                quoted || c != ','
            })
            .count();
        Diag::new(format!(
            "{message}, in column `{name}` of {} line {line} column {column}",
            self.file
        ))
        .in_file(&self.file)
        .at(Some(text), line, column)
        .width(width.max(1) as u32)
    }

    /// The id in a cell, checked against the id grammar (at most [`ID_MAX`] characters).
    pub fn id<'a>(&self, text: &str, row: &'a Row, col: usize) -> Result<&'a str, Diag> {
        self.id_within(text, row, col, ID_MAX)
    }

    /// The id in a cell, checked against the id grammar with a bound of `max` characters.
    pub fn id_within<'a>(&self, text: &str, row: &'a Row, col: usize, max: usize) -> Result<&'a str, Diag> {
        let value = self.non_empty(row, col)?;
        match id_problem(value, max) {
            None => Ok(value),
            Some(why) => Err(self
                .cell_diag(text, row, col, format_args!("invalid id {}: {why}", shown(value)))
                .help(format!("{}; rename it here and in its file names", id_grammar(max)))),
        }
    }

    /// A boolean cell: `true`/`false`, `yes`/`no` or `1`/`0` in any letter case (empty: false).
    /// Anything else is an error naming the cell, rather than pandas' reading, which typed the
    /// whole column as text and so switched every row off.
    pub fn bool_cell(&self, text: &str, row: &Row, col: usize) -> Result<bool, Diag> {
        let value = self.get(row, col).trim();
        if let Some(b) = parse_bool(value) {
            return Ok(b);
        }
        Err(self
            .cell_diag(text, row, col, format_args!("{} is not a boolean", shown(value)))
            .help(format!("write {BOOL_SPELLINGS}")))
    }
}

/// A boolean cell: true/false, yes/no, 1/0 in any letter case; empty is false; anything else
/// is `None` (see [`Table::bool_cell`] for the error naming the cell).
pub fn parse_bool(cell: &str) -> Option<bool> {
    let c = cell.trim();
    for (spellings, b) in [(["true", "yes", "1"], true), (["false", "no", "0"], false)] {
        if spellings.iter().any(|s| c.eq_ignore_ascii_case(s)) {
            return Some(b);
        }
    }
    c.is_empty().then_some(false)
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

    fn bools(cells: &[&str]) -> Vec<Result<bool, Diag>> {
        let text: String = std::iter::once("name,flag\n".to_owned())
            .chain(cells.iter().map(|c| format!("x,{c}\n")))
            .collect();
        let t = Table::parse("t.csv", &text).unwrap();
        t.rows.iter().map(|r| t.bool_cell(&text, r, 1)).collect()
    }

    #[test]
    fn booleans_are_read_cell_by_cell() {
        let ok = |cells: &[&str]| bools(cells).into_iter().map(Result::unwrap).collect::<Vec<_>>();
        assert_eq!(
            ok(&["True", "false", "tRuE", "FALSE", " true "]),
            [true, false, true, false, true]
        );
        assert_eq!(
            ok(&["1", "0", "yes", "No", "YES", ""]),
            [true, false, true, false, true, false]
        );
        // one stray word is an error of that cell; its neighbours keep their values
        let mixed = bools(&["True", "maybe", "1"]);
        assert_eq!((mixed[0].clone().unwrap(), mixed[2].clone().unwrap()), (true, true));
        let e = mixed[1].clone().unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(3)));
        assert!(e.message.contains("\"maybe\" is not a boolean"), "{}", e.message);
        assert!(
            e.message.contains("column `flag` of t.csv line 3 column 3"),
            "{}",
            e.message
        );
        assert!(e.help.unwrap().contains("yes/no"));
        assert!(bools(&["1.0"])[0].is_err(), "pandas' float reading is not kept");
    }

    #[test]
    fn the_id_grammar() {
        for good in [
            "a",
            "deepseek_r1_f",
            "gemini_2.5_flash",
            "_x",
            "9lives",
            "creative-synthesis-v6",
        ] {
            assert_eq!(id_problem(good, ID_MAX), None, "{good}");
        }
        assert_eq!(id_problem(&"a".repeat(64), ID_MAX), None);
        for (bad, why) in [
            ("", "empty"),
            (".", "starts with `.`"),
            ("..", "starts with `.`"),
            (".hidden", "starts with `.`"),
            ("-rf", "starts with `-`"),
            ("x/../../outside", "`/` is not allowed"),
            ("a\nb", "a newline"),
            ("a\0b", "NUL"),
            ("a b", "a space"),
            ("a:b", "`:`"),
            ("C:\\x", "`:`"),
            ("é", "`é`"),
        ] {
            let got = id_problem(bad, ID_MAX).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got}");
        }
        assert!(id_problem(&"a".repeat(65), ID_MAX).unwrap().contains("65 characters"));
        assert_eq!(shown("a\nb\0"), "\"a\\nb\\0\"");
        assert!(shown(&"x".repeat(300)).ends_with("... (300 characters)"));
    }

    #[test]
    fn a_bad_id_is_pointed_at_by_line_and_column() {
        let text = "name,id\nok,good\n\"quoted, with comma\",\"multi\nline\"\nz,a/b\n";
        let t = Table::parse("m.csv", text).unwrap();
        assert_eq!(t.id(text, &t.rows[0], 1).unwrap(), "good");
        let e = t.id(text, &t.rows[1], 1).unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(22)));
        assert!(
            e.message.contains("invalid id \"multi\\nline\": a newline"),
            "{}",
            e.message
        );
        let e = t.id(text, &t.rows[2], 1).unwrap_err();
        assert_eq!((e.line, e.column), (Some(5), Some(3)));
        assert_eq!(e.snippet.as_deref(), Some("z,a/b"));
        assert!(e.help.unwrap().contains("1 to 64 characters"));
    }

    #[test]
    fn ragged_row_names_file_and_line() {
        let e = Table::parse("m.csv", "a,b\n1,2\n3,4,5\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("m.csv"), "{}", e.message);
    }

    #[test]
    fn booleans_are_strict() {
        for t in ["True", "true", "TRUE", "1", "yes", "Yes"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["False", "false", "0", "no", "", " "] {
            assert_eq!(parse_bool(f), Some(false), "{f:?}");
        }
        for bad in ["y", "2", "active", "tru"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}
