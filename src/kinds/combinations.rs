//! `combinations` (DayDreaming): every k_max-combination of the active concepts, in
//! `itertools.combinations` order, with the seed's stable `combo_v1_<12 hex>` ids; the
//! append-only registry of every combination ever made (a ledger); and the `combo_id,concept_id`
//! table. Rows: `combo_id`, `concept_ids`; lookups may `take: concepts`, the combination's
//! concepts (`name` and `content` at the chosen level) for templates.

use std::sync::Arc;

use anyhow::Result;

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, opt, req};
use crate::engine::keys::{Input, Manifest};
use crate::engine::kind::{
    Artifact, Computed, Data, Decl, Field, Kind, Planned, Ref, Shape, Stage, Value, Work, value_hash,
};
use crate::engine::rows::{Column, Rows};
use crate::engine::yaml::Loc;
use crate::seed::combos::{self, Combos};
use crate::seed::concepts::Concepts;
use crate::seed::concepts::LEVELS;

pub struct CombinationsKind;

const FIELDS: &[FieldDoc] = &[
    req("concepts", FieldType::Stage, "the concepts stage"),
    req(
        "k_max",
        FieldType::Int { min: 1 },
        "concepts per combination (exactly k_max, as the seed)",
    ),
    opt(
        "description_level",
        FieldType::Choice(LEVELS),
        "paragraph",
        "sentence, paragraph or article; fallback: level, paragraph, sentence, name",
    ),
    req(
        "registry",
        FieldType::Output,
        "the append-only combo id registry (combo_mappings.csv): a ledger, kept by `clean`",
    ),
    req("output", FieldType::Output, "the combo_id,concept_id table"),
];

#[derive(Debug, PartialEq)]
pub struct CombinationsStage {
    concepts: Ref,
    k_max: (usize, Loc),
    level: &'static str,
    registry: Decl,
    output: Decl,
}

impl Kind for CombinationsKind {
    fn name(&self) -> &'static str {
        "combinations"
    }

    fn about(&self) -> &'static str {
        "DayDreaming: every k_max-combination of the concepts, with stable ids and an append-only registry"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let concepts = f.stage_ref("concepts", Shape::Of("concepts"))?;
        let k = f.int("k_max", 1, None)?;
        Ok(Arc::new(CombinationsStage {
            concepts,
            k_max: (k.value as usize, k.loc),
            level: f.choice("description_level", LEVELS, "paragraph")?,
            registry: f.output_file("registry")?,
            output: f.output_file("output")?,
        }))
    }
}

impl Stage for CombinationsStage {
    fn refs(&self) -> Vec<Ref> {
        vec![self.concepts.clone()]
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Rows, Shape::Table]
    }

    fn outputs(&self) -> Vec<Decl> {
        vec![self.registry.clone(), self.output.clone()]
    }

    fn kept_by_clean(&self) -> Vec<String> {
        vec![self.registry.path.clone()]
    }

    fn table(&self) -> Option<(String, Vec<String>)> {
        Some((self.output.path.clone(), vec!["combo_id".into(), "concept_id".into()]))
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        let up = cx.upstream(&self.concepts.stage)?;
        let concepts: &Concepts = up.data().expect("a concepts stage holds concepts");
        let (k, loc) = self.k_max;
        let c = combos::build(concepts, k, self.level, |m| cx.diag(m, loc))?;
        let ids: Vec<String> = c
            .combos
            .iter()
            .map(|x| {
                x.members
                    .iter()
                    .map(|&m| c.concepts[m as usize].id.as_str())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        let rows = Rows::new(
            vec!["combo_id".into(), "concept_ids".into()],
            vec![
                Column::from_texts(c.combos.iter().map(|x| x.id.as_str())),
                Column::from_texts(ids.iter().map(String::as_str)),
            ],
            c.combos.iter().map(|x| Arc::from(x.id.as_str())).collect(),
        );
        Ok(Value {
            rows: Some(Arc::new(rows)),
            summary: c.summary(),
            data: Some(Data::new(CombosValue::new(c))),
        })
    }

    fn field(&self, value: &Value, row: usize, name: &str) -> Option<Field> {
        if name != "concepts" {
            return None;
        }
        let v: &CombosValue = value.data()?;
        let combo = v.combos.combos.get(row)?;
        let mut items = Vec::with_capacity(combo.members.len());
        let mut inputs = Vec::with_capacity(2 * combo.members.len());
        for &m in &combo.members {
            let (item, of) = &v.concepts[m as usize];
            items.push(item.clone());
            inputs.extend(of.iter().cloned());
        }
        Some(Field {
            value: minijinja::Value::from(items),
            inputs,
        })
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let c = &cx.value.data::<CombosValue>().expect("combinations").combos;
        let head = |what: &str, hash| {
            Manifest::new("combinations")
                .param("table", what)
                .param("k_max", c.k_max)
                .param("description_level", &c.level)
                .input(Input {
                    name: "combinations".into(),
                    path: None,
                    hash,
                })
        };
        let ids: Vec<&String> = c.concepts.iter().map(|r| &r.id).collect();
        let registry = head("registry", value_hash(&c.combos));
        let table = head("table", value_hash(&(&ids, &c.combos)));
        let artifact = |path: &str, work, m: Manifest| Artifact {
            path: path.to_owned(),
            task: None,
            key: m.key(),
            work,
            materialize: true,
            group: None,
            manifest: Some(Arc::new(m)),
        };
        Ok(Planned {
            artifacts: vec![
                artifact(&self.registry.path, Work::Merge(0), registry),
                artifact(&self.output.path, Work::Compute(1), table),
            ],
            ..Default::default()
        })
    }

    fn compute(&self, cx: &mut ComputeCx, _a: &Artifact) -> Result<Computed> {
        let c = &cx.value.data::<CombosValue>().expect("combinations").combos;
        Ok(Computed::of(c.csv.as_bytes()))
    }

    fn merge(&self, cx: &mut ComputeCx, a: &Artifact, existing: Option<&str>) -> Result<Option<String>> {
        let c = &cx.value.data::<CombosValue>().expect("combinations").combos;
        let new = combos::extend_registry(&a.path, existing, c, &crate::engine::clock::now_local_seconds())?;
        Ok(new.or_else(|| existing.map(str::to_owned)))
    }
}

/// The combinations, with what a lookup of `concepts` gives for each concept (its object for
/// the template, its key inputs) made once, not once per prompt.
#[derive(Debug)]
struct CombosValue {
    combos: Combos,
    concepts: Vec<(minijinja::Value, [Input; 2])>,
}

impl CombosValue {
    fn new(combos: Combos) -> CombosValue {
        let concepts = combos
            .concepts
            .iter()
            .map(|r| {
                let mut obj = std::collections::BTreeMap::new();
                obj.insert("name", minijinja::Value::from(r.name.clone()));
                obj.insert("content", minijinja::Value::from(r.content.clone()));
                let inputs = [
                    Input {
                        name: format!("concept:{}.name", r.id),
                        path: Some(combos.metadata_path.clone()),
                        hash: r.name_hash,
                    },
                    Input {
                        name: format!("concept:{}.content", r.id),
                        path: Some(r.source.clone()),
                        hash: r.content_hash,
                    },
                ];
                (minijinja::Value::from(obj), inputs)
            })
            .collect();
        CombosValue { combos, concepts }
    }
}

/// Equal when the combinations are: the rest is made from them.
impl PartialEq for CombosValue {
    fn eq(&self, o: &CombosValue) -> bool {
        self.combos == o.combos
    }
}
