//! Status codes and the error type.

use std::ffi::CStr;
use std::fmt;

use gptq_sys as sys;

/// Why a call failed: one variant per `gptq_status` error code of the C
/// library (`GPTQ_OK` is not a failure and has no variant).
///
/// The values are the C library's, fixed forever; [`Status::code`] gives them
/// back. A library newer than this crate may return a code appended later;
/// that becomes [`Status::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `GPTQ_ERR_NULL_POINTER`: a required pointer was NULL (cannot come from
    /// safe Rust; listed for completeness).
    NullPointer,
    /// `GPTQ_ERR_INVALID_SIZE`: a size or count was zero, negative or
    /// absurdly large.
    InvalidSize,
    /// `GPTQ_ERR_SIZE_MISMATCH`: sizes that must agree do not (also raised by
    /// this crate when a slice's length does not match the shape given).
    SizeMismatch,
    /// `GPTQ_ERR_NON_FINITE`: activations, weights or a Hessian hold NaN/Inf.
    NonFinite,
    /// `GPTQ_ERR_INVALID_CONFIG`: a configuration value is out of range.
    InvalidConfig,
    /// `GPTQ_ERR_INVALID_STATE`: not valid in the object's current state,
    /// e.g. quantizing before any calibration data.
    InvalidState,
    /// `GPTQ_ERR_UNSUPPORTED`: well-formed but not representable, e.g. a
    /// format-V1 export of a zero of 0.
    Unsupported,
    /// `GPTQ_ERR_BACKEND_UNAVAILABLE`: the requested backend cannot be used.
    BackendUnavailable,
    /// `GPTQ_ERR_OUT_OF_MEMORY`: memory could not be allocated.
    OutOfMemory,
    /// `GPTQ_ERR_CANCELLED`: the progress callback asked to stop.
    Cancelled,
    /// `GPTQ_ERR_INVALID_DATA`: imported data is inconsistent.
    InvalidData,
    /// `GPTQ_ERR_INTERNAL`: a bug in libgptq.
    Internal,
    /// A code this crate does not know (from a newer library).
    Unknown(i32),
}

impl Status {
    /// The status for a C code; `None` for `GPTQ_OK`.
    pub fn from_code(code: sys::gptq_status) -> Option<Status> {
        Some(match code {
            sys::GPTQ_OK => return None,
            sys::GPTQ_ERR_NULL_POINTER => Status::NullPointer,
            sys::GPTQ_ERR_INVALID_SIZE => Status::InvalidSize,
            sys::GPTQ_ERR_SIZE_MISMATCH => Status::SizeMismatch,
            sys::GPTQ_ERR_NON_FINITE => Status::NonFinite,
            sys::GPTQ_ERR_INVALID_CONFIG => Status::InvalidConfig,
            sys::GPTQ_ERR_INVALID_STATE => Status::InvalidState,
            sys::GPTQ_ERR_UNSUPPORTED => Status::Unsupported,
            sys::GPTQ_ERR_BACKEND_UNAVAILABLE => Status::BackendUnavailable,
            sys::GPTQ_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::GPTQ_ERR_CANCELLED => Status::Cancelled,
            sys::GPTQ_ERR_INVALID_DATA => Status::InvalidData,
            sys::GPTQ_ERR_INTERNAL => Status::Internal,
            other => Status::Unknown(other),
        })
    }

    /// The C code of this status.
    pub fn code(self) -> sys::gptq_status {
        match self {
            Status::NullPointer => sys::GPTQ_ERR_NULL_POINTER,
            Status::InvalidSize => sys::GPTQ_ERR_INVALID_SIZE,
            Status::SizeMismatch => sys::GPTQ_ERR_SIZE_MISMATCH,
            Status::NonFinite => sys::GPTQ_ERR_NON_FINITE,
            Status::InvalidConfig => sys::GPTQ_ERR_INVALID_CONFIG,
            Status::InvalidState => sys::GPTQ_ERR_INVALID_STATE,
            Status::Unsupported => sys::GPTQ_ERR_UNSUPPORTED,
            Status::BackendUnavailable => sys::GPTQ_ERR_BACKEND_UNAVAILABLE,
            Status::OutOfMemory => sys::GPTQ_ERR_OUT_OF_MEMORY,
            Status::Cancelled => sys::GPTQ_ERR_CANCELLED,
            Status::InvalidData => sys::GPTQ_ERR_INVALID_DATA,
            Status::Internal => sys::GPTQ_ERR_INTERNAL,
            Status::Unknown(code) => code,
        }
    }

    /// The library's static description, `gptq_status_string()`, e.g.
    /// `"GPTQ_ERR_SIZE_MISMATCH: sizes that must agree do not"`.
    pub fn description(self) -> &'static str {
        // SAFETY: gptq_status_string returns static storage, never NULL, for
        // any value.
        let s = unsafe { CStr::from_ptr(sys::gptq_status_string(self.code())) };
        s.to_str().unwrap_or("unknown status")
    }

    /// The C name of the code, e.g. `"GPTQ_ERR_SIZE_MISMATCH"` (the part of
    /// [`description`](Status::description) before the colon).
    pub fn name(self) -> &'static str {
        let d = self.description();
        match d.find(':') {
            Some(i) => &d[..i],
            None => d,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed call: the status and the library's detailed message.
///
/// For failures reported by libgptq, `message` is `gptq_last_error()` read
/// right after the failing call on the same thread (it is thread-local in
/// the C library), e.g. `"gptq_add_batch: x has 511 columns but the layer
/// has in_features 512"`. For the few checks this crate makes itself before
/// calling (slice lengths that C cannot see), the message has the same form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub status: Status,
    /// The detail, naming the function and the problem.
    pub message: String,
}

impl Error {
    /// An error with the given status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The detailed message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Build the error for a failing C status, reading the thread-local
    /// `gptq_last_error()`. Must be called right after the failing call, on
    /// the same thread, with no library call in between.
    pub(crate) fn from_last_error(status: Status) -> Error {
        // SAFETY: never NULL; valid until this thread's next library call,
        // and copied before that.
        let msg = unsafe { CStr::from_ptr(sys::gptq_last_error()) }
            .to_string_lossy()
            .into_owned();
        Error {
            status,
            message: msg,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(self.status.description())
        } else {
            write!(f, "{} ({})", self.message, self.status.name())
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Turn a C status into a `Result`, reading the message on failure.
/// Call it directly on the status of the call, before any other library call.
pub(crate) fn check(code: sys::gptq_status) -> Result<()> {
    match Status::from_code(code) {
        None => Ok(()),
        Some(status) => Err(Error::from_last_error(status)),
    }
}
