"""The operator's console (`devicegate console`): a web view of what devicegate stored, served on
127.0.0.1 for the person who started it (docs/console.md)."""
