//! `concepts` (DayDreaming): the active concepts of a metadata CSV, each with its descriptions
//! at the levels `sentence`, `paragraph` and `article` read from `descriptions-<level>/<id>.txt`.
//! Rows: `concept_id`, `name`.

use std::sync::Arc;

use crate::engine::cx::{PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, req};
use crate::engine::kind::{Decl, Kind, Planned, Ref, Shape, Stage, Value};
use crate::engine::rows::{Column, Rows};
use crate::engine::table::Table;
use crate::seed::concepts::{self, Concepts};

pub struct ConceptsKind;

const FIELDS: &[FieldDoc] = &[
    req(
        "metadata",
        FieldType::File,
        "CSV with concept_id,name[,active]; only active rows are used (all when there is no `active` column)",
    ),
    req(
        "descriptions",
        FieldType::Dir,
        "directory holding descriptions-<level>/<concept_id>.txt (a missing level directory is fine)",
    ),
];

#[derive(Debug, PartialEq)]
pub struct ConceptsStage {
    metadata: Decl,
    descriptions: Decl,
}

impl Kind for ConceptsKind {
    fn name(&self) -> &'static str {
        "concepts"
    }

    fn about(&self) -> &'static str {
        "DayDreaming: active concepts with their descriptions at each level"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        Ok(Arc::new(ConceptsStage {
            metadata: f.input_file("metadata")?,
            descriptions: f.input_dir("descriptions")?,
        }))
    }
}

impl Stage for ConceptsStage {
    fn refs(&self) -> Vec<Ref> {
        Vec::new()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Rows, Shape::Of("concepts")]
    }

    /// The metadata and the level directories (not all of `descriptions`: an output may sit beside
    /// them).
    fn inputs(&self) -> Vec<Decl> {
        let mut v = vec![self.metadata.clone()];
        v.extend(concepts::LEVELS.iter().map(|l| Decl {
            path: crate::engine::paths::normalize(&format!("{}/descriptions-{l}", self.descriptions.path)),
            ..self.descriptions.clone()
        }));
        v
    }

    fn outputs(&self) -> Vec<Decl> {
        Vec::new()
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        let path = &self.metadata.path;
        let text = cx.require_text(path, "concepts metadata")?;
        // ids become file names: check them, with their place, before any is used
        let t = Table::parse(path, &text)?;
        let id_col = t.require("concept_id")?;
        for row in &t.rows {
            t.id(&text, row, id_col)?;
        }
        let c: Concepts = concepts::load(path, &text, &self.descriptions.path, |p| cx.text(p))?;
        let rows = Rows::new(
            vec!["concept_id".into(), "name".into()],
            vec![
                Column::from_texts(c.concepts.iter().map(|c| c.id.as_str())),
                Column::from_texts(c.concepts.iter().map(|c| c.name.as_str())),
            ],
            c.concepts.iter().map(|c| Arc::from(c.id.as_str())).collect(),
        );
        Ok(Value {
            rows: Some(Arc::new(rows)),
            summary: c.summary(),
            data: Some(crate::engine::kind::Data::new(c)),
        })
    }

    fn plan(&self, _cx: &PlanCx) -> Result<Planned, Diag> {
        Ok(Planned::default())
    }
}
