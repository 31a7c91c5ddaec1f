//! Progress and log callbacks: Rust closures behind the C function pointers.
//!
//! The closures live in one heap block (`CallbackState`) owned by the
//! `Context`; its address is the `user_data` the C library stores at
//! `gptq_ctx_create` and passes back to the `extern "C"` trampolines below.
//! The block is allocated before the context is created and freed only
//! after `gptq_ctx_destroy`, so it outlives every call the library can make.
//!
//! No panic unwinds into C: each closure runs under `catch_unwind`. A caught
//! panic is kept, the running operation is cancelled at the library's next
//! progress check (the progress trampoline returns "cancel" from then on),
//! and the panic is resumed in Rust once the C call has returned.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::fmt;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

use gptq_sys as sys;

use crate::config::LogLevel;

type ProgressFn = Box<dyn FnMut(u64, u64) -> bool + Send>;
type LogFn = Box<dyn FnMut(LogLevel, &str) + Send>;

/// Closures a [`Context`](crate::Context) calls while it works.
///
/// ```
/// let callbacks = gptq::Callbacks::new()
///     .progress(|done, total| {
///         eprintln!("{}/{} columns", done, total);
///         true // false cancels: quantize returns Status::Cancelled
///     })
///     .log(|level, message| eprintln!("libgptq {:?}: {}", level, message));
/// # drop(callbacks);
/// ```
///
/// Both are called on the thread that makes the library call (the header
/// guarantees it), and only while a `&mut` method of the context (or its
/// creation) runs, so they are `FnMut`. They must be `Send` because the
/// context that owns them may move to another thread, and `'static` because
/// they live as long as the context:
///
/// ```compile_fail
/// let not_send = std::rc::Rc::new(0);
/// let _ = gptq::Callbacks::new().log(move |_, _| drop(not_send.clone()));
/// ```
///
/// Share state with them through `Arc` (and `Mutex` or atomics).
#[derive(Default)]
pub struct Callbacks {
    progress: Option<ProgressFn>,
    log: Option<LogFn>,
}

impl Callbacks {
    /// No callbacks (the library stays silent and cannot be cancelled).
    pub fn new() -> Callbacks {
        Callbacks::default()
    }

    /// Progress of [`Context::quantize`](crate::Context::quantize):
    /// `f(done, total)` in columns, after each block of columns. Return
    /// `true` to continue, `false` to cancel: quantize then stops (before
    /// calling `f` again) and returns an error with
    /// [`Status::Cancelled`](crate::Status::Cancelled), leaving the context
    /// as it was.
    pub fn progress<F>(mut self, f: F) -> Callbacks
    where
        F: FnMut(u64, u64) -> bool + Send + 'static,
    {
        self.progress = Some(Box::new(f));
        self
    }

    /// Log messages of the context at or above
    /// [`Config::log_level`](crate::Config::log_level), from its creation on.
    /// The `&str` is only valid during the call.
    pub fn log<F>(mut self, f: F) -> Callbacks
    where
        F: FnMut(LogLevel, &str) + Send + 'static,
    {
        self.log = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("progress", &self.progress.is_some())
            .field("log", &self.log.is_some())
            .finish()
    }
}

/// What the trampolines see through `user_data`.
pub(crate) struct CallbackState {
    progress: Option<RefCell<ProgressFn>>,
    log: Option<RefCell<LogFn>>,
    /// Set once the progress closure said stop (or panicked) during the
    /// current operation: it is not called again until the next one.
    stopped: Cell<bool>,
    /// The first panic caught during the current library call.
    panic: Cell<Option<Box<dyn Any + Send + 'static>>>,
}

impl CallbackState {
    /// A new, empty-handed state for the next library call.
    pub(crate) fn begin_call(&self) {
        self.stopped.set(false);
        drop(self.panic.take());
    }

    /// After the library call: re-raise a panic caught in a callback.
    pub(crate) fn resume_panic(&self) {
        if let Some(payload) = self.panic.take() {
            panic::resume_unwind(payload);
        }
    }

    fn keep_panic(&self, payload: Box<dyn Any + Send + 'static>) {
        let first = self.panic.take().or(Some(payload));
        self.panic.set(first);
        self.stopped.set(true);
    }

