//! Emulated device memory: allocations backed by zeroed host memory, so copies really move
//! bytes; every access is checked against a live allocation (`CUDA_ERROR_INVALID_VALUE`
//! otherwise, as the real driver does for a bad range). Copies take no device time.

use super::*;

/// Device memory the emulated GPU reports (80 GiB); allocations beyond it fail.
pub const DEVICE_MEMORY_BYTES: u64 = 80 << 30;

impl Driver {
    /// `cuMemAlloc_v2`: a zeroed allocation of `bytes`; returns its device address.
    pub fn mem_alloc(&self, bytes: usize) -> Result<u64, CUresult> {
        if bytes == 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let mut o = self.objs();
        self.current_ctx(&o)?;
        let used: u64 = o.memory.values().map(|m| m.len() as u64).sum();
        if used.saturating_add(bytes as u64) > DEVICE_MEMORY_BYTES {
            return Err(CUDA_ERROR_OUT_OF_MEMORY);
        }
        let block = vec![0u8; bytes].into_boxed_slice();
        let base = block.as_ptr() as u64;
        o.memory.insert(base, block);
        Ok(base)
    }

    /// `cuMemFree_v2`: only the base address of a live allocation is accepted.
    pub fn mem_free(&self, dptr: u64) -> CUresult {
        match self.objs().memory.remove(&dptr) {
            Some(_) => CUDA_SUCCESS,
            None => CUDA_ERROR_INVALID_VALUE,
        }
    }

    /// Bytes allocated and device total (`cuMemGetInfo_v2`: free, total).
    pub fn mem_info(&self) -> Result<(u64, u64), CUresult> {
        let o = self.objs();
        self.current_ctx(&o)?;
        let used: u64 = o.memory.values().map(|m| m.len() as u64).sum();
        Ok((
            DEVICE_MEMORY_BYTES - used.min(DEVICE_MEMORY_BYTES),
            DEVICE_MEMORY_BYTES,
        ))
    }

    /// Runs `f` with the host address of `[dptr, dptr + len)` if that range lies inside one live
    /// allocation, holding the registry lock so the allocation cannot be freed meanwhile.
    pub fn with_device_range<R>(
        &self,
        dptr: u64,
        len: usize,
        f: impl FnOnce(*mut u8) -> R,
    ) -> Result<R, CUresult> {
        let mut o = self.objs();
        self.current_ctx(&o)?;
        let end = dptr
            .checked_add(len as u64)
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let block = o
            .memory
            .iter_mut()
            .find(|(base, m)| **base <= dptr && end <= **base + m.len() as u64)
            .map(|(base, m)| (*base, m))
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let offset = (dptr - block.0) as usize;
        let ptr = block.1[offset..].as_mut_ptr();
        Ok(f(ptr))
    }
}
