//! `pipeline.yaml`: the declared stages, their kinds, parameters, inputs and outputs.
//!
//! Parsing keeps the line and column of every key and value so that every validation error
//! points into the file. This module does no I/O besides checking that declared input files
//! exist; it never writes.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{Diag, nearest};

/// The kinds of stage daydream knows how to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Concepts,
    Models,
    Templates,
    Combinations,
    GenerationTasks,
    EvaluationTasks,
    GenerationPrompt,
    GenerationResponse,
    EvaluationPrompt,
    EvaluationResponse,
    ParsedGenerationResponses,
    ParsedScores,
    Summaries,
    CrossExperiment,
    Report,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldType {
    /// An input file that must exist.
    File,
    /// An input directory (may be absent).
    Dir,
    /// An output file under the project.
    Output,
    /// An output path pattern holding `{id}`, one file per task row.
    OutputPattern,
    Int {
        min: i64,
    },
    /// A number in an inclusive range.
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    Choice(&'static [&'static str]),
    /// The name of another stage, of one of these kinds.
    Ref(&'static [Kind]),
    /// The name of a provider declared under `providers:`, or `auto`.
    Provider,
}

pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn req(name: &'static str, ty: FieldType, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        default: None,
        doc,
    }
}

const fn opt(name: &'static str, ty: FieldType, default: &'static str, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        default: Some(default),
        doc,
    }
}

pub const LEVELS: &[&str] = &["sentence", "paragraph", "article"];

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Concepts,
        Kind::Models,
        Kind::Templates,
        Kind::Combinations,
        Kind::GenerationTasks,
        Kind::EvaluationTasks,
        Kind::GenerationPrompt,
        Kind::GenerationResponse,
        Kind::EvaluationPrompt,
        Kind::EvaluationResponse,
        Kind::ParsedGenerationResponses,
        Kind::ParsedScores,
        Kind::Summaries,
        Kind::CrossExperiment,
        Kind::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Concepts => "concepts",
            Kind::Models => "models",
            Kind::Templates => "templates",
            Kind::Combinations => "combinations",
            Kind::GenerationTasks => "generation_tasks",
            Kind::EvaluationTasks => "evaluation_tasks",
            Kind::GenerationPrompt => "generation_prompt",
            Kind::GenerationResponse => "generation_response",
            Kind::EvaluationPrompt => "evaluation_prompt",
            Kind::EvaluationResponse => "evaluation_response",
            Kind::ParsedGenerationResponses => "parsed_generation_responses",
            Kind::ParsedScores => "parsed_scores",
            Kind::Summaries => "summaries",
            Kind::CrossExperiment => "cross_experiment",
            Kind::Report => "report",
        }
    }

    /// Whether the stage calls an LLM.
    pub fn is_llm(self) -> bool {
        matches!(self, Kind::GenerationResponse | Kind::EvaluationResponse)
    }

    /// Whether the stage's outputs are planned from what earlier stages produced in the run (the
    /// store and the LLM answers), rather than by salsa from the project's files.
    pub fn is_planned_in_run(self) -> bool {
        matches!(
            self,
            Kind::GenerationResponse
                | Kind::EvaluationPrompt
                | Kind::EvaluationResponse
                | Kind::ParsedGenerationResponses
                | Kind::ParsedScores
                | Kind::Summaries
                | Kind::Report
                | Kind::CrossExperiment
        )
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }

    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            Kind::Concepts => CONCEPTS_FIELDS,
            Kind::Models => MODELS_FIELDS,
            Kind::Templates => TEMPLATES_FIELDS,
            Kind::Combinations => COMBINATIONS_FIELDS,
            Kind::GenerationTasks => GENERATION_TASKS_FIELDS,
            Kind::EvaluationTasks => EVALUATION_TASKS_FIELDS,
            Kind::GenerationPrompt => GENERATION_PROMPT_FIELDS,
            Kind::GenerationResponse => GENERATION_RESPONSE_FIELDS,
            Kind::EvaluationPrompt => EVALUATION_PROMPT_FIELDS,
            Kind::EvaluationResponse => EVALUATION_RESPONSE_FIELDS,
            Kind::ParsedGenerationResponses => PARSED_GENERATION_FIELDS,
            Kind::ParsedScores => PARSED_SCORES_FIELDS,
            Kind::Summaries => SUMMARIES_FIELDS,
            Kind::CrossExperiment => CROSS_EXPERIMENT_FIELDS,
            Kind::Report => REPORT_FIELDS,
        }
    }
}

use FieldType::*;

const CONCEPTS_FIELDS: &[FieldSpec] = &[
    req("metadata", File, "CSV with concept_id,name[,active]"),
    req(
        "descriptions",
        Dir,
        "directory holding descriptions-<level>/<concept_id>.txt",
    ),
];

