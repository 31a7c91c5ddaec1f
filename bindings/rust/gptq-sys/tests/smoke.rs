// Hand-written smoke tests of the generated declarations, run against a real
// libgptq. See bindings/test_lowlevel.sh for the environment they need.

use gptq_sys::*;
use std::ffi::CStr;
use std::mem::{size_of, zeroed};
use std::ptr;

#[test]
fn version_matches_header() {
    let n = unsafe { gptq_version_number() };
    assert_eq!(n / 10000, GPTQ_VERSION_MAJOR);
    assert!(n >= GPTQ_VERSION_NUMBER, "library {} older than header {}", n, GPTQ_VERSION_NUMBER);
    let s = unsafe { CStr::from_ptr(gptq_version_string()) };
    assert_eq!(s.to_str().unwrap(), format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100));
}

#[test]
fn config_default_fills_struct_size() {
    let mut cfg: gptq_config = unsafe { zeroed() };
    unsafe { gptq_config_default(&mut cfg) };
    assert_eq!(cfg.struct_size, size_of::<gptq_config>());
    assert_eq!(cfg.bits, 4);
    assert_eq!(cfg.group_size, 128);
    assert_eq!(cfg.log_level, GPTQ_LOG_INFO);
    assert!(cfg.progress.is_none() && cfg.log.is_none());
}

#[test]
fn failing_call_reports_status_and_message() {
    let mut ctx: *mut gptq_ctx = ptr::null_mut();
    let st = unsafe { gptq_ctx_create(0, 16, ptr::null(), &mut ctx) };
    assert_eq!(st, GPTQ_ERR_INVALID_SIZE);
    assert!(ctx.is_null());
    let msg = unsafe { CStr::from_ptr(gptq_last_error()) }.to_string_lossy().into_owned();
    assert!(!msg.is_empty());
    let name = unsafe { CStr::from_ptr(gptq_status_string(st)) }.to_string_lossy().into_owned();
    assert!(name.starts_with("GPTQ_ERR_INVALID_SIZE"), "{}", name);
}
