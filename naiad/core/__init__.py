"""The nouns every layer shares: ids, statuses, errors, filters, series maths. No I/O."""
