//! `zapfn-bench count`: rows of one table in a SQLite file (safe while zapfn
//! runs: the database is in WAL mode, so this read sees the last commit).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use rusqlite::{Connection, OpenFlags};

#[derive(clap::Args)]
pub struct Args {
    /// The SQLite file (zapfn's is `$ZAPFN_DATA_DIR/zapfn.db`).
    #[arg(long)]
    db: PathBuf,
    /// Table to count.
    #[arg(long, default_value = "messages")]
    table: String,
    /// Optional SQL condition, e.g. `status IN ('sent','delivered','read')`.
    #[arg(long = "where")]
    condition: Option<String>,
}

/// Prints `rows=N`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.table.is_empty()
        || !args
            .table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        bail!("--table must be a plain table name");
    }
    let conn = Connection::open_with_flags(&args.db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut sql = format!("SELECT count(*) FROM {}", args.table);
    if let Some(condition) = &args.condition {
        sql.push_str(" WHERE ");
        sql.push_str(condition);
    }
    let rows: i64 = conn.query_row(&sql, [], |row| row.get(0))?;
    println!("rows={rows}");
    Ok(())
}
