//! The run's figures as a markdown report.

use std::fmt::Write;
use std::time::Duration;

use crate::reconcile::Check;

/// A latency distribution in microseconds.
pub fn percentiles(samples: &mut [u32]) -> String {
    if samples.is_empty() {
        return "–".into();
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        ms(samples[index])
    };
    format!(
        "p50 {} · p99 {} · max {} ({} samples)",
        at(0.50),
        at(0.99),
        at(1.0),
        samples.len()
    )
}

fn ms(micros: u32) -> String {
    let ms = f64::from(micros) / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// One sample of the system from outside.
pub struct Sample {
    pub at: Duration,
    pub rss_kib: Option<u64>,
    pub pending: Option<u64>,
}

/// Everything the report shows.
pub struct Figures {
    pub title: String,
    pub settings: String,
    pub load_seconds: f64,
    pub total_seconds: f64,
    pub inbound_messages: u64,
    pub inbound_posts: u64,
    pub redeliveries: u64,
    pub status_posts: u64,
    pub statuses: u64,
    pub status_duplicates: u64,
    pub api_accepted: u64,
    pub dispatched: u64,
    pub graph_errors: u64,
    pub webhook_retries: u64,
    pub api_retries: u64,
    pub kills: Vec<Duration>,
    pub webhook_latency: String,
    pub webhook_latency_steady: String,
    pub api_latency: String,
    pub api_latency_steady: String,
    /// Whether the run had a burst (else "steady" is the whole run).
    pub burst: bool,
    pub dispatch_latency: String,
    pub max_pending: u64,
    pub max_pending_topics: String,
    pub samples: Vec<Sample>,
    pub checks: Vec<Check>,
}

impl Figures {
    /// Messages end to end: inbound stored plus outbound dispatched.
    pub fn messages(&self) -> u64 {
        self.inbound_messages + self.dispatched
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }

    /// The markdown report.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let per_second = |n: u64, seconds: f64| format!("{:.0}/s", n as f64 / seconds.max(0.001));
        let _ = writeln!(out, "{}\n\n{}\n", self.title, self.settings);
        let _ = writeln!(out, "| figure | result |\n|---|---|");
        let _ = writeln!(
            out,
            "| messages end to end (inbound stored + sends dispatched) | **{}** in {:.0} s of load + {:.0} s to drain: **{}** over the load, {} until everything settled |",
            self.messages(),
            self.load_seconds,
            self.total_seconds - self.load_seconds,
            per_second(self.messages(), self.load_seconds),
            per_second(self.messages(), self.total_seconds),
        );
        let _ = writeln!(
            out,
            "| inbound | {} messages acknowledged in {} webhook POSTs, {} bodies redelivered after their 200 |",
            self.inbound_messages, self.inbound_posts, self.redeliveries
        );
        let _ = writeln!(
            out,
            "| sends | {} accepted (202) by the send API, {} dispatched to the Graph API (incl. auto-replies), {} Graph calls failed on purpose |",
            self.api_accepted, self.dispatched, self.graph_errors
        );
        let _ = writeln!(
            out,
            "| statuses | {} distinct delivered in {} POSTs (out of order for a share, {} delivered twice) |",
            self.statuses, self.status_posts, self.status_duplicates
        );
        if self.burst {
            let _ = writeln!(
                out,
                "| webhook latency, steady part before the burst (first attempt, from its due time) | {} |",
                self.webhook_latency_steady
            );
            let _ = writeln!(
                out,
                "| webhook latency, whole run (the burst's backlog included) | {} |",
                self.webhook_latency
            );
            let _ = writeln!(
                out,
                "| send API latency, steady part / whole run | {} / {} |",
                self.api_latency_steady, self.api_latency
            );
        } else {
            let _ = writeln!(
                out,
                "| webhook latency (first attempt, from its due time) | {} |",
                self.webhook_latency
            );
            let _ = writeln!(out, "| send API latency | {} |", self.api_latency);
        }
        let _ = writeln!(
            out,
            "| send API 202 → Graph API | {} |",
            self.dispatch_latency
        );
        let _ = writeln!(
            out,
            "| max queue depth (events pending, all topics) | {} ({}) |",
            self.max_pending, self.max_pending_topics
        );
        let rss: Vec<u64> = self.samples.iter().filter_map(|s| s.rss_kib).collect();
        if let (Some(first), Some(max), Some(last)) = (rss.first(), rss.iter().max(), rss.last()) {
            let _ = writeln!(
                out,
                "| RSS of `zapfn dev` | {:.0} MiB at start, {:.0} MiB max, {:.0} MiB at the end |",
                *first as f64 / 1024.0,
                *max as f64 / 1024.0,
                *last as f64 / 1024.0
            );
        }
        if !self.kills.is_empty() {
            let downtimes: Vec<String> = self
                .kills
                .iter()
                .map(|d| format!("{:.2} s", d.as_secs_f64()))
                .collect();
            let _ = writeln!(
                out,
                "| SIGKILLs | {} (down for {} until `/healthz` answered again) |",
                self.kills.len(),
                downtimes.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "| retries | {} webhook POSTs and {} send-API calls retried until acknowledged |",
            self.webhook_retries, self.api_retries
        );
        let _ = writeln!(
            out,
            "\nReconciliation:\n\n| check | expected | found | |\n|---|---|---|---|"
        );
        for check in &self.checks {
            let verdict = if check.passed() {
                "ok".to_owned()
            } else {
                format!("**FAIL** {}", check.offenders.join("; "))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                check.name, check.expected, check.found, verdict
            );
        }
        let step = (self.samples.len() / 12).max(1);
        let timeline: Vec<String> = self
            .samples
            .iter()
            .step_by(step)
            .map(|s| {
                format!(
                    "{:.0}s {} MiB/{} queued",
                    s.at.as_secs_f64(),
                    s.rss_kib
                        .map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
                    s.pending.map_or("?".into(), |p| p.to_string())
                )
            })
            .collect();
        let _ = writeln!(out, "\nRSS and queue over time: {}", timeline.join(" · "));
        out
    }
}
