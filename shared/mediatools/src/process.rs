//! Runs a system tool as a child process: no stdin, a timeout, at most
//! `max_stdout` bytes of standard output kept (the child is killed past it) and
//! the tail of standard error for error messages.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::error::{package_of, ToolError};

/// Bytes of standard error kept for error messages.
const STDERR_TAIL: usize = 2048;

/// Bounds for one tool run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the child is killed.
    pub timeout: Duration,
    /// Standard output kept; the child is killed when it prints more.
    pub max_stdout: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(120),
            max_stdout: 4 << 20,
        }
    }
}

/// What a finished tool printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    /// True when the tool printed more than `max_stdout` and was stopped.
    pub truncated: bool,
}

/// What a tool prints when the machine, not the file, stopped it: out of disk,
/// memory or file handles (the C library's messages for ENOSPC, EDQUOT,
/// ENOMEM, EMFILE and ENFILE (a prefix of its message) and EAGAIN, and FFmpeg's own).
const RESOURCE_ERRORS: [&str; 6] = [
    "No space left on device",
    "Disk quota exceeded",
    "Cannot allocate memory",
    "Out of memory",
    "Too many open files",
    "Resource temporarily unavailable",
];

/// Runs `tool` with `args` and `envs` within `limits`. A non-zero exit is
/// [`ToolError::Rejected`] with the end of standard error, or, when that says
/// the machine ran out of something ([`RESOURCE_ERRORS`]), [`ToolError::Io`]:
/// worth another try, not the file's fault.
pub async fn run<I, S>(
    tool: &'static str,
    args: I,
    envs: &[(&str, &str)],
    limits: Limits,
) -> Result<Output, ToolError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(tool);
    command
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => ToolError::Missing {
            tool,
            package: package_of(tool),
        },
        _ => ToolError::Io {
            tool,
            detail: error.to_string(),
        },
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ToolError::Io {
            tool,
            detail: "no pipes to the child".into(),
        });
    };
    let io_error = |error: std::io::Error| ToolError::Io {
        tool,
        detail: error.to_string(),
    };
    let finished = tokio::time::timeout(limits.timeout, async {
        let (kept, stderr) = tokio::join!(
            async {
                let kept = read_bounded(stdout, limits.max_stdout).await;
                if matches!(kept, Ok((_, true))) {
                    let _ = child.start_kill();
                }
                kept
            },
            read_tail(stderr, STDERR_TAIL),
        );
        let status = child.wait().await;
        (kept, stderr, status)
    })
    .await;
    let Ok((kept, stderr, status)) = finished else {
        let _ = child.kill().await;
        return Err(ToolError::Timeout {
            tool,
            after: limits.timeout,
        });
    };
    let (stdout, truncated) = kept.map_err(io_error)?;
    let stderr = stderr.map_err(io_error)?;
    let status = status.map_err(io_error)?;
    if truncated || status.success() {
        return Ok(Output { stdout, truncated });
    }
    let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
    match status.code() {
        Some(code) if RESOURCE_ERRORS.iter().any(|error| stderr.contains(error)) => {
            Err(ToolError::Io {
                tool,
                detail: format!("exit {code}: {stderr}"),
            })
        }
        Some(code) => Err(ToolError::Rejected {
            tool,
            status: code,
            stderr,
        }),
        None => Err(ToolError::Crashed {
            tool,
            detail: format!(
                "killed by signal {}: {stderr}",
                status.signal().unwrap_or_default()
            ),
        }),
    }
}

/// Reads up to `max` bytes; true when there was more.
async fn read_bounded(
    mut reader: impl AsyncRead + Unpin,
    max: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok((kept, false));
        }
        let room = max - kept.len();
        if n > room {
            kept.extend_from_slice(&chunk[..room]);
            return Ok((kept, true));
        }
        kept.extend_from_slice(&chunk[..n]);
    }
}

/// Reads everything, keeping the last `max` bytes.
async fn read_tail(mut reader: impl AsyncRead + Unpin, max: usize) -> std::io::Result<Vec<u8>> {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(tail);
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > max {
            tail.drain(..tail.len() - max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(timeout_ms: u64, max_stdout: usize) -> Limits {
        Limits {
            timeout: Duration::from_millis(timeout_ms),
            max_stdout,
        }
    }

    #[tokio::test]
    async fn keeps_stdout_and_reports_rejections_with_stderr() {
        let output = run("sh", ["-c", "printf hello"], &[], limits(5000, 100))
            .await
            .unwrap();
        assert_eq!(output.stdout, b"hello");
        assert!(!output.truncated);
        let error = run(
            "sh",
            ["-c", "echo 'bad input' >&2; exit 3"],
            &[],
            limits(5000, 100),
        )
        .await
        .unwrap_err();
        match &error {
            ToolError::Rejected { status, stderr, .. } => {
                assert_eq!(*status, 3);
                assert_eq!(stderr, "bad input");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(!error.is_transient());
    }

    #[tokio::test]
    async fn running_out_of_disk_or_memory_is_transient() {
        for message in [
            "output.ogg: No space left on device",
            "Error while filtering: Cannot allocate memory",
        ] {
            let script = format!("echo '{message}' >&2; exit 1");
            let error = run("sh", ["-c", script.as_str()], &[], limits(5000, 100))
                .await
                .unwrap_err();
            assert!(matches!(error, ToolError::Io { .. }), "{error:?}");
            assert!(error.is_transient(), "{message}");
            assert!(error.to_string().contains(message), "{error}");
        }
    }

    #[tokio::test]
    async fn stops_a_tool_that_prints_too_much() {
        let output = run("sh", ["-c", "yes"], &[], limits(10_000, 1000))
            .await
            .unwrap();
        assert_eq!(output.stdout.len(), 1000);
        assert!(output.truncated);
    }

    #[tokio::test]
    async fn kills_a_tool_that_runs_too_long() {
        let started = std::time::Instant::now();
        let error = run("sleep", ["30"], &[], limits(200, 100))
            .await
            .unwrap_err();
        assert!(matches!(error, ToolError::Timeout { .. }), "{error:?}");
        assert!(error.is_transient());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_missing_tool_is_named_with_its_package() {
        let error = run("pdftotext-not-here", ["x"], &[], Limits::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ToolError::Missing { .. }), "{error:?}");
        assert!(error.is_transient());
    }

    #[tokio::test]
    async fn a_crash_is_transient() {
        let error = run("sh", ["-c", "kill -SEGV $$"], &[], Limits::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ToolError::Crashed { .. }), "{error:?}");
        assert!(error.is_transient());
    }
}
