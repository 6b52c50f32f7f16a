//! The AI service (`/api`): sources, knowledge bases, agents and runs, over
//! the `ai` schema. So far: the document pipeline's building blocks.

pub mod chunking;
pub mod extract;
pub mod fixtures;
