//! Diagnostics: errors in the user's inputs (pipeline.yaml, CSVs, templates) with a location.
//!
//! A `Diag` is a value (cloneable, comparable) so salsa queries can return it; it renders like
//! a compiler error, naming the file, line and column, the offending line and a hint. A `Diag`
//! always means "configuration error" (exit code 2): the run has not written anything.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diag {
    pub message: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The text of the offending line, shown under the location.
    pub snippet: Option<String>,
    /// Characters underlined from the column (default: up to the next whitespace).
    pub width: Option<u32>,
    pub help: Option<String>,
}

impl Diag {
    pub fn new(message: impl Into<String>) -> Diag {
        Diag {
            message: message.into(),
            file: None,
            line: None,
            column: None,
            snippet: None,
            width: None,
            help: None,
        }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Diag {
        self.file = Some(file.into());
        self
    }

    /// Points at `line:column` (1-based) of `source`, the text of `self.file`.
    pub fn at(mut self, source: Option<&str>, line: u32, column: u32) -> Diag {
        self.line = Some(line);
        self.column = Some(column);
        self.snippet = source
            .and_then(|s| s.lines().nth(line.saturating_sub(1) as usize))
            .map(str::to_owned);
        self
    }

    /// Underlines `width` characters from the column (a CSV cell, which ends at a comma).
    pub fn width(mut self, width: u32) -> Diag {
        self.width = Some(width);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(file) = &self.file {
            match (self.line, self.column) {
                (Some(l), Some(c)) => write!(f, "\n  --> {file}:{l}:{c}")?,
                (Some(l), None) => write!(f, "\n  --> {file}:{l}")?,
                _ => write!(f, "\n  --> {file}")?,
            }
        }
        if let (Some(line), Some(snippet)) = (self.line, &self.snippet) {
            let width = line.to_string().len();
            write!(f, "\n{:width$} |\n{line} | {snippet}", "")?;
            if let Some(col) = self.column {
                let pad: String = snippet
                    .chars()
                    .take(col.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let token = self.width.map_or_else(
                    || {
                        snippet
                            .chars()
                            .skip(col.saturating_sub(1) as usize)
                            .take_while(|c| !c.is_whitespace())
                            .count()
                    },
                    |w| w as usize,
                );
                write!(f, "\n{:width$} | {pad}{}", "", "^".repeat(token.max(1)))?;
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diag {}

/// The candidate closest to `word` by edit distance, if it is close enough to be a plausible typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_typos_and_rejects_strangers() {
        assert_eq!(nearest("kmax", ["k_max", "output", "registry"]), Some("k_max"));
        assert_eq!(nearest("ouptut", ["k_max", "output"]), Some("output"));
        assert_eq!(nearest("zzzzzzzz", ["k_max", "output"]), None);
    }

    #[test]
    fn renders_location_snippet_and_help() {
        let src = "stages:\n  a:\n    kmax: 4\n";
        let d = Diag::new("unknown key `kmax`")
            .in_file("pipeline.yaml")
            .at(Some(src), 3, 5)
            .help("did you mean `k_max`?");
        assert_eq!(
            d.to_string(),
            "unknown key `kmax`\n  --> pipeline.yaml:3:5\n  |\n3 |     kmax: 4\n  |     ^^^^^\n  = help: did you mean `k_max`?"
        );
    }
}
