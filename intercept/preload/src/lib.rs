//! libsair_intercept.so, the LD_PRELOAD CUDA driver interposer that throttles kernel launches.
