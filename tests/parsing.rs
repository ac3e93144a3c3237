//! The seed's response parsers as tables (spec sections 7, 8 and 4.10): every example and rule of
//! those sections, and the seed's own unit tests (section 10, `test_eval_response_parser.py` and
//! `test_generation_response_parser.py`), each with the value the seed's Python gives.
//!
//! Cross-check: every row of every table and of the window tests below was run through a
//! throwaway Python 3.11 copy of the seed's `eval_response_parser.py` and
//! `generation_response_parser.py` (with the next day's `<tag attr>` fix and the range as a
//! parameter); scores (compared with `==`), messages, essays, sections and validation fields all
//! agreed with the expectations written here.

use EssayStrategy::{Fallback, SectionHeaders, XmlTags};
use ScoreStrategy::{Complex, InLastLine};
use daydream::seed::parsing::{
    EssayCheck, EssayStrategy, ScoreRange, ScoreStrategy, extract_essay, parse_score, validate_essay,
};

#[derive(Debug)]
enum Score {
    Is(f64),
    Fails(&'static str),
}
use Score::{Fails, Is};

const NO_SCORE_LAST_3: &str = "No score found in the last 3 lines.";
const NO_SCORE_FIELD: &str = "No SCORE field found in response";
const EMPTY: &str = "Empty or whitespace-only response";
const SEED: ScoreRange = ScoreRange::SEED;

const MARKDOWN_EXPLANATION: &str = concat!(
    "The text clearly addresses the conceptual framework and architectural synthesis (core to the AI Daydreaming ",
    "thesis). It aligns with the strategic rationale but lacks explicit alignment with the \"data wall,\" \"moat,\" ",
    "and \"tax\" terminology. However, the functional goals (self-sustaining knowledge creation, proprietary ",
    "outputs) are present.  \n",
    "\n",
    "**SCORE: 7**  \n",
    "*(The text describes the core concept and architecture but falls short in explicitly framing the strategic ",
    "rationale with the exact terminology of the thesis.)*",
);

const TOTAL_SCORE_PRIORITY: &str = concat!(
    "\n",
    "        ### **Core Concepts Identified**  \n",
    "        **1. The Problem: Static LLMs**  \n",
    "        - **Score**: **1/1** (conceptual alignment exists but lacks exact phrasing).  \n",
    "        \n",
    "        **2. The Proposed Solution: \"Daydreaming Loop\" (DDL)**  \n",
    "        - **Score**: **1/1** (mechanism is present but not explicitly named).  \n",
    "        \n",
    "        ### **SCORE:**  \n",
    "        **Total Score: 7/10**\n",
    "        ",
);

const ONE_OVER_ONE_SUBSCORES: &str = concat!(
    "\n",
    "        **1. The Problem: Static LLMs**  \n",
    "        - **Score**: **1/1** (conceptual alignment exists).  \n",
    "        \n",
    "        **2. The Solution**  \n",
    "        - **Score**: **1/1** (mechanism is present).  \n",
    "        \n",
    "        **3. The Mechanism**  \n",
    "        - **Score**: **1/1** (generator/critic present).  \n",
    "        \n",
    "        **4. Economic Implications**  \n",
    "        - **Score**: **0/1** (no explicit references).  \n",
    "        \n",
    "        **Total for Core Concepts**: **3/5**  \n",
    "        \n",
    "        ### **Connections Between Concepts**  \n",
    "        **1. Problem → Solution**  \n",
    "        - **Score**: **1/1** (logically connected).  \n",
    "        \n",
    "        **Total for Connections**: **1/5**  \n",
    "        \n",
    "        ### **SCORE:**  \n",
    "        **Total Score: 4/10**\n",
    "        ",
);

const REAL_RESPONSE: &str = concat!(
    "\n",
    "        **REASONING:**  \n",
    "        The text partially reproduces core concepts from \"AI Daydreaming\" but lacks precise terminology.\n",
    "\n",
    "        ### **Core Concepts Identified**  \n",
    "        **1. The Problem: Static LLMs**  \n",
    "        - **Score**: **1/1** (conceptual alignment exists but lacks exact phrasing).  \n",
    "\n",
    "        **2. The Proposed Solution: \"Daydreaming Loop\" (DDL)**  \n",
    "        - **Score**: **1/1** (mechanism is present but not explicitly named).  \n",
    "\n",
    "        **3. The Mechanism of Daydreaming**  \n",
    "        - **Score**: **2/2** (both generator/critic and feedback loop are present).  \n",
    "\n",
    "        **4. Economic/Strategic Implications**  \n",
    "        - **Score**: **0/1** (no explicit references).  \n",
    "\n",
    "        **Total for Core Concepts**: **4/5**  \n",
    "\n",
    "        ### **Connections Between Concepts**  \n",
    "        **1. Problem → Solution**  \n",
    "        - **Score**: **1/1** (logically connected but under a different name).  \n",
    "\n",
    "        **2. Mechanism → Feedback Loop**  \n",
    "        - **Score**: **1/1** (explicit feedback connection exists).  \n",
    "\n",
    "        **3. Process → Economics**  \n",
    "        - **Score**: **0/1** (no link is made).  \n",
    "\n",
    "        **4. Coherent Narrative Arc**  \n",
    "        - **Score**: **1/2** (partial coherence due to missing economic links).  \n",
    "\n",
    "        **Total for Connections**: **3/5**  \n",
    "\n",
    "        ### **SCORE:**  \n",
    "        **Total Score: 7/10**  \n",
    "\n",
    "        **Summary:**  \n",
    "        The text captures the problem, solution, and mechanism but lacks terminology.\n",
    "        ",
);

/// (name, response, strategy, expected) under the seed's range 0-10.
#[rustfmt::skip]
const SCORE_CASES: &[(&str, &str, ScoreStrategy, Score)] = &[
    // --- in_last_line: the seed's cases (section 10).
    ("seed bold exact", "Some text here\n**SCORE: 8**", InLastLine, Is(8.0)),
    ("seed single stars are deleted too", "Some text here\n*SCORE: 8*", InLastLine, Is(8.0)),
    ("seed bold label", "Some text here\n**Score:** 5", InLastLine, Is(5.0)),
    ("seed total score", "Some text here\nTotal Score: 6", InLastLine, Is(6.0)),
    ("seed three digits 456", "Some text here\nScore: 456", InLastLine, Is(5.0)),
    ("seed three digits 4,5,6", "Some text here\nScore: 4,5,6", InLastLine, Is(5.0)),
    ("seed score line then parenthetical line", MARKDOWN_EXPLANATION, InLastLine, Is(7.0)),
    // --- in_last_line: pass 1, exact `SCORE: d` lines.
    ("earliest exact line wins", "Reasoning\nSCORE: 7\nSCORE: 8", InLastLine, Is(7.0)),
    ("exact line beats an earlier generic one", "Final Score: 9\nSCORE: 4", InLastLine, Is(4.0)),
    ("exact line with decimals", "Text\nSCORE: 9.5", InLastLine, Is(9.5)),
    ("exact zero is not falsy", "Text\nscore: 0", InLastLine, Is(0.0)),
    ("exact line before a trailing note", "SCORE: 7\n(see above)", InLastLine, Is(7.0)),
    // --- in_last_line: only the last 3 non-empty lines are seen.
    ("score above the last 3 lines is not seen", "SCORE: 8\nline a\nline b\nline c", InLastLine,
        Fails(NO_SCORE_LAST_3)),
    ("blank lines do not count", "SCORE: 8\n\n\nline a\n\n  \nline b\n", InLastLine, Is(8.0)),
    ("no crossing of line breaks", "Text\nSCORE:\n8", InLastLine, Fails(NO_SCORE_LAST_3)),
    // --- in_last_line: pass 2, the three-digit rule, then the standard rule.
    ("three digits 100", "Score: 100", InLastLine, Is(1.0 / 3.0)),
    ("three digits 8, 9, 10 read 8 9 1", "Score: 8, 9, 10", InLastLine, Is(6.0)),
    ("three digits: the first three of 1000", "Score: 1000", InLastLine, Is(1.0 / 3.0)),
    ("three digits 999", "Total Score: 999", InLastLine, Is(9.0)),
    ("standard 8", "Score: 8", InLastLine, Is(8.0)),
    ("standard 9 with a space separator", "Final Score 9", InLastLine, Is(9.0)),
    ("standard 10", "Score: 10", InLastLine, Is(10.0)),
    ("0.0 quirk: 0 0 0 falls to the standard rule", "Score: 0 0 0", InLastLine, Is(0.0)),
    ("0.0 quirk: 000 falls to the standard rule", "Score: 000", InLastLine, Is(0.0)),
    ("0.0 quirk: 0,0,0 gives no score", "Score: 0,0,0", InLastLine, Fails(NO_SCORE_LAST_3)),
    ("0.0 quirk: the next line is tried", "Score: 0,0,0\nSCORE 7", InLastLine, Is(7.0)),
    ("tabs between digits reach the 'unreachable' length error", "Score: 4\t5\t6", InLastLine,
        Fails("Expected 3 digits in score, found 5: 4\t5\t6")),
    ("a fraction is no standard score", "Text\nScore: 8/10", InLastLine, Fails(NO_SCORE_LAST_3)),
    ("a trailing full stop", "Text\nScore: 8.", InLastLine, Fails(NO_SCORE_LAST_3)),
    ("an explanation after the number", "Score: 7 (good)", InLastLine, Is(7.0)),
    ("a markdown heading", "Text\n# Final Score: 8", InLastLine, Is(8.0)),
    ("no word boundary: Underscore", "Underscore 7", InLastLine, Is(7.0)),
    ("out of range raises before later lines", "Score: 12 points\nFinal Score 7", InLastLine,
        Fails("Score 12.0 is outside valid range 0-10")),
    ("negative is out of range", "Text\nTotal Score: -2.5", InLastLine,
        Fails("Score -2.5 is outside valid range 0-10")),
    ("15.0 is out of range", "Text\nScore: 15.0", InLastLine, Fails("Score 15.0 is outside valid range 0-10")),
    ("a Unicode digit (Arabic-Indic 8)", "Score: \u{668}", InLastLine, Is(8.0)),
    ("a fullwidth digit is not an exact line but scores", "SCORE: \u{FF18}", InLastLine, Is(8.0)),
    ("Python whitespace includes U+001C", "Score:\u{1c}7", InLastLine, Is(7.0)),
    ("NBSP is whitespace", "Score:\u{a0}7", InLastLine, Is(7.0)),
    ("long s folds to s", "\u{17F}core: 7", InLastLine, Is(7.0)),
    ("in_last_line: empty", "", InLastLine, Fails(EMPTY)),
    ("in_last_line: whitespace only", "  \n\t \n", InLastLine, Fails(EMPTY)),
    // --- complex: the seed's cases (section 10).
    ("seed standard", "REASONING: This shows great creativity\nSCORE: 8.5", Complex, Is(8.5)),
    ("seed multiline reasoning", "REASONING: This response demonstrates creativity\nbecause it combines multiple \
        concepts in novel ways.\nThe ideas are well-structured and innovative.\nSCORE: 7.2", Complex, Is(7.2)),
    ("seed lower case", "reasoning: Good analysis\nscore: 6.0", Complex, Is(6.0)),
    ("seed title case", "Reasoning: Excellent work\nScore: 9.5", Complex, Is(9.5)),
    ("seed upper case", "REASONING: Basic response\nSCORE: 4.0", Complex, Is(4.0)),
    ("seed dash separator", "REASONING - Great creativity shown\nSCORE: 8.0", Complex, Is(8.0)),
    ("seed parenthetical", "REASONING: Shows innovation\nSCORE: 7.5 (above average creativity)", Complex, Is(7.5)),
    ("seed fraction", "REASONING: Good work\nSCORE: 8/10", Complex, Is(8.0)),
    ("seed no score", "REASONING: Good analysis but no score provided", Complex, Fails(NO_SCORE_FIELD)),
    ("seed non-numeric score", "REASONING: Analysis done\nSCORE: not_a_number", Complex, Fails(NO_SCORE_FIELD)),
    ("seed out of range -2.5", "REASONING: Test\nSCORE: -2.5", Complex,
        Fails("Score -2.5 is outside valid range 0-10")),
    ("seed out of range 15.0", "REASONING: Test\nSCORE: 15.0", Complex,
        Fails("Score 15.0 is outside valid range 0-10")),
    ("seed last match wins", "REASONING: Analysis\nSCORE: 7.5\nSCORE: 8.0\nAdditional text", Complex, Is(8.0)),
    ("seed total score priority", TOTAL_SCORE_PRIORITY, Complex, Is(7.0)),
    ("seed ignores 1/1 sub-scores", ONE_OVER_ONE_SUBSCORES, Complex, Is(4.0)),
    ("seed markdown: plain fraction", "Total Score: 6/10", Complex, Is(6.0)),
    ("seed markdown: bold label", "**Total Score:** 7/10", Complex, Is(7.0)),
    ("seed markdown: bold value", "Total Score: **8/10**", Complex, Is(8.0)),
    ("seed markdown: both bold", "**Total Score:** **9/10**", Complex, Is(9.0)),
    ("seed markdown: plain single", "Total Score: 5", Complex, Is(5.0)),
    ("seed markdown: bold label single", "**Total Score:** 3", Complex, Is(3.0)),
    ("seed real response", REAL_RESPONSE, Complex, Is(7.0)),
    // --- complex: the examples of 7.2.
    ("bold total fraction", "**Total Score: 7/10**", Complex, Is(7.0)),
    ("a fraction across a line break", "### **Final Score** \n **2/10**", Complex, Is(2.0)),
    ("a fraction beats a later single", "**Total Score: 6.5/10** and then\n**SCORE:** 7", Complex, Is(6.5)),
    ("a fraction beats a later single line", "SCORE: 8/10\nSCORE: 9", Complex, Is(8.0)),
    ("no word boundary: Underscore 3/4", "Underscore: 3/4", Complex, Is(7.5)),
    ("single stars stay", "*SCORE: 8*", Complex, Fails(NO_SCORE_FIELD)),
    ("a trailing full stop fails", "Score: 8.5.", Complex, Fails(NO_SCORE_FIELD)),
    // --- complex: further rules.
    ("three stars leave one", "***Score:*** 7", Complex, Fails(NO_SCORE_FIELD)),
    ("a single crosses a line break", "SCORE:\n8", Complex, Is(8.0)),
    ("a failed single, then a good one", "Score: 8.5.\nScore: 6", Complex, Is(6.0)),
    ("a fraction is scaled by ten", "Score: 2/3", Complex, Is(2.0 / 3.0 * 10.0)),
    ("zero denominator", "Score: 7/0", Complex, Fails("Invalid score fraction: division by zero")),
    ("zero over zero", "Score: 0/0", Complex, Fails("Invalid score fraction: division by zero")),
    ("a fraction above the range", "Score: 12/10", Complex, Fails("Score 12.0 is outside valid range 0-10")),
    ("heading hashes are deleted", "# Score 7", Complex, Is(7.0)),
    ("a Unicode fraction", "Score: \u{664}/\u{665}", Complex, Is(8.0)),
    ("complex: empty", "", Complex, Fails(EMPTY)),
    ("complex: whitespace only", " \n\n ", Complex, Fails(EMPTY)),
];

const RANGE_0_9: ScoreRange = ScoreRange { min: 0, max: 9 };

/// (name, response, strategy, range, expected) under a declared range.
#[rustfmt::skip]
const RANGED_CASES: &[(&str, &str, ScoreStrategy, ScoreRange, Score)] = &[
    ("0-9 rejects 10", "Text\nScore: 10", InLastLine, RANGE_0_9, Fails("Score 10.0 is outside valid range 0-9")),
    ("0-9 accepts 9", "Text\nSCORE: 9", InLastLine, RANGE_0_9, Is(9.0)),
    ("0-9 rejects an exact 9.5", "Text\nSCORE: 9.5", InLastLine, RANGE_0_9,
        Fails("Score 9.5 is outside valid range 0-9")),
    ("0-9 rejects 10/10", "Total Score: 10/10", Complex, RANGE_0_9, Fails("Score 10.0 is outside valid range 0-9")),
    ("0-9 accepts 9/10", "Total Score: 9/10", Complex, RANGE_0_9, Is(9.0)),
    ("1-5 rejects 0", "Score: 0", Complex, ScoreRange { min: 1, max: 5 },
        Fails("Score 0.0 is outside valid range 1-5")),
];

fn check_score(name: &str, text: &str, strategy: ScoreStrategy, range: ScoreRange, expected: &Score) {
    let got = parse_score(text, strategy, range);
    match (expected, &got) {
        // `==` on purpose: the seed's arithmetic must be reproduced to the last bit.
        (Is(want), Ok(score)) if score == want => {}
        (Fails(want), Err(msg)) if msg == want => {}
        _ => panic!("{name}: expected {expected:?}, got {got:?} for {text:?}"),
    }
}

#[test]
fn scores() {
    for (name, text, strategy, expected) in SCORE_CASES {
        check_score(name, text, *strategy, SEED, expected);
    }
}

#[test]
fn scores_in_a_declared_range() {
    for (name, text, strategy, range, expected) in RANGED_CASES {
        check_score(name, text, *strategy, *range, expected);
    }
}

/// A score line followed by `filler` lines without one.
fn score_then(filler: usize) -> String {
    format!("SCORE: 8\n{}", vec!["filler"; filler].join("\n"))
}

#[test]
fn complex_sees_the_last_30_lines() {
    check_score("30th line from the end", &score_then(29), Complex, SEED, &Is(8.0));
    check_score(
        "31st line from the end",
        &score_then(30),
        Complex,
        SEED,
        &Fails(NO_SCORE_FIELD),
    );
}

#[test]
fn in_last_line_sees_the_last_3_lines() {
    check_score("3rd line from the end", &score_then(2), InLastLine, SEED, &Is(8.0));
    check_score(
        "4th line from the end",
        &score_then(3),
        InLastLine,
        SEED,
        &Fails(NO_SCORE_LAST_3),
    );
}

#[test]
fn score_strategies() {
    for (id, strategy) in [
        ("creativity-metrics", Complex),
        ("daydreaming-verification", Complex),
        ("iterative-loops", Complex),
        ("scientific-rigor", Complex),
        ("daydreaming-verification-v2", InLastLine),
        ("o3-prior-art-eval", InLastLine),
        ("gemini-prior-art-eval", InLastLine),
        ("style-coherence", InLastLine),
        ("style-coherence-v2", InLastLine),
        ("style-coherence-v3", InLastLine),
        ("interdisciplinary-coherence", InLastLine),
        ("no-such-template", InLastLine),
    ] {
        assert_eq!(ScoreStrategy::default_for(id), strategy, "{id}");
    }
    for s in [Complex, InLastLine] {
        assert_eq!(ScoreStrategy::from_name(s.name()), Some(s));
    }
    assert_eq!(ScoreStrategy::from_name("Complex"), None);
}

#[test]
fn score_ranges() {
    assert_eq!(ScoreRange::parse("0-10"), Ok(SEED));
    assert_eq!(ScoreRange::parse(" 1 - 5 "), Ok(ScoreRange { min: 1, max: 5 }));
    assert_eq!(ScoreRange::parse("0-9").map(|r| r.to_string()), Ok("0-9".to_string()));
    for bad in ["", "0..10", "-1-5", "5-5", "10-0", "a-b", "0-10-20", "0-1e3"] {
        let err = ScoreRange::parse(bad).expect_err(bad);
        assert_eq!(
            err,
            format!("invalid score range {bad:?}: expected MIN-MAX with whole numbers 0 <= MIN < MAX, like \"0-10\"")
        );
    }
}

/// What `extract_essay` returns, or its error.
#[derive(Debug)]
enum Parsed {
    Ok {
        essay: &'static str,
        thinking: Option<&'static str>,
        endnotes: Option<&'static str>,
        strategy: EssayStrategy,
        sections: &'static [&'static str],
    },
    Fails(&'static str),
}

/// A successful parse; the seed sets a note exactly when it used the fallback.
const fn ok(
    essay: &'static str,
    thinking: Option<&'static str>,
    endnotes: Option<&'static str>,
    strategy: EssayStrategy,
    sections: &'static [&'static str],
) -> Parsed {
    Parsed::Ok {
        essay,
        thinking,
        endnotes,
        strategy,
        sections,
    }
}

