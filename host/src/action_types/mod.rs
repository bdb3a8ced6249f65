//! Action types: the YAML DSL ([`dsl`]), the registry of definitions
//! ([`registry`]), the templates of generic handlers ([`template`]), the
//! action factory every action is instantiated through ([`factory`]), and
//! the mapping from a type to the handler entry that runs it ([`mapping`]).
//!
//! Invariants: no action exists that did not pass [`ActionFactory`]; an
//! action records the action-type version it was instantiated with; a
//! definition with any error is never registered.

pub mod dsl;
pub mod factory;
pub mod live;
pub mod mapping;
pub mod registry;
pub mod template;

pub use dsl::{ActionType, DefinitionError, DefinitionErrors};
pub use factory::{
    ActionFactory, FactoryError, InstantiatedAction, NewAction, check_parameters, declares_defaults,
};
pub use live::LiveTypes;
pub use mapping::{HandlerMapper, MappingError};
pub use registry::{ActionTypeDirs, ActionTypeRegistry, LookupError, TypeSource};
