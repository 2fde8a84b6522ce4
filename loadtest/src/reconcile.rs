//! The end state against the ledger: every acknowledged inbound wamid stored
//! once, every accepted send (API and auto-reply) dispatched once with its
//! final status right, every status delivered by Meta recorded, every image
//! stored, no dead letters. The store's state comes in as [`Facts`], gathered
//! by `backend` from whichever store the run used, so both are held to the
//! same checks.

use std::collections::{HashMap, HashSet};

use crate::ledger::{Inbound, Inner};

/// What the store holds at the end, as the checks need it.
pub struct Facts {
    /// Inbound message rows per wamid.
    pub inbound: HashMap<String, u64>,
    /// Every outbound message row.
    pub outbound: Vec<Outbound>,
    /// `(subject, status)` of every recorded status event.
    pub statuses: HashSet<(String, String)>,
    /// `media.object.status` of every inbound image, by wamid.
    pub image_objects: HashMap<String, Option<String>>,
    /// Rows in the dead letters.
    pub dead_letters: u64,
    /// Events still in the outbox.
    pub outbox: u64,
}

/// One outbound message row.
pub struct Outbound {
    /// zapfn's id.
    pub id: String,
    /// Meta's wamid, once sent.
    pub wamid: Option<String>,
    pub status: String,
    pub idempotency_key: Option<String>,
    /// No send body (`raw IS NULL`): a row a status created for a wamid no send recorded.
    pub placeholder: bool,
}

/// One reconciliation check: what was expected, what was found, and the first few offenders.
pub struct Check {
    pub name: &'static str,
    pub expected: u64,
    pub found: u64,
    pub offenders: Vec<String>,
}

impl Check {
    /// Found what was expected, with no offenders.
    pub fn passed(&self) -> bool {
        self.offenders.is_empty() && self.expected == self.found
    }
}

/// A check over `expected` items, `bad` of which failed.
fn check(name: &'static str, expected: usize, bad: Vec<String>) -> Check {
    Check {
        name,
        expected: expected as u64,
        found: (expected - bad.len().min(expected)) as u64,
        offenders: bad.into_iter().take(5).collect(),
    }
}

/// A count that must be 0, with the first few offenders.
fn none(name: &'static str, found: u64, offenders: Vec<String>) -> Check {
    Check {
        name,
        expected: 0,
        found,
        offenders: offenders.into_iter().take(5).collect(),
    }
}

/// Reconciles what the store holds with what the run recorded.
pub fn reconcile(facts: &Facts, ledger: &Inner) -> Vec<Check> {
    let mut checks = Vec::new();

    let stored = &facts.inbound;
    let bad: Vec<String> = ledger
        .inbound
        .keys()
        .filter(|wamid| stored.get(*wamid) != Some(&1))
        .map(|wamid| {
            format!(
                "{wamid}: stored {} times",
                stored.get(wamid).copied().unwrap_or(0)
            )
        })
        .collect();
    checks.push(check(
        "acknowledged inbound messages stored exactly once",
        ledger.inbound.len(),
        bad,
    ));
    let extra: Vec<String> = stored
        .keys()
        .filter(|wamid| !ledger.inbound.contains_key(*wamid))
        .cloned()
        .collect();
    checks.push(none(
        "inbound rows nobody acknowledged (0 expected)",
        extra.len() as u64,
        extra,
    ));

    let outbound = &facts.outbound;
    let by_id: HashMap<&str, &Outbound> = outbound.iter().map(|o| (o.id.as_str(), o)).collect();
    let bad: Vec<String> = ledger
        .api_accepted
        .keys()
        .filter(|id| !by_id.contains_key(id.as_str()))
        .cloned()
        .collect();
    checks.push(check(
        "sends answered 202 stored",
        ledger.api_accepted.len(),
        bad,
    ));

    let replies: HashSet<&str> = outbound
        .iter()
        .filter_map(|o| o.idempotency_key.as_deref()?.strip_prefix("auto-reply:"))
        .collect();
    let menus: Vec<&String> = ledger
        .inbound
        .iter()
        .filter(|(_, kind)| **kind == Inbound::Menu)
        .map(|(wamid, _)| wamid)
        .collect();
    let bad = menus
        .iter()
        .filter(|wamid| !replies.contains(wamid.as_str()))
        .map(|wamid| format!("no reply to {wamid}"))
        .collect();
    checks.push(check(
        "\"menu\" messages auto-replied once",
        menus.len(),
        bad,
    ));

    let sends: Vec<&Outbound> = outbound.iter().filter(|o| !o.placeholder).collect();
    let bad = sends
        .iter()
        .filter_map(|o| {
            let times = ledger.dispatched.get(&o.id).map_or(0, Vec::len);
            (times != 1).then(|| format!("{} sent {times} times", o.id))
        })
        .collect();
    checks.push(check(
        "sends dispatched to the Graph API exactly once",
        sends.len(),
        bad,
    ));
    let bad = sends
        .iter()
        .filter_map(|o| {
            let (wamid, _) = ledger.dispatched.get(&o.id)?.last()?;
            let expected = ledger.expected_status.get(wamid).copied()?;
            let right = o.status == expected && o.wamid.as_deref() == Some(wamid.as_str());
            (!right).then(|| format!("{} ({wamid}): {} instead of {expected}", o.id, o.status))
        })
        .collect();
    checks.push(check(
        "final status of every send (read, or failed)",
        sends.len(),
        bad,
    ));
    let placeholders: Vec<String> = outbound
        .iter()
        .filter(|o| o.placeholder)
        .map(|o| {
            format!(
                "{} ({:?}): a status for a wamid no send recorded",
                o.id, o.wamid
            )
        })
        .collect();
    checks.push(none(
        "statuses left on placeholders (0 expected)",
        placeholders.len() as u64,
        placeholders,
    ));

    let bad = ledger
        .statuses
        .iter()
        .filter(|(wamid, status)| {
            !facts
                .statuses
                .contains(&(wamid.clone(), status.to_string()))
        })
        .map(|(wamid, status)| format!("{wamid} {status}"))
        .collect();
    checks.push(check(
        "statuses Meta delivered recorded",
        ledger.statuses.len(),
        bad,
    ));

    let images: Vec<&String> = ledger
        .inbound
        .iter()
        .filter(|(_, kind)| **kind == Inbound::Image)
        .map(|(wamid, _)| wamid)
        .collect();
    let bad = images
        .iter()
        .filter_map(|wamid| {
            let status = facts.image_objects.get(*wamid).cloned().flatten();
            (status.as_deref() != Some("done")).then(|| format!("{wamid}: media {status:?}"))
        })
        .collect();
    checks.push(check("images downloaded and stored", images.len(), bad));

    checks.push(none(
        "dead letters (0 expected)",
        facts.dead_letters,
        Vec::new(),
    ));
    checks.push(none(
        "events left in the outbox (0 expected)",
        facts.outbox,
        Vec::new(),
    ));
    checks
}
