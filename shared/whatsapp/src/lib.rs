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

/// A phone number as Meta's `wa_id`: its digits only (no `+`, spaces or dashes).
pub fn wa_id(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}
