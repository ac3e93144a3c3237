//! Reading LLM output the way the seed did: the score of an evaluation response (spec section 7),
//! the essay inside a generation response (section 8) and the essay sanity check (4.10).
//!
//! The seed used Python's `re`, and its quirks are part of the contract, so the patterns here
//! copy Python's semantics rather than the `regex` crate's defaults:
//! * `re.IGNORECASE` also folds `İ`/`ı` onto `i`, which `(?i)` does not, so letters are spelled
//!   out as classes by [`ci`];
//! * `\s` is Python's whitespace, which adds U+001C..U+001F to Unicode's;
//! * `\d` is any Unicode decimal digit, and Python's `float()` reads those too (`٨` is 8.0);
//! * `$` without MULTILINE also matches before a final `\n`; no pattern here can tell the
//!   difference (it is always followed by `\s` or applied to a single line), so `$` is kept.
//!
//! Nothing here does I/O; the stages decide what to write.

use std::fmt;
use std::sync::LazyLock;

use indexmap::IndexMap;
use regex::{Captures, Regex};

use crate::engine::text::py_strip;
use crate::seed::pyfmt::float_repr;

const EMPTY_RESPONSE: &str = "Empty or whitespace-only response";

/// Python's `\s` for `str` patterns.
const WS: &str = r"[\s\x1C-\x1F]";

/// The seed's `score` parser strategies (spec 7.1, 7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScoreStrategy {
    InLastLine,
    Complex,
}

impl ScoreStrategy {
    pub fn name(self) -> &'static str {
        match self {
            ScoreStrategy::InLastLine => "in_last_line",
            ScoreStrategy::Complex => "complex",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "in_last_line" => Some(ScoreStrategy::InLastLine),
            "complex" => Some(ScoreStrategy::Complex),
            _ => None,
        }
    }

    /// The seed's mapping (7.3): the four legacy rubrics are `complex`, everything else,
    /// unknown ids included, is `in_last_line`.
    pub fn default_for(evaluation_template_id: &str) -> Self {
        match evaluation_template_id {
            "creativity-metrics" | "daydreaming-verification" | "iterative-loops" | "scientific-rigor" => {
                ScoreStrategy::Complex
            }
            _ => ScoreStrategy::InLastLine,
        }
    }
}

/// Inclusive integer score range a rubric declares, e.g. "0-10" (default) or "0-9".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScoreRange {
    pub min: i64,
    pub max: i64,
}

impl ScoreRange {
    pub const SEED: ScoreRange = ScoreRange { min: 0, max: 10 };

    /// Reads `MIN-MAX` (spaces around either number allowed): whole numbers with `0 <= MIN < MAX`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid score range {s:?}: expected MIN-MAX with whole numbers 0 <= MIN < MAX, like \"0-10\"");
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<i64>().ok()
        };
        let (min, max) = s.split_once('-').ok_or_else(bad)?;
        let (Some(min), Some(max)) = (number(min), number(max)) else {
            return Err(bad());
        };
        if min >= max {
            return Err(bad());
        }
        Ok(ScoreRange { min, max })
    }

    fn check(self, score: f64) -> Result<f64, String> {
        if self.min as f64 <= score && score <= self.max as f64 {
            Ok(score)
        } else {
            Err(format!("Score {} is outside valid range {self}", float_repr(score)))
        }
    }
}

impl fmt::Display for ScoreRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// Ok(score) or Err(message) where the message is exactly the seed's ValueError text, e.g.
/// "Empty or whitespace-only response", "No score found in the last 3 lines.",
/// "No SCORE field found in response", "Score 12.0 is outside valid range 0-10",
/// "Invalid score fraction: division by zero". With a declared range the message names it ("... range 0-9").
pub fn parse_score(text: &str, strategy: ScoreStrategy, range: ScoreRange) -> Result<f64, String> {
    if py_strip(text).is_empty() {
        return Err(EMPTY_RESPONSE.into());
    }
    match strategy {
        ScoreStrategy::InLastLine => in_last_line(text, range),
        ScoreStrategy::Complex => complex(text, range),
    }
}

/// Python's `re.IGNORECASE` for an ASCII word, as explicit classes (checked against Python 3.11:
/// only `i`, `k` and `s` have non-ASCII partners).
fn ci(word: &str) -> String {
    word.chars()
        .map(|c| match c.to_ascii_lowercase() {
            'i' => "[iI\u{130}\u{131}]".to_string(),
            'k' => "[kK\u{212A}]".to_string(),
            's' => "[sS\u{17F}]".to_string(),
            l if l.is_ascii_alphabetic() => format!("[{l}{}]", l.to_ascii_uppercase()),
            _ => regex::escape(c.encode_utf8(&mut [0; 4])),
        })
        .collect()
}

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}"))
}

