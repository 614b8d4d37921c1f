//! Keeps freed heap memory inside the process.
//!
//! Burn's flex backend allocates a fresh buffer for nearly every tensor op. With glibc's
//! defaults, buffers above the mmap threshold are mapped and unmapped on each op, and the heap
//! top is returned to the kernel, so every training step pays again for the kernel zeroing
//! the same pages (`clear_page` was 12–15% of a `seft sft` profile). Serving every request
//! from the heap (no mmap) and never trimming it makes later steps reuse warm pages: training
//! went from 62 to 72–84 tokens/s (experiments/sft_speed). The cost is that the process keeps
//! its peak heap until it exits, which is what PyTorch's caching allocator does too.

/// Applies the settings above unless the user already tunes glibc's malloc through
/// `GLIBC_TUNABLES`. A no-op outside Linux with glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc"));
        if !user_tuned {
            // SAFETY: mallopt only changes allocator parameters; called before other threads
            // start allocating.
            unsafe {
                libc::mallopt(libc::M_MMAP_MAX, 0);
                // -1 disables trimming (glibc reads the value as an unsigned size).
                libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
                libc::mallopt(libc::M_TOP_PAD, 256 << 20);
            }
        }
    }
}
