//! The Linux backend's parts for Blocks at server scale (`specs/scale.md`): what the system
//! offers and where, who populates the pages, and who releases them. `os/linux.rs` puts
//! them in order; each file here is one concept.
//!
//! | file | concept |
//! |---|---|
//! | `sysfs.rs` | reading the small files of `/sys` and `/proc`: numbers, words in brackets, CPU lists |
//! | `huge.rs` | hugetlb pools and THP for shmem, and the choice of pages for a Block |
//! | `numa.rs` | NUMA nodes, their CPUs, `mbind`, and where a Block landed |
//! | `populate.rs` | the populating threads: how many, on which CPUs, in steps a `Progress` sees |
//! | `release.rs` | the release thread: large Blocks unmapped and closed off the caller's path |

pub(crate) mod huge;
pub(crate) mod numa;
pub(crate) mod populate;
pub(crate) mod release;
pub(crate) mod sysfs;