const FALLBACK_NOTE: &str = "No structured sections found, treating entire response as essay";

const SEED_XML: &str = "
<thinking>
This is the thinking section with analysis.
</thinking>

<essay>
This is the main essay content.
It has multiple paragraphs.
And continues with more content.
</essay>

<endnotes>
These are the endnotes.
</endnotes>
";

const SEED_SECTIONS: &str = "
Thinking:
This is the thinking section.

Essay:
This is the main essay content.
With multiple paragraphs.

Endnotes:
These are the endnotes.
";

const SEED_FREE_FORM: &str = "
This is a free-form response without any clear structure.
It just contains essay content directly.
No tags or headers to parse.
";

const SEED_NO_ESSAY_TAG: &str = "
<thinking>
Some thinking content.
</thinking>

<endnotes>
Some endnotes.
</endnotes>
";

#[rustfmt::skip]
const ESSAY_CASES: &[(&str, &str, EssayStrategy, Parsed)] = &[
    // --- the seed's cases (section 8).
    ("seed xml with three sections", SEED_XML, XmlTags,
        ok("This is the main essay content.\nIt has multiple paragraphs.\nAnd continues with more content.",
            Some("This is the thinking section with analysis."), Some("These are the endnotes."), XmlTags,
            &["essay", "thinking", "endnotes"])),
    ("seed xml essay only", "\n<essay>\nThis is just the essay content.\nNo other sections.\n</essay>\n", XmlTags,
        ok("This is just the essay content.\nNo other sections.", None, None, XmlTags, &["essay"])),
    ("seed section headers", SEED_SECTIONS, SectionHeaders,
        ok("This is the main essay content.\nWith multiple paragraphs.", Some("This is the thinking section."),
            Some("These are the endnotes."), SectionHeaders, &["thinking", "essay", "endnotes"])),
    ("seed fallback", SEED_FREE_FORM, Fallback,
        ok("This is a free-form response without any clear structure.\nIt just contains essay content directly.\n\
            No tags or headers to parse.", None, None, Fallback, &["essay"])),
    ("seed plain text under xml_tags falls back", "Just plain text without structure.", XmlTags,
        ok("Just plain text without structure.", None, None, Fallback, &["essay"])),
    ("seed empty", "", XmlTags, Parsed::Fails(EMPTY)),
    ("seed whitespace only", "   \n\n  ", XmlTags, Parsed::Fails(EMPTY)),
    ("seed thinking and endnotes without essay fall back", SEED_NO_ESSAY_TAG, XmlTags,
        ok("<thinking>\nSome thinking content.\n</thinking>\n\n<endnotes>\nSome endnotes.\n</endnotes>",
            None, None, Fallback, &["essay"])),
    ("seed extract_essay_only, inline tags",
        "\n<thinking>Analysis here.</thinking>\n<essay>This is the essay.</essay>\n<endnotes>Notes here.</endnotes>\n",
        XmlTags, ok("This is the essay.", Some("Analysis here."), Some("Notes here."), XmlTags,
            &["essay", "thinking", "endnotes"])),
    ("seed extract_essay_only, fallback", "This is the entire essay content.", Fallback,
        ok("This is the entire essay content.", None, None, Fallback, &["essay"])),
    // --- xml_tags rules.
    ("tags with attributes", "<thinking lang=\"en\">t</thinking>\n<essay id=\"x\">\nBody.\n</essay>", XmlTags,
        ok("Body.", Some("t"), None, XmlTags, &["essay", "thinking"])),
    ("tags are case-insensitive", "<ESSAY>Body</Essay><EndNotes> n </ENDNOTES>", XmlTags,
        ok("Body", None, Some("n"), XmlTags, &["essay", "endnotes"])),
    ("the first essay wins", "<essay>one</essay>\n<essay>two</essay>", XmlTags,
        ok("one", None, None, XmlTags, &["essay"])),
    ("echoed instructions are taken", "Put your essay in <essay></essay> tags.\n\n<essay>\nReal essay.\n</essay>",
        XmlTags, ok("", None, None, XmlTags, &["essay"])),
    ("echoed instructions with words between the tags",
        "Write inside <essay> and </essay>.\n<essay>\nReal essay.\n</essay>", XmlTags,
        ok("and", None, None, XmlTags, &["essay"])),
    ("a longer tag name is no essay tag", "<essayist>x</essayist>\n<essay>real</essay>", XmlTags,
        ok("real", None, None, XmlTags, &["essay"])),
    ("a hyphen ends the tag name", "<essay-draft>draft</essay-draft><essay>final</essay>", XmlTags,
        ok("draft</essay-draft><essay>final", None, None, XmlTags, &["essay"])),
    ("an unclosed essay falls back", "<thinking>t</thinking>\n<essay>\nno end", XmlTags,
        ok("<thinking>t</thinking>\n<essay>\nno end", None, None, Fallback, &["essay"])),
    ("fallback keeps the tags", "  <essay>x</essay>  ", Fallback,
        ok("<essay>x</essay>", None, None, Fallback, &["essay"])),
    ("fallback rejects whitespace too", " \t\n", Fallback, Parsed::Fails(EMPTY)),
    // --- section_headers rules.
    ("a repeated header overwrites and keeps its place", "Essay:\nfirst\nThinking:\nhmm\nEssay:\nsecond",
        SectionHeaders, ok("second", Some("hmm"), None, SectionHeaders, &["essay", "thinking"])),
    ("text before the first header is dropped", "Intro line\n\nEssay:\nBody\n", SectionHeaders,
        ok("Body", None, None, SectionHeaders, &["essay"])),
    ("no essay section: the first section", "Thinking:\nthoughts\nAnalysis:\nanalysis", SectionHeaders,
        ok("thoughts", Some("thoughts"), None, SectionHeaders, &["thinking", "analysis", "essay"])),
    ("no header: the whole text", "\n  Just text\nmore  \n", SectionHeaders,
        ok("Just text\nmore", None, None, SectionHeaders, &["essay"])),
    ("a header must stand alone", "Essay: inline text\nmore", SectionHeaders,
        ok("Essay: inline text\nmore", None, None, SectionHeaders, &["essay"])),
    ("a section without lines is not saved", "Essay:\nThinking:\nthought", SectionHeaders,
        ok("thought", Some("thought"), None, SectionHeaders, &["thinking", "essay"])),
    ("a blank line is content", "Essay:\n\nThinking:\nthought", SectionHeaders,
        ok("", Some("thought"), None, SectionHeaders, &["essay", "thinking"])),
    ("headers are case-insensitive, lines stripped", "  ESSAY:  \n  body  \n\tline two\n", SectionHeaders,
        ok("body\nline two", None, None, SectionHeaders, &["essay"])),
    ("a dotted capital I lower-cases to a new name", "TH\u{130}NK\u{130}NG:\nx\nEssay:\ny", SectionHeaders,
        ok("y", None, None, SectionHeaders, &["thi\u{307}nki\u{307}ng", "essay"])),
    ("conclusion is found but not returned", "Essay:\nbody\nConclusion:\nend", SectionHeaders,
        ok("body", None, None, SectionHeaders, &["essay", "conclusion"])),
    ("xml text has no headers", "<essay>x</essay>", SectionHeaders,
        ok("<essay>x</essay>", None, None, SectionHeaders, &["essay"])),
    ("section_headers rejects whitespace", "\n\n", SectionHeaders, Parsed::Fails(EMPTY)),
];

