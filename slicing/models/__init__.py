"""torch modules; no Ray."""
