//! Prompt rendering with minijinja, configured to produce byte-identical output to the seed's
//! default `jinja2.Environment()`: template text stripped first, no autoescape, no
//! trim_blocks/lstrip_blocks, the final newline of the source dropped (Jinja2's
//! keep_trailing_newline=False).
//!
//! An undefined variable is an error naming the template, line and expression, unless the stage
//! asks for the seed's lenient behaviour (undefined renders as empty).

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::engine::diag::Diag;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Undefined {
    Strict,
    Lenient,
}

impl Undefined {
    pub fn name(self) -> &'static str {
        match self {
            Undefined::Strict => "strict",
            Undefined::Lenient => "lenient",
        }
    }

    pub fn from_name(s: &str) -> Undefined {
        if s == "lenient" {
            Undefined::Lenient
        } else {
            Undefined::Strict
        }
    }
}

/// The start of every prompt's manifest: its kind, how undefined variables render, the template.
pub fn template_manifest(
    kind: &str,
    undefined: Undefined,
    template_path: &str,
    template_hash: crate::engine::keys::Hash,
) -> crate::engine::keys::Manifest {
    crate::engine::keys::Manifest::new(kind)
        .param("undefined", undefined.name())
        .input(crate::engine::keys::Input {
            name: "template".into(),
            path: Some(template_path.to_owned()),
            hash: template_hash,
        })
}

/// Compiles each template once and renders it many times.
pub struct Renderer {
    env: Environment<'static>,
    loaded: HashMap<String, ()>,
}

impl Renderer {
    pub fn new(undefined: Undefined) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(match undefined {
            Undefined::Strict => UndefinedBehavior::Strict,
            Undefined::Lenient => UndefinedBehavior::Lenient,
        });
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        Renderer {
            env,
            loaded: HashMap::new(),
        }
    }

    /// Checks a template's syntax. `text` is the stripped template source; `path` names it in errors.
    pub fn load(&mut self, path: &str, text: &str) -> Result<(), Diag> {
        if self.loaded.contains_key(path) {
            return Ok(());
        }
        self.env
            .add_template_owned(path.to_owned(), text.to_owned())
            .map_err(|e| template_diag(path, text, &e))?;
        self.loaded.insert(path.to_owned(), ());
        Ok(())
    }

    /// The variables a loaded template reads from its context (without includes).
    pub fn variables(&self, path: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .env
            .get_template(path)
            .map(|t| t.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Renders a loaded template with `vars`.
    pub fn render(&self, path: &str, text: &str, vars: Value) -> Result<String, Diag> {
        let t = self.env.get_template(path).map_err(|e| template_diag(path, text, &e))?;
        t.render(vars).map_err(|e| template_diag(path, text, &e))
    }
}

/// The `concepts` variable of a generation template: a list of `{name, content}` in CSV order.
pub fn concepts_value(concepts: &[(Arc<str>, Arc<str>)]) -> Value {
    let items: Vec<Value> = concepts
        .iter()
        .map(|(name, content)| {
            let mut m = std::collections::BTreeMap::new();
            m.insert("name", Value::from(name.clone()));
            m.insert("content", Value::from(content.clone()));
            Value::from(m)
        })
        .collect();
    minijinja::context! { concepts => Value::from(items) }
}

fn template_diag(path: &str, text: &str, e: &minijinja::Error) -> Diag {
    let line = e.line().map(|l| l as u32);
    let expr = e.range().and_then(|r| text.get(r)).map(str::trim);
    let (message, help) = match e.kind() {
        ErrorKind::UndefinedError => (
            match expr {
                Some(x) => format!("undefined variable `{x}` in template {path}"),
                None => format!("undefined variable in template {path}"),
            },
            "generation templates receive `concepts` (items with `name` and `content`), evaluation templates \
             `response`; fix the template, or set `undefined: lenient` on the stage to render it empty as the seed did",
        ),
        ErrorKind::SyntaxError => (
            format!(
                "syntax error in template {path}: {}",
                e.detail().unwrap_or("invalid syntax")
            ),
            "fix the Jinja syntax at this line",
        ),
        _ => (
            format!(
                "cannot render template {path}: {}",
                e.detail().unwrap_or(&e.to_string())
            ),
            "fix the template",
        ),
    };
    let d = Diag::new(message).in_file(path).help(help);
    match line {
        Some(l) => d.at(Some(text), l, 1),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(undefined: Undefined, src: &str, concepts: &[(&str, &str)]) -> Result<String, Diag> {
        let mut r = Renderer::new(undefined);
        r.load("t.txt", src)?;
        let c: Vec<_> = concepts.iter().map(|(a, b)| (Arc::from(*a), Arc::from(*b))).collect();
        r.render("t.txt", src, concepts_value(&c))
    }

    #[test]
    fn loop_whitespace_is_jinja2s() {
        // no trim_blocks: the newline after a block tag is kept
        let src =
            "Concepts:\n{% for concept in concepts %}\n{{ concept.name }}: {{ concept.content }};\n{% endfor %}\nEnd";
        let out = render(Undefined::Strict, src, &[("A", "a"), ("B", "b")]).unwrap();
        assert_eq!(out, "Concepts:\n\nA: a;\n\nB: b;\n\nEnd");
        assert_eq!(
            render(
                Undefined::Strict,
                "Concepts: {% for c in concepts %}{{ c.name }}{% endfor %}",
                &[]
            )
            .unwrap(),
            "Concepts: "
        );
    }

    #[test]
    fn no_autoescape() {
        assert_eq!(
            render(
                Undefined::Strict,
                "{% for c in concepts %}{{ c.content }}{% endfor %}",
                &[("x", "<a> & \"b\"")]
            )
            .unwrap(),
            "<a> & \"b\""
        );
    }

    #[test]
    fn undefined_is_an_error_naming_line_and_variable_or_empty_when_lenient() {
        let src = "Hi\n{% for concept in concepts %}{{ concept.concept_id }}{% endfor %}";
        let e = render(Undefined::Strict, src, &[("A", "a")]).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("concept.concept_id"), "{}", e.message);
        assert!(e.message.contains("t.txt"), "{}", e.message);
        assert_eq!(render(Undefined::Lenient, src, &[("A", "a")]).unwrap(), "Hi\n");
        let e = render(Undefined::Strict, "{{ nope }}", &[]).unwrap_err();
        assert!(e.message.contains("`nope`"), "{}", e.message);
    }

    #[test]
    fn syntax_error_names_the_line() {
        let e = render(Undefined::Strict, "ok\n{% for x in %}", &[]).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("syntax error in template t.txt"), "{}", e.message);
    }
}