const MODELS_FIELDS: &[FieldSpec] = &[req("csv", File, "CSV with id,model,for_generation,for_evaluation")];

const TEMPLATES_FIELDS: &[FieldSpec] = &[
    req("csv", File, "CSV with template_id,active"),
    req("dir", Dir, "directory holding <template_id>.txt for every row"),
];

const COMBINATIONS_FIELDS: &[FieldSpec] = &[
    req("concepts", Ref(&[Kind::Concepts]), "the concepts stage"),
    req("k_max", Int { min: 1 }, "concepts per combination"),
    opt(
        "description_level",
        Choice(LEVELS),
        "paragraph",
        "description level to use",
    ),
    req("registry", Output, "append-only combo id registry (combo_mappings.csv)"),
    req("output", Output, "combo_id,concept_id table"),
];

const GENERATION_TASKS_FIELDS: &[FieldSpec] = &[
    req("combinations", Ref(&[Kind::Combinations]), "the combinations stage"),
    req(
        "models",
        Ref(&[Kind::Models]),
        "the models stage (rows with for_generation)",
    ),
    req("templates", Ref(&[Kind::Templates]), "the generation templates stage"),
    req("output", Output, "generation task table"),
];

const EVALUATION_TASKS_FIELDS: &[FieldSpec] = &[
    req(
        "generation_tasks",
        Ref(&[Kind::GenerationTasks]),
        "the generation tasks stage",
    ),
    req(
        "models",
        Ref(&[Kind::Models]),
        "the models stage (rows with for_evaluation)",
    ),
    req("templates", Ref(&[Kind::Templates]), "the evaluation templates stage"),
    req("output", Output, "evaluation task table"),
];

const GENERATION_PROMPT_FIELDS: &[FieldSpec] = &[
    req("tasks", Ref(&[Kind::GenerationTasks]), "the generation tasks stage"),
    req(
        "output",
        OutputPattern,
        "one file per task, e.g. data/3_generation/generation_prompts/{id}.txt",
    ),
    UNDEFINED_FIELD,
    PROMPT_MATERIALIZE_FIELD,
];

const UNDEFINED_FIELD: FieldSpec = opt(
    "undefined",
    Choice(&["strict", "lenient"]),
    "strict",
    "undefined template variables: error, or empty as the seed",
);

const PROMPT_MATERIALIZE_FIELD: FieldSpec = opt(
    "materialize",
    Bool,
    "true",
    "write the prompt files (false: keep them in the store only)",
);

const LLM_FIELDS_DOC: &str = "provider to call: a name under `providers:`, or `auto` (see settings.provider)";

/// The fields of an LLM stage, which differ only in the prompt stage they read.
macro_rules! llm_fields {
    ($prompts:expr, $prompts_doc:expr, $output_doc:expr) => {
        [
            req("prompts", Ref(&[$prompts]), $prompts_doc),
            req("output", OutputPattern, $output_doc),
            opt("provider", Provider, "auto", LLM_FIELDS_DOC),
            opt(
                "temperature",
                Float { min: 0.0, max: 2.0 },
                "0.7",
                "sampling temperature sent with every call",
            ),
            opt("max_tokens", Int { min: 1 }, "8192", "max_tokens sent with every call"),
            opt(
                "replicates",
                Int { min: 1 },
                "1",
                "independent samples per task (ids get _run01, _run02, ...)",
            ),
            opt(
                "on_truncation",
                Choice(&["keep", "fail"]),
                "keep",
                "a response cut at max_tokens: keep it (flagged truncated) or count it as failed",
            ),
            opt(
                "materialize",
                Bool,
                "true",
                "write the response files and sidecars (false: keep them in the store only)",
            ),
        ]
    };
}

const GENERATION_RESPONSE_FIELDS: &[FieldSpec] = &llm_fields!(
    Kind::GenerationPrompt,
    "the generation prompt stage",
    "one response per task, e.g. data/3_generation/generation_responses/{id}.txt"
);

const EVALUATION_PROMPT_FIELDS: &[FieldSpec] = &[
    req("tasks", Ref(&[Kind::EvaluationTasks]), "the evaluation tasks stage"),
    req(
        "responses",
        Ref(&[Kind::ParsedGenerationResponses, Kind::GenerationResponse]),
        "the essays judged: a parsed_generation_responses stage (or raw generation responses)",
    ),
    req(
        "output",
        OutputPattern,
        "one file per task, e.g. data/4_evaluation/evaluation_prompts/{id}.txt",
    ),
    UNDEFINED_FIELD,
    PROMPT_MATERIALIZE_FIELD,
];

