//! Gives back the code pages only start-up ran.
//!
//! Start-up runs code that never runs again (config parsing, AWS credential and region
//! providers, client and server set-up), and the kernel maps the binary's code 64 KB around each
//! page first run: once the pipelines are up, 9 of the sidecar's 15 MB resident were its own code
//! pages. They are file-backed and stay in the page cache, so dropping them from the process is
//! safe (a page run again is mapped again from the cache, at a minor fault) and leaves mapped
//! only what the running pipelines use. Only the read-only, executable mappings of the binary
//! itself are touched: they hold no relocated or written data (the binary has no TEXTREL).

#[cfg(target_os = "linux")]
mod linux {
    use std::os::raw::{c_int, c_void};

    unsafe extern "C" {
        fn madvise(addr: *mut c_void, length: usize, advice: c_int) -> c_int;
    }

    /// `MADV_DONTNEED` (the same value on every Linux architecture).
    const MADV_DONTNEED: c_int = 4;

    /// The executable's own code mappings, as `(start, end)` addresses from `/proc/self/maps`.
    pub fn code_mappings() -> Vec<(usize, usize)> {
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
            return Vec::new();
        };
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return Vec::new();
        };
        maps.lines()
            .filter_map(|line| {
                // `start-end perms offset dev inode path`
                let mut fields = line.split_whitespace();
                let range = fields.next()?;
                let perms = fields.next()?;
                let path = fields.nth(3)?;
                if perms != "r-xp" || std::path::Path::new(path) != exe {
                    return None;
                }
                let (start, end) = range.split_once('-')?;
                Some((
                    usize::from_str_radix(start, 16).ok()?,
                    usize::from_str_radix(end, 16).ok()?,
                ))
            })
            .collect()
    }

    pub fn release() -> usize {
        let mut released = 0;
        for (start, end) in code_mappings() {
            // SAFETY: the range is a private, read-only, executable file mapping of our own
            // binary, never written: dropping its pages only makes the next run of them fault
            // them back in from the page cache with the same contents.
            if unsafe { madvise(start as *mut c_void, end - start, MADV_DONTNEED) } == 0 {
                released += end - start;
            }
        }
        released
    }
}

/// Drops the binary's mapped code pages; returns how many bytes of mappings were advised.
pub fn release() -> usize {
    #[cfg(target_os = "linux")]
    {
        linux::release()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Resident kB of the binary's code mappings, from `/proc/self/smaps`.
    fn resident_code_kb() -> u64 {
        let mappings = linux::code_mappings();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut total = 0;
        let mut counting = false;
        for line in smaps.lines() {
            // A mapping's header starts with `start-end`; its fields (`Rss: 12 kB`) follow it.
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((start, _)) = first.split_once('-')
                && let Ok(start) = usize::from_str_radix(start, 16)
            {
                counting = mappings.iter().any(|&(s, _)| s == start);
            } else if counting && let Some(rss) = line.strip_prefix("Rss:") {
                total += rss
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
        total
    }

    #[test]
    fn code_pages_are_given_back_and_the_code_still_runs() {
        assert!(
            !linux::code_mappings().is_empty(),
            "the test binary's code is mapped"
        );
        // Other tests of this binary run code on other threads at the same time and fault
        // pages back in: one of a few tries must see the resident code shrink.
        let mut seen = Vec::new();
        let shrank = (0..10).any(|_| {
            let before = resident_code_kb();
            assert!(release() > 0);
            let after = resident_code_kb();
            seen.push((before, after));
            after < before
        });
        assert!(shrank, "resident code (before, after) kB: {seen:?}");
        // Code runs again after its pages were dropped (they come back from the page cache).
        let text: String = (0..1000).map(|n| n.to_string()).collect();
        assert_eq!(text.len(), 2890);
    }
}
