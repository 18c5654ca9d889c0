//! Background work: the durable job queue (`queue`), its workers per lane, and the media
//! pipeline they run (`media`).

pub(crate) mod media;
pub(crate) mod queue;
pub(crate) mod region_move;

pub use queue::Jobs;