const EVALUATION_RESPONSE_FIELDS: &[FieldSpec] = &llm_fields!(
    Kind::EvaluationPrompt,
    "the evaluation prompt stage",
    "one response per task, e.g. data/4_evaluation/evaluation_responses/{id}.txt"
);

const PARSED_GENERATION_FIELDS: &[FieldSpec] = &[
    req(
        "responses",
        Ref(&[Kind::GenerationResponse]),
        "the generation response stage whose essays are extracted",
    ),
    req(
        "output",
        OutputPattern,
        "one essay per task, e.g. data/3_generation/parsed_generation_responses/{id}.txt",
    ),
    opt(
        "materialize",
        Bool,
        "true",
        "write the essay files (false: keep them in the store only)",
    ),
];

const PARSED_SCORES_FIELDS: &[FieldSpec] = &[
    req(
        "responses",
        Ref(&[Kind::EvaluationResponse]),
        "the evaluation response stage whose scores are parsed",
    ),
    req("output", Output, "one row per evaluation task (parsed_scores.csv)"),
];

const SUMMARIES_FIELDS: &[FieldSpec] = &[
    req("scores", Ref(&[Kind::ParsedScores]), "the parsed_scores stage"),
    req("evaluator_agreement", Output, "evaluator_agreement_analysis.csv"),
    req("variance", Output, "comprehensive_variance_analysis.csv"),
    req("generation_pivot", Output, "generation_scores_pivot.csv"),
    req("final_results", Output, "final_results.csv"),
    req("perfect_paths", Output, "perfect_score_paths.csv"),
    req("model_template_pivot", Output, "evaluation_model_template_pivot.csv"),
];

const REPORT_FIELDS: &[FieldSpec] = &[
    req(
        "summaries",
        Ref(&[Kind::Summaries]),
        "the summaries stage whose tables the page shows",
    ),
    req("output", Output, "the page (report.html)"),
];

const CROSS_EXPERIMENT_FIELDS: &[FieldSpec] = &[
    req("scores", Ref(&[Kind::ParsedScores]), "the parsed_scores stage"),
    req(
        "generation_responses",
        Ref(&[Kind::GenerationResponse]),
        "the generation response stage",
    ),
    req(
        "generation_results",
        Output,
        "one row per generation response ever recorded (generation_results.csv)",
    ),
    req(
        "evaluation_results",
        Output,
        "one row per evaluation response ever recorded (evaluation_results.csv)",
    ),
    req(
        "filtered_evaluation_results",
        Output,
        "every recorded evaluation with its parsed score (filtered_evaluation_results.csv)",
    ),
    req(
        "template_version_comparison",
        Output,
        "score per essay and evaluation template (template_version_comparison_pivot.csv)",
    ),
];

/// A float that can live in hashed, compared values (compared by bits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F64(pub f64);

impl Eq for F64 {}

impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// A position in pipeline.yaml.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(F64),
    Bool(bool),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{}", x.0),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    pub value: Value,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stage {
    pub name: String,
    pub kind: Kind,
    pub loc: Loc,
    /// Every field of the kind, defaults filled in.
    pub fields: BTreeMap<&'static str, Field>,
}

impl Stage {
    pub fn str(&self, field: &str) -> &str {
        match &self.fields[field].value {
            Value::Str(s) => s,
            other => panic!("field {field} of {} is {other:?}, validated as a string", self.name),
        }
    }

    pub fn int(&self, field: &str) -> i64 {
        match self.fields[field].value {
            Value::Int(i) => i,
            ref other => panic!("field {field} of {} is {other:?}, validated as an integer", self.name),
        }
    }

    pub fn float(&self, field: &str) -> f64 {
        match self.fields[field].value {
            Value::Float(x) => x.0,
            Value::Int(i) => i as f64,
            ref other => panic!("field {field} of {} is {other:?}, validated as a number", self.name),
        }
    }

    pub fn bool(&self, field: &str) -> bool {
        match self.fields[field].value {
            Value::Bool(b) => b,
            ref other => panic!("field {field} of {} is {other:?}, validated as a boolean", self.name),
        }
    }

