//! UCX's UCP API, loaded at run time: `dlopen("libucp.so.0")` and one `dlsym` per function,
//! so that unimem builds without UCX and runs without it (feature `ucx`).
//!
//! [`Api`] is the table of function pointers; each method is a thin wrapper over one UCP
//! call that turns the `ucs_status_t` convention into a `Result` carrying the status and
//! does nothing else. Policy lives in `crate::remote`.
//!
//! The structs are `#[repr(C)]` copies of those in `<ucp/api/ucp.h>` and `ucp_def.h` of
//! UCX 1.13.1 (Debian 12's `libucx-dev`), field for field. Their sizes and offsets are
//! checked against `tests/ucx/abi-1.13.txt`, the output of `tests/ucx/abi.c` compiled
//! against those headers (unit test below). UCX keeps them forward compatible with the
//! `field_mask` convention: a later UCX reads only the fields whose bit is set.
//!
//! `ucs_status_t` is a packed enum (`UCS_S_PACKED` in `ucs/type/status.h`): **one byte**,
//! declared here as `i8`. A `ucs_status_ptr_t` is a pointer that is either NULL (done), an
//! error code cast to a pointer (`UCS_PTR_IS_ERR`: within `UCS_ERR_LAST..0`), or a request.
//!
//! # References
//!
//! UCX 1.13.1 headers: `ucp/api/ucp.h` (`ucp_params_t`, `ucp_worker_params_t`,
//! `ucp_mem_map_params_t`, `ucp_request_param_t`, the functions), `ucp/api/ucp_def.h`
//! (`ucp_ep_params_t`, `ucp_err_handler_t`), `ucs/type/status.h`, `ucs/type/cpu_set.h`,
//! `ucs/config/types.h` (`ucs_sock_addr_t`). dlopen(3), dlsym(3).

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ptr::NonNull;

/// `ucs_status_t`: 0 is success, 1 in progress, negative values errors.
pub(crate) type Status = i8;
/// `ucp_context_h`, `ucp_worker_h`, `ucp_ep_h`, `ucp_mem_h`, `ucp_rkey_h`, `ucp_address_t *`.
pub(crate) type Handle = *mut c_void;

/// The UCP library of every UCX installation (`libucx0` on Debian).
pub(crate) const LIBRARY: &str = "libucp.so.0";

pub(crate) const OK: Status = 0;
/// `UCS_ERR_UNREACHABLE`.
pub(crate) const UNREACHABLE: Status = -6;
pub(crate) const INPROGRESS: Status = 1;
/// `UCS_ERR_CANCELED`: what operations of a force-closed endpoint complete with.
pub(crate) const CANCELED: Status = -16;
/// `UCS_ERR_LAST`: status pointers in `UCS_ERR_LAST..0` are errors.
const ERR_LAST: isize = -100;

pub(crate) const PARAM_FIELD_FEATURES: u64 = 1;
pub(crate) const FEATURE_RMA: u64 = 2;
pub(crate) const WORKER_PARAM_FIELD_THREAD_MODE: u64 = 1;
pub(crate) const THREAD_MODE_SINGLE: c_int = 0;
pub(crate) const EP_PARAM_FIELD_REMOTE_ADDRESS: u64 = 1;
pub(crate) const EP_PARAM_FIELD_ERR_HANDLING_MODE: u64 = 2;
pub(crate) const EP_PARAM_FIELD_ERR_HANDLER: u64 = 4;
pub(crate) const ERR_HANDLING_MODE_PEER: c_int = 1;
pub(crate) const EP_CLOSE_FLAG_FORCE: u32 = 1;
pub(crate) const MEM_MAP_PARAM_FIELD_ADDRESS: u64 = 1;
pub(crate) const MEM_MAP_PARAM_FIELD_LENGTH: u64 = 2;
pub(crate) const MEM_MAP_PARAM_FIELD_MEMORY_TYPE: u64 = 16;
pub(crate) const MEMORY_TYPE_HOST: c_int = 0;
pub(crate) const OP_ATTR_FIELD_FLAGS: u32 = 16;
pub(crate) const OP_ATTR_FIELD_MEMH: u32 = 256;

/// `ucp_params_t`.
#[repr(C)]
pub(crate) struct Params {
    pub(crate) field_mask: u64,
    pub(crate) features: u64,
    pub(crate) request_size: usize,
    pub(crate) request_init: Option<unsafe extern "C" fn(*mut c_void)>,
    pub(crate) request_cleanup: Option<unsafe extern "C" fn(*mut c_void)>,
    pub(crate) tag_sender_mask: u64,
    pub(crate) mt_workers_shared: c_int,
    pub(crate) estimated_num_eps: usize,
    pub(crate) estimated_num_ppn: usize,
    pub(crate) name: *const c_char,
}

