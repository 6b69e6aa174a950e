"""The threat model. Importing this package imports torch (and only it does)."""