    /// The stages this one reads, as (field, stage name).
    pub fn refs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.kind
            .fields()
            .iter()
            .filter(|f| matches!(f.ty, FieldType::Ref(_)))
            .map(|f| (f.name, self.str(f.name)))
    }

    /// Output files and patterns, as declared.
    pub fn outputs(&self) -> impl Iterator<Item = &str> {
        self.kind
            .fields()
            .iter()
            .filter(|f| matches!(f.ty, FieldType::Output | FieldType::OutputPattern))
            .map(|f| self.str(f.name))
    }

    /// Input files and directories, as declared.
    pub fn input_paths(&self) -> impl Iterator<Item = &str> {
        self.kind
            .fields()
            .iter()
            .filter(|f| matches!(f.ty, FieldType::File | FieldType::Dir))
            .map(|f| self.str(f.name))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pipeline {
    pub file: String,
    pub source: String,
    pub settings: Settings,
    pub providers: Vec<Provider>,
    /// In dependency order: every stage comes after the stages it reads.
    pub stages: Vec<Stage>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// The named stages and everything they read, in dependency order.
    pub fn closure(&self, targets: &[String]) -> Result<Vec<usize>, Diag> {
        let mut wanted = vec![false; self.stages.len()];
        let mut stack = Vec::new();
        for t in targets {
            let i = self.stage_index(t).ok_or_else(|| {
                let names = self.stages.iter().map(|s| s.name.as_str());
                let d = Diag::new(format!("no stage named `{t}` in {}", self.file));
                match nearest(t, names) {
                    Some(n) => d.help(format!("did you mean `{n}`?")),
                    None => d.help("`daydream dag` lists the stages"),
                }
            })?;
            stack.push(i);
        }
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut wanted[i], true) {
                stack.extend(self.stages[i].refs().filter_map(|(_, r)| self.stage_index(r)));
            }
        }
        Ok((0..self.stages.len()).filter(|&i| wanted[i]).collect())
    }

    pub(crate) fn diag(&self, message: impl Into<String>, loc: Loc) -> Diag {
        Diag::new(message)
            .in_file(&self.file)
            .at(Some(&self.source), loc.line, loc.column)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    #[serde(default)]
    version: Option<Spanned<u32>>,
    #[serde(default)]
    settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    providers: IndexMap<Spanned<String>, Spanned<RawProvider>>,
    stages: Spanned<IndexMap<Spanned<String>, RawStage>>,
}

/// A stage's body: its keys and values, with their locations.
type RawStage = Spanned<IndexMap<Spanned<String>, Spanned<RawValue>>>;

#[derive(Deserialize)]
#[serde(untagged)]
enum RawValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Anything else (a float, a list, a map): rejected where a field expects a scalar.
    Other(#[allow(dead_code)] serde::de::IgnoredAny),
}

const TOP_KEYS: &[&str] = &["version", "settings", "providers", "stages"];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    provider: Option<Spanned<String>>,
    #[serde(default)]
    max_cost_usd: Option<Spanned<f64>>,
    #[serde(default)]
    confirm_above_usd: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    headers: IndexMap<String, String>,
    #[serde(default)]
    max_in_flight: Option<usize>,
    #[serde(default)]
    model_max_in_flight: Option<usize>,
    #[serde(default)]
    requests_per_minute: Option<u32>,
    #[serde(default)]
    free_requests_per_minute: Option<u32>,
    #[serde(default)]
    timeout_s: Option<f64>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    max_retry_time_s: Option<f64>,
    #[serde(default)]
    backoff_base_ms: Option<u64>,
    #[serde(default)]
    backoff_max_s: Option<f64>,
    #[serde(default)]
    max_tokens_cap: Option<u64>,
    #[serde(default)]
    empty_retries: Option<u32>,
}

/// How many servers of the local model a run starts when its provider does not say: one per
/// CPU core, at most 4 (each holds ~200 MB).
pub fn local_servers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// An OpenAI-compatible endpoint (or the local model daydream starts), as declared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Provider {
    pub name: String,
    /// The local llama.cpp server daydream starts and stops itself.
    pub local: bool,
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub headers: Vec<(String, String)>,
    pub max_in_flight: usize,
    pub model_max_in_flight: Option<usize>,
    pub requests_per_minute: Option<u32>,
    /// Requests per minute for each `:free` model variant.
    pub free_requests_per_minute: u32,
    pub timeout_s: F64,
    pub max_attempts: u32,
    pub max_retry_time_s: F64,
    pub backoff_base_ms: u64,
    pub backoff_max_s: F64,
    /// Caps every stage's max_tokens (the local profile keeps the offline run short).
    pub max_tokens_cap: Option<u64>,
    pub empty_retries: u32,
    pub loc: Loc,
}