/// `HEADER SEP WS` of spec 7.1: `(?:Final\s+|Total\s+)?(?:SCORE|Score)(?::\s*|\s+)[\n\r\s]*`.
/// No word boundary: "Underscore" contains a header.
fn score_prefix() -> String {
    format!(
        "(?:{final_}{WS}+|{total}{WS}+)?{score}(?::{WS}*|{WS}+){WS}*",
        final_ = ci("final"),
        total = ci("total"),
        score = ci("score"),
    )
}

const NUMBER: &str = r"(-?\d+(?:\.\d+)?)";

/// Pass 1 of `in_last_line`: a line that is just `SCORE: d(.ddd)`.
static EXACT: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!(r"^{WS}*{}:{WS}*([0-9](?:\.[0-9]+)?){WS}*$", ci("score"))));
static THREE_DIGITS: LazyLock<Regex> = LazyLock::new(|| compile(&format!(r"{}(\d,?{WS}?\d,?{WS}?\d)", score_prefix())));
/// The standard rule of `in_last_line` and the SINGLE pattern of `complex`.
static SINGLE: LazyLock<Regex> = LazyLock::new(|| compile(&format!("{}{NUMBER}(?:{WS}|$)", score_prefix())));
static FRACTION: LazyLock<Regex> = LazyLock::new(|| compile(&format!("{}{NUMBER}/{NUMBER}", score_prefix())));

fn in_last_line(text: &str, range: ScoreRange) -> Result<f64, String> {
    let lines: Vec<&str> = py_strip(text)
        .split('\n')
        .map(py_strip)
        .filter(|l| !l.is_empty())
        .collect();
    let cleaned: Vec<String> = lines[lines.len().saturating_sub(3)..]
        .iter()
        .map(|l| l.replace(['*', '#'], ""))
        .collect();
    // The earliest exact line wins, even over a later one.
    for line in &cleaned {
        if let Some(c) = EXACT.captures(line) {
            return range.check(number(&c, 1));
        }
    }
    for line in &cleaned {
        // The seed wrote `three_digit(line) or standard(line)`: a three-digit 0.0 is falsy.
        let score = match three_digit_score(line)? {
            Some(v) if v != 0.0 => Some(v),
            _ => SINGLE.captures(line).map(|c| number(&c, 1)),
        };
        if let Some(score) = score {
            return range.check(score);
        }
    }
    Err("No score found in the last 3 lines.".into())
}

/// `Score: 456` and `Score: 4,5,6` are the mean of three digits. `\s?` also takes a tab, which
/// the seed then rejected by length.
fn three_digit_score(line: &str) -> Result<Option<f64>, String> {
    let Some(c) = THREE_DIGITS.captures(line) else {
        return Ok(None);
    };
    let raw = &c[1];
    let digits: Vec<char> = raw.chars().filter(|&ch| ch != ',' && ch != ' ').collect();
    if digits.len() != 3 {
        return Err(format!("Expected 3 digits in score, found {}: {raw}", digits.len()));
    }
    let sum = digits.iter().fold(0.0, |acc, &d| acc + f64::from(digit_value(d)));
    Ok(Some(sum / 3.0))
}

fn complex(text: &str, range: ScoreRange) -> Result<f64, String> {
    let lines: Vec<&str> = py_strip(text).split('\n').collect();
    let text = lines[lines.len().saturating_sub(30)..]
        .join("\n")
        .replace("**", "")
        .replace('#', "");
    // A fraction anywhere beats a later single number.
    let score = if let Some(c) = FRACTION.captures_iter(&text).last() {
        let (numerator, denominator) = (number(&c, 1), number(&c, 2));
        if denominator == 0.0 {
            return Err("Invalid score fraction: division by zero".into());
        }
        numerator / denominator * 10.0
    } else if let Some(c) = SINGLE.captures_iter(&text).last() {
        number(&c, 1)
    } else {
        return Err("No SCORE field found in response".into());
    };
    range.check(score)
}

/// Python's `float()` of a matched `-?\d+(\.\d+)?`, whose digits may be any Unicode decimals.
fn number(c: &Captures, group: usize) -> f64 {
    let ascii: String = c[group]
        .chars()
        .map(|ch| match ch {
            '-' | '.' => ch,
            d => char::from_digit(digit_value(d), 10).expect("a digit value is below 10"),
        })
        .collect();
    ascii.parse().expect("the pattern only matches decimal numbers")
}

