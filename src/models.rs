//! The `models` stage: `llm_models.csv` (spec 2.2, 4.2). No filtering here; the task stages pick
//! rows by `for_generation` / `for_evaluation`.

use crate::diag::Diag;
use crate::table::Table;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Model {
    /// Short id used in task ids and file names.
    pub id: String,
    /// The provider's model name, sent to the API.
    pub model: String,
    pub for_generation: bool,
    pub for_evaluation: bool,
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
    let (gen_flags, eval_flags) = (t.bool_column(fg), t.bool_column(fe));
    let mut models: Vec<Model> = Vec::new();
    for (i, row) in t.rows.iter().enumerate() {
        let m = Model {
            id: t.non_empty(row, id)?.to_owned(),
            model: t.get(row, model).trim().to_owned(),
            for_generation: gen_flags[i],
            for_evaluation: eval_flags[i],
        };
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