impl Provider {
    /// The environment variable that overrides the base URL: `<NAME>_BASE_URL`.
    pub fn base_url_env(&self) -> String {
        format!("{}_BASE_URL", self.name.to_ascii_uppercase().replace('-', "_"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// `auto` or a provider name: the provider of LLM stages that say `provider: auto`.
    pub provider: String,
    pub max_cost_usd: Option<F64>,
    /// A run whose paid calls could cost more than this (worst case) asks first (`--yes`).
    pub confirm_above_usd: F64,
}

/// The default of `settings.confirm_above_usd`: a few dollars.
pub const CONFIRM_ABOVE_USD: f64 = 5.0;

fn loc(l: &serde_saphyr::Location) -> Loc {
    Loc {
        line: l.line() as u32,
        column: l.column() as u32,
    }
}

/// Parses and validates pipeline.yaml. `exists(path)` says whether an input file is there (paths
/// relative to the project root); `file` is the name used in messages.
pub fn parse(exists: &dyn Fn(&str) -> bool, file: &str, source: &str) -> Result<Pipeline, Diag> {
    let raw: RawPipeline = serde_saphyr::from_str(source).map_err(|e| yaml_diag(file, source, &e))?;
    let mut p = Pipeline {
        file: file.to_owned(),
        source: source.to_owned(),
        settings: Settings {
            provider: "auto".into(),
            max_cost_usd: None,
            confirm_above_usd: F64(CONFIRM_ABOVE_USD),
        },
        providers: Vec::new(),
        stages: Vec::new(),
    };
    for (name, raw) in &raw.providers {
        p.providers.push(convert_provider(&p, name, raw)?);
    }
    if let Some(settings) = &raw.settings {
        if let Some(prov) = &settings.value.provider {
            check_provider_name(&p, &prov.value, loc(&prov.referenced), "settings.provider")?;
            p.settings.provider = prov.value.clone();
        }
        let dollars = |name: &str, c: &Spanned<f64>| {
            if c.value.is_finite() && c.value >= 0.0 {
                Ok(F64(c.value))
            } else {
                Err(p.diag(
                    format!("settings.{name} must be a number of dollars, at least 0"),
                    loc(&c.referenced),
                ))
            }
        };
        let max_cost = settings
            .value
            .max_cost_usd
            .as_ref()
            .map(|c| dollars("max_cost_usd", c))
            .transpose()?;
        let confirm_above = settings
            .value
            .confirm_above_usd
            .as_ref()
            .map(|c| dollars("confirm_above_usd", c))
            .transpose()?;
        p.settings.max_cost_usd = max_cost;
        if let Some(c) = confirm_above {
            p.settings.confirm_above_usd = c;
        }
    }
    if let Some(v) = &raw.version
        && v.value != 1
    {
        return Err(p
            .diag(format!("unsupported pipeline version {}", v.value), loc(&v.referenced))
            .help("this daydream reads `version: 1`"));
    }
    let mut declared: Vec<Stage> = Vec::new();
    for (name, body) in &raw.stages.value {
        declared.push(parse_stage(&p, exists, name, body)?);
    }
    if declared.is_empty() {
        return Err(p
            .diag("no stages declared", loc(&raw.stages.referenced))
            .help("declare at least one stage under `stages:`"));
    }
    // References must name declared stages; then there must be no cycle; then kinds must fit.
    for s in &declared {
        for spec in s.kind.fields() {
            let FieldType::Ref(kinds) = spec.ty else { continue };
            let target = s.str(spec.name);
            if declared.iter().any(|d| d.name == target) {
                continue;
            }
            let at = s.fields[spec.name].loc;
            let d = p.diag(
                format!(
                    "stage `{}` reads `{}: {target}`, but there is no stage named `{target}`",
                    s.name, spec.name
                ),
                at,
            );
            let candidates = declared
                .iter()
                .filter(|d| kinds.contains(&d.kind))
                .map(|d| d.name.as_str());
            return Err(match nearest(target, candidates) {
                Some(n) => d.help(format!("did you mean `{n}`?")),
                None => d.help(format!(
                    "declare a stage of kind `{}` named `{target}`",
                    kinds[0].name()
                )),
            });
        }
    }
    let declared = topo_order(&p, declared)?;
    for s in &declared {
        for spec in s.kind.fields() {
            let FieldType::Ref(kinds) = spec.ty else { continue };
            let target = s.str(spec.name);
            let t = declared.iter().find(|d| d.name == target).expect("checked above");
            if !kinds.contains(&t.kind) {
                let want: Vec<_> = kinds.iter().map(|k| k.name()).collect();
                return Err(p.diag(
                    format!(
                        "`{}: {target}` in stage `{}` must name a stage of kind {}, but `{target}` is of kind `{}`",
                        spec.name,
                        s.name,
                        want.join(" or "),
                        t.kind.name()
                    ),
                    s.fields[spec.name].loc,
                ));
            }
        }
    }
    for s in &declared {
        if let Some(f) = s.fields.get("provider") {
            check_provider_name(
                &p,
                s.str("provider"),
                f.loc,
                &format!("`provider` of stage `{}`", s.name),
            )?;
        }
    }
    p.stages = declared;
    crate::paths::check_overlaps(&p)?;
    Ok(p)
}

fn parse_stage(
    p: &Pipeline,
    exists: &dyn Fn(&str) -> bool,
    name: &Spanned<String>,
    body: &RawStage,
) -> Result<Stage, Diag> {
    let at = loc(&name.referenced);
    let stage_name = name.value.clone();
    if stage_name.is_empty()
        || !stage_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(p
            .diag(format!("invalid stage name `{stage_name}`"), at)
            .help("use letters, digits, `_` and `-`"));
    }
    let kind_entry = body.value.iter().find(|(k, _)| k.value == "kind");
    let Some((_, kind_value)) = kind_entry else {
        let kinds: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        return Err(p
            .diag(format!("stage `{stage_name}` has no `kind`"), at)
            .help(format!("add `kind:` with one of: {}", kinds.join(", "))));
    };
    let kind_loc = loc(&kind_value.referenced);
    let RawValue::Str(kind_name) = &kind_value.value else {
        return Err(p.diag(format!("`kind` of stage `{stage_name}` must be a string"), kind_loc));
    };
    let kind = Kind::from_name(kind_name).ok_or_else(|| {
        let kinds: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        let d = p.diag(
            format!("unknown stage kind `{kind_name}` in stage `{stage_name}`"),
            kind_loc,
        );
        match nearest(kind_name, kinds.iter().copied()) {
            Some(n) => d.help(format!("did you mean `{n}`? (kinds: {})", kinds.join(", "))),
            None => d.help(format!("the kinds are: {}", kinds.join(", "))),
        }
    })?;
    let specs = kind.fields();
    let mut fields = BTreeMap::new();
    for (key, value) in &body.value {
        if key.value == "kind" {
            continue;
        }
        let key_loc = loc(&key.referenced);
        let Some(spec) = specs.iter().find(|s| s.name == key.value) else {
            let names = specs.iter().map(|s| s.name);
            let d = p.diag(
                format!(
                    "unknown key `{}` in stage `{stage_name}` (kind `{}`)",
                    key.value,
                    kind.name()
                ),
                key_loc,
            );
            let all: Vec<_> = specs.iter().map(|s| s.name).collect();
            return Err(match nearest(&key.value, names) {
                Some(n) => d.help(format!("did you mean `{n}`?")),
                None => d.help(format!("a `{}` stage takes: kind, {}", kind.name(), all.join(", "))),
            });
        };
        let vloc = loc(&value.referenced);
        let v = convert(p, exists, &stage_name, spec, &value.value, vloc)?;
        fields.insert(spec.name, Field { value: v, loc: vloc });
    }
    for spec in specs {
        if fields.contains_key(spec.name) {
            continue;
        }
        let Some(default) = spec.default else {
            return Err(p
                .diag(
                    format!(
                        "stage `{stage_name}` (kind `{}`) is missing `{}`",
                        kind.name(),
                        spec.name
                    ),
                    at,
                )
                .help(format!("add `{}:` ({})", spec.name, spec.doc)));
        };
        let value = match spec.ty {
            FieldType::Int { .. } => Value::Int(default.parse().expect("integer default")),
            FieldType::Float { .. } => Value::Float(F64(default.parse().expect("float default"))),
            FieldType::Bool => Value::Bool(default == "true"),
            _ => Value::Str(default.to_owned()),
        };
        fields.insert(spec.name, Field { value, loc: at });
    }
    Ok(Stage {
        name: stage_name,
        kind,
        loc: at,
        fields,
    })
}

fn convert(
    p: &Pipeline,
    exists: &dyn Fn(&str) -> bool,
    stage: &str,
    spec: &FieldSpec,
    raw: &RawValue,
    at: Loc,
) -> Result<Value, Diag> {
    let wrong = |what: &str| {
        p.diag(format!("`{}` in stage `{stage}` must be {what}", spec.name), at)
            .help(spec.doc)
    };
    Ok(match spec.ty {
        FieldType::Int { min } => match raw {
            RawValue::Int(i) if *i >= min => Value::Int(*i),
            RawValue::Int(_) => return Err(wrong(&format!("an integer of at least {min}"))),
            _ => return Err(wrong("an integer")),
        },
        FieldType::Float { min, max } => match raw {
            RawValue::Int(i) if (min..=max).contains(&(*i as f64)) => Value::Float(F64(*i as f64)),
            RawValue::Float(x) if (min..=max).contains(x) => Value::Float(F64(*x)),
            _ => return Err(wrong(&format!("a number from {min} to {max}"))),
        },
        FieldType::Provider => match raw {
            RawValue::Str(s) => Value::Str(s.clone()),
            _ => return Err(wrong("a provider name")),
        },
        FieldType::Bool => match raw {
            RawValue::Bool(b) => Value::Bool(*b),
            _ => return Err(wrong("true or false")),
        },
        FieldType::Choice(choices) => match raw {
            RawValue::Str(s) if choices.contains(&s.as_str()) => Value::Str(s.clone()),
            RawValue::Str(s) => {
                let d = p.diag(
                    format!(
                        "`{}` in stage `{stage}` is `{s}`, expected one of: {}",
                        spec.name,
                        choices.join(", ")
                    ),
                    at,
                );
                return Err(match nearest(s, choices.iter().copied()) {
                    Some(n) => d.help(format!("did you mean `{n}`?")),
                    None => d,
                });
            }
            _ => return Err(wrong(&format!("one of: {}", choices.join(", ")))),
        },
        FieldType::File | FieldType::Dir | FieldType::Output | FieldType::OutputPattern | FieldType::Ref(_) => {
            let RawValue::Str(s) = raw else {
                return Err(wrong(if matches!(spec.ty, FieldType::Ref(_)) {
                    "a stage name"
                } else {
                    "a path"
                }));
            };
            Value::Str(check_path(p, exists, stage, spec, s, at)?)
        }
    })
}

/// Checks a declared path and returns it normalised (`./data//x` -> `data/x`); a stage name is
/// returned as it is.
fn check_path(
    p: &Pipeline,
    exists: &dyn Fn(&str) -> bool,
    stage: &str,
    spec: &FieldSpec,
    s: &str,
    at: Loc,
) -> Result<String, Diag> {
    if matches!(spec.ty, FieldType::Ref(_)) {
        return Ok(s.to_owned());
    }
    let path = Path::new(s);
    if s.is_empty()
        || path.is_absolute()
        || s.contains(char::is_control)
        || path.components().any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(p
            .diag(
                format!(
                    "`{}: {}` in stage `{stage}` must be a relative path inside the project",
                    spec.name,
                    crate::table::shown(s)
                ),
                at,
            )
            .help("write paths relative to the directory holding pipeline.yaml, without `..`"));
    }
    let s = crate::paths::normalize(s);
    let bad_output = |why: String| {
        p.diag(format!("`{}: {s}` in stage `{stage}`: {why}", spec.name), at)
            .help(spec.doc)
    };
    match spec.ty {
        FieldType::File if !exists(&s) => Err(p
            .diag(format!("input file `{s}` of stage `{stage}` does not exist"), at)
            .help(format!("create it, or point `{}` at an existing file", spec.name))),
        FieldType::Output | FieldType::OutputPattern if s == "." => {
            Err(bad_output("an output must name a file".into()))
        }
        FieldType::Output if s.contains("{id}") => Err(bad_output(
            "`{id}` means one file per task, which this output is not".into(),
        )),
        FieldType::OutputPattern if !s.contains("{id}") => Err(p
            .diag(
                format!("`{}: {s}` in stage `{stage}` must contain `{{id}}`", spec.name),
                at,
            )
            .help("one file is written per task; `{id}` is replaced by the task id")),
        FieldType::OutputPattern => match crate::paths::pattern_problem(&s) {
            Some(why) => Err(bad_output(why)),
            None => Ok(s),
        },
        _ => Ok(s),
    }
}

/// Orders stages so that each comes after the stages it reads; a cycle is an error printed as the
/// path that closes it.
fn topo_order(p: &Pipeline, declared: Vec<Stage>) -> Result<Vec<Stage>, Diag> {
    let index: BTreeMap<&str, usize> = declared.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    // 0 = unvisited, 1 = on the current path, 2 = done
    let mut state = vec![0u8; declared.len()];
    let mut order = Vec::new();
    fn visit(
        i: usize,
        declared: &[Stage],
        index: &BTreeMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<(usize, Loc)>,
        order: &mut Vec<usize>,
    ) -> Result<(), (Vec<String>, Loc)> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|(j, _)| *j == i).expect("on path");
                let mut names: Vec<String> = path[start..].iter().map(|(j, _)| declared[*j].name.clone()).collect();
                names.push(declared[i].name.clone());
                return Err((names, path.last().expect("non-empty").1));
            }
            _ => {}
        }
        state[i] = 1;
        let s = &declared[i];
        for (field, target) in s.refs() {
            let j = index[target];
            path.push((i, s.fields[field].loc));
            visit(j, declared, index, state, path, order)?;
            path.pop();
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..declared.len() {
        let mut path = Vec::new();
        if let Err((names, at)) = visit(i, &declared, &index, &mut state, &mut path, &mut order) {
            return Err(p
                .diag(format!("the stages form a cycle: {}", names.join(" -> ")), at)
                .help("a stage cannot read its own output, directly or through other stages"));
        }
    }
    let mut slots: Vec<Option<Stage>> = declared.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|i| slots[i].take().expect("each stage once"))
        .collect())
}