/// The value of a character `\d` matched. Unicode encodes every decimal digit set as a run of ten
/// starting at zero, and adjacent runs are whole, so the offset from the start of the run of
/// consecutive digits, mod 10, is the value.
fn digit_value(d: char) -> u32 {
    static DIGIT: LazyLock<Regex> = LazyLock::new(|| compile(r"\A\d\z"));
    if let Some(v) = d.to_digit(10) {
        return v;
    }
    let is_digit = |cp: u32| char::from_u32(cp).is_some_and(|c| DIGIT.is_match(c.encode_utf8(&mut [0; 4])));
    let mut start = d as u32;
    while start > 0 && is_digit(start - 1) {
        start -= 1;
    }
    (d as u32 - start) % 10
}

/// The seed's essay parser strategies (spec 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EssayStrategy {
    XmlTags,
    SectionHeaders,
    Fallback,
}

impl EssayStrategy {
    pub fn name(self) -> &'static str {
        match self {
            EssayStrategy::XmlTags => "xml_tags",
            EssayStrategy::SectionHeaders => "section_headers",
            EssayStrategy::Fallback => "fallback",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "xml_tags" => Some(EssayStrategy::XmlTags),
            "section_headers" => Some(EssayStrategy::SectionHeaders),
            "fallback" => Some(EssayStrategy::Fallback),
            _ => None,
        }
    }

    /// The seed's `get_parsing_strategy` (4.10); it ignored the model.
    pub fn default_for(generation_template_id: &str) -> Self {
        match generation_template_id {
            "creative-synthesis-v3" | "research-discovery-v3" => EssayStrategy::SectionHeaders,
            _ => EssayStrategy::XmlTags,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Essay {
    pub essay: String,
    pub thinking: Option<String>,
    pub endnotes: Option<String>,
    /// The strategy actually used (Fallback when xml_tags found no <essay>).
    pub strategy: EssayStrategy,
    pub sections_found: Vec<String>,
    /// parsing_notes.note of the seed, when it sets one.
    pub note: Option<String>,
}

/// Err("Empty or whitespace-only response") on empty/whitespace text (the stage then writes the raw text).
pub fn extract_essay(text: &str, strategy: EssayStrategy) -> Result<Essay, String> {
    if py_strip(text).is_empty() {
        return Err(EMPTY_RESPONSE.into());
    }
    Ok(match strategy {
        EssayStrategy::XmlTags => xml_tags(text).unwrap_or_else(|| fallback(text)),
        EssayStrategy::SectionHeaders => section_headers(text),
        EssayStrategy::Fallback => fallback(text),
    })
}

fn fallback(text: &str) -> Essay {
    Essay {
        essay: py_strip(text).to_string(),
        thinking: None,
        endnotes: None,
        strategy: EssayStrategy::Fallback,
        sections_found: vec!["essay".into()],
        note: Some("No structured sections found, treating entire response as essay".into()),
    }
}

/// `None` when there is no `<essay>` element, so the caller falls back.
fn xml_tags(text: &str) -> Option<Essay> {
    static ESSAY: LazyLock<Tag> = LazyLock::new(|| Tag::new("essay"));
    static THINKING: LazyLock<Tag> = LazyLock::new(|| Tag::new("thinking"));
    static ENDNOTES: LazyLock<Tag> = LazyLock::new(|| Tag::new("endnotes"));
    let essay = ESSAY.content(text)?;
    let thinking = THINKING.content(text);
    let endnotes = ENDNOTES.content(text);
    let sections_found = [
        Some("essay"),
        thinking.map(|_| "thinking"),
        endnotes.map(|_| "endnotes"),
    ]
    .into_iter()
    .flatten()
    .map(String::from)
    .collect();
    Some(Essay {
        essay: essay.to_string(),
        thinking: thinking.map(String::from),
        endnotes: endnotes.map(String::from),
        strategy: EssayStrategy::XmlTags,
        sections_found,
        note: None,
    })
}

/// `<name\b[^>]*>(.*?)</name>`, case-insensitive, DOTALL, first match (the attribute form is the
/// fix the seed got the next day, d4d2215).
struct Tag {
    open: Regex,
    close: Regex,
}

impl Tag {
    fn new(name: &str) -> Self {
        Tag {
            open: compile(&format!("<{}([^>]*)>", ci(name))),
            close: compile(&format!("</{}>", ci(name))),
        }
    }

    /// The stripped content of the first element. `\b` is checked by hand because `regex` has
    /// no look-around; a rejected opening is passed over character by character, as Python's
    /// search does, since another opening may start inside it.
    fn content<'t>(&self, text: &'t str) -> Option<&'t str> {
        let mut at = 0;
        while let Some(c) = self.open.captures_at(text, at) {
            let whole = c.get(0).expect("group 0 always matches");
            if c[1].chars().next().is_none_or(|ch| !is_py_word(ch)) {
                // Later openings have no closing tag either if this one has none.
                let close = self.close.find_at(text, whole.end())?;
                return Some(py_strip(&text[whole.end()..close.start()]));
            }
            at = whole.start() + 1;
        }
        None
    }
}

