//! Allocator settings for the daemon.
//!
//! A span fetch allocates a few large buffers (the compressed range, the
//! inflated 4 MiB span) on whichever FUSE or runtime thread serves the read.
//! glibc's malloc raises its mmap threshold to the size of the largest block
//! freed so far, so after the first span such buffers come from per-thread
//! arenas and stay there when freed: the resident set grows with the number
//! of threads that ever fetched a span. A fixed threshold keeps large buffers
//! in their own mappings, which go back to the system when freed, and fewer
//! arenas keep small allocations from being spread over one heap per thread.
#![allow(unsafe_code)]

/// Blocks at least this large get their own mapping (and the threshold no
/// longer moves).
const MMAP_THRESHOLD: i32 = 256 * 1024;
/// Heaps shared by all threads.
const ARENA_MAX: i32 = 2;

/// Apply the settings (glibc only; elsewhere nothing to do). Returns whether
/// glibc accepted both.
pub fn bound_retention() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; glibc takes its own
        // lock, so calling it while other threads allocate is allowed.
        let a = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        // SAFETY: as above.
        let b = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) };
        a == 1 && b == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_settings() {
        assert!(super::bound_retention());
    }
}
