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

/// Hands the heap's free pages back to the kernel (glibc `malloc_trim`). Called between the
/// phases of a run: the pages a phase freed (a listing's parsed pages, the re-check's) would
/// otherwise stay resident while the next phase maps new ones, and the peak is their sum.
pub(crate) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the arena locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}
