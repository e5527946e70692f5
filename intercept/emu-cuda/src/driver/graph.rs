//! Stream capture, explicit graphs and graph launches of the emulated driver.

use super::*;

impl Driver {
    pub fn begin_capture(&self, s: *mut std::ffi::c_void) -> CUresult {
        let s = h(s);
        let mut o = self.objs();
        let graph = new_handle();
        let Some(st) = o.streams.get_mut(&s) else {
            // Capturing the legacy/null stream is not allowed by the real driver either.
            return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        };
        if st.capturing.is_some() {
            return CUDA_ERROR_ILLEGAL_STATE;
        }
        st.capturing = Some(graph);
        o.graphs.insert(graph, Vec::new());
        CUDA_SUCCESS
    }

    /// `cuStreamIsCapturing`: 1 (active) for a stream being captured, else 0 (none).
    pub fn is_capturing(&self, s: *mut std::ffi::c_void) -> Result<i32, CUresult> {
        let s = h(s);
        if s == 0 || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD {
            return Ok(0);
        }
        let o = self.objs();
        let st = o.streams.get(&s).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        Ok(i32::from(st.capturing.is_some()))
    }

    pub fn end_capture(&self, s: *mut std::ffi::c_void) -> Result<usize, CUresult> {
        let mut o = self.objs();
        let st = o.streams.get_mut(&h(s)).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        st.capturing.take().ok_or(CUDA_ERROR_ILLEGAL_STATE)
    }

    pub fn graph_create(&self) -> usize {
        let g = new_handle();
        self.objs().graphs.insert(g, Vec::new());
        g
    }

    pub fn graph_destroy(&self, g: *mut std::ffi::c_void) -> CUresult {
        let g = h(g);
        let mut o = self.objs();
        match o.graphs.remove(&g) {
            Some(_) => {
                o.nodes.retain(|_, (owner, _)| *owner != g);
                CUDA_SUCCESS
            }
            None => CUDA_ERROR_INVALID_HANDLE,
        }
    }

    pub fn graph_add_kernel_node(
        &self,
        g: *mut std::ffi::c_void,
        node: KernelNode,
    ) -> Result<usize, CUresult> {
        let g = h(g);
        let mut o = self.objs();
        if !o.functions.contains_key(&node.func) {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        check_shape(&node.shape)?;
        let n = new_handle();
        o.graphs
            .get_mut(&g)
            .ok_or(CUDA_ERROR_INVALID_VALUE)?
            .push(n);
        o.nodes.insert(n, (g, node));
        Ok(n)
    }

    pub fn graph_nodes(&self, g: *mut std::ffi::c_void) -> Result<Vec<usize>, CUresult> {
        self.objs()
            .graphs
            .get(&h(g))
            .cloned()
            .ok_or(CUDA_ERROR_INVALID_VALUE)
    }

    pub fn kernel_node(&self, n: *mut std::ffi::c_void) -> Result<KernelNode, CUresult> {
        self.objs()
            .nodes
            .get(&h(n))
            .map(|(_, k)| *k)
            .ok_or(CUDA_ERROR_INVALID_VALUE)
    }

    pub fn instantiate(&self, g: *mut std::ffi::c_void) -> Result<usize, CUresult> {
        let mut o = self.objs();
        let nodes = o.graphs.get(&h(g)).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let kernels: Vec<KernelNode> = nodes
            .iter()
            .filter_map(|n| o.nodes.get(n))
            .map(|(_, k)| *k)
            .collect();
        let e = new_handle();
        o.execs.insert(e, kernels);
        Ok(e)
    }

    pub fn exec_destroy(&self, e: *mut std::ffi::c_void) -> CUresult {
        match self.objs().execs.remove(&h(e)) {
            Some(_) => CUDA_SUCCESS,
            None => CUDA_ERROR_INVALID_VALUE,
        }
    }

    pub fn graph_launch(
        &self,
        e: *mut std::ffi::c_void,
        s: *mut std::ffi::c_void,
        ptds: bool,
    ) -> CUresult {
        let kernels = match self.objs().execs.get(&h(e)) {
            Some(k) => k.clone(),
            None => return CUDA_ERROR_INVALID_VALUE,
        };
        for k in kernels {
            let r = self.launch(k.func, k.shape, s, ptds);
            if r != CUDA_SUCCESS {
                return r;
            }
        }
        CUDA_SUCCESS
    }
}
