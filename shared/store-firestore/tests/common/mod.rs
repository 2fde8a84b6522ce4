//! What every emulator test of this crate starts with.

use std::io::Write;

/// The Firestore emulator's address, or None after a loud skip. Without
/// `FIRESTORE_EMULATOR_HOST` a test passes only while `ZAPFN_REQUIRE_EMULATORS`
/// is unset (or `0`); CI sets it, so there a missing emulator fails the test.
pub fn emulator() -> Option<String> {
    if let Ok(host) = std::env::var("FIRESTORE_EMULATOR_HOST") {
        return Some(host);
    }
    let required = std::env::var("ZAPFN_REQUIRE_EMULATORS").unwrap_or_default();
    assert!(
        required.is_empty() || required == "0",
        "ZAPFN_REQUIRE_EMULATORS={required} but the Firestore emulator is not running (FIRESTORE_EMULATOR_HOST unset)"
    );
    // Straight to the process's stderr: the test harness captures eprintln!.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: Firestore emulator not running (FIRESTORE_EMULATOR_HOST unset)"
    );
    None
}