/// `ucp_worker_params_t`; `cpu_mask` is `ucs_cpu_set_t`, 1024 bits.
#[repr(C)]
pub(crate) struct WorkerParams {
    pub(crate) field_mask: u64,
    pub(crate) thread_mode: c_int,
    pub(crate) cpu_mask: [u64; 16],
    pub(crate) events: c_uint,
    pub(crate) user_data: *mut c_void,
    pub(crate) event_fd: c_int,
    pub(crate) flags: u64,
    pub(crate) name: *const c_char,
    pub(crate) am_alignment: usize,
    pub(crate) client_id: u64,
}

/// `ucp_err_handler_cb_t`.
pub(crate) type ErrHandlerCb = unsafe extern "C" fn(arg: *mut c_void, ep: Handle, status: Status);

/// `ucp_err_handler_t`.
#[repr(C)]
pub(crate) struct ErrHandler {
    pub(crate) cb: Option<ErrHandlerCb>,
    pub(crate) arg: *mut c_void,
}

/// `ucs_sock_addr_t`.
#[repr(C)]
pub(crate) struct SockAddr {
    pub(crate) addr: *const c_void,
    pub(crate) addrlen: u32,
}

/// `ucp_ep_params_t`.
#[repr(C)]
pub(crate) struct EpParams {
    pub(crate) field_mask: u64,
    pub(crate) address: *const c_void,
    pub(crate) err_mode: c_int,
    pub(crate) err_handler: ErrHandler,
    pub(crate) user_data: *mut c_void,
    pub(crate) flags: c_uint,
    pub(crate) sockaddr: SockAddr,
    pub(crate) conn_request: *mut c_void,
    pub(crate) name: *const c_char,
    pub(crate) local_sockaddr: SockAddr,
}

/// `ucp_mem_map_params_t`.
#[repr(C)]
pub(crate) struct MemMapParams {
    pub(crate) field_mask: u64,
    pub(crate) address: *mut c_void,
    pub(crate) length: usize,
    pub(crate) flags: c_uint,
    pub(crate) prot: c_uint,
    pub(crate) memory_type: c_int,
}

/// `ucp_request_param_t`; `cb` and `recv_info` are unions of pointers, unused here.
#[repr(C)]
pub(crate) struct RequestParam {
    pub(crate) op_attr_mask: u32,
    pub(crate) flags: u32,
    pub(crate) request: *mut c_void,
    pub(crate) cb: *mut c_void,
    pub(crate) datatype: u64,
    pub(crate) user_data: *mut c_void,
    pub(crate) reply_buffer: *mut c_void,
    pub(crate) memory_type: c_int,
    pub(crate) recv_info: *mut c_void,
    pub(crate) memh: Handle,
}

impl RequestParam {
    /// No field set: defaults for everything.
    pub(crate) fn empty() -> RequestParam {
        RequestParam {
            op_attr_mask: 0,
            flags: 0,
            request: std::ptr::null_mut(),
            cb: std::ptr::null_mut(),
            datatype: 0,
            user_data: std::ptr::null_mut(),
            reply_buffer: std::ptr::null_mut(),
            memory_type: 0,
            recv_info: std::ptr::null_mut(),
            memh: std::ptr::null_mut(),
        }
    }
}

/// Why the table could not be built.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// `dlopen` failed; the text is `dlerror()`'s.
    Library { reason: String },
    /// `dlsym` found no such function; the text is `dlerror()`'s.
    Symbol {
        symbol: &'static str,
        reason: String,
    },
}

/// Declares the table: one field per UCP function, resolved by its exported name.
macro_rules! api {
    ($( $field:ident = $symbol:literal : fn($($arg:ty),*) -> $ret:ty; )*) => {
        /// The UCP functions unimem calls, resolved from `libucp.so.0`.
        pub(crate) struct Api {
            $( $field: unsafe extern "C" fn($($arg),*) -> $ret, )*
        }

        impl Api {
            fn resolve(library: NonNull<c_void>) -> Result<Api, LoadError> {
                Ok(Api {
                    $( $field: {
                        let address = symbol(library, $symbol)?;
                        // SAFETY: UCX exports `$symbol` with exactly this C signature
                        // (ucp.h of 1.13.1, quoted in the field's wrapper); a function
                        // pointer and a data pointer have the same size and representation
                        // on every target with dlsym.
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> $ret>(
                                address.as_ptr(),
                            )
                        }
                    }, )*
                })
            }
        }
    };
}

