//! The process's resources: open files and memory. A daemon that serves the whole desktop
//! must not run out of file descriptors because of idle sockets (the usual soft limit is
//! 1,024 while the hard limit is far higher), and memory that large requests took must go
//! back to the system once they are done.

/// The soft and hard limits on open files, when the platform has them.
pub fn open_file_limits() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
            // rlim_t is not 64 bits on every Unix.
            #[allow(clippy::unnecessary_cast)]
            return Some((r.rlim_cur as u64, r.rlim_max as u64));
        }
    }
    None
}

/// Raise the soft limit on open files to the hard limit (capped at 1,048,576); the new
/// soft limit. Called once at the daemon's start.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    #[cfg(unix)]
    {
        let (soft, hard) = open_file_limits().ok_or_else(std::io::Error::last_os_error)?;
        let want = hard.min(1 << 20);
        if want <= soft {
            return Ok(soft);
        }
        let r = libc::rlimit {
            rlim_cur: want as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads one rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(want)
    }
    #[cfg(not(unix))]
    Ok(u64::MAX)
}

/// Large buffers come from and go back to the system directly. glibc raises its mmap
/// threshold each time a mapped block is freed, so after a burst of 16 MiB requests the next
/// ones come from the heap, which it keeps (hundreds of MiB after the load was gone). A
/// fixed threshold of 256 KiB keeps every large buffer mapped, returned when freed.
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; both are documented ones.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

/// Give freed heap memory back to the system now (after a burst of large requests).
pub fn trim_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_soft_limit_goes_up_to_the_hard_limit() {
        let (_, hard) = open_file_limits().unwrap();
        let soft = raise_open_file_limit().unwrap();
        assert_eq!(soft, hard.min(1 << 20));
        assert_eq!(open_file_limits().unwrap().0, soft);
    }
}
