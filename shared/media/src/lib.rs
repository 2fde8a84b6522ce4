//! WhatsApp media rules shared by the functions that fetch, store, serve and send media:
//!
//! - [`MediaKind`]: Meta's per-type size limits and accepted MIME types;
//! - [`sniff()`]: what a file really is, from its first bytes;
//! - [`check()`]: a file against its kind and declared type (size, MIME, content);
//! - [`safe_filename`]: a customer's file name made safe to store and show;
//! - [`checksum`]: SHA-256 as Meta writes it (hex or base64);
//! - [`link`]: fetching media links without reaching private addresses (SSRF guard);
//! - [`outbound`]: the media objects of a send body that zapfn uploads itself.

pub mod check;
pub mod checksum;
pub mod filename;
pub mod kind;
pub mod link;
pub mod outbound;
pub mod sniff;

pub use check::{check, Checked, Refusal};
pub use filename::safe_filename;
pub use kind::MediaKind;
pub use sniff::{sniff, Sniffed};
