//! Process-wide settings for numeric work: thread count and allocator.

/// Sets the thread count of candle's own kernels for the whole process
/// (through `RAYON_NUM_THREADS`, which candle reads on each call and rayon when
/// its pool starts). Our own kernels take their thread count as an argument
/// (`SentimentModel::with_threads`); this covers the few candle ops around them.
///
/// Call it once, first thing in `main`, before any other thread exists:
/// changing the environment while other threads may read it is a data race.
///
/// Training defaults to one thread: several training processes (federated
/// workers, inference replicas) share a machine, and multi-threaded GEMM pools
/// collapse when they oversubscribe the cores.
pub fn configure_threads(threads: usize) {
    std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string());
}

/// Keeps large temporaries in the heap instead of fresh `mmap`s.
///
/// Every training step allocates multi-megabyte buffers (activations,
/// gradients); glibc serves those with `mmap` and returns them with `munmap`,
/// so each step pays page faults and zeroing for memory it just freed. Raising
/// the thresholds lets freed blocks be reused. A no-op off glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