#[test]
fn essays() {
    for (name, text, strategy, expected) in ESSAY_CASES {
        let got = extract_essay(text, *strategy);
        let matches = match (expected, &got) {
            (Parsed::Fails(want), Err(msg)) => msg == want,
            (
                Parsed::Ok {
                    essay,
                    thinking,
                    endnotes,
                    strategy,
                    sections,
                },
                Ok(e),
            ) => {
                e.essay == *essay
                    && e.thinking.as_deref() == *thinking
                    && e.endnotes.as_deref() == *endnotes
                    && e.strategy == *strategy
                    && e.sections_found == *sections
                    && e.note.as_deref() == (*strategy == Fallback).then_some(FALLBACK_NOTE)
            }
            _ => false,
        };
        assert!(matches, "{name}: expected {expected:?}, got {got:?} for {text:?}");
    }
}

#[test]
fn essay_strategies() {
    for (id, strategy) in [
        ("creative-synthesis-v3", SectionHeaders),
        ("research-discovery-v3", SectionHeaders),
        ("creative-synthesis-v2", XmlTags),
        ("no-such-template", XmlTags),
    ] {
        assert_eq!(EssayStrategy::default_for(id), strategy, "{id}");
    }
    for s in [XmlTags, SectionHeaders, Fallback] {
        assert_eq!(EssayStrategy::from_name(s.name()), Some(s));
    }
    assert_eq!(EssayStrategy::from_name("xml"), None);
}

