use super::*;

#[tokio::test]
async fn records_desired_and_reports_it_as_serving() {
    let pre = StageRef::new("p", "pre");
    let mut a: Box<dyn Actuator> = Box::new(DryRun::with_stages([(pre.clone(), 1)]));
    assert_eq!(a.name(), "dry-run");
    assert_eq!(
        a.status(&pre).await.ok(),
        Some(ReplicaStatus {
            desired: 1,
            serving: 1
        })
    );
    a.scale(&pre, 3).await.expect("dry run never fails a scale");
    assert_eq!(
        a.status(&pre).await.ok(),
        Some(ReplicaStatus {
            desired: 3,
            serving: 3
        })
    );
    a.shutdown().await;
}

#[tokio::test]
async fn an_unknown_stage_is_named() {
    let mut a = DryRun::new();
    let err = a
        .status(&StageRef::new("p", "nope"))
        .await
        .expect_err("never scaled nor seeded");
    assert!(matches!(err, ActuatorError::UnknownStage { .. }), "{err}");
    assert!(err.to_string().contains("p/nope"), "{err}");
}