api! {
    get_version = "ucp_get_version": fn(*mut c_uint, *mut c_uint, *mut c_uint) -> ();
    init_version = "ucp_init_version": fn(c_uint, c_uint, *const Params, *const c_void, *mut Handle) -> Status;
    cleanup = "ucp_cleanup": fn(Handle) -> ();
    worker_create = "ucp_worker_create": fn(Handle, *const WorkerParams, *mut Handle) -> Status;
    worker_destroy = "ucp_worker_destroy": fn(Handle) -> ();
    worker_get_address = "ucp_worker_get_address": fn(Handle, *mut Handle, *mut usize) -> Status;
    worker_release_address = "ucp_worker_release_address": fn(Handle, Handle) -> ();
    worker_progress = "ucp_worker_progress": fn(Handle) -> c_uint;
    worker_flush_nbx = "ucp_worker_flush_nbx": fn(Handle, *const RequestParam) -> *mut c_void;
    ep_create = "ucp_ep_create": fn(Handle, *const EpParams, *mut Handle) -> Status;
    ep_close_nbx = "ucp_ep_close_nbx": fn(Handle, *const RequestParam) -> *mut c_void;
    ep_flush_nbx = "ucp_ep_flush_nbx": fn(Handle, *const RequestParam) -> *mut c_void;
    mem_map = "ucp_mem_map": fn(Handle, *const MemMapParams, *mut Handle) -> Status;
    mem_unmap = "ucp_mem_unmap": fn(Handle, Handle) -> Status;
    rkey_pack = "ucp_rkey_pack": fn(Handle, Handle, *mut *mut c_void, *mut usize) -> Status;
    rkey_buffer_release = "ucp_rkey_buffer_release": fn(*mut c_void) -> ();
    ep_rkey_unpack = "ucp_ep_rkey_unpack": fn(Handle, *const c_void, *mut Handle) -> Status;
    rkey_destroy = "ucp_rkey_destroy": fn(Handle) -> ();
    put_nbx = "ucp_put_nbx": fn(Handle, *const c_void, usize, u64, Handle, *const RequestParam) -> *mut c_void;
    get_nbx = "ucp_get_nbx": fn(Handle, *mut c_void, usize, u64, Handle, *const RequestParam) -> *mut c_void;
    request_check_status = "ucp_request_check_status": fn(*mut c_void) -> Status;
    request_free = "ucp_request_free": fn(*mut c_void) -> ();
    status_string = "ucs_status_string": fn(Status) -> *const c_char;
}

/// What a non-blocking call returned: done, failed, or a request to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// Completed in the call (a NULL `ucs_status_ptr_t`).
    Done,
    /// A request; free it with [`Api::request_free`] once it has completed.
    Request(NonNull<c_void>),
}

/// Splits a `ucs_status_ptr_t` (`UCS_PTR_IS_ERR`, `UCS_PTR_IS_PTR` in `ucs/type/status.h`).
fn started(ptr: *mut c_void) -> Result<Started, Status> {
    let raw = ptr as isize;
    if (ERR_LAST..0).contains(&raw) {
        return Err(raw as Status);
    }
    Ok(NonNull::new(ptr).map_or(Started::Done, Started::Request))
}

/// `dlerror()`'s text, or `fallback` when it has none.
fn dl_error(fallback: &str) -> String {
    // SAFETY: dlerror has no preconditions; its state is per thread in glibc and musl.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        return fallback.to_owned();
    }
    // SAFETY: a non-null dlerror result is a NUL-terminated string valid until the next
    // dl* call on this thread; it is copied out at once.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// `dlsym(library, name)`, refusing a null address.
fn symbol(library: NonNull<c_void>, name: &'static str) -> Result<NonNull<c_void>, LoadError> {
    let cname = std::ffi::CString::new(name).map_err(|_| LoadError::Symbol {
        symbol: name,
        reason: "name contains NUL".into(),
    })?;
    // SAFETY: clears any stale error so the one read below belongs to this lookup.
    unsafe { libc::dlerror() };
    // SAFETY: `library` is a live handle from dlopen (never closed while the table is in
    // use) and `cname` is NUL terminated. dlsym searches the library and the libraries it
    // was loaded with (`libucs.so.0` for `ucs_status_string`).
    let address = unsafe { libc::dlsym(library.as_ptr(), cname.as_ptr()) };
    NonNull::new(address).ok_or_else(|| LoadError::Symbol {
        symbol: name,
        reason: dl_error("dlsym returned NULL"),
    })
}

