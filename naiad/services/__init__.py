"""Use-cases that span resources; routes call these or the store, never SQL."""
