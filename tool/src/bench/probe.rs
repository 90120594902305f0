//! Where population stalls: the same bytes faulted in by T threads in different ways, with
//! raw system calls and no unimem in between (Linux).
//!
//! | method | what each thread does |
//! |---|---|
//! | `madvise` | `MADV_POPULATE_WRITE` on its part of one memfd mapping (what `Block::open` does) |
//! | `files` | the same on a memfd of its own (isolates what one file serialises) |
//! | `touch` | writes one byte per page of its part of one memfd mapping |
//! | `fallocate` | `fallocate` of its part of one memfd (shmem takes the inode lock per call; the pages are allocated, not yet zeroed or mapped) |
//! | `falloc+populate` | `fallocate` of its part, then `MADV_POPULATE_WRITE` of it (zeroing and mapping in parallel) |
//! | `anon` | `MADV_POPULATE_WRITE` on its part of one anonymous private mapping |
//!
//! With `thp`, every mapping is advised `MADV_HUGEPAGE` (effective for shmem only where
//! `shmem_enabled` allows it). Nothing is locked: population alone is timed, then the
//! memory is unmapped and closed (timed as release).

#![allow(unsafe_code)]

use std::time::{Duration, Instant};

pub(crate) const METHODS: [&str; 6] = [
    "madvise",
    "files",
    "touch",
    "fallocate",
    "falloc+populate",
    "anon",
];

/// Populates `size` bytes with `threads` threads by `method`; returns (populate, release).
pub(crate) fn run(
    method: &str,
    size: usize,
    threads: usize,
    thp: bool,
) -> Result<(Duration, Duration), String> {
    let threads = threads.max(1);
    let part = (size / threads).next_multiple_of(2 << 20);
    let size = part * threads;
    let files = if method == "files" { threads } else { 1 };
    let per_file = size / files;
    let mut maps = Vec::new();
    for _ in 0..files {
        maps.push(Map::new(per_file, method == "anon", thp)?);
    }
    let start = Instant::now();
    let failed = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (map, offset) = if files > 1 {
                    (&maps[i], 0)
                } else {
                    (&maps[0], i * part)
                };
                scope.spawn(move || map.populate(method, offset, part))
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().ok().and_then(Result::err))
            .next()
    });
    let populated = start.elapsed();
    if let Some(err) = failed {
        return Err(err);
    }
    let start = Instant::now();
    drop(maps);
    Ok((populated, start.elapsed()))
}

/// One mapping: a memfd (or anonymous memory) of `len` bytes, mapped shared read-write.
struct Map {
    base: usize,
    len: usize,
    fd: i32,
}

impl Map {
    fn new(len: usize, anon: bool, thp: bool) -> Result<Map, String> {
        // SAFETY: plain system calls creating a file and a fresh mapping this value owns.
        unsafe {
            let fd = if anon {
                -1
            } else {
                let fd = libc::memfd_create(c"unimem-probe".as_ptr(), libc::MFD_CLOEXEC);
                if fd < 0 || libc::ftruncate(fd, len as libc::off_t) != 0 {
                    return Err(format!("memfd: {}", std::io::Error::last_os_error()));
                }
                fd
            };
            let flags = if anon {
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS
            } else {
                libc::MAP_SHARED
            };
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(format!("mmap: {}", std::io::Error::last_os_error()));
            }
            if thp {
                libc::madvise(base, len, libc::MADV_HUGEPAGE);
            }
            Ok(Map {
                base: base as usize,
                len,
                fd,
            })
        }
    }

    fn populate(&self, method: &str, offset: usize, len: usize) -> Result<(), String> {
        let ptr = (self.base + offset) as *mut u8;
        // SAFETY: `offset..offset + len` lies inside this mapping, which outlives the
        // threads; each thread touches its own part only.
        let failed = unsafe {
            match method {
                "touch" => {
                    for page in (0..len).step_by(4096) {
                        ptr.add(page).write_volatile(1);
                    }
                    false
                }
                "fallocate" => {
                    libc::fallocate(self.fd, 0, offset as libc::off_t, len as libc::off_t) != 0
                }
                "falloc+populate" => {
                    libc::fallocate(self.fd, 0, offset as libc::off_t, len as libc::off_t) != 0
                        || libc::madvise(ptr.cast(), len, libc::MADV_POPULATE_WRITE) != 0
                }
                _ => libc::madvise(ptr.cast(), len, libc::MADV_POPULATE_WRITE) != 0,
            }
        };
        if failed {
            return Err(format!("{method}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the mapping and the descriptor are this value's own.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
            if self.fd >= 0 {
                libc::close(self.fd);
            }
        }
    }
}
