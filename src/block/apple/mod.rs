//! What only the Apple backend has: IOSurface shapes for the GPU and the Neural Engine, and
//! mach ports that hand a surface to another process.
//!
//! | file | concept |
//! |---|---|
//! | `surface.rs` | [`SurfaceShape`], 2-D fp16 surfaces, `Block::from_mach_port` |
//! | `mach_port.rs` | [`MachPort`]: a send right to a surface, released on drop |
//! | `cpu_lock.rs` | the CPU lock given up and taken back, for a hand-off to the Neural Engine |

mod cpu_lock;
mod mach_port;
mod surface;

pub use mach_port::MachPort;
pub use surface::SurfaceShape;
