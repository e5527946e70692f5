//! Test fixture: an emulated serialized GPU exposed as a stand-in libcuda.so.1.
