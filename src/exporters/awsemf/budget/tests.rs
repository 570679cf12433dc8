use super::*;

/// A shared budget asks the store about what it does not know, caches the answers for the
/// hour, and folds new identities while the store cannot be asked.
#[test]
fn unknown_identities_wait_for_the_store_and_answers_are_cached() {
    let mut budget = CardinalityBudget::shared(BudgetConfig::with_max_metrics(10));
    budget.advance(0);
    let labels = Labels::from_pairs([("route", "/a")]);
    assert_eq!(budget.admit("ns", "m", &[1], &labels), Admission::Dropped);
    assert_eq!(budget.admit("ns", "m", &[2], &labels), Admission::Dropped);
    let request = budget.take_request();
    assert_eq!(request.pending.len(), 2);
    assert!(budget.take_request().is_empty());
    budget.learn(&request, &[FleetVerdict::Admitted, FleetVerdict::Folded], 3);
    assert_eq!(budget.admit("ns", "m", &[1], &labels), Admission::Admitted);
    assert_eq!(
        budget.admit("ns", "m", &[2], &labels),
        Admission::Folded,
        "refused: cached for the hour"
    );
    assert!(
        budget.take_request().pending.is_empty(),
        "no round trip for known identities"
    );
    assert_eq!(budget.fleet_admitted(), Some(3));
    budget.set_store_available(false);
    assert_eq!(
        budget.admit("ns", "m", &[3], &labels),
        Admission::Folded,
        "store gone: fold, never admit"
    );
    assert!(budget.take_request().pending.is_empty());
    budget.set_store_available(true);
    budget.advance(HOUR_MS);
    assert_eq!(
        budget.admit("ns", "m", &[2], &labels),
        Admission::Dropped,
        "a new hour: asked again"
    );
    assert_eq!(budget.take_request().pending.len(), 1);
}
