//! Every `MemError` as a Python exception: one base class, `unimem.MemError`, and one
//! subclass per `ErrorKind`, carrying the Rust message. Each instance has `kind` (the
//! kind's name, `"pin refused"`) and `variant` (the Rust variant, `"LockRefused"`).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use unimem::ErrorKind;
use unimem::MemError as RustError;

create_exception!(unimem, MemError, PyException, "Any failure of unimem.");
create_exception!(
    unimem,
    InvalidInputError,
    MemError,
    "The arguments can never work."
);
create_exception!(
    unimem,
    StaleError,
    MemError,
    "A handle whose use has ended."
);
create_exception!(
    unimem,
    FullError,
    MemError,
    "A Tape or Grid has no room left."
);
create_exception!(
    unimem,
    OutOfMemoryError,
    MemError,
    "The machine cannot hold it."
);
create_exception!(
    unimem,
    PinRefusedError,
    MemError,
    "The OS refused to pin the pages."
);
create_exception!(
    unimem,
    AccessDeniedError,
    MemError,
    "The memory's access forbids it."
);
create_exception!(
    unimem,
    BusyError,
    MemError,
    "The memory is in use in a way that forbids it now."
);
create_exception!(
    unimem,
    RefusedPeerError,
    MemError,
    "A peer sent something unimem will not map."
);
create_exception!(
    unimem,
    DisconnectedError,
    MemError,
    "The peer closed its end."
);
create_exception!(
    unimem,
    UnsupportedError,
    MemError,
    "This machine lacks the capability."
);
create_exception!(
    unimem,
    OsError,
    MemError,
    "The OS or a driver failed a call."
);

/// Adds the exception classes to the module.
pub(crate) fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MemError", py.get_type::<MemError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("StaleError", py.get_type::<StaleError>())?;
    m.add("FullError", py.get_type::<FullError>())?;
    m.add("OutOfMemoryError", py.get_type::<OutOfMemoryError>())?;
    m.add("PinRefusedError", py.get_type::<PinRefusedError>())?;
    m.add("AccessDeniedError", py.get_type::<AccessDeniedError>())?;
    m.add("BusyError", py.get_type::<BusyError>())?;
    m.add("RefusedPeerError", py.get_type::<RefusedPeerError>())?;
    m.add("DisconnectedError", py.get_type::<DisconnectedError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("OsError", py.get_type::<OsError>())?;
    Ok(())
}

/// The Python exception for `err`: the kind's class, the Rust message, `kind` and
/// `variant` attributes.
pub(crate) fn to_py(err: RustError) -> PyErr {
    let message = err.to_string();
    let py_err = match err.kind() {
        ErrorKind::InvalidInput => InvalidInputError::new_err(message),
        ErrorKind::Stale => StaleError::new_err(message),
        ErrorKind::Full => FullError::new_err(message),
        ErrorKind::OutOfMemory => OutOfMemoryError::new_err(message),
        ErrorKind::PinRefused => PinRefusedError::new_err(message),
        ErrorKind::AccessDenied => AccessDeniedError::new_err(message),
        ErrorKind::Busy => BusyError::new_err(message),
        ErrorKind::RefusedPeer => RefusedPeerError::new_err(message),
        ErrorKind::Disconnected => DisconnectedError::new_err(message),
        ErrorKind::Unsupported => UnsupportedError::new_err(message),
        ErrorKind::Os => OsError::new_err(message),
        _ => MemError::new_err(message),
    };
    let debug = format!("{err:?}");
    let variant = debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned();
    Python::attach(|py| {
        let value = py_err.value(py);
        // Attributes on a fresh exception instance cannot fail.
        let _ = value.setattr("kind", err.kind().as_str());
        let _ = value.setattr("variant", variant);
    });
    py_err
}

/// `?` on a Rust `MemError` in binding code.
pub(crate) trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, RustError> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// A Python-side refusal that has no `MemError`: exports still alive where exclusive
/// access is needed.
pub(crate) fn busy(message: String) -> PyErr {
    let err = BusyError::new_err(message);
    Python::attach(|py| {
        let value = err.value(py);
        let _ = value.setattr("kind", ErrorKind::Busy.as_str());
        let _ = value.setattr("variant", "ExportsAlive");
    });
    err
}
