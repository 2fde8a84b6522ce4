//! The store's background threads (the writer, the checkpointer and the
//! webhook indexer) run at a lower CPU priority than the threads that answer
//! requests. When the CPU is saturated, acknowledging Meta's webhooks comes
//! first, and the journal holds what the indexer has not stored yet (up to its
//! limit, past which webhooks are refused and Meta redelivers them). An idle
//! CPU gives the background threads all they ask for; only under saturation do
//! writes (a send's 202 waits for its commit) queue behind acknowledgements.
//!
//! Linux only: elsewhere a nice value belongs to the whole process.

/// Sets the calling thread's nice value to `nice` (0 or less: unchanged). A
/// process already nicer than that keeps its value (raising priority needs
/// privileges).
pub(crate) fn lower_this_thread(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: syscalls on the calling thread's own id; no memory is shared.
        let changed = unsafe {
            let tid = libc::gettid() as libc::id_t;
            nice > libc::getpriority(libc::PRIO_PROCESS, tid)
                && libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0
        };
        if !changed {
            tracing::debug!(nice, "background thread priority left as it is");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // SAFETY: as above.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn lowers_only_the_calling_thread() {
        let before = nice_of_this_thread();
        let inside = std::thread::spawn(|| {
            lower_this_thread(7);
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(inside, before.max(7));
        assert_eq!(
            nice_of_this_thread(),
            before,
            "the caller's thread is untouched"
        );
    }
}
