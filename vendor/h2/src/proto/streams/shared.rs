//! switchyard patch: the reference count and lock through which a connection's stream state is
//! shared between the connection task and its stream handles (`Streams`, `StreamRef`,
//! `OpaqueStreamRef`).
//!
//! By default they are `std::sync::Arc` and `Mutex`, as upstream, and the handles can move
//! between threads. With the `unsync` feature they are `Rc` and a `RefCell` that offers the
//! mutex's `lock` and `try_lock`: for connections that live and die on one thread (a
//! thread-per-core runtime), where every lock and handle clone was an atomic read-modify-write
//! that could never be contended, plus a poison check on each lock and unlock. The handles are
//! then neither `Send` nor `Sync`, so the compiler refuses any use that would cross threads. A
//! lock taken while it is held panics ("already mutably borrowed") where the mutex would deadlock,
//! and a panic while it is held does not poison it: the state stays as the panic left it (moot in a
//! build with `panic = "abort"`, as switchyard's release build is).

#[cfg(not(feature = "unsync"))]
pub(crate) use std::sync::{Arc as Shared, Mutex as Lock, TryLockError};

#[cfg(feature = "unsync")]
pub(crate) use self::unsync::{Lock, Shared, TryLockError};

#[cfg(feature = "unsync")]
mod unsync {
    use std::cell::{RefCell, RefMut};
    use std::fmt;

    pub(crate) type Shared<T> = std::rc::Rc<T>;

    /// State for one thread behind `Mutex`'s locking methods.
    pub(crate) struct Lock<T>(RefCell<T>);

    /// The error of `Lock::lock`; never made, since a `RefCell` is not poisoned by a panic.
    #[derive(Debug)]
    pub(crate) struct Poisoned;

    /// `std::sync::TryLockError`'s shape, so that callers match on either.
    #[derive(Debug)]
    pub(crate) enum TryLockError {
        #[allow(dead_code)]
        Poisoned(Poisoned),
        WouldBlock,
    }

    impl<T> Lock<T> {
        pub(crate) fn new(value: T) -> Self {
            Lock(RefCell::new(value))
        }

        pub(crate) fn lock(&self) -> Result<RefMut<'_, T>, Poisoned> {
            Ok(self.0.borrow_mut())
        }

        pub(crate) fn try_lock(&self) -> Result<RefMut<'_, T>, TryLockError> {
            self.0
                .try_borrow_mut()
                .map_err(|_| TryLockError::WouldBlock)
        }
    }

    impl<T: fmt::Debug> fmt::Debug for Lock<T> {
        fn fmt(&self, fmt: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt.debug_tuple("Lock").field(&self.0).finish()
        }
    }
}

#[cfg(all(test, feature = "unsync"))]
mod tests {
    use super::{Lock, TryLockError};

    #[test]
    fn a_held_lock_is_not_taken_twice() {
        let lock = Lock::new(1);
        {
            let mut held = lock.lock().unwrap();
            *held += 1;
            assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
        }
        assert_eq!(*lock.try_lock().unwrap(), 2);
    }

    /// Compiles only while `OpaqueStreamRef` is not `Send`: with the `Send` impl the call
    /// below would match two impls and be ambiguous.
    #[test]
    fn stream_handles_stay_on_their_thread() {
        trait AmbiguousIfSend<A> {
            fn check() {}
        }
        impl<T: ?Sized> AmbiguousIfSend<()> for T {}
        impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
        <crate::proto::streams::OpaqueStreamRef as AmbiguousIfSend<_>>::check();
    }
}
