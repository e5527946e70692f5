//! Metric names of the shared plumbing (one place, `const` names).

/// Accept errors on any listener served through [`crate::accept::accept`].
pub const ACCEPT_ERRORS_TOTAL: &str = "sair_service_accept_errors_total";
/// Requests served by the admin server, by path label.
pub const ADMIN_REQUESTS_TOTAL: &str = "sair_service_admin_requests_total";

/// Describes the metrics above to the installed recorder. Call once at start-up.
pub fn describe() {
    metrics::describe_counter!(
        ACCEPT_ERRORS_TOTAL,
        "Accept errors on a listening socket (the loop backs off 1 ms to 1 s)"
    );
    metrics::describe_counter!(
        ADMIN_REQUESTS_TOTAL,
        "Admin HTTP requests, by path (metrics, healthz, readyz, other)"
    );
}
