"""Identifiers: random hex ids for rows, readable default names for runs."""

import secrets
import uuid

_ADJECTIVES = (
    "amber",
    "bold",
    "brisk",
    "calm",
    "clever",
    "crisp",
    "deep",
    "eager",
    "fair",
    "fleet",
    "gentle",
    "glad",
    "keen",
    "lucid",
    "mellow",
    "nimble",
    "quiet",
    "rapid",
    "sharp",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "wise",
)
_NOUNS = (
    "brook",
    "cascade",
    "creek",
    "current",
    "delta",
    "eddy",
    "estuary",
    "fjord",
    "geyser",
    "harbor",
    "lagoon",
    "marsh",
    "rapids",
    "reef",
    "ripple",
    "river",
    "shoal",
    "spring",
    "stream",
    "tide",
    "torrent",
    "wave",
    "well",
)


def new_id() -> str:
    """A 32-character hex id, unique without coordination between processes."""
    return uuid.uuid4().hex


def run_name() -> str:
    """A short name people can say aloud, like ``swift-river-3f2a``."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(2)}"