fn check_provider_name(p: &Pipeline, name: &str, at: Loc, what: &str) -> Result<(), Diag> {
    if name == "auto" || p.providers.iter().any(|x| x.name == name) {
        return Ok(());
    }
    let names: Vec<&str> = p.providers.iter().map(|x| x.name.as_str()).chain(["auto"]).collect();
    let d = p.diag(
        format!("{what} names `{name}`, which is not a provider declared under `providers:`"),
        at,
    );
    Err(match nearest(name, names.iter().copied()) {
        Some(n) => d.help(format!("did you mean `{n}`?")),
        None => d.help(format!("the providers are: {}", names.join(", "))),
    })
}

fn convert_provider(p: &Pipeline, name: &Spanned<String>, raw: &Spanned<RawProvider>) -> Result<Provider, Diag> {
    let at = loc(&name.referenced);
    let r = &raw.value;
    let local = match r.kind.as_deref() {
        None | Some("openai") => false,
        Some("local") => true,
        Some(other) => {
            return Err(p
                .diag(format!("provider `{}` has kind `{other}`", name.value), at)
                .help("a provider's kind is `openai` (an OpenAI-compatible URL, the default) or `local` (daydream starts a local model)"));
        }
    };
    let base_url = r.base_url.clone().unwrap_or_default();
    let is_url = base_url.starts_with("http://") || base_url.starts_with("https://");
    if !local && !is_url {
        return Err(p
            .diag(
                format!(
                    "provider `{}` needs a `base_url` starting with http:// or https://",
                    name.value
                ),
                at,
            )
            .help("for example base_url: https://openrouter.ai/api/v1"));
    }
    let positive = |v: Option<f64>, field: &str, default: f64| -> Result<F64, Diag> {
        let x = v.unwrap_or(default);
        if x.is_finite() && x > 0.0 {
            Ok(F64(x))
        } else {
            Err(p.diag(
                format!("`{field}` of provider `{}` must be a positive number", name.value),
                at,
            ))
        }
    };
    // the local model: one single-threaded server per request in flight, one per core by default
    let in_flight = r.max_in_flight.unwrap_or(if local { local_servers() } else { 16 });
    if in_flight == 0 || r.model_max_in_flight == Some(0) || r.max_attempts == Some(0) {
        return Err(p.diag(
            format!(
                "provider `{}`: max_in_flight, model_max_in_flight and max_attempts must be at least 1",
                name.value
            ),
            at,
        ));
    }
    Ok(Provider {
        name: name.value.clone(),
        local,
        base_url,
        api_key_env: r.api_key_env.clone(),
        headers: r.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        max_in_flight: in_flight,
        model_max_in_flight: r.model_max_in_flight,
        requests_per_minute: r.requests_per_minute,
        free_requests_per_minute: r.free_requests_per_minute.unwrap_or(20),
        timeout_s: positive(r.timeout_s, "timeout_s", 600.0)?,
        max_attempts: r.max_attempts.unwrap_or(5),
        max_retry_time_s: positive(r.max_retry_time_s, "max_retry_time_s", 900.0)?,
        backoff_base_ms: r.backoff_base_ms.unwrap_or(2000),
        backoff_max_s: positive(r.backoff_max_s, "backoff_max_s", 60.0)?,
        max_tokens_cap: r.max_tokens_cap,
        empty_retries: r.empty_retries.unwrap_or(2),
        loc: at,
    })
}

