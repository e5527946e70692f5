//! Launch functions, stream capture and graphs.

use super::*;

#[allow(clippy::too_many_arguments)]
fn launch_args(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    s: CUstream,
    ptds: bool,
) -> CUresult {
    guard(|| try_cu!(driver()).launch(f as usize, shape(gx, gy, gz, bx, by, bz), s, ptds))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernel(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, false)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernel_ptsz(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, true)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchCooperativeKernel(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, false)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchCooperativeKernel_ptsz(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, true)
}

fn launch_ex(config: *const CUlaunchConfig, f: CUfunction, ptds: bool) -> CUresult {
    if config.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: non-null; the API contract makes `config` point to a valid CUlaunchConfig.
    let c = unsafe { &*config };
    launch_args(
        f,
        c.grid_dim_x,
        c.grid_dim_y,
        c.grid_dim_z,
        c.block_dim_x,
        c.block_dim_y,
        c.block_dim_z,
        c.h_stream,
        ptds,
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernelEx(
    config: *const CUlaunchConfig,
    f: CUfunction,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    guard(|| launch_ex(config, f, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernelEx_ptsz(
    config: *const CUlaunchConfig,
    f: CUfunction,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    guard(|| launch_ex(config, f, true))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamBeginCapture_v2(s: CUstream, _mode: i32) -> CUresult {
    guard(|| try_cu!(driver()).begin_capture(s))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamBeginCapture(s: CUstream) -> CUresult {
    cuStreamBeginCapture_v2(s, 0)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamIsCapturing(s: CUstream, status: *mut i32) -> CUresult {
    guard(|| put(status, try_cu!(try_cu!(driver()).is_capturing(s))))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamIsCapturing_ptsz(s: CUstream, status: *mut i32) -> CUresult {
    cuStreamIsCapturing(s, status)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamEndCapture(s: CUstream, graph: *mut CUgraph) -> CUresult {
    guard(|| {
        if graph.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        put(graph, hp(try_cu!(try_cu!(driver()).end_capture(s))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphCreate(graph: *mut CUgraph, _flags: u32) -> CUresult {
    guard(|| put(graph, hp(try_cu!(driver()).graph_create())))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphDestroy(graph: CUgraph) -> CUresult {
    guard(|| try_cu!(driver()).graph_destroy(graph))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphAddKernelNode_v2(
    node: *mut CUgraphNode,
    graph: CUgraph,
    _deps: *const CUgraphNode,
    _ndeps: usize,
    params: *const CudaKernelNodeParams,
) -> CUresult {
    guard(|| {
        let d = try_cu!(driver());
        if params.is_null() || node.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        // SAFETY: non-null; the API contract makes it a valid CUDA_KERNEL_NODE_PARAMS_v2.
        let p = unsafe { &*params };
        let k = KernelNode {
            func: p.func as usize,
            shape: shape(
                p.grid_dim_x,
                p.grid_dim_y,
                p.grid_dim_z,
                p.block_dim_x,
                p.block_dim_y,
                p.block_dim_z,
            ),
        };
        put(node, hp(try_cu!(d.graph_add_kernel_node(graph, k))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphGetNodes(
    graph: CUgraph,
    nodes: *mut CUgraphNode,
    num: *mut usize,
) -> CUresult {
    guard(|| {
        let list = try_cu!(try_cu!(driver()).graph_nodes(graph));
        if num.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if nodes.is_null() {
            return put(num, list.len());
        }
        // SAFETY: non-null; the caller passed the capacity of `nodes` in `*num`.
        let cap = unsafe { num.read() };
        for (i, n) in list.iter().take(cap).enumerate() {
            // SAFETY: i < cap, the number of writable elements the caller declared.
            unsafe { nodes.add(i).write(hp(*n)) };
        }
        put(num, list.len().min(cap))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphNodeGetType(node: CUgraphNode, ty: *mut i32) -> CUresult {
    guard(|| {
        try_cu!(try_cu!(driver()).kernel_node(node));
        put(ty, CU_GRAPH_NODE_TYPE_KERNEL)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphKernelNodeGetParams_v2(
    node: CUgraphNode,
    params: *mut CudaKernelNodeParams,
) -> CUresult {
    guard(|| {
        let k = try_cu!(try_cu!(driver()).kernel_node(node));
        put(
            params,
            CudaKernelNodeParams {
                func: hp(k.func),
                grid_dim_x: k.shape.grid[0],
                grid_dim_y: k.shape.grid[1],
                grid_dim_z: k.shape.grid[2],
                block_dim_x: k.shape.block[0],
                block_dim_y: k.shape.block[1],
                block_dim_z: k.shape.block[2],
                shared_mem_bytes: 0,
                kernel_params: std::ptr::null_mut(),
                extra: std::ptr::null_mut(),
                kern: std::ptr::null_mut(),
                ctx: std::ptr::null_mut(),
            },
        )
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphInstantiateWithFlags(
    exec: *mut CUgraphExec,
    graph: CUgraph,
    _flags: u64,
) -> CUresult {
    guard(|| {
        if exec.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        put(exec, hp(try_cu!(try_cu!(driver()).instantiate(graph))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphInstantiate_v2(
    exec: *mut CUgraphExec,
    graph: CUgraph,
    _err_node: *mut CUgraphNode,
    _log: *mut c_char,
    _log_len: usize,
) -> CUresult {
    cuGraphInstantiateWithFlags(exec, graph, 0)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphExecDestroy(exec: CUgraphExec) -> CUresult {
    guard(|| try_cu!(driver()).exec_destroy(exec))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphLaunch(exec: CUgraphExec, s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).graph_launch(exec, s, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphLaunch_ptsz(exec: CUgraphExec, s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).graph_launch(exec, s, true))
}
