"""One supervisor for every long job: launch, own, stop, reconcile, log per attempt."""
