//! The objects libhrm hands out (`hrm_runtime`, `hrm_detector`, `hrm_result`, `hrm_bitmap`): each
//! is a Box whose allocation carries a tag naming its type while it is alive.
//!
//! Every call that takes one checks the tag, and `_free` clears it before freeing, so the common
//! misuse — a second `_free` of the same pointer, a call on a freed object, a pointer of the wrong
//! type — becomes `HRM_ERROR_INVALID_ARGUMENT` with a last-error note instead of heap corruption.
//! It is a guard, not a proof: memory that was freed and then reused for another object of the
//! same type, or a wild pointer into unmapped memory, is not caught (the header says so).

use crate::status::{guard, Failure};

/// A type handed to C as an opaque pointer.
pub(crate) trait Handle: Sized {
    /// The C type's name, for messages.
    const NAME: &'static str;
    /// The tag of a live object of this type.
    const TAG: u64;
}

/// What a handle points at.
#[repr(C)]
struct Tagged<T> {
    /// Allocators keep their free-list links in the first bytes of a freed block (glibc: 16 bytes),
    /// so the tag sits past them and usually survives the free for the next call to find cleared.
    allocator_links: [usize; 4],
    tag: u64,
    value: T,
}

/// The tag of a freed object.
const FREED: u64 = 0x4652_4545_4448_524D; // "FREEDHRM"

/// Moves a new object to the heap and hands the caller its pointer through `out`.
///
/// # Safety
/// `out` has passed `out_arg`.
pub(crate) unsafe fn give<T: Handle>(out: *mut *mut T, value: T) {
    let tagged = Box::new(Tagged { allocator_links: [0; 4], tag: T::TAG, value });
    *out = Box::into_raw(tagged).cast();
}

/// The live object behind `ptr`, or an error naming the parameter.
///
/// # Safety
/// A non-NULL `ptr` came from [`give`] for this `T`; if it was freed since, its memory is still
/// mapped (which is the case for the heap blocks that `give` makes).
unsafe fn tagged<T: Handle>(ptr: *const T, name: &str) -> Result<*mut Tagged<T>, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    let tagged = ptr.cast::<Tagged<T>>().cast_mut();
    // SAFETY: the caller's contract; a volatile read so that the check is really made.
    let tag = std::ptr::read_volatile(std::ptr::addr_of!((*tagged).tag));
    match tag {
        t if t == T::TAG => Ok(tagged),
        FREED => Err(Failure::invalid(format!("`{name}` points at an {} that was freed already", T::NAME))),
        _ => Err(Failure::invalid(format!("`{name}` does not point at a live {}", T::NAME))),
    }
}

/// The object behind a handle the caller passes in.
///
/// # Safety
/// As [`tagged`]; the object is not freed during the call.
pub(crate) unsafe fn handle<'a, T: Handle>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: `tagged` checked the tag: the allocation holds a live `Tagged<T>`.
    Ok(&(*tagged(ptr, name)?).value)
}

/// As [`handle`], for a handle the call may change.
///
/// # Safety
/// As [`handle`], and no other thread uses the object during the call.
pub(crate) unsafe fn handle_mut<'a, T: Handle>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: `tagged` checked the tag: the allocation holds a live `Tagged<T>`, used by this call only.
    Ok(&mut (*tagged(ptr, name)?).value)
}

/// Frees an object made by [`give`]; NULL is a no-op, a pointer whose tag is not live is left
/// alone with a last-error note. Runs in the export's guard, so even a panicking destructor stays
/// on this side.
///
/// # Safety
/// As [`handle`]; no other thread uses the object.
pub(crate) unsafe fn free<T: Handle>(function: &str, ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    guard(function, || {
        let tagged = tagged(ptr, "the pointer")?;
        // SAFETY: the tag is live, so this is the Box `give` made; clearing the tag first makes a
        // second free find it cleared.
        std::ptr::write_volatile(std::ptr::addr_of_mut!((*tagged).tag), FREED);
        drop(Box::from_raw(tagged));
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{hrm_last_error, HRM_ERROR_INVALID_ARGUMENT, HRM_OK};

    struct Thing(Vec<u8>);

    impl Handle for Thing {
        const NAME: &'static str = "hrm_thing";
        const TAG: u64 = 0x5448_494E_4748_524D;
    }

    struct Other;

    impl Handle for Other {
        const NAME: &'static str = "other";
        const TAG: u64 = 0x4F54_4845_5248_524D;
    }

    fn last_error() -> String {
        let mut buf = vec![0u8; 512];
        let mut needed = 0;
        // SAFETY: the buffer holds 512 bytes.
        assert_eq!(unsafe { hrm_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut needed) }, HRM_OK);
        String::from_utf8(buf[..needed - 1].to_vec()).unwrap()
    }

    #[test]
    fn a_second_free_and_a_use_after_free_are_caught() {
        let mut ptr: *mut Thing = std::ptr::null_mut();
        // SAFETY: `ptr` is writable; every later call passes the pointer `give` made.
        unsafe {
            give(&mut ptr, Thing(vec![7; 100]));
            assert_eq!(handle(ptr, "thing").unwrap().0.len(), 100);
            assert!(handle::<Other>(ptr.cast(), "other").is_err(), "a pointer of another type");
            free("hrm_thing_free", ptr);
            // Without the tag, glibc aborts here ("free(): double free detected").
            free("hrm_thing_free", ptr);
            assert_eq!(last_error(), "hrm_thing_free: `the pointer` points at an hrm_thing that was freed already");
            let err = handle(ptr, "thing").err().unwrap();
            assert_eq!(err.status, HRM_ERROR_INVALID_ARGUMENT);
            free::<Thing>("hrm_thing_free", std::ptr::null_mut());
        }
    }
}
