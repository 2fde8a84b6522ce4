//! WhatsApp Cloud API types shared by every zapfn function: webhook parsing,
//! signature checks, send-request validation, Meta's error codes and the
//! Graph API client.

pub mod builders;
pub mod errors;
pub mod graph;
pub mod send;
pub mod signature;
pub mod status;
pub mod webhook;
