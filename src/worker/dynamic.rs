//! A dynamic background worker handle the launcher can ask about and stop without ever
//! blocking: pgrx's handle only offers a blocking wait after `terminate`, which would hang
//! the launcher (and every database's reports) behind a collector that does not exit.

use pgrx::bgworkers::BackgroundWorkerBuilder;
use pgrx::pg_sys;

/// A started worker. The handle lives in the memory context that was current at `start`.
pub(crate) struct Dynamic {
    handle: *mut pg_sys::BackgroundWorkerHandle,
}

impl Dynamic {
    /// Registers the worker `builder` describes; `None` when no slot is free.
    pub(crate) fn start(builder: &BackgroundWorkerBuilder) -> Option<Dynamic> {
        let mut bgw = pg_sys::BackgroundWorker::from(builder);
        let mut handle = std::ptr::null_mut();
        // SAFETY: bgw is a complete registration; on success PostgreSQL sets `handle` to a
        // palloc'd handle in the current memory context.
        let started = unsafe { pg_sys::RegisterDynamicBackgroundWorker(&mut bgw, &mut handle) };
        (started && !handle.is_null()).then_some(Dynamic { handle })
    }

    /// Whether the worker has not stopped yet (not yet started counts as running).
    pub(crate) fn running(&self) -> bool {
        let mut pid = 0;
        // SAFETY: the handle came from RegisterDynamicBackgroundWorker and is still allocated.
        let status = unsafe { pg_sys::GetBackgroundWorkerPid(self.handle, &mut pid) };
        matches!(
            status,
            pg_sys::BgwHandleStatus::BGWH_STARTED | pg_sys::BgwHandleStatus::BGWH_NOT_YET_STARTED
        )
    }

    /// Asks the postmaster to stop the worker (SIGTERM); returns at once.
    pub(crate) fn terminate(&self) {
        // SAFETY: as above; TerminateBackgroundWorker only marks the slot for the postmaster.
        unsafe { pg_sys::TerminateBackgroundWorker(self.handle) }
    }
}