fn check(status: Status) -> Result<(), Status> {
    if status == OK { Ok(()) } else { Err(status) }
}

impl Api {
    /// `dlopen("libucp.so.0", RTLD_NOW | RTLD_LOCAL)` and resolve every function. The
    /// handle is closed again if a function is missing, and never closed otherwise.
    pub(crate) fn load() -> Result<Api, LoadError> {
        let name = std::ffi::CString::new(LIBRARY).map_err(|_| LoadError::Library {
            reason: "library name contains NUL".into(),
        })?;
        // SAFETY: `name` is NUL terminated; loading UCX runs its own initialisers (it reads
        // its configuration from the environment and loads its transport modules).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        let Some(library) = NonNull::new(handle) else {
            return Err(LoadError::Library {
                reason: dl_error("dlopen returned NULL"),
            });
        };
        Api::resolve(library).inspect_err(|_| {
            // SAFETY: no pointer resolved from the handle survives this error path.
            unsafe { libc::dlclose(library.as_ptr()) };
        })
    }

    /// `ucp_get_version(&major, &minor, &release)`.
    pub(crate) fn version(&self) -> (u32, u32, u32) {
        let (mut major, mut minor, mut release) = (0, 0, 0);
        // SAFETY: three out pointers, each valid for one write.
        unsafe { (self.get_version)(&mut major, &mut minor, &mut release) };
        (major, minor, release)
    }

    /// `ucp_init_version(major, minor, params, NULL, &context)`: the configuration is read
    /// from the `UCX_*` environment variables.
    pub(crate) fn init(&self, major: u32, minor: u32, params: &Params) -> Result<Handle, Status> {
        fault!("ucp_init_version");
        let mut context = std::ptr::null_mut();
        // SAFETY: `params` is a valid ucp_params_t whose field_mask names only set fields;
        // a NULL config means "read the environment"; the out pointer is valid.
        check(unsafe {
            (self.init_version)(major, minor, params, std::ptr::null(), &mut context)
        })?;
        Ok(context)
    }

    /// `ucp_cleanup`.
    ///
    /// # Safety
    ///
    /// `context` came from [`init`](Api::init), and every worker and memory handle of it is
    /// gone.
    pub(crate) unsafe fn cleanup(&self, context: Handle) {
        // SAFETY: per the caller's contract.
        unsafe { (self.cleanup)(context) }
    }

    /// `ucp_worker_create`.
    pub(crate) fn worker_create(
        &self,
        context: Handle,
        params: &WorkerParams,
    ) -> Result<Handle, Status> {
        fault!("ucp_worker_create");
        let mut worker = std::ptr::null_mut();
        // SAFETY: `context` is live (the caller holds it); `params` is valid; the out
        // pointer is valid.
        check(unsafe { (self.worker_create)(context, params, &mut worker) })?;
        Ok(worker)
    }

    /// `ucp_worker_destroy`.
    ///
    /// # Safety
    ///
    /// `worker` is live, and every endpoint and request of it is gone.
    pub(crate) unsafe fn worker_destroy(&self, worker: Handle) {
        // SAFETY: per the caller's contract.
        unsafe { (self.worker_destroy)(worker) }
    }

    /// `ucp_worker_get_address`, copied into a `Vec` (and the UCX copy released).
    pub(crate) fn worker_address(&self, worker: Handle) -> Result<Vec<u8>, Status> {
        fault!("ucp_worker_get_address");
        let (mut address, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: `worker` is live; both out pointers are valid.
        check(unsafe { (self.worker_get_address)(worker, &mut address, &mut len) })?;
        // SAFETY: UCX returned `len` readable bytes at `address`, which stay valid until
        // released just below.
        let bytes = unsafe { std::slice::from_raw_parts(address.cast::<u8>(), len) }.to_vec();
        // SAFETY: `address` came from ucp_worker_get_address on this worker, released once.
        unsafe { (self.worker_release_address)(worker, address) };
        Ok(bytes)
    }

    /// `ucp_worker_progress`: the number of events it processed.
    pub(crate) fn progress(&self, worker: Handle) -> u32 {
        // SAFETY: `worker` is live and used by this thread only (single thread mode).
        unsafe { (self.worker_progress)(worker) }
    }

    /// `ucp_worker_flush_nbx(worker, &empty)`.
    pub(crate) fn worker_flush(&self, worker: Handle) -> Result<Started, Status> {
        fault!("ucp_worker_flush_nbx");
        let param = RequestParam::empty();
        // SAFETY: `worker` is live; `param` sets no field.
        started(unsafe { (self.worker_flush_nbx)(worker, &param) })
    }

    /// `ucp_ep_create` to the worker at `address`, in error handling mode `PEER`, with
    /// `handler(arg, ep, status)` called on a transport failure. In that mode UCX completes
    /// every request, with an error if the peer failed ("Guarantees that send requests are
    /// always completed", `ucp_def.h`), which is what lets a forced close end a transfer.
    ///
    /// # Safety
    ///
    /// `address` is a worker address UCX can parse (UCX reads it without a length: it must
    /// come from an authenticated peer), and `arg` stays valid for `handler` until the
    /// endpoint is closed.
    pub(crate) unsafe fn ep_create(
        &self,
        worker: Handle,
        address: &[u8],
        handler: ErrHandlerCb,
        arg: *mut c_void,
    ) -> Result<Handle, Status> {
        fault!("ucp_ep_create");
        let params = EpParams {
            field_mask: EP_PARAM_FIELD_REMOTE_ADDRESS
                | EP_PARAM_FIELD_ERR_HANDLING_MODE
                | EP_PARAM_FIELD_ERR_HANDLER,
            address: address.as_ptr().cast(),
            err_mode: ERR_HANDLING_MODE_PEER,
            err_handler: ErrHandler {
                cb: Some(handler),
                arg,
            },
            user_data: std::ptr::null_mut(),
            flags: 0,
            sockaddr: SockAddr {
                addr: std::ptr::null(),
                addrlen: 0,
            },
            conn_request: std::ptr::null_mut(),
            name: std::ptr::null(),
            local_sockaddr: SockAddr {
                addr: std::ptr::null(),
                addrlen: 0,
            },
        };
        let mut ep = std::ptr::null_mut();
        // SAFETY: `worker` is live; `params` names only the fields it sets; the address
        // and `arg` per the caller's contract.
        check(unsafe { (self.ep_create)(worker, &params, &mut ep) })?;
        Ok(ep)
    }

    /// `ucp_ep_close_nbx`, forced (outstanding operations complete with an error) or not
    /// (they complete first).
    ///
    /// # Safety
    ///
    /// `ep` is live and never used again.
    pub(crate) unsafe fn ep_close(&self, ep: Handle, force: bool) -> Result<Started, Status> {
        fault!("ucp_ep_close_nbx");
        let mut param = RequestParam::empty();
        param.op_attr_mask = OP_ATTR_FIELD_FLAGS;
        param.flags = if force { EP_CLOSE_FLAG_FORCE } else { 0 };
        // SAFETY: per the caller's contract; `param` is valid.
        started(unsafe { (self.ep_close_nbx)(ep, &param) })
    }

    /// `ucp_ep_flush_nbx(ep, &empty)`: completes once every operation issued on `ep` has
    /// completed remotely.
    pub(crate) fn ep_flush(&self, ep: Handle) -> Result<Started, Status> {
        fault!("ucp_ep_flush_nbx");
        let param = RequestParam::empty();
        // SAFETY: `ep` is live (the caller holds it); `param` sets no field.
        started(unsafe { (self.ep_flush_nbx)(ep, &param) })
    }

    /// `ucp_mem_map` of existing host memory (no `UCP_MEM_MAP_ALLOCATE`).
    ///
    /// # Safety
    ///
    /// `address..address + length` is mapped and stays mapped until
    /// [`mem_unmap`](Api::mem_unmap) of the returned handle.
    pub(crate) unsafe fn mem_map(
        &self,
        context: Handle,
        address: *mut c_void,
        length: usize,
    ) -> Result<Handle, Status> {
        fault!("ucp_mem_map");
        let params = MemMapParams {
            field_mask: MEM_MAP_PARAM_FIELD_ADDRESS
                | MEM_MAP_PARAM_FIELD_LENGTH
                | MEM_MAP_PARAM_FIELD_MEMORY_TYPE,
            address,
            length,
            flags: 0,
            prot: 0,
            memory_type: MEMORY_TYPE_HOST,
        };
        let mut memh = std::ptr::null_mut();
        // SAFETY: per the caller's contract; registering does not change the bytes.
        check(unsafe { (self.mem_map)(context, &params, &mut memh) })?;
        Ok(memh)
    }

    /// `ucp_mem_unmap`.
    ///
    /// # Safety
    ///
    /// `memh` is a live handle of `context`, and no operation uses its memory any more.
    pub(crate) unsafe fn mem_unmap(&self, context: Handle, memh: Handle) -> Result<(), Status> {
        fault!("ucp_mem_unmap");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.mem_unmap)(context, memh) })
    }

    /// `ucp_rkey_pack`, copied into a `Vec` (and the UCX buffer released).
    pub(crate) fn rkey_pack(&self, context: Handle, memh: Handle) -> Result<Vec<u8>, Status> {
        fault!("ucp_rkey_pack");
        let (mut buffer, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: `context` and `memh` are live; both out pointers are valid.
        check(unsafe { (self.rkey_pack)(context, memh, &mut buffer, &mut len) })?;
        // SAFETY: UCX returned `len` readable bytes at `buffer`, valid until released.
        let bytes = unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), len) }.to_vec();
        // SAFETY: `buffer` came from ucp_rkey_pack, released once.
        unsafe { (self.rkey_buffer_release)(buffer) };
        Ok(bytes)
    }

    /// `ucp_ep_rkey_unpack`.
    ///
    /// # Safety
    ///
    /// `ep` is live, and `packed` is a key UCX can parse: UCX reads it without a length and
    /// acts on its contents (it maps shared-memory segments it names), so it must have been
    /// authenticated and checked against this UCX's format first.
    pub(crate) unsafe fn rkey_unpack(&self, ep: Handle, packed: &[u8]) -> Result<Handle, Status> {
        fault!("ucp_ep_rkey_unpack");
        let mut rkey = std::ptr::null_mut();
        // SAFETY: per the caller's contract.
        check(unsafe { (self.ep_rkey_unpack)(ep, packed.as_ptr().cast(), &mut rkey) })?;
        Ok(rkey)
    }

    /// `ucp_rkey_destroy`.
    ///
    /// # Safety
    ///
    /// `rkey` is live and no operation uses it any more.
    pub(crate) unsafe fn rkey_destroy(&self, rkey: Handle) {
        // SAFETY: per the caller's contract.
        unsafe { (self.rkey_destroy)(rkey) }
    }

    /// `ucp_put_nbx(ep, buffer, len, remote, rkey, {memh})`.
    ///
    /// # Safety
    ///
    /// `buffer..buffer + len` is readable and nobody writes it until the operation has
    /// completed (or the endpoint was force-closed and the request completed); `memh`
    /// covers it; `remote..remote + len` lies inside the memory `rkey` names.
    pub(crate) unsafe fn put(
        &self,
        ep: Handle,
        buffer: *const u8,
        len: usize,
        remote: u64,
        rkey: Handle,
        memh: Handle,
    ) -> Result<Started, Status> {
        fault!("ucp_put_nbx");
        let mut param = RequestParam::empty();
        param.op_attr_mask = OP_ATTR_FIELD_MEMH;
        param.memh = memh;
        // SAFETY: per the caller's contract.
        started(unsafe { (self.put_nbx)(ep, buffer.cast(), len, remote, rkey, &param) })
    }

    /// `ucp_get_nbx(ep, buffer, len, remote, rkey, {memh})`.
    ///
    /// # Safety
    ///
    /// As [`put`](Api::put), with `buffer` writable and neither read nor written by anyone
    /// else until the operation has completed.
    pub(crate) unsafe fn get(
        &self,
        ep: Handle,
        buffer: *mut u8,
        len: usize,
        remote: u64,
        rkey: Handle,
        memh: Handle,
    ) -> Result<Started, Status> {
        fault!("ucp_get_nbx");
        let mut param = RequestParam::empty();
        param.op_attr_mask = OP_ATTR_FIELD_MEMH;
        param.memh = memh;
        // SAFETY: per the caller's contract.
        started(unsafe { (self.get_nbx)(ep, buffer.cast(), len, remote, rkey, &param) })
    }

    /// `ucp_request_check_status`: `INPROGRESS`, `OK` or the error it completed with.
    ///
    /// # Safety
    ///
    /// `request` is a live request (not yet freed).
    pub(crate) unsafe fn request_status(&self, request: NonNull<c_void>) -> Status {
        // SAFETY: per the caller's contract.
        unsafe { (self.request_check_status)(request.as_ptr()) }
    }

    /// `ucp_request_free`.
    ///
    /// # Safety
    ///
    /// `request` is live and not used again.
    pub(crate) unsafe fn request_free(&self, request: NonNull<c_void>) {
        // SAFETY: per the caller's contract.
        unsafe { (self.request_free)(request.as_ptr()) }
    }

    /// `ucs_status_string`: `"Endpoint timeout"` for -80.
    pub(crate) fn status_name(&self, status: Status) -> &'static str {
        // SAFETY: takes any value; returns a static string of the library (or NULL).
        let text = unsafe { (self.status_string)(status) };
        if text.is_null() {
            return "unknown";
        }
        // SAFETY: a NUL-terminated static string of libucs, which is never unloaded.
        unsafe { CStr::from_ptr(text) }
            .to_str()
            .unwrap_or("unknown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The layout of every struct, as the 1.13.1 headers define it (tests/ucx/abi.c).
    const RECORD: &str = include_str!("../../tests/ucx/abi-1.13.txt");

    fn ours(name: &str) -> Option<usize> {
        Some(match name {
            "size ucp_params_t" => size_of::<Params>(),
            "offset ucp_params_t.field_mask" => offset_of!(Params, field_mask),
            "offset ucp_params_t.features" => offset_of!(Params, features),
            "offset ucp_params_t.request_size" => offset_of!(Params, request_size),
            "offset ucp_params_t.request_init" => offset_of!(Params, request_init),
            "offset ucp_params_t.request_cleanup" => offset_of!(Params, request_cleanup),
            "offset ucp_params_t.tag_sender_mask" => offset_of!(Params, tag_sender_mask),
            "offset ucp_params_t.mt_workers_shared" => offset_of!(Params, mt_workers_shared),
            "offset ucp_params_t.estimated_num_eps" => offset_of!(Params, estimated_num_eps),
            "offset ucp_params_t.estimated_num_ppn" => offset_of!(Params, estimated_num_ppn),
            "offset ucp_params_t.name" => offset_of!(Params, name),
            "size ucp_worker_params_t" => size_of::<WorkerParams>(),
            "offset ucp_worker_params_t.field_mask" => offset_of!(WorkerParams, field_mask),
            "offset ucp_worker_params_t.thread_mode" => offset_of!(WorkerParams, thread_mode),
            "offset ucp_worker_params_t.cpu_mask" => offset_of!(WorkerParams, cpu_mask),
            "offset ucp_worker_params_t.events" => offset_of!(WorkerParams, events),
            "offset ucp_worker_params_t.user_data" => offset_of!(WorkerParams, user_data),
            "offset ucp_worker_params_t.event_fd" => offset_of!(WorkerParams, event_fd),
            "offset ucp_worker_params_t.flags" => offset_of!(WorkerParams, flags),
            "offset ucp_worker_params_t.name" => offset_of!(WorkerParams, name),
            "offset ucp_worker_params_t.am_alignment" => offset_of!(WorkerParams, am_alignment),
            "offset ucp_worker_params_t.client_id" => offset_of!(WorkerParams, client_id),
            "size ucp_ep_params_t" => size_of::<EpParams>(),
            "offset ucp_ep_params_t.field_mask" => offset_of!(EpParams, field_mask),
            "offset ucp_ep_params_t.address" => offset_of!(EpParams, address),
            "offset ucp_ep_params_t.err_mode" => offset_of!(EpParams, err_mode),
            "offset ucp_ep_params_t.err_handler" => offset_of!(EpParams, err_handler),
            "offset ucp_ep_params_t.user_data" => offset_of!(EpParams, user_data),
            "offset ucp_ep_params_t.flags" => offset_of!(EpParams, flags),
            "offset ucp_ep_params_t.sockaddr" => offset_of!(EpParams, sockaddr),
            "offset ucp_ep_params_t.conn_request" => offset_of!(EpParams, conn_request),
            "offset ucp_ep_params_t.name" => offset_of!(EpParams, name),
            "offset ucp_ep_params_t.local_sockaddr" => offset_of!(EpParams, local_sockaddr),
            "size ucp_mem_map_params_t" => size_of::<MemMapParams>(),
            "offset ucp_mem_map_params_t.field_mask" => offset_of!(MemMapParams, field_mask),
            "offset ucp_mem_map_params_t.address" => offset_of!(MemMapParams, address),
            "offset ucp_mem_map_params_t.length" => offset_of!(MemMapParams, length),
            "offset ucp_mem_map_params_t.flags" => offset_of!(MemMapParams, flags),
            "offset ucp_mem_map_params_t.prot" => offset_of!(MemMapParams, prot),
            "offset ucp_mem_map_params_t.memory_type" => offset_of!(MemMapParams, memory_type),
            "size ucp_request_param_t" => size_of::<RequestParam>(),
            "offset ucp_request_param_t.op_attr_mask" => offset_of!(RequestParam, op_attr_mask),
            "offset ucp_request_param_t.flags" => offset_of!(RequestParam, flags),
            "offset ucp_request_param_t.request" => offset_of!(RequestParam, request),
            "offset ucp_request_param_t.cb" => offset_of!(RequestParam, cb),
            "offset ucp_request_param_t.datatype" => offset_of!(RequestParam, datatype),
            "offset ucp_request_param_t.user_data" => offset_of!(RequestParam, user_data),
            "offset ucp_request_param_t.reply_buffer" => offset_of!(RequestParam, reply_buffer),
            "offset ucp_request_param_t.memory_type" => offset_of!(RequestParam, memory_type),
            "offset ucp_request_param_t.recv_info" => offset_of!(RequestParam, recv_info),
            "offset ucp_request_param_t.memh" => offset_of!(RequestParam, memh),
            "size ucs_status_t" => size_of::<Status>(),
            "size ucs_thread_mode_t"
            | "size ucs_memory_type_t"
            | "size ucp_err_handling_mode_t" => size_of::<c_int>(),
            "size ucp_datatype_t" => size_of::<u64>(),
            _ => return None,
        })
    }

    fn constant(name: &str) -> Option<i64> {
        Some(match name {
            "UCP_PARAM_FIELD_FEATURES" => PARAM_FIELD_FEATURES as i64,
            "UCP_FEATURE_RMA" => FEATURE_RMA as i64,
            "UCP_WORKER_PARAM_FIELD_THREAD_MODE" => WORKER_PARAM_FIELD_THREAD_MODE as i64,
            "UCS_THREAD_MODE_SINGLE" => THREAD_MODE_SINGLE as i64,
            "UCP_EP_PARAM_FIELD_REMOTE_ADDRESS" => EP_PARAM_FIELD_REMOTE_ADDRESS as i64,
            "UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE" => EP_PARAM_FIELD_ERR_HANDLING_MODE as i64,
            "UCP_EP_PARAM_FIELD_ERR_HANDLER" => EP_PARAM_FIELD_ERR_HANDLER as i64,
            "UCP_ERR_HANDLING_MODE_PEER" => ERR_HANDLING_MODE_PEER as i64,
            "UCP_EP_CLOSE_FLAG_FORCE" => EP_CLOSE_FLAG_FORCE as i64,
            "UCP_MEM_MAP_PARAM_FIELD_ADDRESS" => MEM_MAP_PARAM_FIELD_ADDRESS as i64,
            "UCP_MEM_MAP_PARAM_FIELD_LENGTH" => MEM_MAP_PARAM_FIELD_LENGTH as i64,
            "UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE" => MEM_MAP_PARAM_FIELD_MEMORY_TYPE as i64,
            "UCS_MEMORY_TYPE_HOST" => MEMORY_TYPE_HOST as i64,
            "UCP_OP_ATTR_FIELD_FLAGS" => OP_ATTR_FIELD_FLAGS as i64,
            "UCP_OP_ATTR_FIELD_MEMH" => OP_ATTR_FIELD_MEMH as i64,
            "UCS_OK" => OK as i64,
            "UCS_INPROGRESS" => INPROGRESS as i64,
            "UCS_ERR_LAST" => ERR_LAST as i64,
            _ => return None,
        })
    }

    #[test]
    fn abi_matches_the_headers() {
        let mut checked = 0;
        for line in RECORD.lines() {
            let (key, value) = line.rsplit_once(' ').unwrap();
            if let Some(name) = key.strip_prefix("const ") {
                if let Some(ours) = constant(name) {
                    assert_eq!(ours, value.parse::<i64>().unwrap(), "{line}");
                    checked += 1;
                }
            } else if let Some(ours) = ours(key) {
                assert_eq!(ours, value.parse::<usize>().unwrap(), "{line}");
                checked += 1;
            }
        }
        // Every struct line and every constant unimem uses was compared.
        // 51 struct lines, 5 type sizes, 18 constants (the record has 5 more, unused).
        assert_eq!(checked, 51 + 5 + 18, "lines compared");
        assert!(RECORD.starts_with("version 1.13\n"));
    }

    #[test]
    fn status_pointers_split_as_ucs_ptr_is_err() {
        assert_eq!(started(std::ptr::null_mut()), Ok(Started::Done));
        assert_eq!(
            started(std::ptr::without_provenance_mut(-80isize as usize)),
            Err(-80)
        );
        assert_eq!(
            started(std::ptr::without_provenance_mut(-100isize as usize)),
            Err(-100)
        );
        let mut x = 0u8;
        let p: *mut c_void = (&raw mut x).cast();
        assert_eq!(started(p), Ok(Started::Request(NonNull::new(p).unwrap())));
    }
}
