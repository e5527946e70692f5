//! What a `cuGraphLaunch` costs: the sum over the graph's kernel nodes of blocks × threads,
//! computed once when the graph is instantiated (through the real driver's
//! `cuGraphGetNodes` / `cuGraphNodeGetType` / `cuGraphKernelNodeGetParams_v2`) and cached per
//! `CUgraphExec` in a fixed-size, lock-free, open-addressing table. The launch path does a
//! bounded probe of that table: no lock, no allocation.
//!
//! Limits (documented in docs/gpu.md): child-graph nodes are not descended into; a graph whose
//! exec is unknown (table full, or instantiated through an entry point we do not hook) is
//! charged [`UNKNOWN_GRAPH_UNITS`]; `cuGraphExecUpdate` keeps the old cost.

use sair_cuda_abi::driver::*;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Table size (power of two).
pub const SLOTS: usize = 4096;
const TOMBSTONE: usize = usize::MAX;
/// Units charged for a graph launch whose exec is not in the table.
pub const UNKNOWN_GRAPH_UNITS: u64 = 1;

static KEYS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static UNITS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

fn home(key: usize) -> usize {
    ((key as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize & (SLOTS - 1)
}

/// Records `units` for `exec`.
pub fn insert(exec: usize, units: u64) {
    if exec == 0 || exec == TOMBSTONE {
        return;
    }
    let h = home(exec);
    for i in 0..SLOTS {
        let s = (h + i) & (SLOTS - 1);
        let k = KEYS[s].load(Acquire);
        if k == exec {
            UNITS[s].store(units, Release);
            return;
        }
        if (k == 0 || k == TOMBSTONE) && KEYS[s].compare_exchange(k, exec, AcqRel, Acquire).is_ok()
        {
            UNITS[s].store(units, Release);
            return;
        }
    }
}

/// Units of `exec`, or `None` when unknown. Probes at most until an empty slot.
#[inline]
pub fn lookup(exec: usize) -> Option<u64> {
    let h = home(exec);
    for i in 0..SLOTS {
        let s = (h + i) & (SLOTS - 1);
        let k = KEYS[s].load(Acquire);
        if k == exec {
            let u = UNITS[s].load(Acquire);
            return (u != 0).then_some(u);
        }
        if k == 0 {
            return None;
        }
    }
    None
}

/// Forgets `exec` (at `cuGraphExecDestroy`).
pub fn remove(exec: usize) {
    let h = home(exec);
    for i in 0..SLOTS {
        let s = (h + i) & (SLOTS - 1);
        let k = KEYS[s].load(Acquire);
        if k == exec {
            UNITS[s].store(0, Relaxed);
            KEYS[s].store(TOMBSTONE, Release);
            return;
        }
        if k == 0 {
            return;
        }
    }
}

/// Units charged for launching `exec`.
#[inline]
pub fn units(exec: usize) -> u64 {
    lookup(exec).unwrap_or(UNKNOWN_GRAPH_UNITS)
}

static GET_NODES: AtomicUsize = AtomicUsize::new(0);
static NODE_TYPE: AtomicUsize = AtomicUsize::new(0);
static KPARAMS_V2: AtomicUsize = AtomicUsize::new(0);
static KPARAMS_V1: AtomicUsize = AtomicUsize::new(0);

/// Sum of blocks × threads over the kernel nodes of `graph`, asked from the real driver.
/// Runs at instantiate time (may allocate).
#[allow(unsafe_code)]
pub fn graph_units(graph: CUgraph) -> Option<u64> {
    use crate::real::cuda;
    let get_nodes: FnGraphGetNodes = cuda(&GET_NODES, "cuGraphGetNodes\0")?;
    let node_type: FnGraphNodeGetType = cuda(&NODE_TYPE, "cuGraphNodeGetType\0")?;
    let params: FnGraphKernelNodeGetParams =
        cuda(&KPARAMS_V2, "cuGraphKernelNodeGetParams_v2\0")
            .or_else(|| cuda(&KPARAMS_V1, "cuGraphKernelNodeGetParams\0"))?;
    let mut n = 0usize;
    // SAFETY: real cuGraphGetNodes with a null array only writes the count to `n`.
    if unsafe { get_nodes(graph, std::ptr::null_mut(), &mut n) } != CUDA_SUCCESS {
        return None;
    }
    let mut nodes: Vec<CUgraphNode> = vec![std::ptr::null_mut(); n];
    // SAFETY: `nodes` has room for `n` handles, the capacity passed in `n`.
    if unsafe { get_nodes(graph, nodes.as_mut_ptr(), &mut n) } != CUDA_SUCCESS {
        return None;
    }
    let mut total = 0u64;
    for &node in nodes.iter().take(n) {
        let mut ty = -1i32;
        // SAFETY: `node` came from the driver for this graph; `ty` is a valid out-parameter.
        if unsafe { node_type(node, &mut ty) } != CUDA_SUCCESS || ty != CU_GRAPH_NODE_TYPE_KERNEL {
            continue;
        }
        let mut p = CudaKernelNodeParams {
            func: std::ptr::null_mut(),
            grid_dim_x: 0,
            grid_dim_y: 0,
            grid_dim_z: 0,
            block_dim_x: 0,
            block_dim_y: 0,
            block_dim_z: 0,
            shared_mem_bytes: 0,
            kernel_params: std::ptr::null_mut(),
            extra: std::ptr::null_mut(),
            kern: std::ptr::null_mut(),
            ctx: std::ptr::null_mut(),
        };
        // SAFETY: `p` is a full CUDA_KERNEL_NODE_PARAMS_v2 (v1 is its prefix) to be written.
        if unsafe { params(node, &mut p) } != CUDA_SUCCESS {
            continue;
        }
        let shape = LaunchShape {
            grid: [p.grid_dim_x, p.grid_dim_y, p.grid_dim_z],
            block: [p.block_dim_x, p.block_dim_y, p.block_dim_z],
        };
        total = total.saturating_add(shape.blocks().saturating_mul(shape.threads()));
    }
    Some(total.max(1))
}

#[cfg(test)]
mod tests;