    fn on_progress(&self, done: i64, total: i64) -> c_int {
        if self.stopped.get() {
            return 1;
        }
        let cell = match &self.progress {
            Some(cell) => cell,
            None => return 0,
        };
        // A re-entrant call (impossible through the safe API) cancels rather
        // than alias the closure.
        let mut f = match cell.try_borrow_mut() {
            Ok(f) => f,
            Err(_) => return 1,
        };
        let done = done.max(0) as u64;
        let total = total.max(0) as u64;
        match panic::catch_unwind(AssertUnwindSafe(|| (*f)(done, total))) {
            Ok(true) => 0,
            Ok(false) => {
                self.stopped.set(true);
                1
            }
            Err(payload) => {
                self.keep_panic(payload);
                1
            }
        }
    }

    fn on_log(&self, level: sys::gptq_log_level, message: *const c_char) {
        let cell = match &self.log {
            Some(cell) => cell,
            None => return,
        };
        let mut f = match cell.try_borrow_mut() {
            Ok(f) => f,
            Err(_) => return,
        };
        let level = LogLevel::from_raw(level).unwrap_or(if level < sys::GPTQ_LOG_DEBUG {
            LogLevel::Debug
        } else {
            LogLevel::Error
        });
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let text = if message.is_null() {
                std::borrow::Cow::Borrowed("")
            } else {
                // SAFETY: the library passes a NUL-terminated string valid
                // for the duration of the call.
                unsafe { CStr::from_ptr(message) }.to_string_lossy()
            };
            (*f)(level, &text)
        }));
        if let Err(payload) = result {
            self.keep_panic(payload);
        }
    }
}

unsafe extern "C" fn progress_trampoline(done: i64, total: i64, user_data: *mut c_void) -> c_int {
    // SAFETY: user_data is the CallbackState of a live Context (see module doc).
    let state = &*(user_data as *const CallbackState);
    state.on_progress(done, total)
}

unsafe extern "C" fn log_trampoline(
    level: sys::gptq_log_level,
    message: *const c_char,
    user_data: *mut c_void,
) {
    // SAFETY: as above.
    let state = &*(user_data as *const CallbackState);
    state.on_log(level, message)
}

/// Owner of a heap `CallbackState` whose address the C library holds.
///
/// A raw pointer rather than a `Box` field, so that moving the `Context`
/// never retags (or asserts uniqueness of) memory the library points into.
pub(crate) struct StateBox(NonNull<CallbackState>);

// SAFETY: CallbackState owns only `Send` data (the closures are required to
// be `Send`; Cell/RefCell of Send data are Send). Checked below.
unsafe impl Send for StateBox {}

#[allow(dead_code)]
fn _callback_state_is_send() {
    fn is_send<T: Send>() {}
    is_send::<CallbackState>();
}

impl StateBox {
    pub(crate) fn new(callbacks: Callbacks) -> StateBox {
        let state = Box::new(CallbackState {
            progress: callbacks.progress.map(RefCell::new),
            log: callbacks.log.map(RefCell::new),
            stopped: Cell::new(false),
            panic: Cell::new(None),
        });
        StateBox(NonNull::from(Box::leak(state)))
    }

    pub(crate) fn get(&self) -> &CallbackState {
        // SAFETY: allocated in `new`, freed only in `drop`; only shared
        // references are ever made to it.
        unsafe { self.0.as_ref() }
    }

    /// Point the C config's callback fields at the trampolines and this state.
    pub(crate) fn install(&self, raw: &mut sys::gptq_config) {
        let user_data = self.0.as_ptr() as *mut c_void;
        let state = self.get();
        if state.progress.is_some() {
            raw.progress = Some(progress_trampoline);
            raw.progress_user_data = user_data;
        }
        if state.log.is_some() {
            raw.log = Some(log_trampoline);
            raw.log_user_data = user_data;
        }
    }
}

impl Drop for StateBox {
    fn drop(&mut self) {
        // SAFETY: from Box::leak in `new`; the C context that pointed here
        // has been destroyed (Context drops its handle first).
        unsafe { drop(Box::from_raw(self.0.as_ptr())) }
    }
}