const SEED_VALID_ESSAY: &str = "
This is a valid essay with multiple paragraphs that contains sufficient content to pass validation.

It has proper sentence structure and punctuation throughout the entire document. The essay explores
various topics and provides comprehensive coverage of the subject matter at hand.

The content is substantial enough to be considered complete and meets all the requirements for
a well-structured essay including adequate word count, proper paragraph breaks, and complete
sentences with appropriate punctuation marks.

This demonstrates that the validation function correctly identifies valid essays that meet
all the necessary criteria for acceptance in the system.
";

const SEED_ONE_PARAGRAPH: &str = "This is a single paragraph essay that goes on and on without any paragraph breaks. \
    It has enough words but lacks proper structure. The content is there but it's not formatted as a proper essay \
    should be.";

/// 50 words in two paragraphs, one full stop.
const FIFTY_WORDS: &str = "w w w w w w w w w w w w w w w w w w w w w w w w w.\n\n\
    w w w w w w w w w w w w w w w w w w w w w w w w w";
/// 51 words in two paragraphs, one full stop.
const FIFTY_ONE_WORDS: &str = "w w w w w w w w w w w w w w w w w w w w w w w w w.\n\n\
    w w w w w w w w w w w w w w w w w w w w w w w w w w";
/// 51 words in two paragraphs, no full stop.
const NO_FULL_STOP: &str = "w w w w w w w w w w w w w w w w w w w w w w w w w!\n\n\
    w w w w w w w w w w w w w w w w w w w w w w w w w w";

