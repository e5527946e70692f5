//! Test fixture: NVML answers computed from the emulated GPU timeline, as a stand-in libnvidia-ml.so.1.
