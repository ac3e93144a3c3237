//! `daydream schema`: the JSON Schema of `pipeline.yaml`, made from the kinds' own field lists,
//! so it can never disagree with what the kinds accept. Editors that read
//! `# yaml-language-server: $schema=<file>` complete and check pipelines with it.

use serde_json::{Map, Value, json};

use crate::engine::fields::{FieldDoc, FieldType};
use crate::engine::spec::{CONFIRM_ABOVE_USD, KEEP_VERSIONS, Registry, VERSION};

fn field_schema(f: &FieldDoc) -> Value {
    let mut s = match f.ty {
        FieldType::Str | FieldType::Provider => json!({"type": "string"}),
        FieldType::File | FieldType::Dir | FieldType::Output => json!({"type": "string", "format": "path"}),
        FieldType::Pattern => json!({"type": "string", "pattern": "\\{id\\}"}),
        FieldType::FilePattern => json!({"type": "string"}),
        FieldType::Stage => json!({"type": "string", "format": "stage name"}),
        FieldType::Int { min } => json!({"type": "integer", "minimum": min}),
        FieldType::Num { min, max } => json!({"type": "number", "minimum": min, "maximum": max}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Choice(c) => json!({"enum": c}),
        FieldType::Map => json!({"type": "object"}),
        FieldType::List => json!({"type": ["array", "string"]}),
        FieldType::StrOrMap => json!({"type": ["string", "object"]}),
    };
    let o = s.as_object_mut().expect("an object");
    o.insert("description".into(), Value::from(f.doc));
    if let Some(d) = f.default {
        let v = match f.ty {
            FieldType::Int { .. } => d.parse::<i64>().map(Value::from).unwrap_or(Value::from(d)),
            FieldType::Num { .. } => d.parse::<f64>().map(Value::from).unwrap_or(Value::from(d)),
            FieldType::Bool => Value::from(d == "true"),
            _ => Value::from(d),
        };
        o.insert("default".into(), v);
    }
    s
}

/// The schema, as pretty JSON.
pub fn schema(registry: &Registry) -> String {
    let kinds: Vec<Value> = registry
        .kinds
        .iter()
        .map(|k| {
            let mut props = Map::new();
            props.insert("kind".into(), json!({"const": k.name(), "description": k.about()}));
            let mut required = vec![Value::from("kind")];
            for f in k.fields() {
                props.insert(f.name.into(), field_schema(f));
                if f.required {
                    required.push(Value::from(f.name));
                }
            }
            json!({
                "title": k.name(),
                "description": k.about(),
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": false,
            })
        })
        .collect();
    let provider = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "kind": {"enum": ["openai", "local"], "default": "openai", "description": "an OpenAI-compatible URL, or the local model daydream starts"},
            "base_url": {"type": "string", "description": "e.g. https://openrouter.ai/api/v1; <NAME>_BASE_URL overrides it"},
            "api_key_env": {"type": "string", "description": "the name of the environment variable holding the key"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "max_in_flight": {"type": "integer", "minimum": 1},
            "model_max_in_flight": {"type": "integer", "minimum": 1},
            "requests_per_minute": {"type": "integer", "minimum": 1},
            "free_requests_per_minute": {"type": "integer", "minimum": 1},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0},
            "max_attempts": {"type": "integer", "minimum": 1},
            "max_retry_time_s": {"type": "number", "exclusiveMinimum": 0},
            "backoff_base_ms": {"type": "integer", "minimum": 0},
            "backoff_max_s": {"type": "number", "exclusiveMinimum": 0},
            "max_tokens_cap": {"type": "integer", "minimum": 1},
            "empty_retries": {"type": "integer", "minimum": 0}
        }
    });
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "daydream pipeline.yaml",
        "description": "A daydream pipeline: settings, providers, cache and stages (docs/pipeline.md).",
        "type": "object",
        "required": ["version", "stages"],
        "additionalProperties": false,
        "properties": {
            "version": {"const": VERSION},
            "settings": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "provider": {"type": "string", "default": "auto", "description": "`auto` or a provider name"},
                    "max_cost_usd": {"type": "number", "minimum": 0, "description": "a budget per run (also --max-cost)"},
                    "confirm_above_usd": {"type": "number", "minimum": 0, "default": CONFIRM_ABOVE_USD, "description": "a run whose paid calls could cost more asks first (or give --yes)"}
                }
            },
            "providers": {"type": "object", "additionalProperties": provider},
            "cache": {
                "type": "object",
                "additionalProperties": false,
                "description": "where answers are shared (README: Working as a team), and how much history `daydream gc` keeps",
                "properties": {
                    "remote": {
                        "description": "the remote answer cache: s3://BUCKET/PREFIX[?endpoint=URL&region=NAME&addressing=path|virtual&timeout=S] or file:///SHARED/DIR (DAYDREAM_REMOTE overrides; credentials come from the AWS environment)",
                        "oneOf": [
                            {"type": "string", "pattern": "^(s3|file)://"},
                            {
                                "type": "object",
                                "required": ["url"],
                                "additionalProperties": false,
                                "properties": {
                                    "url": {"type": "string", "pattern": "^(s3|file)://"},
                                    "endpoint": {"type": "string"},
                                    "region": {"type": "string"},
                                    "addressing": {"enum": ["path", "virtual"]},
                                    "allow_http": {"type": "boolean"},
                                    "timeout": {"type": "number", "exclusiveMinimum": 0},
                                    "connect_timeout": {"type": "number", "exclusiveMinimum": 0},
                                    "retries": {"type": "integer", "minimum": 0, "maximum": 10}
                                }
                            }
                        ]
                    },
                    "keep_versions": {"type": "integer", "minimum": 0, "maximum": 1000, "default": KEEP_VERSIONS, "description": "earlier versions of each output `daydream gc` keeps"}
                }
            },
            "stages": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
                "additionalProperties": {"oneOf": kinds}
            }
        }
    });
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}