fn yaml_diag(file: &str, source: &str, e: &serde_saphyr::Error) -> Diag {
    let text = e.to_string();
    // serde-saphyr appends its own rendering of the location; keep only the first line of the message.
    let mut first = text
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim_start_matches("error: ");
    // drop serde-saphyr's own "line N column M: " prefix: the location is printed below
    if first.starts_with("line ")
        && let Some((_, rest)) = first.split_once(": ")
    {
        first = rest;
    }
    let first = first.to_owned();
    let mut d = Diag::new(format!("{file}: {first}")).in_file(file);
    if let Some(l) = e.location() {
        d = d.at(Some(source), l.line() as u32, l.column() as u32);
    }
    if let Some(field) = first.split('`').nth(1).filter(|_| first.contains("unknown field")) {
        // serde says "expected one of a, b, c" (or "expected `a`"): suggest the nearest
        let expected: Vec<String> = first
            .split_once("expected ")
            .map(|(_, rest)| {
                rest.trim_start_matches("one of ")
                    .split(", ")
                    .map(|w| w.trim_matches('`').to_owned())
                    .collect()
            })
            .unwrap_or_else(|| TOP_KEYS.iter().map(|s| s.to_string()).collect());
        d = match nearest(field, expected.iter().map(String::as_str)) {
            Some(n) => d.help(format!("did you mean `{n}`?")),
            None => d.help(format!("the valid keys here are: {}", expected.join(", "))),
        };
    }
    d
}
