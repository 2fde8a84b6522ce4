//! The `zapfn` command line and the embedded system it runs: every function in
//! one process, plus the Graph API sandbox when no access token is set.

pub mod dev;
pub mod replay;