/// Python's `\w` is letters, numbers and `_`. Rust's alphanumerics add Other_Alphabetic, a few
/// marks and symbols such as `Ⓐ`; telling them apart needs tables this crate does not build.
fn is_py_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn section_headers(text: &str) -> Essay {
    static HEADER: LazyLock<Regex> = LazyLock::new(|| {
        let names = ["essay", "thinking", "endnotes", "analysis", "conclusion"]
            .map(ci)
            .join("|");
        compile(&format!("^(?:{names}):{WS}*$"))
    });
    // IndexMap like the seed's dict: a repeated header overwrites and keeps its first place.
    let mut sections: IndexMap<String, String> = IndexMap::new();
    let mut current: Option<String> = None;
    let mut content: Vec<&str> = Vec::new();
    for line in text.split('\n').map(py_strip) {
        if HEADER.is_match(line) {
            if let Some(name) = current.take()
                && !content.is_empty()
            {
                sections.insert(name, py_strip(&content.join("\n")).to_string());
            }
            let name = line.split(':').next().unwrap_or_default();
            current = Some(name.to_lowercase());
            content.clear();
        } else if current.is_some() || !line.is_empty() {
            // Lines before the first header collect here too, and are dropped at that header.
            content.push(line);
        }
    }
    if let Some(name) = current
        && !content.is_empty()
    {
        sections.insert(name, py_strip(&content.join("\n")).to_string());
    }
    if sections.is_empty() {
        sections.insert("essay".into(), py_strip(text).to_string());
    }
    if !sections.contains_key("essay") {
        let first = sections[0].clone();
        sections.insert("essay".into(), first);
    }
    Essay {
        essay: sections["essay"].clone(),
        thinking: sections.get("thinking").cloned(),
        endnotes: sections.get("endnotes").cloned(),
        strategy: EssayStrategy::SectionHeaders,
        sections_found: sections.into_keys().collect(),
        note: None,
    }
}

/// The seed's `validate_essay_content` (4.10); it only feeds logs and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EssayCheck {
    pub is_valid: bool,
    pub error: Option<String>,
    pub word_count: usize,
    pub has_paragraphs: bool,
    pub has_sentences: bool,
}

/// Valid when it has more than 50 words, a blank line and a full stop. The empty string gets its
/// own error, and zeros where the seed returned no metrics.
pub fn validate_essay(text: &str) -> EssayCheck {
    if text.is_empty() {
        return EssayCheck {
            is_valid: false,
            error: Some("Empty essay content".into()),
            word_count: 0,
            has_paragraphs: false,
            has_sentences: false,
        };
    }
    // Python's `str.split()`: runs of its whitespace, which includes U+001C..U+001F.
    let word_count = text
        .split(crate::engine::text::is_py_space)
        .filter(|w| !w.is_empty())
        .count();
    let has_paragraphs = text.contains("\n\n");
    let has_sentences = text.contains('.');
    let is_valid = word_count > 50 && has_paragraphs && has_sentences;
    EssayCheck {
        is_valid,
        error: (!is_valid).then(|| "Essay content appears incomplete or malformed".into()),
        word_count,
        has_paragraphs,
        has_sentences,
    }
}

/// The essay of one generation response and what the extraction did (kept in the store as the
/// action's info). When extraction fails (an empty response) the text itself is the essay, as
/// the seed wrote it.
pub fn essay(text: &str, strategy: EssayStrategy) -> (String, String) {
    let words = |s: &str| s.split_whitespace().count();
    match extract_essay(text, strategy) {
        Ok(e) => {
            let check = validate_essay(&e.essay);
            let info = serde_json::json!({
                "parser": strategy.name(),
                "strategy_used": e.strategy.name(),
                "fell_back": e.strategy != strategy,
                "sections_found": e.sections_found,
                "essay_word_count": words(&e.essay),
                "full_response_word_count": words(text),
                "parsing_success": e.essay != text,
                "validation_passed": check.is_valid,
                "validation_error": check.error,
                "note": e.note,
            });
            (e.essay, info.to_string())
        }
        Err(error) => {
            let info = serde_json::json!({
                "parser": strategy.name(),
                "strategy_used": "none",
                "fell_back": true,
                "error": error,
                "note": "the whole response is kept as the essay",
            });
            (text.to_owned(), info.to_string())
        }
    }
}

