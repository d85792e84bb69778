"""An endpoint's traffic figures: the live book the keeper fills from its replicas, and the
minutes it saves so the history outlives the server."""
