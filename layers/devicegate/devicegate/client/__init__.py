"""What apps use to read devicegate: typed events and state (models), the access patterns of
docs/consuming.md as methods, and a queue parser. Not imported by the functions."""
