//! Metric names of the crate (one place, `const`s) and the label values, from enums.
//!
//! Recorded through the `metrics` facade: the process that embeds an actuator (the
//! coordinator) installs the recorder and serves `/metrics`.

/// Actuator calls that failed (each failed attempt, retried or not). Labels: `actuator`
/// (`Actuator::name`), `op` ([`Operation`]).
pub const ACTUATOR_ERRORS_TOTAL: &str = "sair_actuator_errors_total";
/// Calls that failed on every attempt and were given up. Labels as above.
pub const ACTUATOR_GIVE_UPS_TOTAL: &str = "sair_actuator_give_ups_total";
/// Replicas the local supervisor restarted after they died. Labels: `pipeline`, `stage`.
pub const ACTUATOR_RESTARTS_TOTAL: &str = "sair_actuator_restarts_total";
/// Replicas serving, per stage (local supervisor). Labels: `pipeline`, `stage`.
pub const ACTUATOR_SERVING_REPLICAS: &str = "sair_actuator_serving_replicas";

/// The operation an error label refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Scale,
    Status,
}

impl Operation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Scale => "scale",
            Operation::Status => "status",
        }
    }
}

/// Registers descriptions of every metric above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        ACTUATOR_ERRORS_TOTAL,
        "Actuator call attempts that failed, retried or not"
    );
    metrics::describe_counter!(
        ACTUATOR_GIVE_UPS_TOTAL,
        "Actuator calls that failed on every attempt"
    );
    metrics::describe_counter!(
        ACTUATOR_RESTARTS_TOTAL,
        "Replicas restarted by the local supervisor after they died"
    );
    metrics::describe_gauge!(
        ACTUATOR_SERVING_REPLICAS,
        "Replicas serving (ready and listed), per stage"
    );
}
