//! Event entry points.

use super::*;

#[unsafe(no_mangle)]
pub extern "C" fn cuEventCreate(e: *mut CUevent, _flags: u32) -> CUresult {
    guard(|| put(e, hp(try_cu!(try_cu!(driver()).event_create()))))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventDestroy_v2(e: CUevent) -> CUresult {
    guard(|| try_cu!(driver()).event_destroy(e))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventRecord(e: CUevent, s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).event_record(e, s, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventRecord_ptsz(e: CUevent, s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).event_record(e, s, true))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventSynchronize(e: CUevent) -> CUresult {
    guard(|| try_cu!(driver()).event_synchronize(e))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventQuery(e: CUevent) -> CUresult {
    guard(|| try_cu!(driver()).event_query(e))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
    guard(|| put(ms, try_cu!(try_cu!(driver()).event_elapsed_ms(start, end))))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamWaitEvent(s: CUstream, e: CUevent, _flags: u32) -> CUresult {
    guard(|| try_cu!(driver()).stream_wait_event(s, e, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamWaitEvent_ptsz(s: CUstream, e: CUevent, _flags: u32) -> CUresult {
    guard(|| try_cu!(driver()).stream_wait_event(s, e, true))
}
