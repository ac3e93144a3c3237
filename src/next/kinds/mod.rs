//! Every stage kind, registered in one place.

use crate::next::engine::spec::Registry;

pub fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| Registry { kinds: vec![] })
}