const MALFORMED: Option<&str> = Some("Essay content appears incomplete or malformed");

/// (name, text, is_valid, error, word_count, has_paragraphs, has_sentences)
#[rustfmt::skip]
type Validation = (&'static str, &'static str, bool, Option<&'static str>, usize, bool, bool);

#[rustfmt::skip]
const VALIDATION_CASES: &[Validation] = &[
    ("seed empty", "", false, Some("Empty essay content"), 0, false, false),
    ("seed too short", "Too short.", false, MALFORMED, 2, false, true),
    ("seed one long paragraph", SEED_ONE_PARAGRAPH, false, MALFORMED, 37, false, true),
    ("seed valid essay", SEED_VALID_ESSAY, true, None, 94, true, true),
    ("50 words are not enough", FIFTY_WORDS, false, MALFORMED, 50, true, true),
    ("51 words are", FIFTY_ONE_WORDS, true, None, 51, true, true),
    ("no full stop", NO_FULL_STOP, false, MALFORMED, 51, true, false),
    ("whitespace only is not empty", " \n\n ", false, MALFORMED, 0, true, false),
    ("Python splits words on U+001C", "a\u{1c}b.", false, MALFORMED, 2, false, true),
];

#[test]
fn essay_validation() {
    for &(name, text, is_valid, error, word_count, has_paragraphs, has_sentences) in VALIDATION_CASES {
        let want = EssayCheck {
            is_valid,
            error: error.map(String::from),
            word_count,
            has_paragraphs,
            has_sentences,
        };
        assert_eq!(validate_essay(text), want, "{name}");
    }
}
