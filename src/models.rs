//! The `models` stage: `llm_models.csv` (spec 2.2, 4.2). No filtering here; the task stages pick
//! rows by `for_generation` / `for_evaluation`.

use crate::diag::Diag;
use crate::spec::F64;
use crate::table::Table;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Model {
    /// Short id used in task ids and file names.
    pub id: String,
    /// The provider's model name, sent to the API.
    pub model: String,
    pub for_generation: bool,
    pub for_evaluation: bool,
    /// USD per million tokens (input, output), from the optional columns
    /// `input_usd_per_mtok` and `output_usd_per_mtok`.
    pub price: Option<(F64, F64)>,
    /// The most tokens a prompt can have, from the optional column `context_tokens`.
    pub context_tokens: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Models {
    pub path: String,
    pub models: Vec<Model>,
}

impl Models {
    pub fn generation(&self) -> impl Iterator<Item = (usize, &Model)> {
        self.models.iter().enumerate().filter(|(_, m)| m.for_generation)
    }

    pub fn evaluation(&self) -> impl Iterator<Item = (usize, &Model)> {
        self.models.iter().enumerate().filter(|(_, m)| m.for_evaluation)
    }

    /// The context length of a model by its API name, when the table gives it.
    pub fn context_of(&self, api_name: &str) -> Option<u64> {
        self.models
            .iter()
            .find(|m| m.model == api_name)
            .and_then(|m| m.context_tokens)
    }

    /// The price of a model by its API name.
    pub fn price_of(&self, api_name: &str) -> Option<(f64, f64)> {
        self.models
            .iter()
            .find(|m| m.model == api_name)
            .and_then(|m| m.price)
            .map(|(i, o)| (i.0, o.0))
    }

    pub fn summary(&self) -> String {
        format!(
            "{} generation, {} evaluation models",
            self.generation().count(),
            self.evaluation().count()
        )
    }
}

pub fn load(path: &str, text: &str) -> Result<Models, Diag> {
    let t = Table::parse(path, text)?;
    let (id, model, fg, fe) = (
        t.require("id")?,
        t.require("model")?,
        t.require("for_generation")?,
        t.require("for_evaluation")?,
    );
    let (pin, pout) = (t.column("input_usd_per_mtok"), t.column("output_usd_per_mtok"));
    let context = t.column("context_tokens");
    let mut models: Vec<Model> = Vec::new();
    for row in &t.rows {
        let mut m = Model {
            id: t.id(text, row, id)?.to_owned(),
            model: t.get(row, model).trim().to_owned(),
            for_generation: t.bool_cell(text, row, fg)?,
            for_evaluation: t.bool_cell(text, row, fe)?,
            price: None,
            context_tokens: None,
        };
        // the provider's name (`deepseek/deepseek-r1:free`) is never a path, only sent to the API
        if m.model.contains(char::is_control) {
            return Err(t
                .cell_diag(
                    text,
                    row,
                    model,
                    format_args!("model name {} holds a control character", crate::table::shown(&m.model)),
                )
                .help("write the provider's model name on one line, e.g. google/gemini-2.5-flash"));
        }
        if let (Some(pi), Some(po)) = (pin, pout) {
            let parse = |c: usize| -> Result<Option<f64>, Diag> {
                let v = t.get(row, c).trim();
                if v.is_empty() {
                    return Ok(None);
                }
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .map(Some)
                    .ok_or_else(|| {
                        Diag::new(format!(
                            "`{}` of model `{}` in {path} line {} is `{v}`, not a price",
                            t.headers[c], m.id, row.line
                        ))
                        .in_file(path)
                        .at(Some(text), row.line, 1)
                        .help("prices are USD per million tokens, e.g. 0.30; leave the cell empty when unknown")
                    })
            };
            if let (Some(i), Some(o)) = (parse(pi)?, parse(po)?) {
                m.price = Some((F64(i), F64(o)));
            }
        }
        if let Some(c) = context {
            let v = t.get(row, c).trim();
            if !v.is_empty() {
                m.context_tokens = Some(v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Diag::new(format!(
                        "`context_tokens` of model `{}` in {path} line {} is `{v}`, not a number of tokens",
                        m.id, row.line
                    ))
                    .in_file(path)
                    .at(Some(text), row.line, 1)
                    .help("give the model's context length in tokens, e.g. 163840; leave the cell empty when unknown")
                })?);
            }
        }
        if (m.for_generation || m.for_evaluation) && m.model.is_empty() {
            return Err(Diag::new(format!(
                "model `{}` in {path} line {} is selected but has no `model` name",
                m.id, row.line
            ))
            .in_file(path)
            .at(Some(text), row.line, 1)
            .help("fill in the provider's model name, e.g. google/gemini-2.5-flash"));
        }
        if models.iter().any(|x| x.id == m.id) {
            return Err(
                Diag::new(format!("duplicate model id `{}` in {path} line {}", m.id, row.line))
                    .in_file(path)
                    .at(Some(text), row.line, 1),
            );
        }
        models.push(m);
    }
    Ok(Models {
        path: path.to_owned(),
        models,
    })
}
