//! The end state against the ledger, read straight from the SQLite file:
//! every acknowledged inbound wamid stored once, every accepted send (API and
//! auto-reply) dispatched once with its final status right, every status
//! delivered by Meta recorded, every image stored, no dead letters.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::ledger::{Inbound, Inner};

/// One reconciliation check: what was expected, what was found, and the first few offenders.
pub struct Check {
    pub name: &'static str,
    pub expected: u64,
    pub found: u64,
    pub offenders: Vec<String>,
}

impl Check {
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

struct Outbound {
    id: String,
    wamid: Option<String>,
    status: String,
    idempotency_key: Option<String>,
    placeholder: bool,
}

/// Reconciles the database at `path` with what the run recorded.
pub fn reconcile(path: &Path, ledger: &Inner) -> anyhow::Result<Vec<Check>> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut checks = Vec::new();

    let mut stored: HashMap<String, u64> = HashMap::new();
    let mut statement =
        db.prepare("SELECT wa_message_id FROM messages WHERE direction = 'inbound'")?;
    for wamid in statement.query_map([], |row| row.get::<_, String>(0))? {
        *stored.entry(wamid?).or_default() += 1;
    }
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
    checks.push(Check {
        name: "inbound rows nobody acknowledged (0 expected)",
        expected: 0,
        found: extra.len() as u64,
        offenders: extra.into_iter().take(5).collect(),
    });

    let mut outbound = Vec::new();
    let mut statement = db.prepare(
        "SELECT id, wa_message_id, status, idempotency_key, raw IS NULL FROM messages WHERE direction = 'outbound'",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(Outbound {
            id: row.get(0)?,
            wamid: row.get(1)?,
            status: row.get(2)?,
            idempotency_key: row.get(3)?,
            placeholder: row.get(4)?,
        })
    })?;
    for row in rows {
        outbound.push(row?);
    }
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
    checks.push(Check {
        name: "statuses left on placeholders (0 expected)",
        expected: 0,
        found: placeholders.len() as u64,
        offenders: placeholders.into_iter().take(5).collect(),
    });

    let mut recorded: HashSet<(String, String)> = HashSet::new();
    let mut statement = db.prepare("SELECT subject, status FROM status_events")?;
    for pair in statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
        recorded.insert(pair?);
    }
    let bad = ledger
        .statuses
        .iter()
        .filter(|(wamid, status)| !recorded.contains(&(wamid.clone(), status.to_string())))
        .map(|(wamid, status)| format!("{wamid} {status}"))
        .collect();
    checks.push(check(
        "statuses Meta delivered recorded",
        ledger.statuses.len(),
        bad,
    ));

    let mut media: HashMap<String, Option<String>> = HashMap::new();
    let mut statement = db.prepare(
        "SELECT wa_message_id, json_extract(media, '$.object.status') FROM messages
         WHERE direction = 'inbound' AND type = 'image'",
    )?;
    for row in statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
        let (wamid, status) = row?;
        media.insert(wamid, status);
    }
    let images: Vec<&String> = ledger
        .inbound
        .iter()
        .filter(|(_, kind)| **kind == Inbound::Image)
        .map(|(wamid, _)| wamid)
        .collect();
    let bad = images
        .iter()
        .filter_map(|wamid| {
            let status = media.get(*wamid).cloned().flatten();
            (status.as_deref() != Some("done")).then(|| format!("{wamid}: media {status:?}"))
        })
        .collect();
    checks.push(check("images downloaded and stored", images.len(), bad));

    let dead: i64 = db.query_row("SELECT count(*) FROM dead_letters", [], |row| row.get(0))?;
    checks.push(Check {
        name: "dead letters (0 expected)",
        expected: 0,
        found: dead as u64,
        offenders: Vec::new(),
    });
    let left: i64 = db.query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))?;
    checks.push(Check {
        name: "events left in the outbox (0 expected)",
        expected: 0,
        found: left as u64,
        offenders: Vec::new(),
    });
    Ok(checks)
}
