//! Message delivery states and their order:
//! `queued < accepted < sent < delivered < read < played` (`accepted`: Meta took the send),
//! with `failed` terminal. A late lower status never downgrades a higher one.

/// Rank of a status in the delivery order; `None` for a status zapfn does not know
/// (kept in the history, never applied).
pub fn rank(status: &str) -> Option<i64> {
    Some(match status {
        "queued" => 0,
        "accepted" => 1,
        "sent" => 2,
        "delivered" => 3,
        "read" => 4,
        "played" => 5,
        "failed" => FAILED_RANK,
        _ => return None,
    })
}

/// `failed` outranks everything: once failed, a message stays failed.
pub const FAILED_RANK: i64 = 100;

/// Whether a message now in `current` should move to `incoming`.
pub fn advances(current: &str, incoming: &str) -> bool {
    match (rank(current), rank(incoming)) {
        (Some(FAILED_RANK), _) => false,
        (Some(now), Some(next)) => next > now,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

/// A send's status once Meta is known to have accepted it (a wamid became
/// known): `accepted` unless it is further along. A `failed` the message got
/// while it had no wamid was zapfn's own verdict (it gave up on attempts whose
/// answers never came), and Meta's acceptance overrides it.
pub fn after_acceptance(current: &str, had_wamid: bool) -> &str {
    let gave_up_unanswered = current == "failed" && !had_wamid;
    if gave_up_unanswered || advances(current, "accepted") {
        "accepted"
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_downgrades_and_failed_is_terminal() {
        assert!(advances("queued", "sent"));
        assert!(advances("queued", "accepted"));
        assert!(!advances("sent", "accepted"));
        assert!(advances("sent", "read"));
        assert!(!advances("read", "delivered"));
        assert!(!advances("read", "read"));
        assert!(advances("delivered", "failed"));
        assert!(!advances("failed", "read"));
        assert!(!advances("sent", "deleted"));
        assert!(advances("read", "played"));
    }

    #[test]
    fn acceptance_overrides_only_a_failure_without_a_wamid() {
        assert_eq!(after_acceptance("queued", false), "accepted");
        assert_eq!(after_acceptance("delivered", true), "delivered");
        assert_eq!(after_acceptance("failed", false), "accepted");
        assert_eq!(after_acceptance("failed", true), "failed");
    }
}
