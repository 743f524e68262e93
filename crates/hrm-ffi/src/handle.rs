//! The objects libhrm hands out (`hrm_runtime`, `hrm_detector`, `hrm_result`, `hrm_bitmap`): each
//! is a Box whose address is recorded, with its type, in a registry of live objects while it is
//! alive.
//!
//! Every call that takes one looks it up before touching it, and `_free` removes it before
//! freeing, so the common misuse — a second `_free` of the same pointer, a call on a freed object,
//! a pointer of the wrong type or one that never came from libhrm — becomes
//! `HRM_ERROR_INVALID_ARGUMENT` with a last-error note instead of heap corruption, without ever
//! reading memory that is not a live object. Not caught: a stale pointer whose address the
//! allocator has since given to a new object of the same type (the header says so).

use crate::status::{guard, Failure};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A type handed to C as an opaque pointer.
pub(crate) trait Handle: Sized {
    /// The C type's name, for messages.
    const NAME: &'static str;
}

/// Live objects: address -> the name of their type. A B-tree, whose nodes are referenced from
/// their start, so that what is left at exit reads as reachable to valgrind (a hash table's
/// pointer into the middle of its allocation reads as "possibly lost").
fn live() -> std::sync::MutexGuard<'static, BTreeMap<usize, &'static str>> {
    static LIVE: Mutex<BTreeMap<usize, &'static str>> = Mutex::new(BTreeMap::new());
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Moves a new object to the heap, records it as live and hands the caller its pointer.
///
/// # Safety
/// `out` has passed `out_arg`.
pub(crate) unsafe fn give<T: Handle>(out: *mut *mut T, value: T) {
    let ptr = Box::into_raw(Box::new(value));
    live().insert(ptr as usize, T::NAME);
    // SAFETY: the caller guarantees `out` is writable (out_arg checked it is not NULL).
    unsafe { *out = ptr };
}

/// Checks that `ptr` is a live object of type `T`.
fn check<T: Handle>(ptr: *const T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    match live().get(&(ptr as usize)) {
        Some(&found) if found == T::NAME => Ok(()),
        Some(found) => Err(Failure::invalid(format!("`{name}` points at an {found}, not an {}", T::NAME))),
        None => Err(Failure::invalid(format!(
            "`{name}` does not point at a live {} (freed already, or never made by libhrm)",
            T::NAME
        ))),
    }
}

/// The object behind a handle the caller passes in.
///
/// # Safety
/// The object is not freed by another thread during the call.
pub(crate) unsafe fn handle<'a, T: Handle>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    check(ptr, name)?;
    // SAFETY: the registry holds `ptr` as a live `T` made by `give`.
    Ok(unsafe { &*ptr })
}

/// As [`handle`], for a handle the call may change.
///
/// # Safety
/// As [`handle`], and no other thread uses the object during the call.
pub(crate) unsafe fn handle_mut<'a, T: Handle>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    check(ptr, name)?;
    // SAFETY: the registry holds `ptr` as a live `T` made by `give`, used by this call only.
    Ok(unsafe { &mut *ptr })
}

/// Frees an object made by [`give`]; NULL is a no-op, a pointer that is not a live `T` is left
/// alone with a last-error note. Runs in the export's guard, so even a panicking destructor stays
/// on this side.
///
/// # Safety
/// No other thread uses the object.
pub(crate) unsafe fn free<T: Handle>(function: &str, ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    guard(function, || {
        {
            let mut live = live();
            match live.get(&(ptr as usize)) {
                Some(&found) if found == T::NAME => live.remove(&(ptr as usize)),
                _ => {
                    drop(live);
                    return check(ptr, "the pointer");
                }
            };
        }
        // SAFETY: it was live, and is no longer in the registry: this is the one free of the Box
        // `give` made.
        drop(unsafe { Box::from_raw(ptr) });
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{hrm_last_error, HRM_ERROR_INVALID_ARGUMENT, HRM_OK};

    struct Thing(#[allow(dead_code)] Vec<u8>);

    impl Handle for Thing {
        const NAME: &'static str = "hrm_thing";
    }

    struct Other;

    impl Handle for Other {
        const NAME: &'static str = "hrm_other";
    }

    fn last_error() -> String {
        let mut buf = vec![0u8; 512];
        let mut needed = 0;
        // SAFETY: the buffer holds 512 bytes.
        assert_eq!(unsafe { hrm_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut needed) }, HRM_OK);
        String::from_utf8(buf[..needed - 1].to_vec()).unwrap()
    }

    #[test]
    fn a_second_free_a_use_after_free_and_foreign_pointers_are_caught() {
        let mut ptr: *mut Thing = std::ptr::null_mut();
        // SAFETY: `ptr` is writable; the registry is consulted before any pointer is used.
        unsafe {
            give(&mut ptr, Thing(vec![7; 100]));
            assert_eq!(handle(ptr, "thing").unwrap().0.len(), 100);
            let wrong_type = handle::<Other>(ptr.cast(), "other").err().unwrap();
            assert_eq!(wrong_type.message, "`other` points at an hrm_thing, not an hrm_other");
            free("hrm_thing_free", ptr);
            // Without the registry, glibc aborts here ("free(): double free detected").
            free("hrm_thing_free", ptr);
            assert_eq!(
                last_error(),
                "hrm_thing_free: `the pointer` does not point at a live hrm_thing (freed already, or never made by libhrm)"
            );
            let err = handle(ptr, "thing").err().unwrap();
            assert_eq!(err.status, HRM_ERROR_INVALID_ARGUMENT);
            let mut on_the_stack = Thing(Vec::new());
            free("hrm_thing_free", &mut on_the_stack);
            assert!(last_error().contains("never made by libhrm"));
            free::<Thing>("hrm_thing_free", std::ptr::null_mut());
        }
    }
}
