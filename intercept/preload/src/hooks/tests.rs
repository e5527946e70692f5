use super::*;

#[test]
fn table_names_are_unique_and_nul_terminated() {
    let t = table();
    for (i, h) in t.iter().enumerate() {
        assert!(h.name.ends_with('\0') && !h.bare_name().contains('\0'));
        assert!(
            t[i + 1..].iter().all(|o| o.name != h.name),
            "{} twice",
            h.name
        );
        assert!(is_ours(h.ours));
    }
    assert_eq!(
        own_dlsym_addr(),
        t.iter().find(|h| h.bare_name() == "dlsym").unwrap().ours
    );
}

#[test]
fn fallback_names_exist_in_the_table() {
    let t = table();
    let names = [
        "cuLaunchKernel",
        "cuLaunchKernelEx",
        "cuLaunchCooperativeKernel",
        "cuGraphLaunch",
        "cuGraphInstantiate",
        "cuGraphInstantiateWithFlags",
        "cuGraphInstantiateWithParams",
        "cuGraphExecDestroy",
        "cuGetProcAddress",
        "cuStreamBeginCapture",
        "cuStreamBeginCaptureToGraph",
        "cuStreamEndCapture",
    ];
    for name in names {
        for ver in [10000, 11030, 12000, 13000] {
            for fl in [0, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM] {
                let want = fallback_hook_name(name.as_bytes(), ver, fl).unwrap();
                assert!(t.iter().any(|h| h.bare_name() == want), "{want}");
            }
        }
    }
    let ptds = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    assert_eq!(
        fallback_hook_name(b"cuLaunchKernel", 12000, ptds),
        Some("cuLaunchKernel_ptsz")
    );
    assert_eq!(
        fallback_hook_name(b"cuGraphInstantiate", 12040, 0),
        Some("cuGraphInstantiateWithFlags")
    );
    assert_eq!(
        fallback_hook_name(b"cuGraphInstantiate", 11080, 0),
        Some("cuGraphInstantiate_v2")
    );
    assert_eq!(
        fallback_hook_name(b"cuGetProcAddress", 12000, 0),
        Some("cuGetProcAddress_v2")
    );
    assert_eq!(fallback_hook_name(b"cuMemAlloc", 12000, 0), None);
}

#[test]
fn dlsym_wrapper_maps_hooked_names_only() {
    let real = 0x1234usize as *mut c_void;
    assert_eq!(
        wrap_symbol(c"cuLaunchKernel_ptsz".as_ptr(), real) as usize,
        cuLaunchKernel_ptsz as *const () as usize
    );
    assert_eq!(
        wrap_symbol(c"dlsym".as_ptr(), real) as usize,
        own_dlsym_addr()
    );
    assert_eq!(wrap_symbol(c"cuMemAlloc_v2".as_ptr(), real), real);
    assert_eq!(wrap_symbol(c"malloc".as_ptr(), real), real);
}
