//! Versioned shared-memory layout of the GPU-share token bucket, shared by the interceptor and the node agent.
