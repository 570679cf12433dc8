//! A panic outside any batch ends a task the sidecar needs: health must say so (its own
//! process, since the flag is process-wide).

use otel_sidecar::extensions::health_check::HealthState;

#[tokio::test]
async fn a_panic_outside_a_batch_turns_health_unhealthy() {
    otel_sidecar::panic_policy::install_hook();
    let health = HealthState::new();
    health.set_ready();
    assert_eq!(health.response(None).0, 200);
    assert_eq!(
        otel_sidecar::panic_policy::contain("test", || -> u8 { panic!("one batch") }),
        None
    );
    assert_eq!(
        health.response(None).0,
        200,
        "a contained panic is not a failure"
    );
    let task = tokio::spawn(async { panic!("a task ends") });
    assert!(task.await.unwrap_err().is_panic());
    assert!(!otel_sidecar::panic_policy::healthy());
    assert_eq!(health.response(None).0, 503);
    assert!(!health.is_ready());
}