/// The grammar (llama.cpp's GBNF) the local model's answer to an evaluation is held to when its
/// template's parser is `in_last_line`: one line of free text, then `SCORE: <n>` with `n` a whole
/// number of the template's score range, which that parser always reads. The free line is short
/// enough for the whole answer to fit in `max_tokens` (every token is at least one character), so
/// the answer is never cut before its score. None when no range fits in `max_tokens`.
pub fn score_grammar(range: ScoreRange, max_tokens: u64) -> Option<String> {
    if range.max - range.min > 1000 {
        return None;
    }
    let scores: Vec<String> = (range.min..=range.max).map(|n| format!("\"{n}\"")).collect();
    let widest = range.max.to_string().len() as u64;
    // a newline and `SCORE: ` are 8 characters
    let free = max_tokens.checked_sub(8 + widest)?;
    Some(format!(
        "root ::= line \"\\nSCORE: \" score\nline ::= [^\\n]{{0,{free}}}\nscore ::= {}\n",
        scores.join(" | ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_digits_have_their_values() {
        assert_eq!(digit_value('7'), 7);
        assert_eq!(digit_value('\u{668}'), 8); // ARABIC-INDIC DIGIT EIGHT
        assert_eq!(digit_value('\u{1D7D6}'), 8); // MATHEMATICAL DOUBLE-STRUCK DIGIT EIGHT, third adjacent run
        assert_eq!(digit_value('\u{FF10}'), 0); // FULLWIDTH DIGIT ZERO
    }

    #[test]
    fn ignorecase_classes_match_python() {
        let r = compile(&format!("^{}$", ci("Thinking")));
        assert!(r.is_match("THİNKİNG"));
        assert!(r.is_match("th\u{131}n\u{212A}ing"));
        assert!(!r.is_match("thinkinq"));
        assert!(compile(&ci("score")).is_match("\u{17F}CORE"));
    }

    #[test]
    fn range_parses_and_displays() {
        assert_eq!(ScoreRange::parse("0-10"), Ok(ScoreRange::SEED));
        assert_eq!(ScoreRange::parse(" 1 - 5 "), Ok(ScoreRange { min: 1, max: 5 }));
        assert_eq!(ScoreRange::parse("0-9").map(|r| r.to_string()), Ok("0-9".into()));
    }

    #[test]
    fn range_errors_say_what_is_expected() {
        for bad in [
            "",
            "10",
            "0-",
            "-5",
            "-1-5",
            "a-b",
            "5-5",
            "9-0",
            "+1-5",
            "0-10-20",
            "1.5-3",
            "0 - 99999999999999999999",
        ] {
            let err = ScoreRange::parse(bad).expect_err(bad);
            assert_eq!(
                err,
                format!(
                    "invalid score range {bad:?}: expected MIN-MAX with whole numbers 0 <= MIN < MAX, like \"0-10\""
                )
            );
        }
    }

    #[test]
    fn the_score_grammar_fits_in_max_tokens_and_ends_in_a_score_the_parser_reads() {
        let range = ScoreRange { min: 0, max: 9 };
        let g = score_grammar(range, 128).unwrap();
        assert_eq!(
            g,
            "root ::= line \"\\nSCORE: \" score\nline ::= [^\\n]{0,119}\n\
             score ::= \"0\" | \"1\" | \"2\" | \"3\" | \"4\" | \"5\" | \"6\" | \"7\" | \"8\" | \"9\"\n"
        );
        // the longest answer it allows, one character a token, is max_tokens long
        let longest = format!("{}\nSCORE: 9", "x".repeat(119));
        assert_eq!(longest.chars().count(), 128);
        for score in 0..=9 {
            for line in ["", "Score: 7/10 is what I would say", &"word ".repeat(23)] {
                let answer = format!("{line}\nSCORE: {score}");
                assert_eq!(
                    parse_score(&answer, ScoreStrategy::InLastLine, range),
                    Ok(score as f64),
                    "{answer:?}"
                );
            }
            // a free line that is a score line itself wins (the earliest exact line does): a score still
            let answer = format!("SCORE: 3\nSCORE: {score}");
            assert_eq!(parse_score(&answer, ScoreStrategy::InLastLine, range), Ok(3.0));
        }
        let wide = score_grammar(ScoreRange { min: 1, max: 10 }, 64).unwrap();
        assert!(
            wide.contains("{0,54}") && wide.contains("\"1\" | ") && wide.ends_with("| \"10\"\n"),
            "{wide}"
        );
        assert_eq!(score_grammar(range, 8), None);
    }
}
