//! `X-Hub-Signature-256` checks on any secret, body and header: never a panic,
//! the right signature always passes, a changed one never does.
//!
//! Input: `[mode][secret length][secret][body]`. Mode 0 checks the body's own
//! signature, 1 the same with one hex digit changed, 2 the body's first 80
//! bytes as the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zapfn_whatsapp::signature::{sign, verify};

fuzz_target!(|data: &[u8]| {
    let [mode, secret_len, rest @ ..] = data else {
        return;
    };
    let (secret, body) = rest.split_at((*secret_len as usize).min(rest.len()));
    let header = sign(secret, body);
    match mode % 3 {
        0 => assert_eq!(verify(secret, body, Some(header.as_bytes())), Ok(())),
        1 => {
            let mut forged = header.into_bytes();
            let at = 7 + (*secret_len as usize % 64);
            forged[at] = if forged[at] == b'a' { b'b' } else { b'a' };
            assert!(verify(secret, body, Some(&forged)).is_err());
        }
        _ => {
            let raw = &body[..body.len().min(80)];
            if verify(secret, body, Some(raw)).is_ok() {
                assert!(raw.eq_ignore_ascii_case(header.as_bytes()));
            }
        }
    }
});
