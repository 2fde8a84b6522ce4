//! Replays the committed fuzz corpora (`fuzz/corpus/`, seeded from `fixtures/`
//! and grown by `make fuzz`) through the same checks as the fuzz targets, so
//! every input fuzzing kept — and every crash input added as `regression-*` —
//! runs on each `cargo test` without libFuzzer.

use std::path::PathBuf;

use zapfn_whatsapp::signature::{sign, verify};
use zapfn_whatsapp::{send, webhook};

/// Every file of `fuzz/corpus/<target>`.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
        .into_iter()
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

#[test]
fn webhook_corpus_parses_json_and_refuses_the_rest() {
    for (name, body) in corpus("webhook_parse") {
        let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        assert_eq!(webhook::parse(&body).is_ok(), is_json, "{name}");
    }
}

#[test]
fn signature_corpus_verifies_its_own_signatures_only() {
    for (name, data) in corpus("signature") {
        let [mode, secret_len, rest @ ..] = data.as_slice() else {
            continue;
        };
        let (secret, body) = rest.split_at((*secret_len as usize).min(rest.len()));
        let header = sign(secret, body);
        assert_eq!(
            verify(secret, body, Some(header.as_bytes())),
            Ok(()),
            "{name}"
        );
        let raw = &body[..body.len().min(80)];
        if *mode % 3 == 2 && verify(secret, body, Some(raw)).is_ok() {
            assert!(raw.eq_ignore_ascii_case(header.as_bytes()), "{name}");
        }
    }
}

#[test]
fn send_corpus_is_answered_with_metas_codes() {
    for (name, body) in corpus("send_validate") {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        if let Err(error) = send::validate(&body) {
            assert!(
                [100, 131_008, 131_009].contains(&error.code),
                "{name}: {error:?}"
            );
            assert!(!error.field.is_empty(), "{name}: {error:?}");
        }
    }
}
