//! Selectors choose one candidate per interval, through one interface ([`Selector`]):
//!
//! - [`model`]: ranks by predicted reward corrected by retrieved episodes (the default, and the
//!   fallback of every other selector);
//! - [`llm`]: asks a chat model, with the `model` selector's pick as a hint and as its
//!   fallback;
//! - [`explore`]: not a selector but what may overrule one, forced exploration within the safe
//!   set at a decaying rate.

pub mod explore;
pub mod llm;
pub mod model;

pub use explore::Explorer;
pub use model::ModelSelector;

use crate::policy::PipelineState;

use super::candidates::Candidates;
use super::store::{Episode, Source};

/// Everything a selector may look at.
#[derive(Debug, Clone, Copy)]
pub struct SelectionInput<'a> {
    pub state: &'a PipelineState,
    /// The state's normalised feature vector (for similarity to past episodes only: its
    /// encoding is [`super::features::feature_vector`]'s business).
    pub features: &'a [f64],
    /// Utilisation of each stage's current allocation under the planned demand
    /// (`λ·E[S]/capacity`, not clamped), in pipeline order.
    pub utilisation: &'a [f64],
    pub candidates: &'a Candidates,
    /// Predicted reward per candidate, in candidate index order.
    pub predicted_reward: &'a [f64],
    /// Whether each candidate passes the validator now, in candidate index order.
    pub safe: &'a [bool],
    /// The model's bottleneck estimate.
    pub bottleneck: usize,
    /// Retrieved episodes, best first.
    pub episodes: &'a [&'a Episode],
    /// Retrieval similarity bandwidth (for kernel weights).
    pub bandwidth: f64,
}

impl SelectionInput<'_> {
    /// Indices of the candidates a selector may offer or choose: hold (changing nothing is
    /// always possible) and every move the validator accepts now.
    pub fn offerable(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.candidates.len()).filter(|&i| Candidates::is_hold(i) || self.safe[i])
    }
}

/// A selector's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Index into the candidates ([`Candidates`] order: 0 is hold).
    pub index: usize,
    pub bottleneck: Option<usize>,
    pub rationale: String,
    pub source: Source,
}

/// One interface for every selector. What a selector measures about itself (the LLM's call
/// statistics) is its own type's business, not the interface's.
pub trait Selector: Send + std::fmt::Debug {
    fn name(&self) -> &'static str;
    fn select(&mut self, input: &SelectionInput<'_>) -> Selection;
}
