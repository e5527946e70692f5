//! The harness itself, on `sh` scripts standing in for SAIR binaries: the bound line is read,
//! other output lands in the log, and a process that dies or stays silent is a clear error.

use sair_tests::{Launch, LaunchError, Role};

fn sh(script: &str) -> Launch {
    Launch::program("/bin/sh")
        .name("script")
        .args(["-c", script])
}

#[test]
fn the_bound_line_gives_the_addresses_and_the_rest_goes_to_the_log() {
    let running = sh(r#"echo starting; echo "warn: on stderr" >&2
echo '{"event":"bound","binary":"script","addresses":{"listen":"127.0.0.1:4321","admin":"127.0.0.1:4322"}}'
exec sleep 30"#)
    .run();
    assert_eq!(running.addr("listen").port(), 4321);
    assert_eq!(running.url("admin"), "http://127.0.0.1:4322");
    sair_tests::assert_eventually!(
        running.output().contains("warn: on stderr"),
        "stderr in the log: {}",
        running.output()
    );
    let out = running.output();
    assert!(
        out.contains("starting") && out.contains("\"event\":\"bound\""),
        "{out}"
    );
}

#[test]
fn a_process_that_exits_first_is_an_error_with_its_output() {
    let err = sh("echo 'cannot listen: address in use' >&2; exit 69")
        .try_run()
        .unwrap_err();
    let LaunchError::Exited { status, output, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(status.and_then(|s| s.code()), Some(69));
    assert!(output.contains("address in use"), "{output}");
}

#[test]
fn a_missing_role_is_named() {
    let err = sh(r#"echo '{"event":"bound","binary":"s","addresses":{"listen":"127.0.0.1:1"}}'; exec sleep 30"#)
        .role(Role::tcp("admin", "--admin"))
        .try_run()
        .unwrap_err();
    assert!(
        matches!(err, LaunchError::MissingRole { role: "admin", .. }),
        "{err}"
    );
}

#[test]
fn roles_are_passed_as_port_0_after_the_other_arguments() {
    // `sh -c SCRIPT NAME ARGS…`: the role flag and its address arrive as $1 $2.
    let running = Launch::program("/bin/sh")
        .args([
            "-c",
            r#"echo "{\"event\":\"bound\",\"binary\":\"s\",\"addresses\":{\"listen\":\"$2\"}}"; exec sleep 30"#,
            "script",
        ])
        .role(Role::tcp("listen", "--listen"))
        .run();
    assert_eq!(running.addr("listen"), "127.0.0.1:0".parse().unwrap());
}
