//! Events on the emulated device: an event records the end of the work queued on its stream at
//! record time; synchronize waits for it, elapsed time is the difference of two recorded times,
//! and a stream waiting on an event queues nothing before it.

use super::*;

impl Driver {
    pub fn event_create(&self) -> Result<usize, CUresult> {
        let mut o = self.objs();
        self.current_ctx(&o)?;
        let e = new_handle();
        o.events.insert(e, None);
        Ok(e)
    }

    pub fn event_destroy(&self, e: *mut std::ffi::c_void) -> CUresult {
        match self.objs().events.remove(&h(e)) {
            Some(_) => CUDA_SUCCESS,
            None => CUDA_ERROR_INVALID_HANDLE,
        }
    }

    /// Records, on `e`, the time at which the work queued on `s` so far completes.
    pub fn event_record(
        &self,
        e: *mut std::ffi::c_void,
        s: *mut std::ffi::c_void,
        ptds: bool,
    ) -> CUresult {
        let end = match self.stream_end(s, ptds) {
            Ok(end) => end.max(now_ns()),
            Err(code) => return code,
        };
        match self.objs().events.get_mut(&h(e)) {
            Some(slot) => {
                *slot = Some(end);
                CUDA_SUCCESS
            }
            None => CUDA_ERROR_INVALID_HANDLE,
        }
    }

    fn event_time(&self, e: *mut std::ffi::c_void) -> Result<Option<u64>, CUresult> {
        self.objs()
            .events
            .get(&h(e))
            .copied()
            .ok_or(CUDA_ERROR_INVALID_HANDLE)
    }

    pub fn event_synchronize(&self, e: *mut std::ffi::c_void) -> CUresult {
        match self.event_time(e) {
            Ok(t) => {
                wait_until(t.unwrap_or(0));
                CUDA_SUCCESS
            }
            Err(code) => code,
        }
    }

    pub fn event_query(&self, e: *mut std::ffi::c_void) -> CUresult {
        match self.event_time(e) {
            Ok(Some(t)) if now_ns() < t => CUDA_ERROR_NOT_READY,
            Ok(_) => CUDA_SUCCESS,
            Err(code) => code,
        }
    }

    /// Milliseconds between two recorded, completed events.
    pub fn event_elapsed_ms(
        &self,
        start: *mut std::ffi::c_void,
        end: *mut std::ffi::c_void,
    ) -> Result<f32, CUresult> {
        let (Some(a), Some(b)) = (self.event_time(start)?, self.event_time(end)?) else {
            return Err(CUDA_ERROR_INVALID_HANDLE);
        };
        if now_ns() < a.max(b) {
            return Err(CUDA_ERROR_NOT_READY);
        }
        Ok((b as f64 - a as f64) as f32 / 1e6)
    }

    /// `cuStreamWaitEvent`: later work on `s` follows the event. The device is serialized, so any
    /// later launch already starts after it; the stream's completion time takes the event's.
    pub fn stream_wait_event(
        &self,
        s: *mut std::ffi::c_void,
        e: *mut std::ffi::c_void,
        ptds: bool,
    ) -> CUresult {
        let t = match self.event_time(e) {
            Ok(t) => t.unwrap_or(0),
            Err(code) => return code,
        };
        let s = h(s);
        let mut o = self.objs();
        let ctx = match self.current_ctx(&o) {
            Ok(c) => c,
            Err(code) => return code,
        };
        if s == CU_STREAM_PER_THREAD || (s == 0 && ptds) {
            PTDS_END.with(|m| {
                let mut m = m.borrow_mut();
                let end = m.entry(ctx).or_insert(0);
                *end = (*end).max(t);
            });
        } else if s == 0 || s == CU_STREAM_LEGACY {
            if let Some(c) = o.ctxs.get_mut(&ctx) {
                c.last_end = c.last_end.max(t);
            }
        } else {
            match o.streams.get_mut(&s) {
                Some(st) => st.last_end = st.last_end.max(t),
                None => return CUDA_ERROR_INVALID_HANDLE,
            }
        }
        CUDA_SUCCESS
    }
}
