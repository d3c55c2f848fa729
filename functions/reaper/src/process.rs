//! Process-wide settings both binaries apply first.

/// glibc raises its mmap threshold each time a large block is freed, so after the first
/// DescribeInstances page (several MB of XML and parsed structs, freed a second later) every
/// later page is carved from the heap, which fragments and is not given back. A fixed threshold
/// keeps each such buffer in its own mapping, returned when freed: 5 MB less peak RSS at
/// 100 000 instances (85.5 → 80.2 MB, `make bench`, issue 17). Nothing to do elsewhere.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// glibc's own default before it starts adjusting.
        const THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt sets one allocator tunable; it takes the arena lock itself.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        }
    }
}
