"""Great Expectations quality gates for raw, staging and marts (see README.md)."""
